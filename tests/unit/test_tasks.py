"""Task arguments as the `inv` command line parses them (no engine needed)."""
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from invoke import Collection
from invoke.exceptions import Exit
from invoke.parser import Parser

from tasks import ns as root
from tasks._flags import SHORT_FLAGS
from tasks._input import command_after_dashes, service_list, whole_number

ROOT = Path(__file__).resolve().parents[2]
INV = [sys.executable, "-m", "invoke"]
NAMESPACES = ["build", "push", "logs", "scale", "clean"]  # a namespace whose default task is the bare word
TASKS = ["check", "down", "exec", "health", "init", "shell", "stats", "status", "up", *NAMESPACES,
         "db.backup", "db.kill", "db.list", "db.migrate", "db.prune", "db.reindex", "db.restore", "db.seed",
         "db.shell", "db.stats", "db.verify", "deploy", "lock.release", "lock.status", "releases", "rollback",
         "tls.selfsigned", "tls.install", "tls.issue", "tls.renew", "hosts.firewall", "db.schedule", "db.pull", "db.offsite.init",
         "db.offsite.list", "db.offsite.prune", "swarm.init", "swarm.status", "loadtest"]
ON_THIS_MACHINE = ["init", "build", "push", "db.list", "db.prune", "db.offsite.prune", "loadtest"]  # --stage and --env-file only
ON_ONE_HOST = ["exec", "shell", "lock.status", "lock.release"] + [t for t in TASKS if t.startswith("db.") and t not in ON_THIS_MACHINE]


def inv(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*INV, *args], cwd=ROOT, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)


def flags_of(name: str) -> dict[str, list[str]]:
    """A task's flags: its parameter name -> every name it has on the command line."""
    task = root[name]
    help_ = dict(task.help)  # get_arguments consumes the help texts
    try:
        return {arg.attr_name or arg.name: list(arg.names) for arg in task.get_arguments()}
    finally:
        task.help = help_


def test_the_root_collection_has_exactly_these_tasks():
    assert set(root.task_names) == {f"{t}.{t}" if t in NAMESPACES else t for t in TASKS}


def test_every_task_is_listed_with_help():
    out = inv("--list").stdout
    for name in TASKS:
        shown = f"{name}.{name} ({name})" if name in NAMESPACES else name  # how Invoke lists a default task
        line = next((row for row in out.splitlines() if row.strip().startswith(shown + " ")), "")
        assert line.strip().removeprefix(shown).strip(), f"{name} has no help line in inv --list"


@pytest.mark.parametrize("name", NAMESPACES)
def test_a_namespace_runs_its_default_task_by_its_bare_name(name):
    collection = root.collections[name]
    assert isinstance(collection, Collection) and collection.default == name
    assert root[name] is root[f"{name}.{name}"]


def test_bare_words_parse_as_today():
    tasks = {name: root[name] for name in root.task_names}
    saved = {name: dict(task.help) for name, task in tasks.items()}  # to_contexts consumes the help texts
    try:
        parse = Parser(contexts=root.to_contexts()).parse_argv
    finally:
        for name, task in tasks.items():
            task.help = saved[name]
    logs = parse(["logs", "backend", "-f", "--tail", "20"])[0]
    assert (logs.name, logs.args.services.value, logs.args.follow.value, logs.args.tail.value) == ("logs.logs", "backend", True, "20")
    push = parse(["push", "--version", "1.0.0"])[0]
    assert (push.name, push.args.version.value) == ("push.push", "1.0.0")
    scale = parse(["scale", "--backend", "10", "-y"])[0]
    assert (scale.name, scale.args.backend.value, scale.args.yes.value) == ("scale.scale", "10", True)
    assert [c.name for c in parse(["build", "clean"])] == ["build.build", "clean.clean"]


@pytest.mark.parametrize("task", TASKS)
def test_every_task_has_flag_help(task):
    result = inv("--help", task)
    assert result.returncode == 0, result.stderr
    assert "Docstring:\n  none" not in result.stdout
    options = [row for row in result.stdout.split("Options:")[1].splitlines() if row.startswith("  -")]
    assert options
    for line in options:
        assert re.match(r"\s+-\S.*?\s{2,}\S", line), f"{task}: flag without help: {line.strip()}"


def test_short_flags_are_the_chosen_ones_and_mean_the_same_everywhere():
    meaning: dict[str, str] = {}
    for name in root.task_names:
        seen: dict[str, str] = {}
        for flag, names in flags_of(name).items():
            for short in (n for n in names if len(n) == 1):
                assert short not in seen, f"{name}: -{short} is both --{seen[short]} and --{flag}"
                seen[short] = flag
                assert SHORT_FLAGS.get(flag) == short, f"{name}: -{short} for --{flag} was not chosen"
                assert meaning.setdefault(short, flag) == flag, f"-{short} is --{meaning[short]} elsewhere, --{flag} in {name}"
    assert "h" not in meaning  # -h after a task name stays Invoke's help
    assert meaning == {v: k for k, v in SHORT_FLAGS.items()}  # every chosen short flag is used


def test_logs_follow_is_dash_f():
    assert flags_of("logs")["follow"] == ["follow", "f"]


