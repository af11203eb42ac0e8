"""How tasks show where they acted: a host column on a stage with hosts, the URL of
the proxy on this machine. Presentation only; what a task does never asks here."""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from deploy.fleet import Fleet


def host_cells(fleet: Fleet, *cells: str) -> list[str]:
    """``cells`` (a table's "host" header or cell, a host's name in a message) when the
    fleet is a stage's hosts; nothing for the local engine, whose output names no host."""
    return list(cells) if fleet.remote else []


def on_which(fleet: Fleet) -> str:
    """' on h1, h2' on a stage's hosts; '' on the local engine."""
    names = fleet.host_names()
    return f" on {', '.join(names)}" if names else ""


def served_at(fleet: Fleet) -> str:
    """', served at http://127.0.0.1:PORT/' when this machine's engine publishes the
    proxy, else ''."""
    port = None if fleet.remote else fleet.primary.stack.proxy_port()
    return f", served at http://127.0.0.1:{port}/" if port else ""
