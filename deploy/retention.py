"""Which backups retention keeps: one rule for the backups here (``inv db.prune``), the
scheduled job's on the db host (its sh applies this rule, tested against this function)
and the offsite repository (``restic forget`` given the same policy).

A backup is kept when any of these holds:

- it is one of the newest ``last`` complete backups (``last`` >= 1: the newest always);
- it is the newest complete backup of one of the newest ``daily`` days (UTC) that have
  one, of the newest ``weekly`` ISO weeks, of the newest ``monthly`` months (restic's
  ``--keep-daily``, ``--keep-weekly``, ``--keep-monthly``);
- it is younger than ``min_age``: nothing younger is deleted, complete or not;
- it is incomplete but not older than the newest complete backup (it may be one being
  finished right now).

Incomplete backups count for no rule; the others go.
"""
from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol, TypeVar

from deploy.errors import fail

# Each bucket rule and the strftime format (UTC) naming its bucket; the scheduled job's sh
# gives the same formats to date(1).
BUCKETS = (("daily", "%Y-%m-%d"), ("weekly", "%G-W%V"), ("monthly", "%Y-%m"))
DURATION = re.compile(r"^(\d+)([mhd])$")
UNIT = {"d": 86400, "h": 3600, "m": 60}


@dataclass(frozen=True)
class Policy:
    last: int  # the newest complete backups kept
    daily: int = 0  # the newest complete backup of each of the newest N days that have one
    weekly: int = 0
    monthly: int = 0
    min_age: int = 0  # seconds: nothing younger is deleted

    @property
    def summary(self) -> str:
        """The policy in words, e.g. ``the newest 7, 7 daily, 4 weekly, 6 monthly, all under 1d``."""
        parts = [f"the newest {self.last}"] + [f"{n} {rule}" for rule, n in self.counts() if n]
        return ", ".join(parts + ([f"all under {duration_text(self.min_age)}"] if self.min_age else []))

    def counts(self) -> tuple[tuple[str, int], ...]:
        return (("daily", self.daily), ("weekly", self.weekly), ("monthly", self.monthly))


def parse_duration(value: Any, where: str) -> int:
    """A minimum age (``0``, ``90m``, ``36h``, ``7d``) in seconds, or a clear error."""
    text = str(value).strip()
    m = DURATION.match(text)
    if text != "0" and not m:
        fail(f"{where} {value!r} is not a duration", f"write {where} in minutes, hours or days: 90m, 36h, 7d (0: none)")
    return int(m.group(1)) * UNIT[m.group(2)] if m else 0


def duration_text(seconds: int) -> str:
    for unit in ("d", "h", "m"):
        if seconds % UNIT[unit] == 0 and seconds:
            return f"{seconds // UNIT[unit]}{unit}"
    return f"{seconds}s" if seconds else "0"


def policy(last: int, daily: int, weekly: int, monthly: int, min_age: int) -> Policy:
    """A checked policy (the newest complete backup is always kept: ``last`` >= 1)."""
    if last < 1:
        fail("the newest backup is always kept: keep at least 1", "give --keep (deploy.retention.backups) 1 or more")
    for name, n in (("daily", daily), ("weekly", weekly), ("monthly", monthly), ("min_age", min_age)):
        if n < 0:
            fail(f"retention {name} {n} is negative", f"give {name} 0 or more")
    return Policy(last, daily, weekly, monthly, min_age)


class Dated(Protocol):
    @property
    def created(self) -> datetime: ...

    @property
    def complete(self) -> bool: ...


B = TypeVar("B", bound=Dated)


@dataclass(frozen=True)
class Listed:
    """A backup known by its name and date only (a host's listing)."""

    name: str
    created: datetime
    complete: bool = True


def decide(backups: Iterable[B], p: Policy, now: datetime) -> list[tuple[B, tuple[str, ...]]]:
    """Each backup, newest first, with why it is kept (empty: it is deleted). Pure."""
    ordered = sorted(backups, key=lambda b: b.created, reverse=True)
    newest = next((b.created for b in ordered if b.complete), None)
    young = timedelta(seconds=p.min_age)
    left = dict(p.counts())
    bucket: dict[str, str] = {}
    n = 0
    verdicts = []
    for b in ordered:
        why = []
        if b.complete:
            n += 1
            if n <= p.last:
                why.append("newest" if n == 1 else f"newest {p.last}")
            for rule, fmt in BUCKETS:
                key = b.created.strftime(fmt)
                if left[rule] > 0 and bucket.get(rule) != key:
                    bucket[rule], left[rule] = key, left[rule] - 1
                    why.append(f"{rule} {key}")
        elif newest is None or b.created >= newest:
            why.append("incomplete, not older than the newest complete")
        if now - b.created < young:
            why.append(f"under {duration_text(p.min_age)}")
        verdicts.append((b, tuple(why)))
    return verdicts


def kept_dates(verdicts: Iterable[tuple[B, tuple[str, ...]]]) -> list[str]:
    """The complete backups kept, newest first, as ``YYYY-MM-DD HH:MM UTC  why`` lines; a
    run of those kept only as the newest or for their age is one line (from, to, how many)."""
    lines: list[str] = []
    run: list[tuple[B, tuple[str, ...]]] = []

    def close_run() -> None:
        if len(run) > 1:
            reasons = ", ".join(dict.fromkeys(w for _, why in run for w in why))
            lines.append(f"{run[0][0].created:%Y-%m-%d %H:%M} to {run[-1][0].created:%Y-%m-%d %H:%M} UTC  {len(run)} backups: {reasons}")
        elif run:
            lines.append(_line(*run[0]))
        run.clear()

    for b, why in verdicts:
        if not (why and b.complete):
            continue
        if any(w.split()[0] in dict(BUCKETS) for w in why):
            close_run()
            lines.append(_line(b, why))
        else:
            run.append((b, why))
    close_run()
    return lines


def _line(b: Dated, why: tuple[str, ...]) -> str:
    return f"{b.created:%Y-%m-%d %H:%M} UTC  {', '.join(why)}"
