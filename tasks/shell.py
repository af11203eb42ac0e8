import sys

from invoke import Context, Exit, task

from deploy.engine.commands import compose
from tasks._common import Where, command_after_dashes, on_hosts, one_host_helps, open_fleet


def _run_in(c: Context, service: str, command: list[str], index: int | None, where: Where) -> None:
    fleet = open_fleet(c, where)
    fleet.settings.config.check_services([service])
    stack = fleet.pick(service).stack
    tty = sys.stdin.isatty() and sys.stdout.isatty()
    argv = compose.exec_(stack.project, service, command, tty=tty, index=index)
    result = stack.target.run(argv, env=stack.command_env, hide=False, pty=tty, warn=True)
    if not result.ok:
        raise Exit(code=result.exited)


@task(name="exec", positional=["service"], help=one_host_helps(service="the service to run in", index="which replica (default 1)"))
@on_hosts(one_host=True)
def exec_(c: Context, service: str, index: int | None = None, *, where: Where) -> None:
    """Run a command in a running container: `inv exec backend -- node -v` (on hosts: --host NAME, else the first with the service)."""
    _run_in(c, service, command_after_dashes(), index, where)


@task(positional=["service"], help=one_host_helps(service="the service to open a shell in", index="which replica (default 1)"))
@on_hosts(one_host=True)
def shell(c: Context, service: str, index: int | None = None, *, where: Where) -> None:
    """Open an interactive shell in a running container (on hosts: --host NAME)."""
    _run_in(c, service, ["sh"], index, where)
