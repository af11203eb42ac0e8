"""Scheduled backups: the flags, cron's fields, the host's listing and the freshness rule
(pure), and the install and removal as ops on the fake engine."""
from __future__ import annotations

import dataclasses
import json
import shlex
import shutil
import subprocess
from datetime import datetime, timedelta, timezone

import pytest
from invoke.exceptions import Exit

from deploy.database import scheduled
from deploy.engine.commands import backup_job, cron
from deploy.engine.ops import Executor, Put
from deploy.retention import Policy
from tests.unit.test_ops import fleet_of

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=timezone.utc)
KEEP = Policy(7)


def test_intervals_cron_can_keep_and_the_rest_refused():
    assert scheduled.plan("6h", None, KEEP, NOW).every == 6 * 3600
    assert scheduled.plan("1d", "03:30", KEEP, NOW).at == "03:30"
    for every, at, message in [("5h", None, "does not divide the day"), ("7m", None, "does not divide"), ("2d", None, "does not divide"),
                               ("6", None, "is not an interval"), ("1d", "3:30", "is not a time"), ("6h", "03:30", "--at is for a daily backup")]:
        with pytest.raises(Exit, match=message):
            scheduled.plan(every, at, KEEP, NOW)


def test_cron_fields_spread_each_stack_over_the_hour():
    key = "deploy-myapp-production-db-backup"
    minute = cron.spread(key, 60)
    assert scheduled.cron_when(scheduled.plan("1m", None, KEEP, NOW), key) == "* * * * *"
    assert scheduled.cron_when(scheduled.plan("15m", None, KEEP, NOW), key) == "*/15 * * * *"
    assert scheduled.cron_when(scheduled.plan("1h", None, KEEP, NOW), key) == f"{minute} * * * *"
    assert scheduled.cron_when(scheduled.plan("6h", None, KEEP, NOW), key) == f"{minute} */6 * * *"
    assert scheduled.cron_when(scheduled.plan("1d", "03:05", KEEP, NOW), key) == "5 3 * * *"


def test_only_backups_with_sidecar_and_manifest_are_complete():
    listing = "\n".join(["app-20261129T110000Z-scheduled.dump", "app-20261129T110000Z-scheduled.dump.sha256",
                         "app-20261129T110000Z-scheduled.dump.json", "app-20261129T113000Z-scheduled.dump",
                         "app-20261129T113000Z-scheduled.dump.sha256", "app-20261129T114500Z-scheduled.dump.partial",
                         "app-20261129T100000Z.dump", "app-20261129T100000Z.dump.sha256", "app-20261129T100000Z.dump.json",
                         "last-run.json", "schedule.json"])
    assert [name for name, _ in scheduled.complete_backups(listing)] == ["app-20261129T110000Z-scheduled.dump", "app-20261129T100000Z.dump"]


def facts(created: list[datetime], cron_file: bool = True, last_run: dict | None = None, installed: datetime = NOW - timedelta(days=9)):
    plan = scheduled.Plan(6 * 3600, None, KEEP, installed.isoformat())
    return scheduled.Facts(plan, cron_file, last_run, tuple((f"app-{c:%Y%m%dT%H%M%SZ}-scheduled.dump", c) for c in created))


def test_health_fails_when_the_newest_backup_is_older_than_twice_the_interval():
    assert scheduled.freshness(scheduled.Facts(None, False, None, ()), NOW, "h3", "production") == (
        True, "no schedule on h3 (inv db.schedule --stage production --every 6h)")
    ok, detail = scheduled.freshness(facts([NOW - timedelta(hours=5)]), NOW, "h3", "production")
    assert ok and detail == "every 6h, keeping the newest 7: newest app-20261129T070000Z-scheduled.dump, 5 h 0 min old"
    ok, detail = scheduled.freshness(facts([NOW - timedelta(hours=13)]), NOW, "h3", "production")
    assert not ok and "older than twice the interval (12 h 0 min): is cron running there?" in detail
    ok, detail = scheduled.freshness(facts([NOW - timedelta(hours=13)], last_run={"ok": False, "error": "pg_dump failed: disk full"}),
                                     NOW, "h3", "production")
    assert not ok and detail.endswith("; last run failed: pg_dump failed: disk full")
    drill = dataclasses.replace(facts([NOW - timedelta(hours=1)]), drill={"ok": False, "at": "2026-11-29T03:00:00+00:00", "error": "counts differ"})
    ok, detail = scheduled.freshness(drill, NOW, "h3", "production")
    assert not ok and detail.endswith("the last restore drill failed (2026-11-29T03:00:00+00:00): counts differ")
    ok, detail = scheduled.freshness(facts([NOW], cron_file=False), NOW, "h3", "production")
    assert not ok and "its cron file on h3 is gone, nothing runs" in detail
    assert scheduled.freshness(facts([], installed=NOW - timedelta(hours=1)), NOW, "h3", "production")[0]  # first run still to come
    assert not scheduled.freshness(facts([], installed=NOW - timedelta(hours=13)), NOW, "h3", "production")[0]


