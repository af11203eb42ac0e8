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

Who is routed: the containers routed now (read back from the file), less those
``leaving`` or no longer running, plus those ``joining`` (they just passed the probe).
A change touches only the services of ``leaving`` and ``joining``: their running
containers that the file leaves out join if they answer a probe now; so do those of a
service whose pool would otherwise be empty. Docker's healthcheck alone takes no routed
container out (it times out on a busy host and passes again). A container that needs
waiting for (just started by ``up``) joins through ``admit`` (deploy.stack.rollout).
"""
from __future__ import annotations

import time
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass

from invoke.exceptions import Exit

from deploy import validators
from deploy.config.schema import DeployConfig
from deploy.engine.commands import docker, files, nginx
from deploy.engine.facts import Container
from deploy.engine.ops import Call, Ops, Put, run
from deploy.engine.stack import PROXY_DIRS, UPSTREAMS_DIR, Stack
from deploy.errors import fail
from deploy.stack.probe import ready_now

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
    """The routing file: one upstream per service (pure); a name or an address that is
    not one word of nginx's is refused."""
    lines = ["# Written by the deploy tasks (up, scale, deploy, rollback): the containers that passed",
             "# readiness. Do not edit; the next change of the stack rewrites it."]
    for pool in pools:
        validators.service(pool.service, "the routing file")
        for a in pool.addresses:
            validators.ip_address(a, f"the routing file: an address of {pool.service}")
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


def pools(config: DeployConfig, containers: Sequence[Container], networks: Sequence[str], routed_now: Mapping[str, Collection[str]] | None,
          leaving: Collection[str] = (), joining: Collection[str] = ()) -> list[Pool]:
    """Each stateless service's routed addresses: its running containers on one of the
    proxy's ``networks``, not ``leaving``, and either routed now (``routed_now``: service ->
    ``address:port``) or ``joining`` (they passed the probe). Docker's healthcheck does
    not take a routed container out: on a busy host it times out for a few seconds and
    passes again (the router's retries cover a container that stops answering; the
    tasks' probe decides who joins). With no routing yet (``routed_now`` None: a wiped
    state directory), every running container that Docker does not call unhealthy counts
    as routed now."""
    out = []
    for service, app in config.stateless.items():
        current = None if routed_now is None else set(routed_now.get(service, ()))
        addresses = []
        for c in containers:
            if c.service != service or c.state != "running" or c.name in leaving:
                continue
            address = c.address_on(networks)
            if address is None:
                continue
            if c.name in joining or (f"{address}:{app.port}" in current if current is not None else c.health != "unhealthy"):
                addresses.append(address)
        out.append(Pool(service, app.port, tuple(addresses)))
    return out


def candidates(config: DeployConfig, containers: Sequence[Container], networks: Sequence[str], new: Sequence[Pool],
               changing: Collection[str], leaving: Collection[str]) -> list[Container]:
    """The running containers ``new`` leaves out that a probe may bring in: of the services
    ``changing``, and of any service whose pool would be empty while it has some (never
    the reason a pool is empty while a container of it answers). Pure."""
    listed = {(p.service, a) for p in new for a in p.addresses}
    empty = {p.service for p in new if not p.addresses}
    out = []
    for c in containers:
        if c.service not in config.stateless or c.state != "running" or c.name in leaving:
            continue
        address = c.address_on(networks)
        if address and (c.service, address) not in listed and (c.service in changing or c.service in empty):
            out.append(c)
    return out


def pools_path(stack: Stack) -> str:
    return stack.state_file(POOLS_FILE)


def routed(stack: Stack) -> dict[str, list[str]]:
    """What the routing file on the target lists now (empty when there is none)."""
    text = stack.target.read_text(pools_path(stack))
    return parse(text) if text else {}


def unrouted(stack: Stack, containers: Sequence[Container]) -> list[str]:
    """The running containers of the stateless services that the routing file does not
    list (all of them when there is no file)."""
    text = stack.target.read_text(pools_path(stack))
    now = parse(text) if text is not None else {}
    networks = proxy_networks(stack, containers)
    out = []
    for c in containers:
        app = stack.settings.config.stateless.get(c.service)
        if app is None or c.state != "running":
            continue
        address = c.address_on(networks)
        if address and f"{address}:{app.port}" not in now.get(c.service, ()):
            out.append(c.name)
    return out