@pytest.mark.parametrize("task", TASKS)
def test_every_task_says_where_it_acts_the_same_way(task):
    flags = flags_of(task)
    assert flags["stage"] == ["stage", "s"] and flags["env_file"] == ["env-file"]
    kind = "machine" if task in ON_THIS_MACHINE else "host" if task in ON_ONE_HOST else "hosts"
    assert ("hosts" in flags and "roles" in flags) == (kind == "hosts"), task
    assert ("host" in flags) == (kind == "host"), task
    assert ("accept_new_host_keys" in flags) == (kind != "machine"), task


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
        (("db.backup", "--label", "a b;c", "--env-file", ".env.example"), "--label: 'a b;c' is not a valid label"),
        (("db.verify", "../../etc/passwd", "--env-file", ".env.example"), "'..' and shell characters"),
        (("db.restore", "x.dump;rm -rf /", "--env-file", ".env.example"), "'..' and shell characters"),
        (("db.prune", "--keep", "0", "--env-file", ".env.example"), "at least 1"),
        (("db.prune", "--min-age", "a week", "--env-file", ".env.example"), "--min-age 'a week' is not a duration"),
        (("deploy", "--version", "1.0.0", "--restart-stateful", "--skip-backup"), "needs the backup step"),
    ],
)
def test_bad_input_exits_1_with_reason_and_fix(args, message):
    result = inv(*args)
    assert result.returncode == 1
    assert message in result.stderr
    assert "fix:" in result.stderr


@pytest.mark.parametrize(
    "args,flag",
    [
        (("logs", "backend", "--tail", "abc"), "--tail"),
        (("logs", "all", "--tail", "-5"), "--tail"),
        (("db.stats", "--limit", "ten"), "--limit"),
        (("exec", "backend", "--index", "x", "--", "ls"), "--index"),
        (("shell", "backend", "--index", "0"), "--index"),
        (("deploy", "--version", "1.0.0", "--timeout", "soon"), "--timeout"),
        (("deploy", "--version", "1.0.0", "--parallel", "2.5"), "--parallel"),
        (("rollback", "previous", "--timeout", "1m"), "--timeout"),
        (("rollback", "previous", "--parallel", "0"), "--parallel"),
        (("db.prune", "--keep", "many", "--env-file", ".env.example"), "--keep"),
        (("db.prune", "--keep-daily", "a week", "--env-file", ".env.example"), "--keep-daily"),
        (("deploy", "--version", "1.0.0", "--max-surge", "0"), "--max-surge"),
        (("rollback", "previous", "--max-surge", "two"), "--max-surge"),
        (("scale", "--backend", "3", "--max-surge", "-1"), "--max-surge"),
    ],
)
def test_a_bad_number_is_an_error_not_a_traceback(args, flag):
    result = inv(*args)
    assert result.returncode == 1
    assert f"error: {flag} " in result.stderr and "is not a whole number" in result.stderr
    assert "fix:" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_whole_number():
    assert whole_number("--tail", " 20 ") == 20
    assert whole_number("--tail", "0") == 0
    with pytest.raises(Exit, match=r"--keep '0' is not a whole number of at least 1\n  fix: give --keep a whole number, 1 or more"):
        whole_number("--keep", "0", minimum=1)
    for bad in ("", "1.5", "1e3", "x", "-1"):
        with pytest.raises(Exit, match="is not a whole number"):
            whole_number("--tail", bad)


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


def test_no_task_raises_an_error_string_of_its_own():
    """Every task error goes through deploy.errors.fail (reason + fix)."""
    for path in (ROOT / "tasks").glob("*.py"):
        text = path.read_text()
        assert 'Exit("' not in text and "Exit(f\"" not in text, path.name


def test_db_prune_shows_the_dates_it_keeps_and_deletes_only_the_others(tmp_path):
    from datetime import datetime, timedelta, timezone

    from tests.unit.test_backups import make_backup
    folder = tmp_path / "myapp" / "development"
    folder.mkdir(parents=True)
    noon = datetime.now(timezone.utc).replace(hour=12, minute=0, second=0, microsecond=0) - timedelta(days=1)  # in the past
    made = [make_backup(folder, noon - timedelta(days=d, minutes=10 * i)) for d in range(5) for i in range(2)]
    runtime = tmp_path / "runtime.json"
    runtime.write_text(json.dumps({"deploy": {"database": {"backups_dir": str(tmp_path)}}}))
    flags = ("--keep", "1", "--keep-daily", "3", "--keep-weekly", "0", "--keep-monthly", "0", "--min-age", "0", "--env-file", ".env.example")
    dry = subprocess.run([*INV, "-f", str(runtime), "db.prune", "--dry-run", *flags], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert dry.returncode == 0, dry.stderr
    day = [f"{noon - timedelta(days=d):%Y-%m-%d}" for d in range(3)]
    assert "retention: the newest 1, 3 daily; keeps 3 of 10 complete:" in dry.stdout
    assert f"{day[0]} 12:00 UTC  newest, daily {day[0]}" in dry.stdout
    assert f"UTC  daily {day[1]}" in dry.stdout and f"UTC  daily {day[2]}" in dry.stdout
    assert dry.stdout.count("would delete") == 7 and all(p.exists() for p in made)
    real = subprocess.run([*INV, "-f", str(runtime), "db.prune", *flags], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert real.returncode == 0 and "7 backup(s) deleted" in real.stdout
    assert [p for p in made if p.exists()] == [made[0], made[2], made[4]]


def test_max_surge_flag_replaces_the_configured_one_for_the_run(raw_config):
    from invoke import Config, Context

    from tasks._open import load_config, override_max_surge

    c = Context(Config(overrides={"deploy": {**raw_config, "max_surge": 8}}))
    assert load_config(c).max_surge == 8
    override_max_surge(c, "3")
    assert load_config(c).max_surge == 3 and load_config(c).project == raw_config["project"]