def test_install_puts_the_script_the_plan_and_the_cron_file_on_the_db_host(fake_settings):
    fleet, engines = fleet_of(fake_settings, ["h3"])
    stack, engine = fleet.members[0].stack, engines["h3"]
    engine.dirs.add(cron.CRON_DIR)
    plan = scheduled.plan("6h", None, Policy(3, daily=7, weekly=4, monthly=6, min_age=86400), NOW)
    executor = Executor(say=lambda _: None)
    executor(scheduled.install(stack, plan))
    puts = {op.path: op.mode for op in executor.applied if isinstance(op, Put)}
    job = scheduled.cron_job(stack, plan)
    directory = scheduled.host_dir(stack)
    drill = scheduled.drill_job(stack)
    assert puts == {stack.state_file(scheduled.SCRIPT_FILE): 0o700, stack.state_file(scheduled.DRILL_SCRIPT): 0o700,
                    f"{directory}/schedule.json": 0o644, job.path: 0o644, drill.path: 0o644}
    assert drill.when.endswith(" * * 0")  # weekly, on Sundays
    assert directory == "/srv/myapp/state/development/backups"
    script = engine.files[stack.state_file(scheduled.SCRIPT_FILE)].decode()
    assert backup_job.retention_section(plan.retention) in script and f"DIR={directory}\n" in script
    assert cron.command_of(engine.files[job.path].decode()) == f"/bin/sh {stack.state_file(scheduled.SCRIPT_FILE)} >>{directory}/schedule.log 2>&1"
    engine.files[f"{directory}/{backup_job.STATUS_FILE}"] = b'{"ok": true, "file": "x"}'
    found = scheduled.facts(stack)
    assert found.plan == plan and found.cron_file and found.last_run == {"ok": True, "file": "x"}
    executor(scheduled.remove(stack))
    assert job.path not in engine.files and drill.path not in engine.files and f"{directory}/schedule.json" not in engine.files
    assert scheduled.facts(stack).plan is None


def test_a_host_whose_cron_daemon_is_not_running_is_refused_and_shown_failing(fake_settings):
    """cron's folder is there but no daemon runs: nothing is installed, the fix is given;
    a schedule installed before the daemon stopped fails db.schedule's view and inv health."""
    fleet, engines = fleet_of(fake_settings, ["h3"])
    stack, engine = fleet.members[0].stack, engines["h3"]
    engine.dirs.add(cron.CRON_DIR)
    engine.cron_running = False
    with pytest.raises(Exit, match=r"no cron daemon runs on h3(.|\n)*fix: start cron: systemctl enable --now cron on h3"):
        Executor(say=lambda _: None)(scheduled.install(stack, scheduled.plan("6h", None, KEEP, NOW)))
    assert engine.files == {}
    engine.cron_running = True
    Executor(say=lambda _: None)(scheduled.install(stack, scheduled.plan("6h", None, KEEP, NOW)))
    assert scheduled.facts(stack).cron_running
    engine.cron_running = False
    found = scheduled.facts(stack)
    ok, detail = scheduled.freshness(found, NOW + timedelta(minutes=5), "h3", "development")
    assert not found.cron_running and not ok and "no cron daemon runs on h3, nothing runs (start cron: systemctl enable --now cron there)" in detail


