"""The `logs` namespace: `inv logs SERVICES [-f] [--tail N] [--since T]`."""
from concurrent.futures import ThreadPoolExecutor

from invoke import Collection, Context

from deploy.engine.commands import compose, swarm
from deploy.fleet import Member
from tasks._input import optional_number, service_list
from tasks._open import open_fleet
from tasks._where import Where, on_hosts


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
    lines = optional_number("--tail", tail, default=100)
    fleet = open_fleet(c, where)
    names = service_list(fleet.settings.config, services)

    def show(m: Member) -> None:
        mine = [s for s in names if s in m.services()]  # none: every service the host runs
        if mine or not names:
            argv = compose.logs(m.stack.project, mine, follow=follow, tail=lines, since=since)
            m.stack.run(argv, what="reading logs", hide=False)

    if fleet.swarm:  # Swarm gathers every task's lines on the manager
        manager = fleet.primary.stack
        project = fleet.settings.config.project
        chosen = names or [*fleet.settings.config.stateless, fleet.settings.config.proxy.service, *fleet.settings.config.stateful]
        with ThreadPoolExecutor(max_workers=len(chosen)) as pool:
            list(pool.map(lambda s: manager.run(swarm.logs(f"{project}_{s}", lines, follow, since), what="reading logs", hide=False),
                          chosen))
        return
    fleet.each(show, what="logs", parallel=len(fleet.members), summary=False)


ns = Collection("logs")
ns.add_task(logs, default=True)
