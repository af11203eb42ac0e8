"""Command lines run inside the proxy's container, on its router nginx (the one that
holds the routing; compose/nginx/router.conf), to apply a new routing."""
from __future__ import annotations

from collections.abc import Sequence

ROUTER_CONFIG = "/etc/nginx/router.conf"
# Every command logs to stderr from its start (`-e stderr`): the proxy's root file system is
# read-only, so the image's default error log cannot be opened.


FRONT_CONFIG = "/tmp/nginx.conf"  # the front's config, rendered by compose/nginx/start.sh


def dump_front() -> list[str]:
    """``nginx -T``: the front's whole config as nginx read it (includes inlined)."""
    return ["nginx", "-T", "-q", "-e", "stderr", "-c", FRONT_CONFIG]


def test_config() -> list[str]:
    """``nginx -t``: the router's config, with the routing file it includes, is valid."""
    return ["nginx", "-t", "-q", "-e", "stderr", "-c", ROUTER_CONFIG]


# The router's worker processes, one pid a line: the children of the master whose pid
# file the router config names.
WORKERS = ('m=$(cat /tmp/router.pid); for s in /proc/[0-9]*/stat; do read -r pid comm state ppid rest < "$s" 2>/dev/null '
           '&& [ "$ppid" = "$m" ] && echo "$pid"; done')


def reload() -> list[str]:
    """Graceful: new workers take the new config; old ones finish their requests, then
    exit. Prints the workers of before the reload first (``WORKERS``): once they are
    gone, nginx has finished every request of the old routing."""
    return ["sh", "-c", f'{WORKERS}; exec nginx -e stderr -c {ROUTER_CONFIG} -s reload']


def alive(pids: Sequence[int]) -> list[str]:
    """Which of ``pids`` still run: one a line (exits 0)."""
    return ["sh", "-c", 'for p in "$@"; do [ -d "/proc/$p" ] && echo "$p"; done; true', "sh", *(str(int(p)) for p in pids)]
