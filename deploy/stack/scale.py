"""Scaling stateless services: validation (pure) and the rollout of a new count."""
from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping

from deploy.config.schema import DeployConfig
from deploy.engine.commands import compose
from deploy.engine.stack import Stack
from deploy.errors import fail
from deploy.stack.rollout import DNS_SETTLE_SECONDS

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


def apply(stack: Stack, counts: Mapping[str, int]) -> None:
    """Start or stop containers without touching the others, then persist the counts.

    Removals go first, then nginx's DNS cache is let expire before anything starts
    (a freed address may go to another service's new container). New containers join
    the proxy's DNS as they start; removed ones get SIGTERM and drain within their
    stop_grace_period.
    """
    running = Counter(c.service for c in stack.containers() if c.state == "running")
    downs = {s: n for s, n in counts.items() if n < running[s]}
    ups = {s: n for s, n in counts.items() if s not in downs}
    for batch in (downs, ups):
        if not batch:
            continue
        argv = compose.up(
            stack.project,
            sorted(batch),
            scale=dict(batch),
            no_recreate=True,
            no_deps=True,
            wait_timeout=stack.settings.config.up_timeout,
        )
        stack.run(argv, what="scaling", fix="see `inv health` and `inv logs SERVICE` for the failing container")
        if batch is downs and ups:
            time.sleep(DNS_SETTLE_SECONDS)
    saved = stack.saved_scale()
    saved.update(counts)
    stack.save_scale(saved)
