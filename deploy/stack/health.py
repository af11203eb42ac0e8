"""Health of the stack: every container's own healthcheck, plus HTTP through the proxy."""
from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from deploy.engine.facts import Container
from deploy.engine.ops import Call, Ops
from deploy.engine.stack import Stack
from deploy.engine.target import HttpResponse
from deploy.errors import fail
from deploy.stack import routing
from deploy.stack.status import ServiceStatus


@dataclass(frozen=True)
class Check:
    subject: str  # a container name, a service, or "GET /path"
    ok: bool
    detail: str


def container_checks(containers: Iterable[Container]) -> list[Check]:
    checks = []
    for c in containers:
        if c.ok:
            detail = {"": "running (no healthcheck)", "starting": "starting (its first healthcheck is still to come)"}.get(c.health, c.health)
        elif c.state != "running":
            detail = f"{c.state} (exit {c.exit_code})"
        else:
            detail = f"{c.health}: {c.health_log[-200:]}" if c.health_log else c.health
        checks.append(Check(c.name, c.ok, detail))
    return checks


def replica_checks(statuses: Iterable[ServiceStatus]) -> list[Check]:
    """A service with fewer running containers than desired is unhealthy."""
    return [Check(s.service, False, f"{s.running} of {s.desired} replicas running") for s in statuses if s.running < s.desired]


def http_checks(stack: Stack) -> list[Check]:
    proxy = stack.settings.config.proxy
    port = stack.proxy_port()
    if port is None:
        return [Check(f"{proxy.service} (proxy)", False, f"not published on the host (is {proxy.service} running?)")]
    checks = []
    for path in proxy.checks:
        resp = stack.target.fetch(port, path)
        ok = 200 <= resp.status < 400
        detail = f"HTTP {resp.status}" if resp.status else f"no response: {resp.error}"
        checks.append(Check(f"GET {path} via {proxy.service}:{port}", ok, detail))
    return checks


def routing_checks(stack: Stack, containers: Sequence[Container]) -> list[Check]:
    """The proxy's routing against the containers: an address routed whose container is
    gone or not running (nginx skips it after one refused connection and retries the
    request elsewhere; `inv up` rewrites the routing), and ready containers left out."""
    routed = routing.routed(stack)
    if not routed:
        return []
    networks = routing.proxy_networks(stack, containers)
    expected = {p.service: {f"{a}:{p.port}" for a in p.addresses} for p in routing.pools(stack.settings.config, containers, networks, None)}
    by_address = {f"{c.address_on(networks)}:{stack.settings.config.stateless[c.service].port}": c
                  for c in containers if c.service in stack.settings.config.stateless and c.address_on(networks)}
    checks = []
    for service, addresses in sorted(routed.items()):
        stale = [a for a in addresses if a not in expected.get(service, set())]
        missing = sorted(expected.get(service, set()) - set(addresses))
        names = [f"{a} ({by_address[a].name}: {by_address[a].state})" if a in by_address else f"{a} (gone)" for a in stale]
        if stale:
            checks.append(Check(f"{service} routing", False, "routed but not ready: " + ", ".join(names) + "; inv up re-routes"))
        elif missing:
            checks.append(Check(f"{service} routing", False, f"{len(missing)} ready container(s) not routed; inv up re-routes"))
        else:
            checks.append(Check(f"{service} routing", True, f"{len(addresses)} container(s) routed"))
    return checks


# Verification judges serving the way users do: a path passes once it answered 2xx/3xx
# VERIFY_NEEDED times and fails after as many errors (at most 2 * VERIFY_NEEDED - 1
# requests), each given VERIFY_TIMEOUT seconds: a slow 200 on a saturated host is a
# success, one lost request is not a verdict, a broken release still fails in seconds.
VERIFY_NEEDED = 3
VERIFY_TIMEOUT = 15.0
VERIFY_PAUSE = 1.0  # after an error, before the next request


def judge(fetch: Callable[[], HttpResponse], sleep: Callable[[float], None] = time.sleep) -> tuple[bool, list[str]]:
    """Fetch until VERIFY_NEEDED answers (passed) or VERIFY_NEEDED errors (failed); what
    each request got, in order."""
    good = bad = 0
    seen = []
    while good < VERIFY_NEEDED and bad < VERIFY_NEEDED:
        resp = fetch()
        seen.append(f"HTTP {resp.status}" if resp.status else f"no response ({resp.error})")
        if 200 <= resp.status < 400:
            good += 1
        else:
            bad += 1
            sleep(VERIFY_PAUSE)
    return good >= VERIFY_NEEDED, seen


def verify_proxy(stack: Stack) -> None:
    """Every path of ``proxy.checks`` through the proxy, judged (``judge``)."""
    proxy = stack.settings.config.proxy
    port = stack.proxy_port()
    if port is None:
        fail(f"{proxy.service} is not published on {stack.target.name}", "see inv health and inv logs SERVICE")
    published: int = port

    def fetcher(path: str) -> Callable[[], HttpResponse]:
        return lambda: stack.target.fetch(published, path, timeout=VERIFY_TIMEOUT)

    bad = []
    for path in proxy.checks:
        ok, seen = judge(fetcher(path))
        if not ok:
            bad.append(f"GET {path}: {', '.join(seen)}")
    if bad:
        fail(f"through the proxy on {stack.target.name}: " + "; ".join(bad), "see inv health and inv logs SERVICE")


def verify(stack: Stack) -> Ops[None]:
    proxy = stack.settings.config.proxy
    paths = ", ".join(proxy.checks)
    yield Call(stack, f"GET {paths} through {proxy.service}: each must answer 2xx or 3xx ({VERIFY_NEEDED} times before as many errors)",
               lambda: verify_proxy(stack))


def serving(stack: Stack) -> Ops[None]:
    """The end of every task that changes the stack: where the proxy runs (an app host),
    it serves each check path (``verify``); the task fails rather than end over a 502."""
    if routing.proxy_container(stack.settings.config, stack.containers()) is not None:
        yield from verify(stack)
