"""Pushing a release's image tags to the registry, with retries (``inv push`` and the
deploy's push and promote steps)."""
from __future__ import annotations

import time
from collections.abc import Sequence

from deploy.engine.commands import images as image_cmds
from deploy.engine.images import ImageName, app_images
from deploy.engine.ops import Executor, Note, Ops, run
from deploy.engine.stack import Stack, last_lines
from deploy.errors import fail
from deploy.state import history
from deploy.versions import Version

PUSH_ATTEMPTS = 3
AUTH_ERRORS = ("unauthorized", "denied", "authentication required", "no basic auth credentials")


def push_ref(stack: Stack, ref: str) -> Ops[None]:
    """docker push with retries for transient errors; auth errors fail at once."""
    for attempt in range(1, PUSH_ATTEMPTS + 1):
        yield Note(f"  pushing {ref}")
        result = yield run(stack, image_cmds.push(ref), what=f"pushing {ref}", check=False)
        if result.ok:
            return
        err = (result.stderr or result.stdout).lower()
        if any(word in err for word in AUTH_ERRORS):
            fail(f"the registry refused {ref}: {last_lines(result.stderr, 2)}", "docker login to the registry (DOCKER_REGISTRY) and deploy again")
        if attempt == PUSH_ATTEMPTS:
            fail(f"pushing {ref} failed {PUSH_ATTEMPTS} times: {last_lines(result.stderr, 2)}", "check that the registry answers, then inv push")
        yield Note(f"  push of {ref} failed (attempt {attempt}), retrying")
        time.sleep(2 * attempt)


def push_tags(stack: Stack, names: Sequence[ImageName], tags: Sequence[str]) -> Ops[None]:
    """Every tag of every pushable image."""
    for n in names:
        if n.pushable:
            for tag in tags:
                yield from push_ref(stack, n.ref(tag))


def push_release(stack: Stack, version: Version, executor: Executor) -> None:
    """``inv push``: every tag the release got (its version alone when it is not in the
    history), from this machine's engine."""
    names = app_images(stack)
    if not any(n.pushable for n in names):
        fail("this stage has no registry (DOCKER_REGISTRY)", "set DOCKER_REGISTRY in the env file")
    recorded = [r.tags for r in history.history(stack) if r.version == version.tag]
    tags = recorded[-1] if recorded else [version.tag]
    for n in names:
        if not stack.target.run(image_cmds.exists(n.ref(version.tag)), warn=True).ok:
            fail(f"{n.ref(version.tag)} is not on this engine", f"build it with inv deploy --version {version}")
    executor(push_tags(stack, names, tags))
