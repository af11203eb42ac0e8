from invoke import Context, task

from deploy.commands import compose
from tasks._common import helps, open_stack, service_list


@task(
    positional=["services"],
    help=helps(
        services="'all' or services separated by commas (backend,web)",
        follow="keep streaming new lines",
        tail="lines per container to start with (default 100)",
        since="only lines since a time (2026-01-02T15:04:05) or a duration (10m)",
    ),
)
def logs(
    c: Context,
    services: str,
    follow: bool = False,
    tail: int = 100,
    since: str | None = None,
    stage: str | None = None,
    env_file: str | None = None,
) -> None:
    """Show the logs of services: `inv logs backend -f`, `inv logs all --tail 20`."""
    stack = open_stack(c, stage, env_file)
    names = service_list(stack.settings.config, services)
    argv = compose.logs(stack.project, names, follow=follow, tail=tail, since=since)
    stack.run(argv, what="reading logs", hide=False)
