"""Retention (deploy.retention): the rule, by count, by day, week and month, and by age;
the scheduled job's sh twin of it, run for real over files and compared with the rule."""
from __future__ import annotations

import hashlib
import json
import random
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from invoke.exceptions import Exit

from deploy import retention
from deploy.engine.commands import backup_job
from deploy.retention import Listed, Policy, decide

T0 = datetime(2026, 11, 29, 12, 0, tzinfo=timezone.utc)  # a Sunday (ISO week 2026-W48)


def at(text: str, complete: bool = True) -> Listed:
    when = datetime.strptime(text, "%Y-%m-%d %H:%M").replace(tzinfo=timezone.utc)
    return Listed(f"app-{when:%Y%m%dT%H%M%SZ}-scheduled.dump", when, complete)


def kept(backups: list[Listed], p: Policy, now: datetime = T0) -> list[str]:
    return [f"{b.created:%Y-%m-%d %H:%M}" for b, why in decide(backups, p, now) if why]


def test_the_newest_n_complete_ones_and_never_the_newest_complete():
    found = [at("2026-11-29 11:00"), at("2026-11-29 10:00"), at("2026-11-29 09:00", complete=False), at("2026-11-29 08:00"),
             at("2026-11-29 07:00")]
    assert kept(found, Policy(2)) == ["2026-11-29 11:00", "2026-11-29 10:00"]  # the incomplete one older than the newest goes too
    newest_incomplete = [at("2026-11-29 11:30", complete=False), at("2026-11-25 00:00"), at("2026-11-20 00:00")]
    assert kept(newest_incomplete, Policy(1)) == ["2026-11-29 11:30", "2026-11-25 00:00"]  # it may be one being finished
    assert kept([at("2026-11-01 00:00", complete=False)], Policy(1)) == ["2026-11-01 00:00"]  # nothing complete: nothing goes
    with pytest.raises(Exit, match="keep at least 1"):
        retention.policy(0, 7, 4, 6, 0)


def test_each_bucket_keeps_its_newest_for_the_newest_days_weeks_and_months_that_have_one():
    found = [at(t) for t in ("2026-11-29 11:00", "2026-11-29 05:00", "2026-11-28 23:00", "2026-11-28 10:00", "2026-11-25 12:00",
                             "2026-11-20 12:00", "2026-11-02 12:00", "2026-10-15 12:00", "2026-09-30 12:00")]
    verdicts = decide(reversed(found), Policy(1, daily=3, weekly=2, monthly=3), T0)  # any order in, newest first out
    assert [(f"{b.created:%m-%d %H:%M}", why) for b, why in verdicts] == [
        ("11-29 11:00", ("newest", "daily 2026-11-29", "weekly 2026-W48", "monthly 2026-11")),
        ("11-29 05:00", ()),
        ("11-28 23:00", ("daily 2026-11-28",)),
        ("11-28 10:00", ()),
        ("11-25 12:00", ("daily 2026-11-25",)),  # the days without a backup count for nothing (as restic's)
        ("11-20 12:00", ("weekly 2026-W47",)),
        ("11-02 12:00", ()),
        ("10-15 12:00", ("monthly 2026-10",)),
        ("09-30 12:00", ("monthly 2026-09",)),
    ]
    new_year = [at("2027-01-01 12:00"), at("2026-12-31 12:00"), at("2026-12-27 12:00")]  # Friday and Thursday of 2026-W53
    assert kept(new_year, Policy(1, weekly=2), datetime(2027, 1, 2, tzinfo=timezone.utc)) == ["2027-01-01 12:00", "2026-12-27 12:00"]


def test_nothing_younger_than_the_minimum_age_is_deleted_complete_or_not():
    found = [at("2026-11-29 11:00"), at("2026-11-29 10:00", complete=False), at("2026-11-29 09:00"), at("2026-11-28 12:00"),
             at("2026-11-28 11:59")]
    assert kept(found, Policy(1, min_age=86400)) == ["2026-11-29 11:00", "2026-11-29 10:00", "2026-11-29 09:00"]  # 24 h old: not under 1d
    assert kept(found, Policy(1, min_age=86460)) == [f"{b.created:%Y-%m-%d %H:%M}" for b in found[:4]]


def test_a_logical_fault_does_not_rotate_the_good_copies_out():
    """Every 15 min for 100 days; the table was emptied 2 h ago: by count alone (the old
    rule, 7 kept) every copy left is bad; the default policy keeps good ones of each of
    the last days, weeks and months."""
    found = [Listed(f"b{i}", T0 - timedelta(minutes=15 * i)) for i in range(96 * 100)]
    fault = T0 - timedelta(hours=2)
    assert all(b.created > fault for b, why in decide(found, Policy(7), T0) if why)
    verdicts = decide(found, Policy(7, daily=7, weekly=4, monthly=6, min_age=86400), T0)
    good = [b.created for b, why in verdicts if why and b.created < fault]
    assert len({d.date() for d in good}) >= 7 and min(good) == datetime(2026, 8, 31, 23, 45, tzinfo=timezone.utc)
    # the last 24 h (96, today's and yesterday's daily among them), 5 more days, 3 more weeks, 3 more months (of 100 days)
    assert sum(1 for _, why in verdicts if why) == 96 + 5 + 3 + 3


