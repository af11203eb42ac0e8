from invoke import Context, task

from deploy.stack import lifecycle
from tasks._common import helps, open_stack


@task(
    iterable=["service"],
    help=helps(service="service to build; repeat for several (default: all)", no_cache="build without the layer cache"),
)
def build(c: Context, service: list[str] | None = None, no_cache: bool = False, stage: str | None = None, env_file: str | None = None) -> None:
    """Build the stack's images from source, with progress."""
    lifecycle.build(open_stack(c, stage, env_file), service or [], no_cache=no_cache)
