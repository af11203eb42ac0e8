from invoke import Context, Exit, task

from deploy.stack.checks import config_findings, engine_findings, preflight
from deploy.output import mark, table
from deploy.engine.target import LocalTarget
from tasks._common import Where, host_helps, on_hosts, open_fleet


@task(help=host_helps())
@on_hosts
def check(c: Context, *, where: Where) -> None:
    """Preflight: engine and Compose versions (on each host), required variables, secrets, compose files.

    For production also: JWT_SECRET length, no default or example passwords, the env
    file ignored by git and not tracked. Exits 1 when anything fails.
    """
    fleet = open_fleet(c, where)
    local = LocalTarget(c)
    if fleet.remote:
        engines = fleet.each(lambda m: engine_findings(m.stack.target), what="check", summary=False)
        rows = [(m.name, f) for m in fleet.members for f in engines[m.name]]
        rows += [("local", f) for f in config_findings(fleet.settings, local)]
    else:
        rows = [("local", f) for f in preflight(fleet.primary.stack, local)]
    settings = fleet.settings
    where_column = ["where"] if fleet.remote else []
    table(
        f"preflight: {settings.stage.name} ({settings.env_file.name})",
        ["", *where_column, "check", "detail", "fix"],
        ((mark(f.ok, warning=bool(f.fix)), *([w] if fleet.remote else []), f.subject, f.detail, f.fix) for w, f in rows),
    )
    failed = sorted({f.subject for _, f in rows if not f.ok})
    if failed:
        raise Exit(f"{len(failed)} check(s) failed: {', '.join(failed)}", code=1)