def test_the_daemon_check_finds_a_process_named_cron_or_crond(tmp_path):
    """Run for real in a PID namespace of its own: nothing there, then a process named crond."""
    if subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", "true"], capture_output=True).returncode:
        pytest.skip("needs unshare --pid (root)")
    check = shlex.join(cron.daemon_running())
    sleeper = tmp_path / "crond"
    shutil.copy("/bin/sleep", sleeper)
    alone = subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", "sh", "-c", check], capture_output=True, timeout=30)
    started = 'until [ "$(cat /proc/$!/comm 2>/dev/null)" = crond ]; do sleep 0.01; done'  # it has exec'd: its name is crond
    beside = subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", "sh", "-c", f"{sleeper} 30 & {started}; {check}; r=$?; kill $!; exit $r"],
                            capture_output=True, timeout=30)
    assert (alone.returncode, beside.returncode) == (1, 0)


def test_a_plan_written_before_the_buckets_is_read_as_it_ran():
    old = {"every": 21600, "at": None, "keep": 5, "keep_days": 3, "installed_at": NOW.isoformat(), "offsite": False}
    assert scheduled.Plan.load(old).retention == Policy(5, min_age=3 * 86400)
    assert scheduled.Plan.load({**old, "keep_days": None}).retention == Policy(5)
    new = scheduled.plan("6h", None, Policy(5, 7, 4, 6, 3600), NOW)
    assert scheduled.Plan.load(json.loads(json.dumps(dataclasses.asdict(new)))) == new


def test_the_schedule_shows_the_dates_its_retention_keeps_of_its_own_backups():
    plan = scheduled.Plan(6 * 3600, None, Policy(1, daily=2), (NOW - timedelta(days=9)).isoformat())
    complete = tuple((f"app-{NOW - timedelta(hours=h):%Y%m%dT%H%M%SZ}{label}.dump", NOW - timedelta(hours=h))
                     for h, label in ((1, "-scheduled"), (7, "-scheduled"), (13, "-scheduled"), (14, ""), (30, "-scheduled")))
    verdicts = scheduled.retained(scheduled.Facts(plan, True, None, complete), NOW)
    assert [(b.name[4:19], why) for b, why in verdicts] == [("20261129T110000", ("newest", "daily 2026-11-29")),
                                                           ("20261129T050000", ()), ("20261128T230000", ("daily 2026-11-28",)),
                                                           ("20261128T060000", ())]  # db.backup's (no -scheduled) is not the job's


def test_db_schedule_shows_the_retention_rule_and_the_dates_it_keeps(fake_settings, monkeypatch, capsys):
    """The task, on a db host with four scheduled backups (and one of db.backup's): it
    prints the rule it installed and the dates of the backups the job keeps, and why."""
    from invoke import Config, Context

    import tasks._open
    import tasks.db
    from tasks import ns as root
    from tests.unit.conftest import ROOT

    fleet, engines = fleet_of(fake_settings, ["h3"])
    stack, engine = fleet.members[0].stack, engines["h3"]
    for module in (tasks._open, tasks.db):
        monkeypatch.setattr(module, "open_fleet", lambda c, where, max_surge=None: fleet)
    engine.dirs.add(cron.CRON_DIR)
    noon = datetime.now(timezone.utc).replace(hour=12, minute=0, second=0, microsecond=0) - timedelta(days=1)  # in the past
    directory = scheduled.host_dir(stack)
    for created, label in ((noon, "-scheduled"), (noon - timedelta(hours=6), "-scheduled"), (noon - timedelta(hours=3), ""),
                           (noon - timedelta(days=1), "-scheduled"), (noon - timedelta(days=2), "-scheduled")):
        for suffix in ("", ".sha256", ".json"):
            engine.files[f"{directory}/app-{created:%Y%m%dT%H%M%SZ}{label}.dump{suffix}"] = b"x"
    config = Config(project_location=ROOT)
    config.load_project()
    root["db.schedule"](Context(config), every="6h", keep="1", keep_daily="2", keep_weekly="0", keep_monthly="0", min_age="0")
    out = capsys.readouterr().out
    day = [f"{noon - timedelta(days=d):%Y-%m-%d}" for d in range(3)]
    assert "(cron, UTC), keeping the newest 1, 2 daily" in out
    assert "  retention: the newest 1, 2 daily; keeps 2 of 4 complete:" in out  # db.backup's is not the job's
    assert f"    {day[0]} 12:00 UTC  newest, daily {day[0]}" in out
    assert f"    {day[1]} 12:00 UTC  daily {day[1]}" in out
    assert f"{day[0]} 06:00" not in out and day[2] not in out
