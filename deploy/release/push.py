"""Pushing a release's image tags to the registry, with retries (``inv push`` and the
deploy's push and promote steps), and the rule that a version's tag is pushed once:
never again with another image.

A version counts as pushed when the history says so (a successful deploy, or one whose
push step began, whatever became of it) or the registry has its tag. The registry is
asked over its HTTP API when it is on this machine's loopback (``127.0.0.1:PORT``,
``localhost:PORT``, as the test bed's is); any other registry needs TLS and credentials,
and there the history is the guard.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from deploy.engine.commands import images as image_cmds
from deploy.engine.facts import parse_identity
from deploy.engine.images import ImageName, app_images
from deploy.engine.ops import Executor, Note, Ops, run
from deploy.engine.stack import Stack, last_lines
from deploy.errors import fail
from deploy.state import history
from deploy.state.history import Release
from deploy.versions import SEMVER, Version

PUSH_ATTEMPTS = 3
AUTH_ERRORS = ("unauthorized", "denied", "authentication required", "no basic auth credentials")
LOOPBACK = ("127.0.0.1", "localhost")
NEVER_AGAIN = "a version is never pushed again with another image"


def registry_has(stack: Stack, name: ImageName, tag: str) -> bool | None:
    """Whether the registry has ``name:tag`` (asked from ``stack``'s engine, this machine);
    None when it cannot be asked (not a loopback registry, or no answer)."""
    registry, _, path = name.repository.partition("/")
    host, _, port = registry.rpartition(":")
    if not stack.target.local or host not in LOOPBACK or not port.isdigit() or not path:
        return None
    answer = stack.target.fetch(int(port), f"/v2/{path}/manifests/{tag}")
    return {200: True, 404: False}.get(answer.status)


def in_registry(stack: Stack | None, names: Sequence[ImageName], tag: str) -> str:
    """The first of ``names`` whose ``tag`` the registry has ("" for none, or unknown)."""
    if stack is None:
        return ""
    return next((n.ref(tag) for n in names if n.pushable and registry_has(stack, n, tag)), "")


def precedence(v: Version) -> tuple[int, int, int, bool, str]:
    """Semver order, near enough: a prerelease before its release."""
    return v.major, v.minor, v.patch, not v.prerelease, v.prerelease


def next_free(entries: Sequence[Release], here: Stack | None, names: Sequence[ImageName], part: str,
              at_least: Version | None = None) -> Version:
    """``part`` (major, minor, patch) bumped from the highest version of the history (or
    ``at_least``), again while the history or the registry has the result."""
    known = [v for v in (history.known_version(r.version) for r in entries) if v] + ([at_least] if at_least else [])
    used = {r.version for r in entries}
    candidate = max(known, key=precedence, default=Version(0, 0, 0)).bump(part)
    while candidate.tag in used or in_registry(here, names, candidate.tag):
        candidate = candidate.bump(part)
    return candidate


def refuse_pushed(version: Version, entries: Sequence[Release], here: Stack | None, names: Sequence[ImageName],
                  suggest: Callable[[], Version]) -> None:
    """Fail when ``version`` was pushed before (the history says so, or the registry has
    it), with a fix: roll back to it, or deploy the next free version."""
    before = history.pushed_by(list(entries), version.tag)
    done = [r for r in before if r.status == "success"]
    if done:
        fail(f"{version} was already deployed ({done[-1].started_at}): {NEVER_AGAIN}",
             f"return to it with inv rollback {version}, or deploy a new version: inv deploy --version {suggest()} (or --bump patch)")
    if before:
        last = before[-1]
        fail(f"{version} was pushed by a deploy that ended {last.status} ({last.started_at}); its tag in the registry names "
             f"that build: {NEVER_AGAIN}", f"deploy a new version: inv deploy --version {suggest()} (or --bump patch)")
    taken = in_registry(here, names, version.tag)
    if taken:
        fail(f"{taken} is already in the registry: {NEVER_AGAIN}", f"deploy a new version: inv deploy --version {suggest()} (or --bump patch)")


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


def is_version(tag: str) -> bool:
    """A version tag (1.4.0, 2.0.0-rc.1): pushed once. The date, the commit and `latest` move."""
    return bool(SEMVER.match(tag))


def push_tags(stack: Stack, names: Sequence[ImageName], tags: Sequence[str], fresh: bool = True) -> Ops[None]:
    """Every tag of every pushable image. ``fresh``: the images were just built, so a
    version tag the registry already has is refused before anything is pushed."""
    pushable = [n for n in names if n.pushable]
    if fresh:
        for tag in filter(is_version, tags):
            taken = in_registry(stack, pushable, tag)
            if taken:
                fail(f"{taken} is already in the registry: {NEVER_AGAIN}", "deploy a new version: inv deploy --bump patch")
    for n in pushable:
        for tag in tags:
            yield from push_ref(stack, n.ref(tag))


def push_release(stack: Stack, version: Version, executor: Executor, home: Stack | None = None) -> None:
    """``inv push``: every tag the release got (its version alone when it is not in the
    history), from this machine's engine (``stack``). A version the history (on ``home``,
    the stage's db host; default ``stack``) has as pushed is pushed again only with the
    very images its successful deploy recorded."""
    names = app_images(stack)
    if not any(n.pushable for n in names):
        fail("this stage has no registry (DOCKER_REGISTRY)", "set DOCKER_REGISTRY in the env file")
    entries = history.history(home or stack)
    recorded = [r.tags for r in entries if r.version == version.tag]
    tags = recorded[-1] if recorded else [version.tag]
    for n in names:
        if not stack.target.run(image_cmds.exists(n.ref(version.tag)), warn=True).ok:
            fail(f"{n.ref(version.tag)} is not on this engine", f"build it with inv deploy --version {version}")
    before = history.pushed_by(entries, version.tag)
    done = [r for r in before if r.status == "success"]
    if before and not done:
        fail(f"{version} was pushed by a deploy that ended {before[-1].status}, and is no release: {NEVER_AGAIN}",
             "deploy a new version: inv deploy --bump patch")
    for n in names if done else []:
        pushed = done[-1].digests.get(n.service, "")
        local = parse_identity(stack.target.run(image_cmds.identity(n.ref(version.tag)), warn=True).stdout, n.repository)
        if n.pushable and pushed and local != pushed:
            fail(f"{n.ref(version.tag)} on this engine ({local[-19:]}) is not the image release {version} pushed ({pushed[-19:]}): "
                 f"{NEVER_AGAIN}", "deploy a new version: inv deploy --bump patch")
    executor(push_tags(stack, names, tags, fresh=not done))
