"""The deploy lock on the recording fake engine: one owner (a token), a heartbeat, stale
wherever it was taken (judged on the target's clock), waiting, breaking (by a rename,
then checked; audited, its release interrupted), a holder that stops when its lock is
broken, and every mutating task behind it."""
from __future__ import annotations

import dataclasses
import json
import os
import socket
import subprocess
import threading
import time
from datetime import datetime, timedelta, timezone

import pytest
from invoke import Config, Context
from invoke.exceptions import Exit

from deploy.engine.ops import Call, Executor
from deploy.engine.stack import Stack
from deploy.fleet import local_fleet
from deploy.state import history, lock, lock_holder
from deploy.state.history import Release
from tasks import ns as root
from tests.unit.conftest import ROOT
from tests.unit.fake_engine import FakeEngine, is_read

MUTATING = ["up", "down", "scale", "clean", "db.restore", "db.migrate", "db.seed", "db.kill", "db.reindex", "deploy", "rollback",
            "db.prune", "db.offsite.prune", "db.schedule", "tls.selfsigned", "tls.install", "tls.issue", "tls.renew", "hosts.firewall", "swarm.init",
            "db.offsite.init", "push"]


@pytest.fixture
def stack(fake_settings) -> Stack:
    return Stack(fake_settings, FakeEngine())


@pytest.fixture(autouse=True)
def quick(monkeypatch):
    monkeypatch.setattr(lock, "POLL_SECONDS", 0.02, raising=False)


def dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def ago(seconds: float) -> str:
    return (datetime.now(timezone.utc) - timedelta(seconds=seconds)).isoformat(timespec="seconds")


def plant(stack: Stack, **fields) -> lock_holder.LockInfo:
    """A lock written by someone else (another process, perhaps another machine)."""
    host, boot_id, pidns = lock_holder.this_process()
    info = lock_holder.LockInfo(**{"user": "alice", "host": host, "pid": os.getpid(), "since": ago(5), "purpose": "deploy 9.9.9",
                            "token": "a" * 32, "boot_id": boot_id, "pidns": pidns, **fields})
    engine = stack.target
    assert isinstance(engine, FakeEngine)
    engine.dirs.add(stack.state_file("deploy.lock"))
    engine.write_text(stack.state_file("deploy.lock/holder.json"),
                      json.dumps({k: v for k, v in dataclasses.asdict(info).items() if k != "age"}))
    return info


def current(stack: Stack) -> lock_holder.LockInfo:
    """The lock the target holds now (the test fails if there is none)."""
    info = lock.read(stack)
    assert info is not None, "no lock is held"
    return info


def audit(stack: Stack) -> list[dict]:
    return [json.loads(line) for line in (stack.target.read_text(stack.state_file("audit.log")) or "").splitlines()]


# --- one owner ---------------------------------------------------------------------------------
def test_only_the_owner_releases_the_lock(stack):
    a = lock.acquire(stack, "deploy 1.0.3")
    lock.break_lock(stack, force=True)
    b = lock.acquire(stack, "deploy 1.0.4")
    assert a.token and b.token and a.token != b.token
    assert lock.release(stack, a) is False  # A ends: B's lock stays
    assert current(stack).token == b.token
    assert lock.release(stack, b) is True and lock.read(stack) is None


def test_a_broken_lock_is_left_to_its_new_holder_when_the_block_ends(stack):
    with lock.held(stack, "up"):
        lock.break_lock(stack, force=True)
        b = lock.acquire(stack, "deploy 1.0.4")
    assert current(stack).token == b.token
    assert [e["event"] for e in audit(stack)] == ["up started", "lock broken", "up success", "lock lost"]


def test_a_forced_break_is_audited_with_who_broke_whose_lock(stack):
    plant(stack, user="alice", host="laptop2", pid=4242, release_id="r1")
    info = lock.break_lock(stack, force=True)
    assert info is not None and info.user == "alice" and lock.read(stack) is None
    (entry,) = [e for e in audit(stack) if e["event"] == "lock broken"]
    assert entry["who"] == lock.getpass.getuser() + "@" + socket.gethostname()
    assert (entry["holder"], entry["pid"], entry["purpose"], entry["release"], entry["forced"]) == (
        "alice@laptop2", 4242, "deploy 9.9.9", "r1", True)


def test_a_live_lock_is_not_broken_without_force(stack):
    plant(stack)
    with pytest.raises(Exit, match="held by a running task: deploy 9.9.9 by alice"):
        lock.break_lock(stack)
    assert lock.read(stack) is not None and audit(stack) == []


