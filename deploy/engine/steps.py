"""A workflow as named, timed steps, each a generator of ops (deploy.engine.ops).

A real run prints ``[i/n] name ...`` and ``done in``; a dry run prints each step's ops
instead of applying them, so the plan is the commands. A skipped step says why.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from deploy.engine.ops import Executor, Ops


@dataclass(frozen=True)
class Step:
    name: str
    ops: Callable[[], Ops[Any]]
    skipped: str = ""  # why it does not run ("" = it runs)
    where: str = ""  # the hosts it acts on ("" = this machine)


def perform(steps: Sequence[Step], executor: Executor, done: Callable[[str, float], None] | None = None) -> None:
    """Run (or, dry, print) ``steps`` in order; ``done(name, seconds)`` after each one run."""
    for i, step in enumerate(steps, 1):
        head = f"[{i}/{len(steps)}] {step.name}" + (f" on {step.where}" if step.where else "")
        if step.skipped:
            executor.say(f"{head}: skipped ({step.skipped})")
            continue
        if executor.dry_run:
            executor.say(head)
            executor(step.ops())
            continue
        executor.say(f"{head} ...")
        start = time.monotonic()
        executor(step.ops())
        seconds = time.monotonic() - start
        executor.say(f"[{i}/{len(steps)}] {step.name}: done in {seconds:.1f} s")
        if done:
            done(step.name, seconds)
