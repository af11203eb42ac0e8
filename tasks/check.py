from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING

from invoke import Context

from tasks._open import open_fleet
from tasks._show import host_cells
from tasks._where import Where, on_hosts

if TYPE_CHECKING:
    from deploy.fleet import Fleet
    from deploy.stack.checks import Finding


def _table(fleet: Fleet, title: str, rows: list[tuple[str, Finding]]) -> None:
    from deploy.output import mark, table

    table(title, ["", *host_cells(fleet, "where"), "check", "detail", "fix"],
          ((mark(f.ok, warning=bool(f.fix)), *host_cells(fleet, w), f.subject, f.detail, f.fix) for w, f in rows))


@on_hosts(help={"production": "also the guide's production checklist, item by item, on the running stack of every host"})
def check(c: Context, production: bool = False, *, where: Where) -> None:
    """Preflight: engine and Compose versions (on each host), required variables, secrets, compose files.

    For production also: JWT_SECRET length, no default or example passwords, the env
    file ignored by git and not tracked. --production: the guide's 12-item checklist
    on the running stack (TLS, firewall, non-root, read-only, headers over HTTPS, rate
    limits, backups, logs, monitoring, ...). Exits 1 when anything fails.
    """
    from deploy.checklist import checklist
    from deploy.errors import fail
    from deploy.stack.checks import fleet_findings

    fleet = open_fleet(c, where)
    settings = fleet.settings
    rows = fleet_findings(fleet, secrets=not production)
    _table(fleet, f"preflight: {settings.stage.name} ({settings.env_file.name})", rows)
    if production:
        items = checklist(fleet, datetime.now(timezone.utc))
        _table(fleet, f"production checklist: {settings.stage.name}", items)
        rows += items
    failed = sorted({f.subject for _, f in rows if not f.ok})
    if failed:
        fail(f"{len(failed)} check(s) failed: {', '.join(failed)}", "follow the fix column above, then run inv check again")