# --- stale: by heartbeat wherever taken, by pid only in this very pid namespace ----------------
def test_a_live_lock_of_a_runner_with_the_same_host_name_is_not_stale(stack):
    """Another container with this host name: its pid means nothing here; its heartbeat lives."""
    info = plant(stack, pid=dead_pid(), pidns="pid:[4026532999]", since=ago(30))
    assert not lock_holder.is_stale(current(stack))
    assert lock_holder.stale_reason(dataclasses.replace(info, pidns=lock_holder.this_process()[2])) == "its process is gone"


def test_a_lock_whose_heartbeat_stopped_is_stale_wherever_it_was_taken(stack):
    plant(stack, host="ci-runner-7", boot_id="other-boot", since=ago(600))
    beat = stack.state_file(f"deploy.lock.{'a' * 32}.heartbeat")
    stack.target.write_text(beat, json.dumps({"at": ago(300)}))
    stack.target.modified[beat] = time.time() - 300  # last written 5 min ago, by the target's clock
    info = current(stack)
    assert lock_holder.stale_reason(info) == "no heartbeat for 5 min 0 s"
    assert "last heartbeat 5 min 0 s ago" in lock.describe(info) and "[STALE: no heartbeat" in lock.describe(info)
    assert lock.break_lock(stack) is not None  # stale: no --force needed


def test_the_heartbeat_is_aged_by_the_targets_clock_not_the_holders(stack):
    """A holder whose clock is an hour behind (or ahead), or a laptop whose stamps say so:
    what counts is when the target last saw its files written."""
    plant(stack, host="laptop2", boot_id="other-boot", since=ago(3600))
    info = current(stack)
    assert lock_holder.stale_reason(info) == "" and info.age is not None and info.age < 5  # details just written
    beat = stack.state_file(f"deploy.lock.{'a' * 32}.heartbeat")
    stack.target.write_text(beat, json.dumps({"at": ago(-3600)}))  # stamped an hour ahead: still just written
    assert lock_holder.stale_reason(current(stack)) == ""
    stack.target.modified[beat] = time.time() - 120
    assert lock_holder.stale_reason(current(stack)) == "no heartbeat for 2 min 0 s"


def test_a_lock_from_before_heartbeats_is_judged_by_host_and_pid(stack):
    legacy = {"user": "bob", "host": socket.gethostname(), "pid": dead_pid(), "since": ago(9), "purpose": "deploy 1.0.0"}
    stack.target.dirs.add(stack.state_file("deploy.lock"))
    stack.target.write_text(stack.state_file("deploy.lock/holder.json"), json.dumps(legacy))
    assert lock_holder.is_stale(current(stack))
    legacy["host"] = "laptop2"
    stack.target.write_text(stack.state_file("deploy.lock/holder.json"), json.dumps(legacy))
    assert not lock_holder.is_stale(current(stack))  # another machine, no heartbeat: cannot be judged


def test_the_holder_refreshes_its_heartbeat_while_it_holds_the_lock(stack, monkeypatch):
    monkeypatch.setattr(lock, "HEARTBEAT_SECONDS", 0.02)
    with lock.held(stack, "up") as owner:
        stack.target.modified[stack.state_file("deploy.lock/holder.json")] = time.time() - 200  # taken long ago
        beat = stack.state_file(f"deploy.lock.{owner.token}.heartbeat")
        deadline = time.monotonic() + 5
        while beat not in stack.target.files and time.monotonic() < deadline:
            time.sleep(0.01)
        age = current(stack).age
        assert age is not None and age < 5
        assert "last heartbeat 0 s ago" in lock.describe(current(stack))
    assert lock.read(stack) is None


def test_the_heartbeat_stops_when_the_lock_is_not_the_owners_any_more(stack, monkeypatch):
    monkeypatch.setattr(lock, "HEARTBEAT_SECONDS", 0.02)
    owner = lock.acquire(stack, "up")
    beat = lock.Heartbeat(stack, owner)
    beat.start()
    lock.break_lock(stack, force=True)
    other = lock.acquire(stack, "deploy 2.0.0")
    beat.join(timeout=5)
    assert not beat.is_alive()
    assert current(stack).token == other.token  # the new holder's lock is untouched by the old heartbeat
    assert lock.refresh(stack, owner) is False and lock.refresh(stack, other) is True


# --- breaking: renamed aside, then checked -------------------------------------------------------
def test_a_lock_that_changed_hands_while_it_was_judged_is_not_broken(stack, monkeypatch):
    """The stale holder's lock judged, then (before the break) released and taken by a live
    task: the break renames that one aside, sees another token, and puts it back."""
    history.record(stack, Release(version="2.0.0", status="running", id="live"))
    judged = dataclasses.replace(plant(stack, pid=dead_pid()), age=None)
    lock.break_lock(stack, force=True)
    live = lock.acquire(stack, "deploy 2.0.0")
    history.record(stack, Release(version="2.0.0", status="running", id="live"))
    monkeypatch.setattr(lock, "read", lambda s: judged)  # what the breaker read a moment ago
    with pytest.raises(Exit, match="changed hands while it was being broken"):
        lock.break_lock(stack)
    monkeypatch.undo()
    assert current(stack).token == live.token and lock.ours(stack, live)
    assert [r.status for r in history.history(stack) if r.id == "live"] == ["running"]
    assert not [p for p in stack.target.dirs if "aside" in p]