def route(stack: Stack, leaving: Collection[str] = (), joining: Collection[str] = (), apply: bool = True) -> Ops[list[int]]:
    """Write the routing: the containers routed now, less ``leaving``, plus ``joining``;
    apply it to the running proxy (unless ``apply`` is False: a proxy about to be
    recreated reads it at its start). Returns the pids of the router's workers before the
    reload: once they have exited, nginx has finished every request it sent to ``leaving``."""
    config = stack.settings.config
    containers = stack.containers()
    path = pools_path(stack)
    previous = stack.target.read_text(path)
    routed_now = parse(previous) if previous is not None else None
    networks = proxy_networks(stack, containers)
    new = pools(config, containers, networks, routed_now, leaving, joining)
    listed = _names(containers, new)
    gone = sorted(set(joining) - listed)
    if gone:
        fail(f"{', '.join(gone)} stopped after passing the probe: not routed", "see inv logs SERVICE; nothing was switched")
    proxy = proxy_container(config, containers)
    changing = {c.service for c in containers if c.name in leaving or c.name in joining}
    waiting = candidates(config, containers, networks, new, changing, leaving)
    if waiting:  # running but not routed (recovered, restarted, left out by an older routing): in if they answer now
        answered = ready_now(stack, proxy, waiting)
        if answered:
            new = pools(config, containers, networks, routed_now, leaving, {*joining, *answered})
    text = render(new)
    if text == previous and not leaving:
        return []
    if previous is None:  # the proxy's folders: nginx (uid 101) must read them, whatever the umask
        for folder in PROXY_DIRS.values():
            yield run(stack, files.install_dir(stack.state_file(folder), 0o755), what="creating the proxy's folders")
    yield Put(stack, path, text.encode(), 0o644)
    if proxy is None or not apply:
        return []
    try:
        yield run(stack, docker.exec_(proxy.name, nginx.test_config()), what="checking the new routing (nginx -t)",
                  fix=f"the previous routing stays in place. A proxy older than the routing has no router: run inv up once "
                      f"(it recreates {proxy.service}); else read nginx's message above")
        result = yield run(stack, docker.exec_(proxy.name, nginx.reload()), what="reloading nginx with the new routing",
                           fix=f"the previous routing stays in place; see inv logs {stack.settings.config.proxy.service}")
        before = [int(p) for p in (result.stdout or "").split() if p.isdigit()]
    except Exception:
        if previous is not None:  # the file must say what nginx routes (its next start reads it)
            yield Put(stack, path, previous.encode(), 0o644)
        raise
    return before


def _names(containers: Sequence[Container], new: Sequence[Pool]) -> set[str]:
    """The containers whose addresses ``new`` lists."""
    addresses = {(p.service, a) for p in new for a in p.addresses}
    return {c.name for c in containers for _, a in c.addresses if (c.service, a) in addresses}


def wait_drained(stack: Stack, pids: Sequence[int], timeout: float) -> None:
    """Until the router's workers of before a reload (``pids``) have exited, i.e. finished
    their requests, at most ``timeout`` seconds: after that, SIGTERM lets the app finish them."""
    proxy = proxy_container(stack.settings.config, stack.containers())
    if proxy is None or not pids:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = stack.target.run(docker.exec_(proxy.name, nginx.alive(pids)), warn=True)
        if result.ok and not (result.stdout or "").split():
            return
        time.sleep(DRAIN_POLL_SECONDS)


def drained(stack: Stack, pids: Sequence[int], timeout: float) -> Ops[None]:
    """After containers left the routing: wait until nginx's workers of before the reload
    (``pids``) finished their requests; then those containers may get SIGTERM."""
    yield Call(stack, f"wait until nginx finished the requests in flight to the containers leaving (at most {timeout:.0f} s)",
               lambda: wait_drained(stack, pids, timeout))
