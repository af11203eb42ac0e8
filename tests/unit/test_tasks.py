"""Task arguments as the `inv` command line parses them (no engine needed)."""
import re
import subprocess
import sys
from pathlib import Path

import pytest
from invoke.exceptions import Exit

from tasks._common import command_after_dashes, service_list

ROOT = Path(__file__).resolve().parents[2]
INV = [sys.executable, "-m", "invoke"]
TASKS = ["build", "check", "clean", "down", "exec", "health", "init", "logs", "scale", "shell", "stats", "status", "up",
         "db.backup", "db.kill", "db.list", "db.migrate", "db.prune", "db.reindex", "db.restore", "db.seed",
         "db.shell", "db.stats", "db.verify", "deploy", "lock.release", "lock.status", "push", "releases", "rollback"]


def inv(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*INV, *args], cwd=ROOT, capture_output=True, text=True, timeout=60)


def test_every_task_is_listed_with_help():
    out = inv("--list").stdout
    for name in TASKS:
        line = next((l for l in out.splitlines() if l.strip().startswith(name + " ")), "")
        assert line.split(maxsplit=1)[1:], f"{name} has no help line in inv --list"


@pytest.mark.parametrize("task", TASKS)
def test_every_task_has_flag_help(task):
    result = inv("--help", task)
    assert result.returncode == 0, result.stderr
    assert "Docstring:\n  none" not in result.stdout
    options = [l for l in result.stdout.split("Options:")[1].splitlines() if l.startswith("  -")]
    assert options
    for line in options:
        assert re.match(r"\s+-\S.*?\s{2,}\S", line), f"{task}: flag without help: {line.strip()}"


@pytest.mark.parametrize(
    "args,message",
    [
        (("scale", "--backend", "abc"), "not a number"),
        (("scale", "--backend", "-2"), "negative"),
        (("scale", "--web", "0"), "add --yes"),
        (("scale", "--set", "postgres=2"), "stateful"),
        (("scale",), "nothing to scale"),
        (("status", "--stage", "nope"), "unknown stage"),
        (("status", "--env-file", "/nonexistent/x.env"), "not found"),
        (("db.kill", "12;reboot"), "not a process id"),
        (("db.backup", "--label", "a b;c", "--env-file", ".env.example"), "label 'a b;c' is not allowed"),
        (("db.verify", "../../etc/passwd", "--env-file", ".env.example"), "'..' and shell characters"),
        (("db.restore", "x.dump;rm -rf /", "--env-file", ".env.example"), "'..' and shell characters"),
        (("db.prune", "--keep", "0", "--env-file", ".env.example"), "at least 1"),
    ],
)
def test_bad_input_exits_1_with_reason_and_fix(args, message):
    result = inv(*args)
    assert result.returncode == 1
    assert message in result.stderr
    assert "fix:" in result.stderr


def test_command_after_dashes_keeps_words_exactly():
    argv = ["inv", "exec", "backend", "--", "sh", "-c", "echo $0", "a b;c"]
    assert command_after_dashes(argv) == ["sh", "-c", "echo $0", "a b;c"]
    with pytest.raises(Exit, match="no command given"):
        command_after_dashes(["inv", "exec", "backend"])
    with pytest.raises(Exit, match="empty command"):
        command_after_dashes(["inv", "exec", "backend", "--"])


def test_service_list(config):
    assert service_list(config, "all") == []
    assert service_list(config, "backend, web") == ["backend", "web"]
    with pytest.raises(Exit, match="unknown service"):
        service_list(config, "backend,$(reboot)")
