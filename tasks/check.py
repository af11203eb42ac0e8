from invoke import Context

from deploy.errors import fail
from deploy.output import mark, table
from deploy.stack.checks import fleet_findings
from tasks._open import open_fleet
from tasks._show import host_cells
from tasks._where import Where, on_hosts


@on_hosts()
def check(c: Context, *, where: Where) -> None:
    """Preflight: engine and Compose versions (on each host), required variables, secrets, compose files.

    For production also: JWT_SECRET length, no default or example passwords, the env
    file ignored by git and not tracked. Exits 1 when anything fails.
    """
    fleet = open_fleet(c, where)
    rows = fleet_findings(fleet)
    settings = fleet.settings
    table(
        f"preflight: {settings.stage.name} ({settings.env_file.name})",
        ["", *host_cells(fleet, "where"), "check", "detail", "fix"],
        ((mark(f.ok, warning=bool(f.fix)), *host_cells(fleet, w), f.subject, f.detail, f.fix) for w, f in rows),
    )
    failed = sorted({f.subject for _, f in rows if not f.ok})
    if failed:
        fail(f"{len(failed)} check(s) failed: {', '.join(failed)}", "follow the fix column above, then run inv check again")
