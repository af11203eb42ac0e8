from invoke import Context, task

from deploy import scale as scalemod
from deploy.output import say
from tasks._common import helps, load_config, open_stack


@task(
    iterable=["set"],
    help=helps(
        backend="replicas of backend",
        web="replicas of web",
        set="SERVICE=COUNT for any other stateless service; repeat for several",
        yes="confirm a count of 0",
    ),
)
def scale(
    c: Context,
    backend: str | None = None,
    web: str | None = None,
    set: list[str] | None = None,  # noqa: A002 (the flag is --set)
    yes: bool = False,
    stage: str | None = None,
    env_file: str | None = None,
) -> None:
    """Scale stateless services, e.g. `inv scale --backend 5 --web 2`; the counts persist.

    The proxy keeps serving while containers start or drain; stateful services are refused.
    """
    requested = scalemod.parse_assignments(set or [])
    for name, value in (("backend", backend), ("web", web)):
        if value is not None:
            requested[name] = value
    counts = scalemod.plan(load_config(c), requested, yes)
    stack = open_stack(c, stage, env_file)
    scalemod.apply(stack, counts)
    say("scaled: " + ", ".join(f"{k}={v}" for k, v in sorted(counts.items())))
