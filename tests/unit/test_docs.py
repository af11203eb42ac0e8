"""The documentation: the tasks reference generated from the collection (docs/hooks/tasks_reference.py),
the README's size and links, and mkdocs.yml's pages. The build itself (mkdocs build --strict) is in scripts/lint.sh."""
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tasks import ns as root

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
INV = [sys.executable, "-m", "invoke"]

_spec = importlib.util.spec_from_file_location("tasks_reference", DOCS / "hooks" / "tasks_reference.py")
assert _spec and _spec.loader
reference = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = reference  # as MkDocs loads a hook (dataclasses look their module up)
_spec.loader.exec_module(reference)


def inv(*args: str) -> str:
    result = subprocess.run([*INV, *args], cwd=ROOT, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def page() -> str:
    """docs/tasks.md as the documentation's build renders it."""
    return reference.render_page((DOCS / "tasks.md").read_text())


def listed_tasks() -> set[str]:
    """The names `inv --list` shows (a namespace's default task as `logs.logs (logs)`)."""
    names = set()
    for line in inv("--list").splitlines()[1:]:
        match = re.match(r"  (\S+)( \((\S+)\))?(\s|$)", line)
        if match:
            names.add(match[1])
    return names


def test_the_generator_lists_exactly_the_collections_tasks():
    assert [t.name for t in reference.task_helps()] == sorted(root.task_names, key=lambda n: ("." in n, n))


def test_every_task_of_inv_list_has_its_section_and_a_line_in_the_index(page):
    helps = {t.name: t for t in reference.task_helps()}
    listed = listed_tasks()
    assert listed == set(helps)
    sections = re.findall(r"^### `inv (\S+)`", page, re.MULTILINE)
    assert sorted(sections) == sorted(helps[name].command for name in listed)
    for name in listed:
        command = helps[name].command
        assert f"| [`{command}`](#{reference.anchor(command)}) |" in page, name


@pytest.mark.parametrize("task", ["deploy", "logs", "db.restore", "tls.issue"])
def test_a_section_has_what_inv_help_shows(task, page):
    """The same docstring and the same flags, each with its help, as `inv --help TASK`."""
    shown = inv("--help", task)
    docstring = shown.split("Docstring:\n")[1].split("\nOptions:")[0]
    options = shown.split("Options:\n")[1]
    flags = re.findall(r"^  (-\S.*?)(?:\s{2,}|$)", options, re.MULTILINE)
    help_ = reference.task_helps()
    entry = next(t for t in help_ if task in (t.name, t.command))
    assert [f for f, _ in entry.flags] == flags
    section = page.split(f"### `inv {entry.command}`")[1].split("\n### ")[0]
    for paragraph in re.split(r"\n\s*\n", docstring.strip()):
        assert " ".join(paragraph.split()) in section
    for flag, text in entry.flags:
        assert text, f"{task}: {flag} has no help"
        assert f"| `{flag}` | {' '.join(text.split())} |" in section


def test_generating_twice_keeps_the_tasks_help():
    """Invoke pops a task's help while building its parser: the generator puts it back."""
    first, second = reference.task_helps(), reference.task_helps()
    assert first == second
    assert all(text for t in second for _, text in t.flags)
    assert dict(root["deploy"].help)["version"]


def test_notes_are_placed_under_their_task_and_a_note_for_no_task_fails():
    helps = reference.task_helps()
    page = reference.render_page("# T\n\n<!-- notes: db.restore -->\nA NOTE.\n<!-- /notes -->\n\n<!-- task-reference -->\n", helps)
    section = page.split("### `inv db.restore`")[1].split("\n### ")[0]
    assert "A NOTE." in section and "<!-- notes" not in page
    with pytest.raises(ValueError, match="db.gone"):
        reference.render_page("<!-- notes: db.gone -->\nx\n<!-- /notes -->\n<!-- task-reference -->\n", helps)
    with pytest.raises(ValueError, match="exactly once"):
        reference.render_page("no marker\n", helps)


def test_the_page_renders_with_its_notes(page):
    assert "<!-- notes" not in page and reference.MARKER not in page


def test_the_readme_is_short_and_its_links_lead_to_pages():
    text = (ROOT / "README.md").read_text()
    lines = text.splitlines()
    assert len(lines) <= 250
    assert [n for n, line in enumerate(lines, 1) if len(line) > 120] == []
    for command in ("bash scripts/quickstart.sh", "bash scripts/test.sh", ".ci/run"):
        assert command in text
    links = re.findall(r"\]\((docs/[^)#]+)(#[^)]*)?\)", text)
    assert links
    for path, _ in links:
        assert (ROOT / path).is_file(), path


def test_every_page_is_in_the_navigation():
    listed = re.findall(r"^\s+- [^:]+: (\S+\.md)$", (ROOT / "mkdocs.yml").read_text(), re.MULTILINE)
    assert sorted(listed) == sorted(p.relative_to(DOCS).as_posix() for p in DOCS.glob("*.md"))


def test_no_file_points_at_a_readme_section():
    """References to the documentation name its pages (docs/PAGE.md), not README sections."""
    found = []
    globs = ["deploy/**/*.py", "tasks/*.py", "tasks.py", "tests/**/*.py", "compose/**/*", "scripts/**/*.sh", "bench/*",
             ".github/**/*.yml", "invoke.yaml", ".ci/run"]
    for path in (p for pattern in globs for p in ROOT.glob(pattern)):
        if path.is_file() and path != Path(__file__):
            text = path.read_text(errors="replace")
            found += [f"{path.relative_to(ROOT)}: {m[0]}" for m in re.finditer(r"README[^\n]{0,40}", text)]
    assert found == []
