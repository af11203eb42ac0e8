"""Readiness probes of app containers, from the proxy's container: the way the router
will reach them (over the stack's network, at each one's address and health path)."""
from __future__ import annotations

from collections.abc import Sequence

from deploy.engine.commands import docker, http
from deploy.engine.facts import Container
from deploy.engine.stack import Stack

# One probe command polls the containers every 0.1 s for up to this long, ending as soon
# as any answers; between probes, their state is read again (one that exited fails the
# rollout within about PROBE_SECONDS + PROBE_TIMEOUT).
PROBE_SECONDS = 2
PROBE_TIMEOUT = 2  # per fetch


def ready_now(stack: Stack, proxy: Container | None, containers: Sequence[Container],
              timeout: int = PROBE_TIMEOUT, within: int = PROBE_SECONDS) -> set[str]:
    """Which of ``containers`` answer their health path at their address, fetched from the
    proxy's container (the way nginx will reach them), all at once, each fetch given
    ``timeout`` seconds, in rounds for up to ``within`` seconds until one answers (0: one
    round, which waits for every one of them); without a running proxy, their own
    healthchecks decide."""
    if proxy is None:
        return {c.name for c in containers if c.health in ("healthy", "")}
    networks = [n for n, _ in proxy.addresses]
    urls: dict[str, str] = {}
    for c in containers:
        address = c.address_on(networks)
        if address is not None:
            app = stack.settings.config.stateless[c.service]
            urls[f"http://{address}:{app.port}{app.health_path}"] = c.name
    if not urls:
        return set()
    argv = http.probe(list(urls), timeout=timeout, within=within)
    result = stack.target.run(docker.exec_(proxy.name, argv), warn=True)
    return {urls[u] for u in http.answered(result.stdout or "") if u in urls}
