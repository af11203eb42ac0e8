"""The `build` namespace: `inv build` builds the images from source (this machine)."""
from invoke import Collection, Context

from tasks._open import open_stack
from tasks._where import Where, on_stage


@on_stage(
    iterable=["service"],
    help={"service": "service to build; repeat for several (default: all)", "no_cache": "build without the layer cache"},
)
def build(c: Context, service: list[str] | None = None, no_cache: bool = False, *, where: Where) -> None:
    """Build the stack's images from source, with progress."""
    from deploy.engine.ops import Executor
    from deploy.stack import lifecycle

    Executor()(lifecycle.build(open_stack(c, where), service or [], no_cache=no_cache))


ns = Collection("build")
ns.add_task(build, default=True)
