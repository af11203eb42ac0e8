"""`inv exec SERVICE -- CMD ...` and `inv shell SERVICE`: a command in a running container."""
import sys

from invoke import Context, Exit

from tasks._input import command_after_dashes, whole_number
from tasks._open import open_fleet
from tasks._where import Where, on_host

INDEX_HELP = "which replica (default 1; on a swarm, the task's slot: default the lowest running)"


def _run_in(c: Context, service: str, command: list[str], index: str | None, where: Where) -> None:
    from deploy.engine.commands import compose, docker
    from deploy.swarm import cluster

    replica = None if index is None else whole_number("--index", index, minimum=1)
    fleet = open_fleet(c, where)
    fleet.settings.config.check_services([service])
    tty = sys.stdin.isatty() and sys.stdout.isatty()
    if fleet.swarm:  # the node that runs the task
        member, container = cluster.task_container(fleet, service, replica)
        stack = member.stack
        argv = docker.exec_(container.id, command, interactive=tty, tty=tty)
    else:
        stack = fleet.pick(service).stack
        argv = compose.exec_(stack.project, service, command, tty=tty, index=replica)
    result = stack.target.run(argv, env=stack.command_env, hide=False, pty=tty, warn=True)
    if not result.ok:
        raise Exit(code=result.exited)


@on_host(name="exec", positional=["service"], help={"service": "the service to run in", "index": INDEX_HELP})
def exec_(c: Context, service: str, index: str | None = None, *, where: Where) -> None:
    """Run a command in a running container: `inv exec backend -- node -v` (on hosts: --host NAME, else the first with the service)."""
    _run_in(c, service, command_after_dashes(), index, where)


@on_host(positional=["service"], help={"service": "the service to open a shell in", "index": INDEX_HELP})
def shell(c: Context, service: str, index: str | None = None, *, where: Where) -> None:
    """Open an interactive shell in a running container (on hosts: --host NAME)."""
    _run_in(c, service, ["sh"], index, where)
