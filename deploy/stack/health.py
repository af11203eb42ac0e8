"""Health of the stack: every container's own healthcheck, plus HTTP through the proxy."""
from __future__ import annotations

import time
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass

from deploy.engine.facts import Container
from deploy.engine.ops import Call, Ops
from deploy.engine.stack import Stack
from deploy.engine.target import HttpResponse
from deploy.errors import fail
from deploy.stack import routing
from deploy.stack.probe import ready_now
from deploy.stack.status import ServiceStatus


@dataclass(frozen=True)
class Check:
    subject: str  # a container name, a service, or "GET /path"
    ok: bool
    detail: str


def container_checks(containers: Iterable[Container], answering: Collection[str] = ()) -> list[Check]:
    """Each container's own state and healthcheck. An app container that Docker calls
    unhealthy but that answers its health path now (``answering``: a probe from the proxy)
    is ok: on a busy host Docker's check times out and passes again, and the router
    serves it all along."""
    checks = []
    for c in containers:
        if c.ok:
            detail = {"": "running (no healthcheck)", "starting": "starting (its first healthcheck is still to come)"}.get(c.health, c.health)
        elif c.state != "running":
            detail = f"{c.state} (exit {c.exit_code})"
        elif c.name in answering:
            checks.append(Check(c.name, True, f"answers its health path (Docker's healthcheck: {c.health_log[-120:] or c.health}; a busy host)"))
            continue
        else:
            detail = f"{c.health}: {c.health_log[-200:]}" if c.health_log else c.health
        checks.append(Check(c.name, c.ok, detail))
    return checks


def answering(stack: Stack, containers: Sequence[Container]) -> set[str]:
    """The running app containers that answer their health path now, each given
    ANSWER_TIMEOUT seconds, fetched from the proxy (one command; none without a proxy)."""
    proxy = routing.proxy_container(stack.settings.config, containers)
    apps = [c for c in containers if c.service in stack.settings.config.stateless and c.state == "running"]
    if proxy is None or not apps:
        return set()
    return ready_now(stack, proxy, apps, timeout=ANSWER_TIMEOUT, within=0)


def replica_checks(statuses: Iterable[ServiceStatus]) -> list[Check]:
    """A service with fewer running containers than desired is unhealthy."""
    return [Check(s.service, False, f"{s.running} of {s.desired} replicas running") for s in statuses if s.running < s.desired]


def routing_checks(stack: Stack, containers: Sequence[Container], answers: Collection[str]) -> list[Check]:
    """The proxy's routing against the containers (``answers``: those that answer their
    health path now): an address routed whose container is gone, not running or not
    answering (nginx skips it after one failed connection and retries the request
    elsewhere), and answering containers left out. The next change of the service (or
    `inv up`) re-routes."""
    routed = routing.routed(stack)
    if not routed:
        return []
    config = stack.settings.config
    networks = routing.proxy_networks(stack, containers)
    by_address = {f"{c.address_on(networks)}:{config.stateless[c.service].port}": c
                  for c in containers if c.service in config.stateless and c.state == "running" and c.address_on(networks)}
    checks = []
    for service, addresses in sorted(routed.items()):
        stale = [a for a in addresses if a not in by_address or by_address[a].service != service or by_address[a].name not in answers]
        listed = set(addresses)
        missing = [c.name for a, c in sorted(by_address.items()) if c.service == service and a not in listed and c.name in answers]
        names = [f"{a} ({by_address[a].name}: not answering its health path)" if a in by_address else f"{a} (gone)" for a in stale]
        if stale:
            checks.append(Check(f"{service} routing", False, "routed but not serving: " + ", ".join(names) + "; inv up re-routes"))
        elif missing:
            checks.append(Check(f"{service} routing", False, f"{len(missing)} answering container(s) not routed ({', '.join(missing)}); "
                                                             "inv up re-routes"))
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
ANSWER_TIMEOUT = 15  # seconds each app container gets to answer `inv health`'s probe (a slow answer is an answer)


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


def http_checks(stack: Stack) -> list[Check]:
    """Each path of ``proxy.checks`` through the proxy, judged as users would (``judge``)."""
    proxy = stack.settings.config.proxy
    port = stack.proxy_port()
    if port is None:
        return [Check(f"{proxy.service} (proxy)", False, f"not published on the host (is {proxy.service} running?)")]
    published: int = port

    def fetcher(path: str) -> Callable[[], HttpResponse]:
        return lambda: stack.target.fetch(published, path, timeout=VERIFY_TIMEOUT)

    checks = []
    for path in proxy.checks:
        ok, seen = judge(fetcher(path))
        checks.append(Check(f"GET {path} via {proxy.service}:{port}", ok, f"{seen[0]} ({len(seen)} of {len(seen)})" if len(set(seen)) == 1
                            else ", ".join(seen)))
    return checks


def verify_proxy(stack: Stack) -> None:
    """``http_checks``; any that fails fails the task."""
    bad = [f"{c.subject}: {c.detail}" for c in http_checks(stack) if not c.ok]
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
