"""Offsite copies: restic's command lines (nothing secret in them), the env file, the
snapshots' JSON, the settings written to the db host, and the freshness rule."""
from __future__ import annotations

import dataclasses
import json
import subprocess
from datetime import datetime, timedelta, timezone
from typing import TypedDict

import pytest
from invoke.exceptions import Exit

from deploy.config.schema import Offsite
from deploy.database import offsite, scheduled
from deploy.engine.commands import backup_job, restic
from deploy.engine.ops import Executor, Put
from deploy.engine.stack import Stack
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


# --- an append-only repository, pruned from the operator's machine -----------------------
REST = "rest:https://backup.test:8000/myapp/"


def append_only(fake_settings, tmp_path, admin: str | None = "RESTIC_REPOSITORY=/srv/restic/myapp\n"
                "RESTIC_PASSWORD_FILE=/root/.restic-myapp\nB2_SECRET_KEY=b2-Secret-4714\n", mode: int = 0o600, **fields):
    """The development stage with an append-only repository and this machine's admin env file (``admin``)."""
    path = tmp_path / "offsite-admin.env"
    if admin is not None:
        path.write_text(admin)
        path.chmod(mode)
    offsite_cfg = Offsite(REST, keep=2, append_only=True, admin_env_file=str(path), **fields)
    cfg = dataclasses.replace(fake_settings.config, retention=dataclasses.replace(fake_settings.config.retention,
                                                                                  backups=Policy(7, daily=2, min_age=0)))
    return dataclasses.replace(fake_settings, config=cfg, stage=dataclasses.replace(fake_settings.stage, offsite=offsite_cfg),
                               env={**fake_settings.env, "RESTIC_PASSWORD": PASSWORD})


def test_forget_is_one_builder_for_the_job_and_the_operators_prune():
    p = Policy(30, daily=7, weekly=4, min_age=86400)
    job = restic.forget("", "t", p)
    assert job == ["restic", "forget", "--quiet", "--tag", "t", "--group-by", "tags", "--keep-last", "30", "--keep-daily", "7",
                   "--keep-weekly", "4", "--keep-within", "24h", "--prune"]
    assert restic.forget("", "t", p, report=True) == [*job[:3], "--json", *job[3:]]
    assert restic.forget("", "t", p, report=True, dry_run=True) == [*job[:3], "--json", "--dry-run", *job[3:]]


def test_an_append_only_repository_gets_no_forget_from_the_db_host(fake_settings, tmp_path):
    settings = append_only(fake_settings, tmp_path)
    fleet, _ = fleet_of(settings, ["h3"])
    stack = fleet.members[0].stack
    plan = scheduled.plan("6h", None, Policy(3, 7, 4, 6, 86400), NOW, offsite=True)
    copy = offsite.copy_job(stack, plan.retention)
    assert copy is not None and copy.retention is None
    script = backup_job.script(scheduled._job(stack, plan))
    assert "restic backup --quiet --tag myapp-development" in script and "restic forget" not in script
    assert "retention is inv db.offsite.prune's, run elsewhere" in script and "its retention applied" not in script
    writable = dataclasses.replace(settings, stage=dataclasses.replace(settings.stage, offsite=dataclasses.replace(
        settings.stage.offsite, append_only=False)))
    plain = backup_job.script(scheduled._job(Stack(writable, stack.target), plan))
    assert "--keep-last 2 --keep-daily 7 --keep-weekly 4 --keep-monthly 6 --keep-within 24h --prune" in plain
    assert "its retention applied" in plain


def test_append_only_is_a_rest_repository_and_a_yes_or_no():
    from deploy.config.schema import _offsite
    parsed = _offsite({"repository": REST, "append_only": True, "admin_env_file": "~/.config/myapp-restic.env"}, "w")
    assert parsed.append_only and parsed.admin_env_file == "~/.config/myapp-restic.env"
    assert not _offsite({"repository": "/srv/restic"}, "w").append_only
    with pytest.raises(Exit, match=r"append_only needs a rest: repository \(sftp:bk@h:/srv/r is not one: the db host could delete"):
        _offsite({"repository": "sftp:bk@h:/srv/r", "append_only": True}, "w")
    with pytest.raises(Exit, match="append_only 'yes' is not true or false"):
        _offsite({"repository": REST, "append_only": "yes"}, "w")


