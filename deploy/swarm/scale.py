"""``inv scale`` on a swarm: Swarm starts or stops tasks (the proxies follow its DNS,
which lists a task once healthy and drops it before its SIGTERM); the counts are kept on
the manager, so the next deploy renders them."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from deploy.engine.commands import swarm as cmd
from deploy.engine.ops import Call, Executor, Ops, run
from deploy.fleet import Fleet
from deploy.swarm.switch import converged
from deploy.swarm.switch import services as swarm_services


def scale(fleet: Fleet, counts: Mapping[str, int], timeout: float, keep: bool = True) -> Ops[None]:
    """Each service to its count; ``keep``: the counts are kept for the next deploy."""
    manager = fleet.primary.stack
    project = manager.settings.stage.project
    yield run(manager, cmd.scale({f"{project}_{name}": n for name, n in counts.items()}), what="scaling",
              fix="read Swarm's progress above; inv swarm.status shows the nodes and tasks", show=True)
    yield Call(manager, f"wait until every task of {', '.join(sorted(counts))} runs", lambda: converged(manager, sorted(counts), timeout))
    if keep:
        yield Call(manager, "keep the counts for the next deploy", lambda: manager.save_scale({**manager.saved_scale(), **counts}))


@dataclass
class SwarmApps:
    """A swarm's app services, stopped for a restore's swap (scaled to 0) and started
    again at the counts they had."""

    fleet: Fleet
    timeout: float
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def where(self) -> str:
        return "on the swarm"

    def stop(self, services: list[str]) -> None:
        current = swarm_services(self.fleet.primary.stack)
        self.counts.update({s: current[s].replicas or 0 for s in services if s in current})
        Executor()(scale(self.fleet, {s: 0 for s in self.counts}, self.timeout, keep=False))

    def start(self, services: list[str]) -> None:
        Executor()(scale(self.fleet, {s: n for s, n in self.counts.items() if s in services}, self.timeout, keep=False))
