"""The `logs` namespace: `inv logs SERVICES [-f] [--tail N] [--since T]`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from invoke import Collection, Context

from tasks._input import optional_number, service_list
from tasks._open import open_fleet
from tasks._where import Where, on_hosts

if TYPE_CHECKING:
    from deploy.fleet import Member


@on_hosts(
    positional=["services"],
    help={
        "services": "'all' or services separated by commas (backend,web)",
        "follow": "keep streaming new lines (from every host)",
        "tail": "lines per container to start with (default 100)",
        "since": "only lines since a time (2026-01-02T15:04:05) or a duration (10m)",
    },
)
def logs(c: Context, services: str, follow: bool = False, tail: str | None = None, since: str | None = None, *, where: Where) -> None:
    """Show the logs of services: `inv logs backend -f`, `inv logs all --tail 20`; on hosts, every line prefixed with its host."""
    from deploy.engine.commands import compose
    from deploy.stack.owner import warn_other_stage
    from deploy.swarm import cluster

    lines = optional_number("--tail", tail, default=100)
    fleet = open_fleet(c, where)
    names = service_list(fleet.settings.config, services)
    warn_other_stage(fleet)

    def show(m: Member) -> None:
        mine = [s for s in names if s in m.services()]  # none: every service the host runs
        if mine or not names:
            argv = compose.logs(m.stack.project, mine, follow=follow, tail=lines, since=since)
            m.stack.run(argv, what="reading logs", hide=False)

    if fleet.swarm:
        cluster.logs(fleet, names, lines, follow, since)
        return
    fleet.each(show, what="logs", parallel=len(fleet.members), summary=False)


ns = Collection("logs")
ns.add_task(logs, default=True)
