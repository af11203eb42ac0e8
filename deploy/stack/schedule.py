"""Jobs a host runs by itself (certificate renewal): one cron file per job, written whole,
removed whole. The host needs cron (Debian: ``apt-get install cron``), its daemon running."""
from __future__ import annotations

from dataclasses import dataclass

from deploy.engine.commands import cron, files
from deploy.engine.ops import Ops, Put, run
from deploy.engine.stack import Stack
from deploy.errors import fail


@dataclass(frozen=True)
class Job:
    name: str  # its cron file, unique per project, stage and job
    when: str  # cron's five time fields
    argv: tuple[str, ...]
    log: str  # where its output is appended
    comment: str

    @property
    def path(self) -> str:
        return f"{cron.CRON_DIR}/{self.name}"


CRON_FIX = "start cron: systemctl enable --now cron"


def require_cron(stack: Stack) -> Ops[None]:
    """The checks, before anything is changed, that the stack's target has cron and that
    its daemon runs (without it the jobs are files no one reads)."""
    host = stack.target.name
    yield run(stack, files.is_dir(cron.CRON_DIR), what=f"finding cron's folder {cron.CRON_DIR}",
              fix=f"install cron on {host} (Debian: apt-get install cron)")
    found = yield run(stack, cron.daemon_running(), what="finding a cron daemon", check=False)
    if not found.ok:
        fail(f"no cron daemon runs on {host} (no process {' or '.join(cron.DAEMONS)}): its jobs would never run",
             f"{CRON_FIX} on {host} (without systemd: start /usr/sbin/cron as its other daemons are started)")


def install(stack: Stack, job: Job) -> Put:
    """``job`` scheduled on the stack's target (replacing an earlier version of it)."""
    return Put(stack, job.path, cron.crontab(job.when, job.argv, job.log, job.comment).encode(), 0o644)


def installed(stack: Stack, job: Job) -> bool:
    """Whether ``job`` is scheduled on the stack's target as this version of the tool writes it."""
    return stack.target.read_text(job.path) == cron.crontab(job.when, job.argv, job.log, job.comment)
