"""Zero-downtime replacement of stateless services' containers (docker-rollout's
algorithm, with its known failures fixed, behind health-gated routing), as ops.

1. Start N new containers beside the N old ones (``up --scale 2N --no-recreate``), for
   every stateless service at once, in batches of at most ``deploy.max_surge`` (default
   twice the host's CPUs), each awaited (step 2) before the next; none is routed yet.
2. Wait until EVERY new container is ready: running, answering its health path over
   the stack's network (our own probe of all of them at once, from the proxy's
   container, every 0.1 s), and not unhealthy by Docker's healthcheck. One that exits
   or restarts fails at once; one that is unhealthy may recover until the deadline.
3. Route the new ones and take the old ones out (deploy.stack.routing: nginx -t, a
   graceful reload), wait until nginx finished the requests in flight to them, then
   SIGTERM (they drain within their stop_grace_period) and remove them.
If a new container never gets ready, the new ones are removed (never routed) and the
old ones keep serving. Exited old containers are never restarted; the replica count is
kept.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import NoReturn

from deploy.engine.commands import compose, docker
from deploy.engine.facts import Container
from deploy.engine.ops import Call, Note, Ops, run
from deploy.engine.stack import Stack, last_lines
from deploy.errors import fail
from deploy.output import say
from deploy.stack.probe import ready_now
from deploy.stack.routing import drained, proxy_container, route, unrouted

POLL_SECONDS = 0.25  # the least time between two checks that found nothing new


def wait_ready(stack: Stack, names: Sequence[str], timeout: float, say: Callable[[str], None] = say) -> None:
    """Until every container in ``names`` is ready (see the module's docstring); fail with
    the failing container's health output and last log lines otherwise."""
    deadline = time.monotonic() + timeout
    pending = set(names)
    while pending:
        containers = stack.containers()
        by_name = {c.name: c for c in containers}
        for name in sorted(pending):
            c = by_name.get(name)
            if c is None or c.state != "running":
                _fail_container(stack, name, c, f"{c.state if c else 'is gone'} (exit {c.exit_code if c else '?'}) before it was ready")
        candidates = [by_name[n] for n in sorted(pending) if by_name[n].health != "unhealthy"]
        started = time.monotonic()
        ready = ready_now(stack, proxy_container(stack.settings.config, containers), candidates)
        for name in sorted(ready):
            pending.discard(name)
            say(f"  {name} ready")
        if not pending:
            return
        if time.monotonic() > deadline:
            name = sorted(pending)[0]
            _fail_container(stack, name, by_name.get(name), f"not ready after {timeout:.0f} s")
        waited = time.monotonic() - started
        if not ready and waited < POLL_SECONDS:  # the probe did not wait (no proxy yet, or it failed at once)
            time.sleep(POLL_SECONDS - waited)


def _fail_container(stack: Stack, name: str, c: Container | None, why: str) -> NoReturn:
    logs = stack.target.run(docker.logs(name, 15), warn=True)
    health = f"\n  health check ({c.health or 'none'}) said: {c.health_log[-300:]}" if c and c.health_log else ""
    tail = last_lines((logs.stdout or "") + (logs.stderr or ""), 15)
    fail(stack.settings.masked(f"{name} {why}{health}\n  last log lines:\n{tail}"),
         "fix the release and deploy again; the previous version still serves")


def remove(stack: Stack, names: Sequence[str]) -> Ops[None]:
    """Stop gracefully (SIGTERM, then each container's own stop_grace_period), remove.
    Only for containers that are not routed (``retire`` takes routed ones out first)."""
    if not names:
        return
    yield run(stack, docker.stop(names), what="stopping containers", check=False)
    yield run(stack, docker.remove(names), what="removing containers", check=False)


def grace(containers: Sequence[Container], names: Collection[str]) -> float:
    """How long nginx may take to finish its requests to ``names``: their longest
    stop_grace_period (the time they would get to finish them after SIGTERM)."""
    return float(max((c.stop_timeout for c in containers if c.name in names), default=30))


def retire(stack: Stack, names: Sequence[str]) -> Ops[None]:
    """Routed containers out: out of the routing, nginx's requests to them finished,
    then SIGTERM and removal."""
    if names:
        timeout = grace(stack.containers(), names)
        pids = yield from route(stack, leaving=names)
        yield from drained(stack, pids, timeout)
        yield from remove(stack, names)


def admit(stack: Stack, timeout: float) -> Ops[None]:
    """Every running app container the routing does not list (started by `up`, left by a
    killed deploy, back from a restart with a new address) joins once it passes the
    probe; one that never does fails here, and nothing else changes."""
    waiting = unrouted(stack, stack.containers())
    if waiting:
        yield Call(stack, f"wait until the {len(waiting)} container(s) not yet routed are ready (at most {timeout:.0f} s)",
                   lambda: wait_ready(stack, waiting, timeout))
    yield from route(stack, joining=waiting)


def victims(containers: Sequence[Container], counts: Mapping[str, int]) -> list[str]:
    """The running containers to remove so each service keeps ``counts[service]``: the
    highest-numbered ones (pure)."""
    out: list[str] = []
    for service, count in counts.items():
        running = sorted((c for c in containers if c.service == service and c.state == "running"), key=lambda c: c.number)
        out += [c.name for c in running[count:]]
    return out


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


def surge(stack: Stack) -> int:
    """How many new app containers start at once: ``deploy.max_surge``, else twice the
    host's CPUs (so a busy host is not doubled in one step: each start costs a Node
    process its warm-up)."""
    configured = stack.settings.config.max_surge
    if configured:
        return configured
    answer = stack.target.run(docker.cpus(), warn=True)
    cpus = (answer.stdout or "").strip()
    return 2 * int(cpus) if answer.ok and cpus.isdigit() and int(cpus) > 0 else 2


def surge_steps(current: Mapping[str, int], target: Mapping[str, int], limit: int) -> list[dict[str, int]]:
    """The scale of each batch from ``current`` to ``target`` (counts per service), each
    adding at most ``limit`` containers, the services in turn (pure)."""
    now = dict(current)
    steps = []
    while any(now[s] < n for s, n in target.items()):
        room = max(1, limit)
        while room and any(now[s] < n for s, n in target.items()):
            for s, n in target.items():
                if room and now[s] < n:
                    now[s] += 1
                    room -= 1
        steps.append(dict(now))
    return steps


def start_batches(stack: Stack, services: Sequence[str], steps: Sequence[Mapping[str, int]], timeout: float,
                  before: Collection[str]) -> Ops[None]:
    """Reach each scale of ``steps`` in turn, waiting after each until the containers it
    started are ready (``wait_ready``); the caller removes the new ones on a failure.
    ``before``: the containers that were there (they are not waited for)."""
    waited: set[str] = set(before)
    for i, scale in enumerate(steps, 1):
        batch = f" (batch {i} of {len(steps)})" if len(steps) > 1 else ""
        yield run(stack, compose.up(stack.project, list(services), scale=dict(scale), no_recreate=True, no_deps=True, no_build=True),
                  what=f"starting new {', '.join(services)} containers{batch}",
                  fix="check that the release's images are on this engine (a deploy builds them here, or pulls them on a host)")
        started = [c for c in stack.containers() if c.service in services and c.name not in waited]
        for s in services:
            count = sum(1 for c in started if c.service == s)
            if count:
                yield Note(f"  {s}: {count} new container(s){batch}")
        names = [c.name for c in started]
        yield Call(stack, f"wait until the new {', '.join(services)} containers{batch} are ready (at most {timeout:.0f} s)",
                   _waiter(stack, names, timeout))
        waited.update(names)


def _waiter(stack: Stack, names: Sequence[str], timeout: float) -> Callable[[], None]:
    return lambda: wait_ready(stack, names, timeout)


def rollout(stack: Stack, services: Sequence[str], timeout: float, desired: Mapping[str, int] | None = None) -> Ops[None]:
    """Replace ``services``' containers with ones of the image ``stack``'s env names, all
    services at once: they start in batches of at most ``surge`` (every one awaited
    before the next batch starts), are routed together, drain together.
    ``desired``: the replica counts (default: the stack's own, ``Stack.desired``)."""
    stopped = [c.name for c in stack.containers() if c.service in services and c.state != "running"]
    if stopped:  # Compose would count them and start them again, old image and all
        yield Note(f"  removing {len(stopped)} stopped container(s) of {', '.join(services)}")
        yield from remove(stack, stopped)
    old = old_containers(stack, services)
    old_names = {n for names in old.values() for n in names}
    scale = plan_scale(services, old, stack.desired() if desired is None else desired)

    def new_containers() -> list[Container]:
        return [c for c in stack.containers() if c.service in services and c.name not in old_names]

    try:
        yield from start_batches(stack, list(services), surge_steps({s: len(old[s]) for s in services}, scale, surge(stack)),
                                 timeout, old_names)
    except GeneratorExit:  # closed unfinished (an aborted run): nothing more may be yielded
        raise
    except BaseException:
        yield Note("  removing the new containers (never routed); the old ones keep serving")
        yield from remove(stack, [c.name for c in new_containers()])
        raise
    new = [c.name for c in new_containers()]
    try:
        timeout_old = grace(stack.containers(), old_names)
        pids = yield from route(stack, leaving=old_names, joining=new)  # the new ones in, the old ones out
    except GeneratorExit:
        raise
    except BaseException:
        yield Note("  the routing was not applied: removing the new containers; the old ones keep serving")
        yield from remove(stack, new)
        raise
    if old_names:
        yield from drained(stack, pids, timeout_old)
        yield from remove(stack, sorted(old_names))
    yield Note(f"  routed {len(new)} new container(s); drained and removed {len(old_names)} old")


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
