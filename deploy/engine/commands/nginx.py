"""Command lines run inside the proxy's container, on its router nginx (the one that
holds the routing; compose/nginx/router.conf), to apply a new routing."""
from __future__ import annotations

ROUTER_CONFIG = "/etc/nginx/router.conf"


def test_config() -> list[str]:
    """``nginx -t``: the router's config, with the routing file it includes, is valid."""
    return ["nginx", "-t", "-q", "-c", ROUTER_CONFIG]


def reload() -> list[str]:
    """Graceful: new workers take the new config; old ones finish their requests, then exit."""
    return ["nginx", "-c", ROUTER_CONFIG, "-s", "reload"]


def old_workers() -> list[str]:
    """How many nginx workers are still finishing requests under an earlier config (their
    process title says "shutting down"); prints a number, exits 0."""
    script = "cat /proc/[0-9]*/cmdline 2>/dev/null | tr '\\000' '\\n' | grep -c 'shutting down' || true"
    return ["sh", "-c", script]