def test_the_policy_is_shown_as_the_dates_it_keeps():
    found = [Listed(f"b{i}", T0 - timedelta(hours=6 * i)) for i in range(12)]
    p = Policy(2, daily=3, min_age=3600 * 13)
    assert p.summary == "the newest 2, 3 daily, all under 13h"
    assert retention.kept_dates(decide(found, p, T0)) == [
        "2026-11-29 12:00 UTC  newest, daily 2026-11-29, under 13h",
        "2026-11-29 06:00 to 2026-11-29 00:00 UTC  2 backups: newest 2, under 13h",
        "2026-11-28 18:00 UTC  daily 2026-11-28",
        "2026-11-27 18:00 UTC  daily 2026-11-27",
    ]
    assert Policy(7, 7, 4, 6, 86400).summary == "the newest 7, 7 daily, 4 weekly, 6 monthly, all under 1d"


def test_durations():
    assert [retention.parse_duration(v, "--min-age") for v in ("0", "90m", "36h", "7d", 0)] == [0, 5400, 129600, 604800, 0]
    for bad in ("1w", "-1d", "1.5h", "", "d"):
        with pytest.raises(Exit, match="is not a duration"):
            retention.parse_duration(bad, "--min-age")
    assert [retention.duration_text(s) for s in (0, 5400, 129600, 604800, 61)] == ["0", "90m", "36h", "7d", "61s"]


def run_sh_retention(directory: Path, p: Policy, now: datetime) -> subprocess.CompletedProcess[str]:
    """The scheduled job's retention section, as the job runs it (sh -eu, in its folder)."""
    section = backup_job.retention_section(p)
    prologue = f'started={int(now.timestamp())}; LABEL={backup_job.LABEL}; work=$(mktemp -d); cd "$1"\n{backup_job.COMPLETE_SH}\n'
    return subprocess.run(["sh", "-euc", prologue + section + 'rm -rf "$work"', "sh", str(directory)], capture_output=True, text=True,
                          timeout=120, check=True)


def make_files(directory: Path, backups: list[Listed]) -> None:
    """Complete backups as db.backup writes them; an incomplete one has its dump and sidecar only."""
    for b in backups:
        data = b"PGDMP" + b.name.encode()
        sha256 = hashlib.sha256(data).hexdigest()
        (directory / b.name).write_bytes(data)
        (directory / f"{b.name}.sha256").write_text(f"{sha256}  {b.name}\n")
        if b.complete:
            (directory / f"{b.name}.json").write_text(json.dumps({"file": b.name, "sha256": sha256}, indent=2) + "\n")


def test_the_scheduled_jobs_sh_keeps_exactly_what_the_rule_keeps(tmp_path):
    """Random backups over 15 months (across a 53-week year's end), random policies: the
    sh in the script leaves exactly the files ``decide`` keeps, and only this job's."""
    rng = random.Random(4711)
    now = datetime(2027, 1, 10, 9, 30, 17, tzinfo=timezone.utc)
    script = backup_job.script(backup_job.Job("p", "s", "postgres", "backend", "app", "app", "/d", Policy(3, 7, 4, 6, 86400)))
    assert backup_job.retention_section(Policy(3, 7, 4, 6, 86400)) in script
    new_year = [at("2027-01-01 12:00"), at("2026-12-31 12:00"), at("2026-12-27 12:00")]  # 2026-W53 is Dec 28 to Jan 3
    for case in range(30):
        directory = tmp_path / str(case)
        directory.mkdir()
        p = Policy(rng.randint(1, 4), rng.randint(0, 8), rng.randint(0, 5), rng.randint(0, 6), rng.choice([0, 3600, 5400, 86400, 3 * 86400]))
        ages = [rng.choice([3 * 86400, 20 * 86400, 450 * 86400]) for _ in range(rng.randint(0, 30))]
        stamps = {now - timedelta(seconds=rng.randint(0, age)) for age in ages}
        backups = [Listed(f"app-{t:%Y%m%dT%H%M%SZ}-scheduled.dump", t, rng.random() < 0.85) for t in stamps]
        if case == 0:
            p, backups = Policy(1, weekly=2), new_year
        others = [Listed(f"app-{t:%Y%m%dT%H%M%SZ}.dump", t) for t in list(stamps)[:3]]  # db.backup's: not the job's to delete
        make_files(directory, backups + others)
        out = run_sh_retention(directory, p, now)
        expected = {b.name for b, why in decide(backups, p, now) if why} | {b.name for b in others}
        left = {f.name for f in directory.iterdir() if f.name.endswith(".dump")}
        assert left == expected, (case, p, out.stdout)
        assert {f.name for f in directory.iterdir() if f.name.endswith(".sha256")} == {f"{n}.sha256" for n in expected}
        assert out.stdout.count("retention: deleted") == len(backups) - len(expected) + len(others)
