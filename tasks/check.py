from invoke import Context, Exit, task

from deploy.checks import preflight
from deploy.output import mark, table
from deploy.target import LocalTarget
from tasks._common import helps, open_stack


@task(help=helps())
def check(c: Context, stage: str | None = None, env_file: str | None = None) -> None:
    """Preflight: engine and Compose versions, required variables, secrets, compose files.

    For production also: JWT_SECRET length, no default or example passwords, the env
    file ignored by git and not tracked. Exits 1 when anything fails.
    """
    stack = open_stack(c, stage, env_file)
    findings = preflight(stack, LocalTarget(c))
    table(
        f"preflight: {stack.settings.stage.name} ({stack.settings.env_file.name})",
        ["", "check", "detail", "fix"],
        ((mark(f.ok, warning=bool(f.fix)), f.subject, f.detail, f.fix) for f in findings),
    )
    failed = [f for f in findings if not f.ok]
    if failed:
        raise Exit(f"{len(failed)} check(s) failed: {', '.join(f.subject for f in failed)}", code=1)
