import sys

from invoke import Context, Exit, task

from deploy.commands import compose
from tasks._common import command_after_dashes, helps, open_stack


def _run_in(c: Context, service: str, command: list[str], index: int | None, stage: str | None, env_file: str | None) -> None:
    stack = open_stack(c, stage, env_file)
    stack.settings.config.check_services([service])
    tty = sys.stdin.isatty() and sys.stdout.isatty()
    argv = compose.exec_(stack.project, service, command, tty=tty, index=index)
    result = stack.target.run(argv, env=stack.settings.env, hide=False, pty=tty, warn=True)
    if not result.ok:
        raise Exit(code=result.exited)


@task(name="exec", positional=["service"], help=helps(service="the service to run in", index="which replica (default 1)"))
def exec_(c: Context, service: str, index: int | None = None, stage: str | None = None, env_file: str | None = None) -> None:
    """Run a command in a running container: `inv exec backend -- node -v`."""
    _run_in(c, service, command_after_dashes(), index, stage, env_file)


@task(positional=["service"], help=helps(service="the service to open a shell in", index="which replica (default 1)"))
def shell(c: Context, service: str, index: int | None = None, stage: str | None = None, env_file: str | None = None) -> None:
    """Open an interactive shell in a running container."""
    _run_in(c, service, ["sh"], index, stage, env_file)
