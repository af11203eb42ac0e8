from invoke import Context, Exit, task

from deploy.checks import preflight
from deploy.output import mark, table
from deploy.target import LocalTarget
from tasks._common import Where, host_helps, on_hosts, open_fleet


@task(help=host_helps())
@on_hosts
def check(c: Context, *, where: Where) -> None:
    """Preflight: engine and Compose versions (on each host), required variables, secrets, compose files.

    For production also: JWT_SECRET length, no default or example passwords, the env
    file ignored by git and not tracked. Exits 1 when anything fails.
    """
    fleet = open_fleet(c, where)
    found = fleet.each(lambda m: preflight(m.stack, LocalTarget(c)), what="check", summary=False)
    settings = fleet.settings
    table(
        f"preflight: {settings.stage.name} ({settings.env_file.name})",
        ["", "host", "check", "detail", "fix"],
        ((mark(f.ok, warning=bool(f.fix)), m.name, f.subject, f.detail, f.fix) for m in fleet.members for f in found[m.name]),
    )
    failed = sorted({f.subject for findings in found.values() for f in findings if not f.ok})
    if failed:
        raise Exit(f"{len(failed)} check(s) failed: {', '.join(failed)}", code=1)
