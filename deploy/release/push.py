"""Pushing a release's image tags to the registry, with retries (``inv push`` and the
deploy's push and promote steps), and the rule that a version's tag is pushed once:
never again with another image.

A version counts as pushed when the history says so (a successful deploy, or one whose
push step began, whatever became of it) or the registry has its tag. The registry is
asked over its HTTP API when it is on this machine's loopback (``127.0.0.1:PORT``,
``localhost:PORT``, as the test bed's is); any other registry needs TLS and credentials,
and there the history is the guard. Where the registry is asked, a version a failed
deploy pushed may be deployed again when the registry's digest of its tag is the
image just built (the same build, pushed again unchanged); another image is refused.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from deploy.engine.commands import images as image_cmds
from deploy.engine.facts import parse_identity
from deploy.engine.images import ImageName, Pinned, app_images, is_digest
from deploy.engine.ops import Executor, Note, Ops, run
from deploy.engine.stack import Stack, last_lines
from deploy.errors import fail
from deploy.state import history
from deploy.state.history import Release
from deploy.versions import SEMVER, Version

PUSH_ATTEMPTS = 3
AUTH_ERRORS = ("unauthorized", "denied", "authentication required", "no basic auth credentials")
LOOPBACK = ("127.0.0.1", "localhost")
TO_BE_PUSHED = "sha256:(the digest of the push)"  # a plan's digest: the push step records the real one
NEVER_AGAIN = "a version is never pushed again with another image"
# What a manifest request accepts: without them a registry rewrites an image's manifest
# to the old schema 1 (another digest) or answers 404 for an OCI one.
MANIFEST_TYPES = ("application/vnd.docker.distribution.manifest.v2+json", "application/vnd.oci.image.manifest.v1+json",
                  "application/vnd.docker.distribution.manifest.list.v2+json", "application/vnd.oci.image.index.v1+json")


def registry_digest(stack: Stack, name: ImageName, tag: str) -> str | None:
    """The digest ``REPOSITORY@sha256:...`` the registry has under ``name:tag`` ("" when
    it has no such tag), asked from ``stack``'s engine (this machine); None when it cannot
    be asked (not a loopback registry, or no answer with a digest)."""
    registry, _, path = name.repository.partition("/")
    host, _, port = registry.rpartition(":")
    if not stack.target.local or host not in LOOPBACK or not port.isdigit() or not path:
        return None
    answer = stack.target.fetch(int(port), f"/v2/{path}/manifests/{tag}", headers={"Accept": ", ".join(MANIFEST_TYPES)})
    if answer.status == 404:
        return ""
    digest = answer.header("docker-content-digest") if answer.status == 200 else None
    return f"{name.repository}@{digest}" if digest else None


def registry_has(stack: Stack, name: ImageName, tag: str) -> bool | None:
    """Whether the registry has ``name:tag``; None when it cannot be asked."""
    digest = registry_digest(stack, name, tag)
    return None if digest is None else bool(digest)


def built(stack: Stack, name: ImageName, tag: str) -> str:
    """The image ``name:tag`` on ``stack``'s engine: the registry digest it carries when
    it was pushed (or pulled) as it is, else its id (deploy.engine.facts.parse_identity)."""
    return parse_identity(stack.target.run(image_cmds.identity(name.ref(tag)), warn=True).stdout, name.repository)


def new_version(suggest: Callable[[], Version] | None) -> str:
    """The fix for a version refused: the next free one when known."""
    return f"deploy a new version: inv deploy --version {suggest()} (or --bump patch)" if suggest else "deploy a new version: inv deploy --bump patch"


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
    it), with a fix: roll back to it, or deploy the next free version. A version pushed
    by a deploy that failed passes when the registry can be asked for its digests: the
    push step compares them with the images built (``push_tags``)."""
    before = history.pushed_by(list(entries), version.tag)
    done = [r for r in before if r.status == "success"]
    if done:
        fail(f"{version} was already deployed ({done[-1].started_at}): {NEVER_AGAIN}",
             f"return to it with inv rollback {version}, or {new_version(suggest)}")
    if before:
        if here is not None and names and all(registry_digest(here, n, version.tag) is not None for n in names):
            return
        last = before[-1]
        fail(f"{version} was pushed by a deploy that ended {last.status} ({last.started_at}); its tag in the registry names "
             f"that build, and the registry cannot be asked for its digest: {NEVER_AGAIN}", new_version(suggest))
    taken = in_registry(here, names, version.tag)
    if taken:
        fail(f"{taken} is already in the registry: {NEVER_AGAIN}", new_version(suggest))


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


def push_tags(stack: Stack, names: Sequence[ImageName], tags: Sequence[str], fresh: bool = True,
              suggest: Callable[[], Version] | None = None) -> Ops[None]:
    """Every tag of every pushable image. ``fresh``: the images were just built, so a
    version tag the registry already has is refused before anything is pushed, unless
    the registry's digest of it is the image built (the same build: pushed again,
    unchanged). ``suggest``: the next free version, for the refusal's fix."""
    pushable = [n for n in names if n.pushable]
    if fresh:
        for tag in filter(is_version, tags):
            for n in pushable:
                held = registry_digest(stack, n, tag)
                if not held:
                    continue
                ours = built(stack, n, tag)
                if not ours:  # not built yet: a dry run
                    yield Note(f"  {n.ref(tag)} is in the registry already: the image built is compared with it first")
                    continue
                if held != ours:
                    fail(f"{n.ref(tag)} is already in the registry, another image ({held[-19:]}; built here: {ours[-19:]}): {NEVER_AGAIN}",
                         new_version(suggest))
                yield Note(f"  {n.ref(tag)} is in the registry already as this very build ({held[-19:]}): pushed again, unchanged")
    for n in pushable:
        for tag in tags:
            yield from push_ref(stack, n.ref(tag))


def planned_pins(names: Sequence[ImageName], tag: str) -> dict[str, Pinned]:
    """What a plan names the pushable images of ``names`` by before the push: their
    digests are known once pushed (``pushed_pins``)."""
    return {n.service: Pinned(n.ref(tag), f"{n.repository}@{TO_BE_PUSHED}") for n in names if n.pushable}


def pushed_pins(stack: Stack, names: Sequence[ImageName], tag: str) -> dict[str, Pinned]:
    """Each pushable image of ``names`` as just pushed under ``tag`` from ``stack``'s
    engine: the digest docker push reported (the image's RepoDigests), which the hosts
    pull. Where the registry can be asked, it must hold that digest under the tag: another
    digest there means another push moved the tag meanwhile, and the deploy stops."""
    pins = {}
    for n in names:
        if not n.pushable:
            continue
        ours = built(stack, n, tag)
        if not is_digest(ours):
            fail(f"the engine reports no registry digest for {n.ref(tag)} after pushing it",
                 f"check the push (docker image inspect --format '{{{{json .RepoDigests}}}}' {n.ref(tag)}), then deploy again")
        held = registry_digest(stack, n, tag)
        if held is not None and held != ours:
            fail(f"{n.ref(tag)} in the registry is another image ({held[-19:]}) than the one just pushed ({ours[-19:]}): "
                 "another push moved the tag", f"find who else pushes to {n.repository}; then deploy a new version: inv deploy --bump patch")
        pins[n.service] = Pinned(n.ref(tag), ours)
    return pins


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
