"""Zero-downtime replacement of a stateless service's containers (docker-rollout's
algorithm, with its known failures fixed).

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
from collections.abc import Callable, Sequence
from deploy.engine.commands import compose, docker
from deploy.errors import fail
from deploy.engine.facts import Container
from deploy.engine.stack import Stack, last_lines

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
    return stack.target.run(docker.exec_(proxy, ["wget", "-q", "-T", "3", "-O", "/dev/null", url]), warn=True).ok


def wait_healthy(stack: Stack, names: Sequence[str], timeout: float, say: Callable[[str], None]) -> None:
    """Until every container in ``names`` is healthy and reachable; fail with the failing
    container's health output and last log lines otherwise."""
    deadline = time.monotonic() + timeout
    proxy = _proxy_container(stack)
    pending = set(names)
    while True:
        by_name = {c.name: c for c in stack.containers()}
        for name in sorted(pending):
            c = by_name.get(name)
            if c is None or c.state in ("exited", "dead") or c.health == "unhealthy":
                _fail_container(stack, name, c, "is unhealthy" if c and c.state == "running" else "stopped")
            if c.state == "running" and c.health in ("healthy", "") and _http_ok(stack, proxy, c):
                pending.discard(name)
                say(f"  {name} healthy")
        if not pending:
            return
        if time.monotonic() > deadline:
            name = sorted(pending)[0]
            _fail_container(stack, name, by_name.get(name), f"not healthy after {timeout:.0f} s")
        time.sleep(POLL_SECONDS)


def _fail_container(stack: Stack, name: str, c: Container | None, why: str) -> None:
    logs = stack.target.run(docker.logs(name, 15), warn=True)
    health = f"\n  health check said: {c.health_log[-300:]}" if c and c.health_log else ""
    tail = last_lines((logs.stdout or "") + (logs.stderr or ""), 15)
    fail(f"{name} {why}{health}\n  last log lines:\n{tail}", "fix the release and deploy again; the previous version still serves")


def remove(stack: Stack, names: Sequence[str]) -> None:
    """Stop gracefully (each container's own stop timeout), then remove."""
    if names:
        stack.target.run(docker.stop(names), warn=True)
        stack.target.run(docker.remove(names), warn=True)


def old_containers(stack: Stack, services: Sequence[str]) -> dict[str, list[str]]:
    """The running containers of each service, by name."""
    running = [c for c in stack.containers() if c.state == "running"]
    return {s: sorted(c.name for c in running if c.service == s) for s in services}


def plan_scale(stack: Stack, services: Sequence[str], old: dict[str, list[str]]) -> dict[str, int]:
    """Each service scaled to its old containers plus its desired count of new ones: a
    count set with `inv scale`, else ``deploy.replicas`` — never what happens to run (a
    killed rollout leaves 2N)."""
    desired = stack.desired()
    return {s: len(old[s]) + desired.get(s, 1) for s in services}


def rollout(stack: Stack, services: Sequence[str], timeout: float, say: Callable[[str], None]) -> None:
    """Replace ``services``' containers with ones of the image ``stack``'s env names, all
    services at once: they start together, are awaited together, drain together."""
    old = old_containers(stack, services)
    old_names = {n for names in old.values() for n in names}
    argv = compose.up(stack.project, list(services), scale=plan_scale(stack, services, old), no_recreate=True, no_deps=True)
    stack.run(argv, what=f"starting new {', '.join(services)} containers")
    started = [c for c in stack.containers() if c.service in services and c.state == "running" and c.name not in old_names]
    new = [c.name for c in started]
    for s in services:
        say(f"  {s}: {sum(1 for c in started if c.service == s)} new container(s) beside {len(old[s])} old")
    try:
        wait_healthy(stack, new, timeout, say)
    except BaseException:
        say("  removing the new containers; the old ones keep serving")
        remove(stack, new)
        time.sleep(DNS_SETTLE_SECONDS)
        raise
    if old_names:
        remove(stack, sorted(old_names))
        time.sleep(DNS_SETTLE_SECONDS)
        say(f"  drained and removed {len(old_names)} old container(s)")