# --- a holder whose lock is broken stops --------------------------------------------------------
def test_a_holder_stops_at_its_next_op_and_undoes_only_its_change(stack):
    """The lock is broken and taken by B between two ops: the second is never applied; the
    workflow's undo of the first is (no check: it only takes back what it did)."""
    applied = []

    def work():
        yield Call(stack, "first change", lambda: applied.append("first"))
        lock.break_lock(stack, force=True)
        lock.acquire(stack, "deploy 9.9.9 by B")
        try:
            yield Call(stack, "second change", lambda: applied.append("second"))
        except BaseException:
            yield Call(stack, "undo the first", lambda: applied.append("undo"))
            raise

    with pytest.raises(Exit, match=r"was broken while this task \(up\) held it: it stopped"), lock.held(stack, "up"):
        Executor()(work())
    assert applied == ["first", "undo"]
    assert current(stack).purpose == "deploy 9.9.9 by B"
    assert [e["event"] for e in audit(stack)][-2:] == ["up stopped", "lock lost"]


# --- waiting for the lock ------------------------------------------------------------------------
def test_a_task_waits_for_the_lock_and_gets_it_when_the_holder_ends(stack):
    first = lock.acquire(stack, "deploy 1.0.3")
    threading.Timer(0.2, lambda: lock.release(stack, first)).start()
    start = time.monotonic()
    with lock.held(stack, "scale", wait=5) as owner:
        assert current(stack).token == owner.token
    assert 0.15 < time.monotonic() - start < 4


def test_a_task_that_waited_in_vain_says_who_holds_the_lock(stack):
    plant(stack)
    start = time.monotonic()
    refused = r"another deploy holds the lock: deploy 9\.9\.9 by alice@\S+ \(pid \d+\) since .* \(waited 0\.3 s\)"
    with pytest.raises(Exit, match=refused), lock.held(stack, "up", wait=0.3):
        pytest.fail("the block ran without the lock")
    assert time.monotonic() - start >= 0.3
    assert audit(stack) == []


def test_a_stale_lock_is_refused_at_once_and_its_release_left_as_it_is(stack):
    """Refused is not broken: the holder judged stale may still run (a clock, a pause), so
    its release stays ``running`` until the lock is broken or taken."""
    history.record(stack, Release(version="9.9.9", status="running", id="r9"))
    plant(stack, pid=dead_pid(), release_id="r9")
    with pytest.raises(Exit, match=r"(?s)\[STALE: its process is gone\].*fix: break it: inv lock.release"):
        lock.acquire(stack, "up", wait=30)
    assert history.history(stack)[0].status == "running"
    assert current(stack).token == "a" * 32


# --- interrupted releases ---------------------------------------------------------------------------
def test_breaking_a_lock_marks_the_release_it_guarded_interrupted(stack):
    history.record(stack, Release(version="1.0.0", status="success"))
    history.record(stack, Release(version="1.0.1", status="running", id="killed"))
    plant(stack, pid=dead_pid(), release_id="killed")
    lock.break_lock(stack)
    assert [(r.version, r.status) for r in history.history(stack)] == [("1.0.0", "success"), ("1.0.1", "interrupted")]
    assert "its lock was broken" in history.history(stack)[1].error
    assert [e["interrupted"] for e in audit(stack) if e["event"] == "lock broken"] == [["killed"]]


def test_a_release_left_running_without_a_lock_is_interrupted_by_the_next_holder(stack):
    history.record(stack, Release(version="1.0.1", status="running"))
    with lock.held(stack, "up"):
        pass
    assert history.history(stack)[0].status == "interrupted"


def test_the_lock_names_the_release_it_guards(stack):
    with lock.held(stack, "deploy 1.0.3", audited=False), lock.held(stack, "deploy 1.0.3", release_id="abc", audited=False):
        assert current(stack).release_id == "abc"  # re-entrant: the deploy task around its release
    assert lock.read(stack) is None


# --- every mutating task takes the lock; read-only ones do not ------------------------------------------
def test_exactly_the_mutating_tasks_take_wait_lock():
    def has_flag(name: str) -> bool:
        task = root[name]
        help_ = dict(task.help)
        try:
            return any(a.name == "wait_lock" for a in task.get_arguments())
        finally:
            task.help = help_

    assert sorted(n for n in root.task_names if has_flag(n)) == sorted(
        f"{n}.{n}" if n in ("scale", "clean", "push") else n for n in MUTATING)


