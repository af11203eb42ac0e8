"""HTTP probes run inside a container (the proxy's), over the stack's network."""
from __future__ import annotations


def probe(url: str, timeout: float = 3) -> list[str]:
    """GET ``url`` and discard the body; fails on an error status, a refused connection, or
    no answer within ``timeout`` seconds (busybox and GNU wget)."""
    return ["wget", "-q", "-T", f"{timeout:g}", "-O", "/dev/null", url]