FORGET_JSON = json.dumps([{"tags": ["myapp-development"], "host": "", "paths": None,
    "keep": [{"time": "2026-11-29T06:00:00.5Z", "tree": "t3", "paths": ["/b/app-20261129T060000Z-scheduled.dump"], "id": "c" * 64,
              "short_id": "cccccccc"},
             {"time": "2026-11-28T06:00:00+01:00", "tree": "t2", "paths": ["/b/app-20261128T050000Z-scheduled.dump"], "id": "b" * 64,
              "short_id": "bbbbbbbb"}],
    "remove": [{"time": "2026-11-27T06:00:00Z", "tree": "t1", "paths": ["/b/app-20261127T060000Z-scheduled.dump"], "id": "a" * 64,
                "short_id": "aaaaaaaa"}],
    "reasons": [{"snapshot": {"time": "2026-11-28T06:00:00+01:00", "tree": "t2"}, "matches": ["daily snapshot"]},
                {"snapshot": {"time": "2026-11-29T06:00:00.5Z", "tree": "t3"}, "matches": ["last snapshot", "daily snapshot", "within 24h"]}]}])


def test_restics_forget_report_is_read_in_db_prunes_words():
    from deploy.database import offsite_prune
    verdicts = offsite_prune.parse_forget(FORGET_JSON, Policy(2, daily=2))
    assert [(b.name, b.created.isoformat(), why) for b, why in verdicts] == [
        ("cccccccc app-20261129T060000Z-scheduled.dump", "2026-11-29T06:00:00.500000+00:00", ("newest 2", "daily 2026-11-29", "within 24h")),
        ("bbbbbbbb app-20261128T050000Z-scheduled.dump", "2026-11-28T05:00:00+00:00", ("daily 2026-11-28",)),  # in UTC
        ("aaaaaaaa app-20261127T060000Z-scheduled.dump", "2026-11-27T06:00:00+00:00", ())]
    assert offsite_prune.parse_forget("null", Policy(1)) == []


class Snapshot(TypedDict):
    """One snapshot as restic's JSON lists it (the fields the prune reads)."""

    time: str
    tree: str
    id: str
    short_id: str
    paths: list[str]


class FakeRestic:
    """A repository's snapshots (one a day at 06:00, newest first) as restic's ``forget``
    treats them: the newest --keep-last, the newest of each of the newest --keep-daily
    days; forgotten for real without --dry-run."""

    def __init__(self, days: int) -> None:
        self.snapshots: list[Snapshot] = [
            {"time": f"2026-11-{29 - d:02d}T06:00:00Z", "tree": f"t{d}", "id": f"{d:x}" * 64, "short_id": f"{d:x}" * 8,
             "paths": [f"/b/app-202611{29 - d:02d}T060000Z-scheduled.dump"]} for d in range(days)]
        self.calls: list[tuple[tuple[str, ...], dict]] = []

    def __call__(self, argv, env):
        self.calls.append((argv, dict(env)))
        flag = {argv[i]: argv[i + 1] for i in range(len(argv) - 1) if argv[i].startswith("--keep-")}
        reasons: dict[str, list[str]] = {}
        for i, snap in enumerate(self.snapshots):
            if i < int(flag["--keep-last"]):
                reasons.setdefault(snap["id"], []).append("last snapshot")
            if i < int(flag.get("--keep-daily", 0)):  # one a day here
                reasons.setdefault(snap["id"], []).append("daily snapshot")
        keep = [s for s in self.snapshots if s["id"] in reasons]
        remove = [s for s in self.snapshots if s["id"] not in reasons]
        if "--dry-run" not in argv:
            self.snapshots = keep
        return json.dumps([{"tags": [argv[argv.index("--tag") + 1]], "keep": keep, "remove": remove,
                            "reasons": [{"snapshot": {"time": s["time"], "tree": s["tree"]}, "matches": reasons[s["id"]]} for s in keep]}]), "", 0


def prune_world(settings, monkeypatch):
    """db.offsite.prune's world: the stage's db host h1 (which holds the deploy lock) and this machine (``here``), a FakeRestic there."""
    import tasks._open
    import tasks.db
    from deploy.engine import local
    from tests.unit.fake_engine import FakeEngine

    fleet, engines = fleet_of(settings, ["h1"])
    here = FakeEngine("here")
    here.restic = FakeRestic(5)
    monkeypatch.setattr(tasks._open, "open_fleet", lambda c, where, max_surge=None: fleet)
    monkeypatch.setattr(tasks.db, "open_settings", lambda c, where: settings)
    monkeypatch.setattr(local, "LocalTarget", lambda c: here)  # the task imports it when it runs
    return here, engines["h1"]


