"""Health-gated routing: nginx sends traffic only to containers the tools put in its
upstreams, and a container leaves them before it gets SIGTERM.

The routing is a file of nginx ``upstream`` blocks, one per stateless service, listing
the addresses of its containers that passed readiness, with keepalive connections to
them. It lives in the stage's state directory on the target (it survives nginx restarts
and recreation: nginx includes it through a bind mount, ``NGINX_UPSTREAMS_DIR``), is
written atomically, checked with ``nginx -t`` and applied with a graceful reload of the
proxy's router nginx (old workers finish their requests; the front nginx that holds the
clients' connections never reloads: compose/nginx/). A failed check puts the previous
file back: the routing in place stays, and the error says why.

Who is routed: every running container of a stateless service that is not known to be
unhealthy and is not ``leaving``. The workflows render only at moments when every such
container is ready (after a rollout's or a scale's new containers passed the probe), so
the rule needs no memory of its own.
"""
from __future__ import annotations

import time
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass

from invoke.exceptions import Exit

from deploy.config.schema import DeployConfig
from deploy.engine.commands import docker, nginx
from deploy.engine.facts import Container
from deploy.engine.ops import Call, Ops, Put, run
from deploy.engine.stack import UPSTREAMS_DIR, Stack

POOLS_FILE = f"{UPSTREAMS_DIR}/pools.conf"  # in the stage's state directory; NGINX_UPSTREAMS_DIR is its folder
KEEPALIVE = 32  # idle connections each nginx worker keeps to a service's containers
# Below the apps' own keep-alive timeout (Node: 5 s), so nginx never reuses a connection
# the app is closing.
KEEPALIVE_TIMEOUT = "4s"
FAIL_TIMEOUT = "2s"  # a container that refused a connection is skipped this long
NO_SERVER = "127.0.0.1:9 down"  # an upstream needs a server: none ready answers 502 at once
DRAIN_POLL_SECONDS = 0.2


@dataclass(frozen=True)
class Pool:
    service: str
    port: int
    addresses: tuple[str, ...]


def render(pools: Iterable[Pool]) -> str:
    """The routing file: one upstream per service (pure)."""
    lines = ["# Written by the deploy tasks (up, scale, deploy, rollback): the containers that passed",
             "# readiness. Do not edit; the next change of the stack rewrites it."]
    for pool in pools:
        lines.append(f"upstream {pool.service} {{")
        servers = [f"{a}:{pool.port} max_fails=1 fail_timeout={FAIL_TIMEOUT}" for a in pool.addresses] or [NO_SERVER]
        lines += [f"    server {s};" for s in servers]
        lines += [f"    keepalive {KEEPALIVE};", f"    keepalive_timeout {KEEPALIVE_TIMEOUT};", "}"]
    return "\n".join(lines) + "\n"


def parse(text: str) -> dict[str, list[str]]:
    """The routed ``address:port`` of each service, from a routing file."""
    pools: dict[str, list[str]] = {}
    service = None
    for line in text.splitlines():
        words = line.replace(";", " ").split()
        if words[:1] == ["upstream"] and len(words) > 1:
            service = words[1]
            pools[service] = []
        elif words[:1] == ["server"] and service and len(words) > 1 and "down" not in words[2:]:
            pools[service].append(words[1])
    return pools


def proxy_container(config: DeployConfig, containers: Iterable[Container]) -> Container | None:
    return next((c for c in containers if c.service == config.proxy.service and c.state == "running"), None)


def proxy_networks(stack: Stack, containers: Sequence[Container]) -> list[str]:
    """The networks the proxy is on: its container's, else the compose files' (the
    proxy is not created yet)."""
    proxy = next((c for c in containers if c.service == stack.settings.config.proxy.service), None)
    if proxy and proxy.addresses:
        return [n for n, _ in proxy.addresses]
    try:
        config = stack.config()
    except Exit:  # no compose files on the host yet (a dry run before the first upload)
        return []
    declared = config.get("services", {}).get(stack.settings.config.proxy.service, {}).get("networks") or {}
    return [(config.get("networks", {}).get(n) or {}).get("name", n) for n in declared]


def pools(config: DeployConfig, containers: Sequence[Container], networks: Sequence[str], leaving: Collection[str] = ()) -> list[Pool]:
    """Each stateless service's routed addresses: its running containers that are not
    unhealthy and not ``leaving``, on one of the proxy's ``networks``."""
    out = []
    for service, app in config.stateless.items():
        chosen = [c for c in containers if c.service == service and c.state == "running" and c.health != "unhealthy"
                  and c.name not in leaving]
        addresses = [a for a in (c.address_on(networks) for c in chosen) if a]
        out.append(Pool(service, app.port, tuple(addresses)))
    return out


def pools_path(stack: Stack) -> str:
    return stack.state_file(POOLS_FILE)


def routed(stack: Stack) -> dict[str, list[str]]:
    """What the routing file on the target lists now (empty when there is none)."""
    text = stack.target.read_text(pools_path(stack))
    return parse(text) if text else {}


def route(stack: Stack, leaving: Collection[str] = ()) -> Ops[None]:
    """Write the routing of the containers running now (less ``leaving``) and apply it to
    the running proxy; a proxy not running reads it when it starts."""
    containers = stack.containers()
    text = render(pools(stack.settings.config, containers, proxy_networks(stack, containers), leaving))
    path = pools_path(stack)
    previous = stack.target.read_text(path)
    proxy = proxy_container(stack.settings.config, containers)
    if text == previous and not leaving:
        return
    yield Put(stack, path, text.encode(), 0o644)
    if proxy is None:
        return
    try:
        yield run(stack, docker.exec_(proxy.name, nginx.test_config()), what="checking the new routing (nginx -t)",
                  fix="the previous routing stays in place; read nginx's message above")
        yield run(stack, docker.exec_(proxy.name, nginx.reload()), what="reloading nginx with the new routing",
                  fix=f"the previous routing stays in place; see inv logs {stack.settings.config.proxy.service}")
    except Exception:
        if previous is not None:  # the file must say what nginx routes (its next start reads it)
            yield Put(stack, path, previous.encode(), 0o644)
        raise


def old_workers(stack: Stack, proxy: str) -> int:
    result = stack.target.run(docker.exec_(proxy, nginx.old_workers()), warn=True)
    text = (result.stdout or "").strip()
    return int(text) if result.ok and text.isdigit() else 0


def wait_drained(stack: Stack, timeout: float) -> None:
    """Until nginx's workers of earlier configs have finished their requests (they exit
    then), at most ``timeout`` seconds: after that, SIGTERM lets the app finish them."""
    proxy = proxy_container(stack.settings.config, stack.containers())
    if proxy is None:
        return
    deadline = time.monotonic() + timeout
    while old_workers(stack, proxy.name) and time.monotonic() < deadline:
        time.sleep(DRAIN_POLL_SECONDS)


def drained(stack: Stack, count: int, timeout: float = 30.0) -> Ops[None]:
    """After ``count`` containers left the routing: wait until nginx finished its requests
    in flight to them; then they may get SIGTERM."""
    yield Call(stack, f"wait until nginx finished the requests in flight to {count} container(s) (at most {timeout:.0f} s)",
               lambda: wait_drained(stack, timeout))
