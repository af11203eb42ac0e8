from invoke import Context, task

from deploy.engine.commands import compose
from deploy.fleet import Member
from tasks._common import Where, host_helps, on_hosts, open_fleet, service_list


@task(
    positional=["services"],
    help=host_helps(
        services="'all' or services separated by commas (backend,web)",
        follow="keep streaming new lines (from every host)",
        tail="lines per container to start with (default 100)",
        since="only lines since a time (2026-01-02T15:04:05) or a duration (10m)",
    ),
)
@on_hosts
def logs(c: Context, services: str, follow: bool = False, tail: int = 100, since: str | None = None, *, where: Where) -> None:
    """Show the logs of services: `inv logs backend -f`, `inv logs all --tail 20`; on hosts, every line prefixed with its host."""
    fleet = open_fleet(c, where)
    names = service_list(fleet.settings.config, services)

    def show(m: Member) -> None:
        mine = [s for s in names or m.services() if s in m.services()]
        if mine:
            argv = compose.logs(m.stack.project, mine if fleet.remote else names, follow=follow, tail=tail, since=since)
            m.stack.run(argv, what="reading logs", hide=False)

    fleet.each(show, what="logs", parallel=len(fleet.members), summary=False)