def test_db_offsite_prune_runs_restic_here_with_this_machines_credentials_under_the_lock(fake_settings, tmp_path, monkeypatch, capsys):
    from tasks import ns as root
    from tests.unit.test_lock import context

    settings = append_only(fake_settings, tmp_path)
    here, db_host = prune_world(settings, monkeypatch)
    fake = here.restic
    root["db.offsite.prune"](context(), dry_run=True)
    out = capsys.readouterr().out
    assert "retention: the newest 2, 2 daily; keeps 2 of 5 complete:" in out
    assert "2026-11-29 06:00 to 2026-11-28 06:00 UTC" not in out and "2026-11-29 06:00 UTC  newest 2, daily 2026-11-29" in out
    assert "2026-11-28 06:00 UTC  newest 2, daily 2026-11-28" in out
    assert "would forget 22222222 app-20261127T060000Z-scheduled.dump (2026-11-27 06:00 UTC)" in out
    assert "3 snapshot(s) of myapp-development would be forgotten" in out and len(fake.snapshots) == 5
    argv, env = fake.calls[-1]
    assert list(argv) == restic.forget("", "myapp-development", Policy(2, daily=2), report=True, dry_run=True)
    assert env["RESTIC_REPOSITORY"] == "/srv/restic/myapp" and env["RESTIC_PASSWORD_FILE"] == "/root/.restic-myapp"
    assert env["TZ"] == "UTC" and PASSWORD not in " ".join(argv)
    assert not [c for c in db_host.journal if c.argv[0] == "restic"]  # the db host runs none of it
    assert not [c for c in db_host.journal if "deploy.lock" in c.line]  # a dry run takes no lock

    root["db.offsite.prune"](context())
    out = capsys.readouterr().out
    assert "forgot 44444444 app-20261125T060000Z-scheduled.dump (2026-11-25 06:00 UTC)" in out
    assert "3 snapshot(s) of myapp-development forgotten, their data pruned" in out
    assert [s["short_id"] for s in fake.snapshots] == ["00000000", "11111111"]
    assert list(fake.calls[-1][0]) == restic.forget("", "myapp-development", Policy(2, daily=2), report=True)
    locked = [c.line for c in db_host.journal if "deploy.lock" in c.line]
    assert locked and "holder.json" in " ".join(locked)  # taken on the stage's primary (and released)


@pytest.mark.parametrize(("admin", "mode", "message"), [
    (None, 0o600, "offsite.admin_env_file .* not found"),
    ("RESTIC_REPOSITORY=/srv/r\nRESTIC_PASSWORD_FILE=/p\n", 0o644, r"readable by others \(mode 0644\)"),
    ("RESTIC_PASSWORD_FILE=/p\n", 0o600, "sets no RESTIC_REPOSITORY"),
    ("RESTIC_REPOSITORY=/srv/r\n", 0o600, "sets none of RESTIC_PASSWORD_FILE"),
    (f"RESTIC_REPOSITORY={REST.rstrip('/')}\nRESTIC_PASSWORD_FILE=/p\n", 0o600, "is the append-only URL the db host writes through"),
])
def test_db_offsite_prune_refuses_admin_credentials_that_cannot_or_should_not_prune(fake_settings, tmp_path, monkeypatch, admin, mode,
                                                                                    message):
    from tasks import ns as root
    from tests.unit.test_lock import context

    here, _ = prune_world(append_only(fake_settings, tmp_path, admin, mode), monkeypatch)
    with pytest.raises(Exit, match=message):
        root["db.offsite.prune"](context(), dry_run=True)
    assert here.restic.calls == []


def test_db_offsite_prune_needs_an_admin_env_file_and_masks_what_restic_says(fake_settings, tmp_path, monkeypatch):
    from tasks import ns as root
    from tests.unit.test_lock import context

    settings = append_only(fake_settings, tmp_path)
    no_admin = dataclasses.replace(settings, stage=dataclasses.replace(settings.stage, offsite=dataclasses.replace(
        settings.stage.offsite, admin_env_file="")))
    prune_world(no_admin, monkeypatch)
    with pytest.raises(Exit, match="has no offsite.admin_env_file"):
        root["db.offsite.prune"](context(), dry_run=True)
    here, _ = prune_world(settings, monkeypatch)
    here.restic = lambda argv, env: ("", f"Fatal: wrong password for b2-Secret-4714 or {PASSWORD}", 1)
    with pytest.raises(Exit) as err:
        root["db.offsite.prune"](context(), dry_run=True)
    assert "restic forget failed here: Fatal: wrong password for **** or ****" in str(err.value.message)
    assert PASSWORD not in str(err.value.message) and "b2-Secret" not in str(err.value.message)
