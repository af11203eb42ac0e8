"""``inv scale`` on a swarm: Swarm starts or stops tasks (the proxies follow its DNS,
which lists a task once healthy and drops it before its SIGTERM); the counts are kept on
the manager, so the next deploy renders them."""
from __future__ import annotations

from collections.abc import Mapping

from deploy.engine.commands import swarm as cmd
from deploy.engine.ops import Call, Ops, run
from deploy.fleet import Fleet
from deploy.swarm.switch import converged


def scale(fleet: Fleet, counts: Mapping[str, int], timeout: float) -> Ops[None]:
    manager = fleet.primary.stack
    project = manager.settings.config.project
    yield run(manager, cmd.scale({f"{project}_{name}": n for name, n in counts.items()}), what="scaling",
              fix="read Swarm's progress above; inv swarm.status shows the nodes and tasks", show=True)
    yield Call(manager, f"wait until every task of {', '.join(sorted(counts))} runs", lambda: converged(manager, sorted(counts), timeout))
    yield Call(manager, "keep the counts for the next deploy", lambda: manager.save_scale({**manager.saved_scale(), **counts}))
