"""Offsite copies: restic's command lines (nothing secret in them), the env file, the
snapshots' JSON, the settings written to the db host, and the freshness rule."""
from __future__ import annotations

import dataclasses
import subprocess
from datetime import datetime, timedelta, timezone

import pytest
from invoke.exceptions import Exit

from deploy.config.schema import Offsite
from deploy.database import offsite, scheduled
from deploy.engine.commands import backup_job, restic
from deploy.engine.ops import Executor, Put
from deploy.retention import Policy
from tests.unit.test_ops import fleet_of

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=timezone.utc)
PASSWORD = "correct-horse-battery-staple-4711"


def with_offsite(fake_settings, **env: str):
    stage = dataclasses.replace(fake_settings.stage, offsite=Offsite("sftp:bk@backup.test:/srv/restic", keep=5, env_vars=("B2_KEY",)))
    return dataclasses.replace(fake_settings, stage=stage, env={**fake_settings.env, **env})


def test_the_env_file_is_read_back_exactly_by_sh(tmp_path):
    values = {"RESTIC_REPOSITORY": "rest:https://u:p@host/x y", "B2_KEY": "a'b\"c$d\\e"}
    path = tmp_path / "restic.env"
    path.write_text(restic.env_file(values))
    shown = subprocess.run(restic.with_env(str(path), ["sh", "-c", 'printf "%s|%s" "$RESTIC_REPOSITORY" "$B2_KEY"']),
                           capture_output=True, text=True, check=True).stdout
    assert shown == "rest:https://u:p@host/x y|a'b\"c$d\\e"


def test_command_lines_carry_no_secret():
    assert restic.backup("ssh h -s sftp", "app-prod", ["/d/a.dump"]) == [
        "restic", "-o", "sftp.command=ssh h -s sftp", "backup", "--quiet", "--tag", "app-prod", "/d/a.dump"]
    assert restic.forget("", "app-prod", Policy(5)) == ["restic", "forget", "--quiet", "--tag", "app-prod", "--group-by", "tags",
                                                        "--keep-last", "5", "--prune"]
    assert restic.forget("", "t", Policy(30, daily=7, monthly=6, min_age=5400))[-9:] == [
        "--keep-last", "30", "--keep-daily", "7", "--keep-monthly", "6", "--keep-within", "2h", "--prune"]  # an age rounded up
    assert restic.snapshots("", "t") == ["restic", "snapshots", "--json", "--tag", "t"]


def test_snapshots_are_read_from_restics_json():
    text = ('[{"time": "2026-11-29T14:29:01.123456789Z", "paths": ["/srv/a/app-20261129T142900Z-scheduled.dump", '
            '"/srv/a/app-20261129T142900Z-scheduled.dump.json"], "id": "4f2c' + "0" * 60 + '", "short_id": "4f2c0000"}]')
    (snap,) = offsite.parse_snapshots(text)
    assert snap.short_id == "4f2c0000" and snap.backup == "app-20261129T142900Z-scheduled.dump"
    assert snap.time == datetime(2026, 11, 29, 14, 29, 1, 123456, tzinfo=timezone.utc)
    assert offsite.parse_snapshots("null") == []


def test_the_password_reaches_the_db_host_only_in_its_own_0600_file(fake_settings):
    fleet, engines = fleet_of(with_offsite(fake_settings, RESTIC_PASSWORD=PASSWORD, B2_KEY="k-1"), ["h3"])
    stack = fleet.members[0].stack
    executor = Executor(say=lambda _: None)
    executor(offsite.configure(stack))
    puts = {op.path: op.mode for op in executor.applied if isinstance(op, Put)}
    assert puts == {stack.state_file(offsite.PASSWORD_FILE): 0o600, stack.state_file(offsite.ENV_FILE): 0o600}
    engine = engines["h3"]
    assert engine.files[stack.state_file(offsite.PASSWORD_FILE)] == PASSWORD.encode()
    env = engine.files[stack.state_file(offsite.ENV_FILE)].decode()
    assert PASSWORD not in env and f"RESTIC_PASSWORD_FILE={stack.state_file(offsite.PASSWORD_FILE)}" in env and "B2_KEY=k-1" in env
    assert not [c for c in engine.journal if PASSWORD in " ".join(c.argv)]
    script = backup_job.script(scheduled._job(stack, scheduled.plan("6h", None, Policy(3, 7, 4, 6, 86400), NOW, offsite=True)))
    assert PASSWORD not in script and "--tag myapp-development" in script
    assert "--keep-last 5 --keep-daily 7 --keep-weekly 4 --keep-monthly 6 --keep-within 24h --prune" in script  # offsite.keep: 5
    assert stack.settings.masked(f"x {PASSWORD} k-1") == "x **** ****"


def test_a_short_or_missing_password_is_refused_before_anything_is_written(fake_settings):
    fleet, engines = fleet_of(with_offsite(fake_settings, RESTIC_PASSWORD="short", B2_KEY="k"), ["h3"])
    with pytest.raises(Exit, match="RESTIC_PASSWORD is shorter than 16 characters"):
        Executor(say=lambda _: None)(offsite.configure(fleet.members[0].stack))
    assert engines["h3"].files == {}
    fleet, _ = fleet_of(fake_settings, ["h3"])
    with pytest.raises(Exit, match="has no offsite repository"):
        offsite.snapshots(fleet.members[0].stack)


def test_health_counts_the_offsite_copy():
    plan = scheduled.Plan(6 * 3600, None, Policy(7), (NOW - timedelta(days=3)).isoformat(), offsite=True)
    backup = (("app-20261129T110000Z-scheduled.dump", NOW - timedelta(hours=1)),)
    fresh = scheduled.Facts(plan, True, {"ok": True, "offsite_error": ""}, backup, {"at": (NOW - timedelta(hours=1)).isoformat(),
                                                                                   "file": backup[0][0]})
    ok, detail = scheduled.freshness(fresh, NOW, "h3", "production")
    assert ok and detail.endswith("; offsite: newest app-20261129T110000Z-scheduled.dump, 1 h 0 min old")
    failing = dataclasses.replace(fresh, last_run={"ok": True, "offsite_error": "offsite copy failed: connection refused"})
    ok, detail = scheduled.freshness(failing, NOW, "h3", "production")
    assert not ok and detail.endswith("the last run's offsite copy failed: connection refused")
    never = dataclasses.replace(fresh, offsite_last=None)
    assert not scheduled.freshness(never, NOW, "h3", "production")[0]


def test_a_repository_url_with_a_password_is_refused_in_invoke_yaml():
    from deploy.config.schema import _offsite
    assert _offsite({"repository": "rest:https://backup.test/app"}, "w").repository == "rest:https://backup.test/app"
    with pytest.raises(Exit, match="holds a password"):
        _offsite({"repository": "rest:https://user:secret@backup.test/app"}, "w")
