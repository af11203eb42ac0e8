"""Jobs a host runs by itself (certificate renewal): one cron file per job, written whole,
removed whole. The host needs cron (Debian: ``apt-get install cron``)."""
from __future__ import annotations

from dataclasses import dataclass

from deploy.engine.commands import cron, files
from deploy.engine.ops import Put, Run, run
from deploy.engine.stack import Stack


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


def require_cron(stack: Stack) -> Run:
    """The check, before anything is changed, that the stack's target has cron."""
    return run(stack, files.is_dir(cron.CRON_DIR), what=f"finding cron's folder {cron.CRON_DIR}",
               fix=f"install cron on {stack.target.name} (Debian: apt-get install cron)")


def install(stack: Stack, job: Job) -> Put:
    """``job`` scheduled on the stack's target (replacing an earlier version of it)."""
    return Put(stack, job.path, cron.crontab(job.when, job.argv, job.log, job.comment).encode(), 0o644)


def installed(stack: Stack, job: Job) -> bool:
    """Whether ``job`` is scheduled on the stack's target as this version of the tool writes it."""
    return stack.target.read_text(job.path) == cron.crontab(job.when, job.argv, job.log, job.comment)
