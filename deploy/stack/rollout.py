"""Zero-downtime replacement of stateless services' containers (docker-rollout's
algorithm, with its known failures fixed), as ops (deploy.engine.ops).

1. Start N new containers beside the N old ones (``up --scale 2N --no-recreate``), for
   every stateless service at once.
2. Wait until EVERY new container is healthy, and answers its health path over the
   network from the proxy's container (not only the first one; timeout from config).
3. Drain the old ones: SIGTERM with their stop_grace_period (the apps stop accepting
   and finish in-flight requests; nginx retries refused connections elsewhere), remove,
   and let nginx's DNS cache expire before anything else starts.
If a new container never gets healthy, the new ones are removed and the old ones keep
serving. Exited old containers are never restarted; the replica count is kept.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import NoReturn

from deploy.engine.commands import compose, docker, http
from deploy.engine.facts import Container
from deploy.engine.ops import Call, Note, Ops, run
from deploy.engine.stack import Stack, last_lines
from deploy.errors import fail
from deploy.output import say

POLL_SECONDS = 0.25
# nginx keeps resolved addresses for 1 s (resolver valid=1s); Docker hands a removed
# container's address to the next container it starts, maybe of another service. Wait
# this long after removing containers, so no cached address points at a stranger.
DNS_SETTLE_SECONDS = 1.5


def _proxy_container(stack: Stack) -> str | None:
    proxy = stack.settings.config.proxy.service
    running = [c for c in stack.containers() if c.service == proxy and c.state == "running"]
    return running[0].name if running else None


def _http_ok(stack: Stack, proxy: str | None, container: Container) -> bool:
    """The container's health path, fetched over the Docker network from the proxy."""
    if proxy is None:
        return True
    app = stack.settings.config.stateless[container.service]
    url = f"http://{container.name}:{app.port}{app.health_path}"
    return stack.target.run(docker.exec_(proxy, http.probe(url, timeout=3)), warn=True).ok


def wait_healthy(stack: Stack, names: Sequence[str], timeout: float, say: Callable[[str], None] = say) -> None:
    """Until every container in ``names`` is healthy and reachable; fail with the failing
    container's health output and last log lines otherwise."""
    deadline = time.monotonic() + timeout
    proxy = _proxy_container(stack)
    pending = set(names)
    while pending:
        by_name = {c.name: c for c in stack.containers()}
        for name in sorted(pending):
            c = by_name.get(name)
            if c is None or c.state in ("exited", "dead") or c.health == "unhealthy":
                _fail_container(stack, name, c, "is unhealthy" if c and c.state == "running" else "stopped")
            elif c.state == "running" and c.health in ("healthy", "") and _http_ok(stack, proxy, c):
                pending.discard(name)
                say(f"  {name} healthy")
        if not pending:
            return
        if time.monotonic() > deadline:
            name = sorted(pending)[0]
            _fail_container(stack, name, by_name.get(name), f"not healthy after {timeout:.0f} s")
        time.sleep(POLL_SECONDS)


def _fail_container(stack: Stack, name: str, c: Container | None, why: str) -> NoReturn:
    logs = stack.target.run(docker.logs(name, 15), warn=True)
    health = f"\n  health check said: {c.health_log[-300:]}" if c and c.health_log else ""
    tail = last_lines((logs.stdout or "") + (logs.stderr or ""), 15)
    fail(f"{name} {why}{health}\n  last log lines:\n{tail}", "fix the release and deploy again; the previous version still serves")


def remove(stack: Stack, names: Sequence[str]) -> Ops[None]:
    """Stop gracefully (each container's own stop timeout), remove, and let the proxy's
    DNS cache forget them."""
    if not names:
        return
    yield run(stack, docker.stop(names), what="stopping containers", check=False)
    yield run(stack, docker.remove(names), what="removing containers", check=False)
    yield Call(stack, f"wait {DNS_SETTLE_SECONDS} s for the proxy's DNS cache", lambda: time.sleep(DNS_SETTLE_SECONDS))


def old_containers(stack: Stack, services: Sequence[str]) -> dict[str, list[str]]:
    """The running containers of each service, by name."""
    running = [c for c in stack.containers() if c.state == "running"]
    return {s: sorted(c.name for c in running if c.service == s) for s in services}


def previous_tags(stack: Stack, services: Sequence[str]) -> dict[str, str]:
    """The image tag each service's running containers have (what a rollback returns to)."""
    tags: dict[str, str] = {}
    for c in stack.containers():
        if c.service in services and c.state == "running":
            tags.setdefault(c.service, c.image.rsplit(":", 1)[-1])
    return tags


def plan_scale(services: Sequence[str], old: dict[str, list[str]], desired: Mapping[str, int]) -> dict[str, int]:
    """Each service scaled to its old containers plus its desired count of new ones: a
    count set with `inv scale`, else ``deploy.replicas`` — never what happens to run (a
    killed rollout leaves 2N)."""
    return {s: len(old[s]) + desired.get(s, 1) for s in services}


def rollout(stack: Stack, services: Sequence[str], timeout: float, desired: Mapping[str, int] | None = None) -> Ops[None]:
    """Replace ``services``' containers with ones of the image ``stack``'s env names, all
    services at once: they start together, are awaited together, drain together.
    ``desired``: the replica counts (default: the stack's own, ``Stack.desired``)."""
    old = old_containers(stack, services)
    old_names = {n for names in old.values() for n in names}
    scale = plan_scale(services, old, stack.desired() if desired is None else desired)

    def new_containers() -> list[Container]:
        return [c for c in stack.containers() if c.service in services and c.name not in old_names]

    try:
        yield run(stack, compose.up(stack.project, list(services), scale=scale, no_recreate=True, no_deps=True),
                  what=f"starting new {', '.join(services)} containers")
    except GeneratorExit:  # closed unfinished (an aborted run): nothing more may be yielded
        raise
    except BaseException:
        yield Note("  the new containers did not all start: removing those that did; the old ones keep serving")
        yield from remove(stack, [c.name for c in new_containers()])
        raise
    started = new_containers()  # every one must get healthy: one that exited at once fails the rollout
    new = [c.name for c in started]
    for s in services:
        yield Note(f"  {s}: {sum(1 for c in started if c.service == s)} new container(s) beside {len(old[s])} old")
    try:
        yield Call(stack, f"wait until every new {', '.join(services)} container is healthy and answers (at most {timeout:.0f} s)",
                   lambda: wait_healthy(stack, new, timeout))
    except GeneratorExit:
        raise
    except BaseException:
        yield Note("  removing the new containers; the old ones keep serving")
        yield from remove(stack, new)
        raise
    if old_names:
        yield from remove(stack, sorted(old_names))
        yield Note(f"  drained and removed {len(old_names)} old container(s)")


def roll_back(stack: Stack, services: Sequence[str], tags: dict[str, str], timeout: float) -> Ops[None]:
    """Return ``services`` to the image tags they ran (``tags``), with the rollout."""
    by_tag: dict[str, list[str]] = {}
    for service in services:
        tag = tags.get(service)
        if tag:
            by_tag.setdefault(tag, []).append(service)
        else:
            yield Note(f"  {service}: no previous containers to return to")
    for tag, group in by_tag.items():
        yield Note(f"rolling {', '.join(group)} back to {tag}")
        yield from rollout(stack.with_env(APP_VERSION=tag), group, timeout)
