"""Scaling stateless services: validation (pure) and reaching a new count behind the
health-gated routing (deploy.stack.routing)."""
from __future__ import annotations

from collections import Counter
from collections.abc import Mapping

from deploy.config.schema import DeployConfig
from deploy.engine.ops import Note, Ops
from deploy.engine.stack import Stack
from deploy.errors import fail
from deploy.fleet import Fleet, on_each
from deploy.stack.health import serving
from deploy.stack.rollout import remove, retire, start_batches, surge, surge_steps, victims
from deploy.stack.routing import route

MAX_REPLICAS = 100


def parse_count(service: str, raw: object, yes: bool) -> int:
    """A replica count from user input: a whole number, 0 only with ``yes``."""
    text = str(raw).strip()
    if not text.lstrip("-").isdigit():
        fail(f"--{service} {raw!r} is not a number", f"give a whole number of replicas, e.g. --{service} 3")
    count = int(text)
    if count < 0:
        fail(f"--{service} {count} is negative", "give a count of 0 or more")
    if count > MAX_REPLICAS:
        fail(f"--{service} {count} is more than {MAX_REPLICAS} replicas", f"give at most {MAX_REPLICAS}")
    if count == 0 and not yes:
        fail(f"--{service} 0 stops every {service} container", "add --yes if that is what you want")
    return count


def plan(config: DeployConfig, requested: Mapping[str, object], yes: bool) -> dict[str, int]:
    """Validated counts per service; stateful and unknown services are refused."""
    if not requested:
        names = ", ".join(f"--{n} N" for n in config.stateless)
        fail("nothing to scale", f"say how many replicas, e.g. {names}")
    counts = {}
    for service, raw in requested.items():
        if service in config.stateful or service == config.proxy.service:
            fail(
                f"{service} is stateful and is never scaled like an app service"
                if service in config.stateful
                else f"{service} is the proxy; it runs once per host",
                f"scale only the stateless services: {', '.join(config.stateless)}",
            )
        if service not in config.stateless:
            fail(f"unknown service {service!r}", f"scale one of: {', '.join(config.stateless)}")
        counts[service] = parse_count(service, raw, yes)
    return counts


def parse_assignments(items: list[str]) -> dict[str, str]:
    """``["worker=3"]`` from ``--set worker=3`` into {"worker": "3"}."""
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            fail(f"--set {item!r} is not SERVICE=COUNT", "write it as --set worker=3")
        out[name.strip()] = value
    return out


def apply(stack: Stack, counts: Mapping[str, int], timeout: float | None = None) -> Ops[None]:
    """Reach ``counts`` without a failed request, then persist them (a later ``up`` or
    deploy keeps them).

    Fewer: the extra containers leave the routing, nginx finishes its requests to them,
    then they get SIGTERM and are removed. More: the new containers start beside the
    others (at most ``deploy.max_surge`` at once, each batch awaited before the next), join
    the routing only once every one of them is ready (a container that never gets ready
    is removed and nothing changes for the others).
    """
    timeout = stack.settings.config.up_timeout if timeout is None else timeout
    containers = stack.containers()
    running = Counter(c.service for c in containers if c.state == "running")
    leaving = victims(containers, {s: n for s, n in counts.items() if n < running[s]})
    ups = {s: n for s, n in counts.items() if n > running[s]}
    if leaving:
        yield from retire(stack, leaving)
    if ups:
        stopped = [c.name for c in containers if c.service in ups and c.state != "running"]
        if stopped:  # Compose would count them and start them again, unprobed
            yield from remove(stack, stopped)
        before = {c.name for c in containers if c.name not in stopped}  # a removed one's name may come back

        def new() -> list[str]:
            return [c.name for c in stack.containers() if c.service in ups and c.name not in before]

        try:
            now = {s: running[s] for s in sorted(ups)}
            yield from start_batches(stack, sorted(ups), surge_steps(now, ups, surge(stack)), timeout, before)
            yield from route(stack, joining=new())
        except GeneratorExit:
            raise
        except BaseException:
            yield Note("  removing the new containers (not routed); the others keep serving")
            yield from remove(stack, new())
            raise
    saved = stack.saved_scale()
    saved.update(counts)
    stack.save_scale(saved)


def apply_fleet(fleet: Fleet, counts: Mapping[str, int]) -> Ops[None]:
    """``apply`` on every chosen app host (each its own counts), each checked serving."""
    yield on_each(fleet, fleet.with_role("app"), lambda m: apply_serving(m.stack, counts), "scale")


def apply_serving(stack: Stack, counts: Mapping[str, int]) -> Ops[None]:
    """``apply``, then the check that the host serves through its proxy: a scale never
    ends "ok" over a 502."""
    yield from apply(stack, counts)
    yield from serving(stack)