def context() -> Context:
    config = Config(project_location=ROOT)
    config.load_project()
    return Context(config)


CALLS = {
    "up": lambda t, backup: t(context()),
    "down": lambda t, backup: t(context()),
    "scale": lambda t, backup: t(context(), backend="3"),
    "clean": lambda t, backup: t(context()),
    "db.restore": lambda t, backup: t(context(), str(backup), yes=True),
    "db.migrate": lambda t, backup: t(context()),
    "db.seed": lambda t, backup: t(context()),
    "db.kill": lambda t, backup: t(context(), "12", yes=True),
    "db.reindex": lambda t, backup: t(context(), yes=True),
    "deploy": lambda t, backup: t(context(), version="3.0.0", skip_tests=True),
    "rollback": lambda t, backup: t(context(), "1.0.0"),
    "db.prune": lambda t, backup: t(context()),
    "db.offsite.prune": lambda t, backup: t(context()),
    "db.schedule": lambda t, backup: t(context(), every="6h"),
    "tls.selfsigned": lambda t, backup: t(context(), "app.example.test"),
    "tls.install": lambda t, backup: t(context(), str(backup), str(backup)),
    "tls.issue": lambda t, backup: t(context(), "app.example.test", "ops@example.test"),
    "tls.renew": lambda t, backup: t(context()),
    "hosts.firewall": lambda t, backup: t(context()),
    "swarm.init": lambda t, backup: t(context()),
    "db.offsite.init": lambda t, backup: t(context()),
    "push": lambda t, backup: t(context()),
}
READS_ONLY = {  # the same tasks, called so that they change nothing: no lock taken
    "db.schedule": lambda t: t(context()),
    "db.prune": lambda t: t(context(), dry_run=True),
    "db.offsite.prune": lambda t: t(context(), dry_run=True),
    "tls.renew": lambda t: t(context(), dry_run=True),
    "hosts.firewall": lambda t: t(context(), dry_run=True),
    "swarm.init": lambda t: t(context(), dry_run=True),
}


def held_world(fake_settings, monkeypatch) -> FakeEngine:
    """Every task opens a fleet of one fake engine, whose lock another task holds."""
    import tasks._open
    import tasks.clean
    import tasks.db
    import tasks.deploy
    import tasks.hosts
    import tasks.push
    import tasks.scale
    import tasks.stack
    import tasks.swarm
    import tasks.tls

    engine = FakeEngine()
    fleet = local_fleet(fake_settings, engine)
    for module in (tasks._open, tasks.stack, tasks.clean, tasks.scale, tasks.db, tasks.deploy, tasks.tls, tasks.hosts, tasks.swarm,
                   tasks.push):
        monkeypatch.setattr(module, "open_fleet", lambda c, where, max_surge=None: fleet)
    monkeypatch.setattr(tasks.db, "open_settings", lambda c, where: fleet.settings)
    history.record(fleet.primary.stack, Release(version="1.0.0", status="success"))
    lock.acquire(fleet.primary.stack, "deploy 9.9.9")  # held by another task (this process: alive, not stale)
    return engine


@pytest.mark.parametrize("name", sorted(READS_ONLY))
def test_a_call_that_changes_nothing_does_not_take_the_lock(name, fake_settings, monkeypatch):
    held_world(fake_settings, monkeypatch)
    try:
        READS_ONLY[name](root[name])
    except Exit as err:  # it may fail for want of hosts, a swarm, a schedule: not for the lock
        assert "holds the lock" not in str(err.message)


@pytest.mark.parametrize("name", MUTATING)
def test_every_mutating_task_is_refused_while_another_holds_the_lock(name, fake_settings, monkeypatch, tmp_path):
    engine = held_world(fake_settings, monkeypatch)
    fleet_stack = Stack(fake_settings, engine)
    backup = tmp_path / "app-20260101T000000Z.dump"
    backup.write_bytes(b"PGDMP")
    engine.journal.clear()
    with pytest.raises(Exit, match=r"another deploy holds the lock: deploy 9\.9\.9 by "):
        CALLS[name](root[name], backup)
    state = fleet_stack.state_file("")
    assert [c.line for c in engine.journal if not is_read(c.argv) and state not in c.line] == []
    assert current(fleet_stack).purpose == "deploy 9.9.9"


def test_a_schedule_dry_run_does_not_take_the_lock(fake_settings, monkeypatch, capsys):
    """db.schedule takes the lock itself (after the stage check): --dry-run prints the plan and takes none."""
    engine = held_world(fake_settings, monkeypatch)
    engine.dirs.add("/etc/cron.d")
    root["db.schedule"](context(), every="6h", dry_run=True)
    assert current(Stack(fake_settings, engine)).purpose == "deploy 9.9.9"
    assert "db-backup" in capsys.readouterr().out
