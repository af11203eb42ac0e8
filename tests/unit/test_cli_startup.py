"""What the CLI's start loads: `inv --list` and `inv --help TASK` import Invoke, tasks.py
and tasks/, and of the library only the module whose values the tasks' help shows.

The allowed modules of the library (``ALLOWED``), and why each:
- ``deploy``: the package itself, which Python imports before any module in it (its
  ``__init__`` is a docstring);
- ``deploy.defaults``: values that a task's flags show in their help or take as a
  default (`inv tls.issue --server`'s Let's Encrypt URL, `inv hosts.firewall
  --revert-after`'s minimum); it imports nothing.
Nothing else: every other module of the library is imported by a task's body (or the
helper it calls) when the task runs. A module-level import of the library in tasks/
(or in tasks._where, _open, _input, _show, which the task modules import at their top)
would load it, and whatever it imports, for every listing: that is what made
`inv --list` take 0.4 to 0.8 s (issue 24; bench/cli_startup measures it).

Nor do listing and help import the third-party packages that only running a task
needs (``NOT_FOR_LISTING``): Fabric and paramiko (and the cryptography they load) for
SSH hosts, rich for tables and progress, python-dotenv for env files.

Each check runs Invoke's own program (``invoke.main.program``, what `inv` runs) in a new
interpreter in the repository, so tasks.py is found and imported as `inv` does it.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ALLOWED = {"deploy", "deploy.defaults"}
NOT_FOR_LISTING = ("fabric", "paramiko", "cryptography", "nacl", "rich", "dotenv")

# Runs `inv ARGS` for each command line given as JSON on argv, then (with "--every-task")
# `inv --help NAME` for every task name and alias; prints, for each command, the
# modules loaded once it has run.
PROBE = r"""
import contextlib, io, json, sys
from invoke.main import program

def run(argv):
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        program.run(["inv", *argv], exit=False)
    return sorted(sys.modules)

commands = json.loads(sys.argv[1])
loaded = {" ".join(argv): run(argv) for argv in commands}
if "--every-task" in sys.argv:
    names = sys.modules["tasks"].ns.task_names  # the collection inv just loaded: name -> aliases
    for name in sorted({n for full, aliases in names.items() for n in (full, *aliases)}):
        loaded[f"--help {name}"] = run(["--help", name])
print(json.dumps(loaded))
"""


def loaded_by(*commands: list[str], every_task: bool = False, before: str = "") -> dict[str, list[str]]:
    """Each command line -> the modules loaded once `inv` has run it (and the ones before)
    in a new interpreter in the repository; ``before`` is code run first."""
    argv = [sys.executable, "-c", before + "\n" + PROBE, json.dumps([list(c) for c in commands])]
    if every_task:
        argv.append("--every-task")
    result = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def of_the_library(modules: list[str]) -> set[str]:
    return {m for m in modules if m == "deploy" or m.startswith("deploy.")}


def beyond_allowed(loaded: dict[str, list[str]]) -> dict[str, list[str]]:
    """command -> the library's modules it loaded that listing does not need."""
    found = {command: sorted(of_the_library(modules) - ALLOWED) for command, modules in loaded.items()}
    return {command: extra for command, extra in found.items() if extra}


def test_listing_and_every_tasks_help_load_no_more_of_the_library_than_deploy_defaults():
    loaded = loaded_by(["--list"], ["--list", "--list-format", "json"], ["--help"], every_task=True)
    assert len(loaded) > 40, sorted(loaded)  # every task's --help ran (and each alias, each namespace's bare name)
    assert "--help deploy" in loaded and "--help db.offsite.prune" in loaded and "--help build" in loaded
    assert {m for m in loaded["--list"] if m.startswith("tasks.")} >= {"tasks.db", "tasks.deploy", "tasks.tls"}  # the tasks were loaded
    assert beyond_allowed(loaded) == {}


def test_listing_and_help_load_neither_fabric_nor_paramiko_nor_rich():
    loaded = loaded_by(["--list"], ["--help", "deploy"], ["--help", "db.backup"])
    for command, modules in loaded.items():
        assert [m for m in modules if m.split(".")[0] in NOT_FOR_LISTING] == [], command


def test_the_check_sees_a_library_module_imported_at_the_start():
    """A task module that imported the library at its top would load it at `inv --list`,
    as this import before the run does: the check names it and what it brought along."""
    extra = beyond_allowed(loaded_by(["--list"], before="import deploy.engine.ops"))
    assert "deploy.engine.ops" in extra["--list"] and "deploy.engine.stack" in extra["--list"]
    loaded = loaded_by(["--list"], before="import fabric")
    assert "paramiko" in loaded["--list"]


def test_a_task_still_imports_what_it_runs_with():
    """The library comes in when a task runs: `inv db.prune --dry-run` (nothing changed,
    no engine needed) with a missing env file stops with the library's message and fix."""
    result = subprocess.run([sys.executable, "-m", "invoke", "db.prune", "--dry-run", "--env-file", "/nonexistent/.env"], cwd=ROOT,
                            capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "error: env file /nonexistent/.env not found" in result.stderr and "fix:" in result.stderr
