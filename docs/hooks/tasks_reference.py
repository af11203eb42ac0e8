"""The task reference (docs/tasks.md), generated from the Invoke collection itself.

Every task of the collection that ``inv`` loads (tasks.py) gets a section with what
``inv --help TASK`` shows: its name and aliases, its positional arguments, its
docstring and every flag with its help, as Invoke prints them. The page's hand-written
part stays as written; the reference replaces the line ``<!-- task-reference -->``.
Notes written for one task, as a block

    <!-- notes: db.restore -->
    ...markdown...
    <!-- /notes -->

anywhere in the page, are moved under that task's section; a note for a task the
collection does not have fails the build, so no page can describe a task that is gone.

Used as a MkDocs hook (mkdocs.yml ``hooks:``), and on its own:
``.venv/bin/python docs/hooks/tasks_reference.py`` prints the generated part.
"""
from __future__ import annotations

import importlib
import inspect
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
PAGE = "tasks.md"
MARKER = "<!-- task-reference -->"
NOTE = re.compile(r"^<!-- notes: (?P<name>\S+) -->\n(?P<text>.*?)^<!-- /notes -->\n?", re.MULTILINE | re.DOTALL)


@dataclass(frozen=True)
class TaskHelp:
    """One task as ``inv --list`` names it and ``inv --help`` describes it."""

    name: str                           # the full name: db.restore, logs.logs
    aliases: tuple[str, ...]            # logs for logs.logs (a namespace's default task)
    positional: tuple[str, ...]         # the arguments given without a flag, as their flags name them
    docstring: str
    flags: tuple[tuple[str, str], ...]  # (the flags as Invoke prints them, their help)

    @property
    def command(self) -> str:
        """How it is typed: its shortest name (a namespace's default task: the namespace's)."""
        return min((self.name, *self.aliases), key=lambda n: (n.count("."), len(n)))

    @property
    def namespace(self) -> str:
        """Where the page lists it: the namespace of the name it is typed by."""
        return self.command.rpartition(".")[0]


def load_collection() -> Any:
    """The root collection as ``inv`` builds it from tasks.py in the repository's root."""
    from invoke import Collection

    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    module = importlib.import_module("tasks")
    return Collection.from_module(module)


def task_helps(collection: Any | None = None) -> list[TaskHelp]:
    """Every task of the collection, in the order of ``inv --list`` (the root's tasks,
    then each namespace's)."""
    collection = collection if collection is not None else load_collection()
    tasks = {name: collection[name] for name in collection.task_names}
    # Building the parser's contexts pops each task's help texts (Invoke's Task.arg_opts):
    # put them back, so that a second build (mkdocs serve) and `inv` itself still have them.
    saved = {name: dict(task.help) for name, task in tasks.items()}
    try:
        contexts = {ctx.name: ctx for ctx in collection.to_contexts()}
    finally:
        for name, task in tasks.items():
            task.help = saved[name]
    helps = []
    for name, task in tasks.items():
        ctx = contexts[name]
        positional = tuple(ctx.args[p].name.replace("_", "-") for p in task.positional)
        helps.append(TaskHelp(
            name=name,
            aliases=tuple(collection.task_names[name]),
            positional=positional,
            docstring=inspect.getdoc(task) or "",
            flags=tuple((flags, text or "") for flags, text in ctx.help_tuples()),
        ))
    return sorted(helps, key=lambda t: ("." in t.name, t.name))


def _paragraphs(docstring: str) -> list[str]:
    """The docstring's paragraphs, each on one line (Invoke prints them hard-wrapped)."""
    return [" ".join(line.strip() for line in block.splitlines()) for block in re.split(r"\n\s*\n", docstring.strip()) if block.strip()]


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def anchor(name: str) -> str:
    return name.replace(".", "-")


def section(task: TaskHelp, notes: str = "") -> str:
    """One task's section of the page."""
    typed = " ".join(["inv", task.command, *(p.upper() for p in task.positional)])
    lines = [f"### `inv {task.command}` {{#{anchor(task.command)}}}", ""]
    usage = f"`{typed} [options]`" if task.flags else f"`{typed}`"
    if task.positional:
        usage += " (" + ", ".join(f"`{p.upper()}` may also be given as `--{p}`" for p in task.positional) + ")"
    if task.aliases:
        names = ", ".join(f"`inv {n}`" for n in (task.name, *task.aliases) if n != task.command)
        usage += f"; `inv --list` shows it as `{task.name} ({', '.join(task.aliases)})`, and {names} is the same task"
    lines += [usage, ""]
    for paragraph in _paragraphs(task.docstring) or ["(no docstring)"]:
        lines += [paragraph, ""]
    if notes.strip():
        lines += [notes.strip(), ""]
    if task.flags:
        lines += ["| flag | help |", "|---|---|"]
        lines += [f"| `{flags}` | {_cell(text)} |" for flags, text in task.flags]
        lines.append("")
    return "\n".join(lines)


def reference(helps: list[TaskHelp], notes: dict[str, str] | None = None) -> str:
    """The generated part of the page: an index of the tasks, then a section for each,
    the top-level ones first (a namespace's default task among them), then each namespace's."""
    notes = notes or {}
    groups: dict[str, list[TaskHelp]] = {}
    for task in sorted(helps, key=lambda t: ("." in t.command, t.command)):
        groups.setdefault(task.namespace, []).append(task)
    out = ["## Every task", ""]
    out += ["| task | what it does |", "|---|---|"]
    out += [f"| [`{t.command}`](#{anchor(t.command)}) | {_cell(_paragraphs(t.docstring)[0] if t.docstring else '')} |"
            for tasks in groups.values() for t in tasks]
    out.append("")
    for namespace, tasks in groups.items():
        out += [f"## `{namespace}.*`" if namespace else "## Top-level tasks", ""]
        out += [section(t, notes.get(t.name, notes.get(t.command, ""))) for t in tasks]
    return "\n".join(out)


def split_notes(markdown: str) -> tuple[str, dict[str, str]]:
    """The page without its notes blocks, and the notes by task name."""
    notes: dict[str, str] = {}
    for match in NOTE.finditer(markdown):
        notes[match["name"]] = notes.get(match["name"], "") + match["text"]
    return NOTE.sub("", markdown), notes


def render_page(markdown: str, helps: list[TaskHelp] | None = None) -> str:
    """The page with the reference in place of its marker and its notes under their tasks."""
    helps = helps if helps is not None else task_helps()
    page, notes = split_notes(markdown)
    known = {t.name for t in helps} | {t.command for t in helps}
    unknown = sorted(set(notes) - known)
    if unknown:
        raise ValueError(f"docs/{PAGE}: notes for tasks the collection does not have: {', '.join(unknown)}")
    if page.count(MARKER) != 1:
        raise ValueError(f"docs/{PAGE}: the line {MARKER} must appear exactly once")
    return page.replace(MARKER, reference(helps, notes))


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """MkDocs hook: generate the reference into docs/tasks.md."""
    if page.file.src_uri != PAGE:
        return markdown
    from mkdocs.exceptions import PluginError

    try:
        return render_page(markdown)
    except ValueError as err:
        raise PluginError(str(err)) from err


if __name__ == "__main__":
    print(reference(task_helps()))
