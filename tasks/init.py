from pathlib import Path

from invoke import Context

from tasks._open import ROOT, load_config
from tasks._where import Where, on_stage


@on_stage(
    help={
        "stage": "the stage whose env file to create (default: deploy.default_stage)",
        "env_file": "create this file instead of the stage's env file",
        "overrides": "an env file whose variables are set in the new file (e.g. the test bed's images)",
        "force": "replace an existing env file",
    },
)
def init(c: Context, overrides: str | None = None, force: bool = False, *, where: Where) -> None:
    """Create the stage's env file from .env.example with fresh random secrets (mode 0600)."""
    from deploy.atomic import write_atomic
    from deploy.config.envfile import render
    from deploy.config.settings import read_env_file
    from deploy.engine.commands import docker
    from deploy.engine.local import LocalTarget
    from deploy.errors import fail
    from deploy.output import say, styled

    config = load_config(c)
    st = config.stage(where.stage)
    path = Path(where.env_file) if where.env_file else ROOT / st.env_file
    if path.exists() and not force:
        fail(f"{path} exists", "edit it, or pass --force to replace it (its secrets are lost)")
    example = ROOT / config.env_example
    if not example.is_file():
        fail(f"{example} not found", "restore .env.example from the repository")
    extra = read_env_file(Path(overrides)) if overrides else {}
    text = render(example.read_text(), config.secret_env, extra)
    write_atomic(path, text.encode(), 0o600)  # a new 0600 file renamed over any old one
    check = f"inv check --stage {st.name}" + (f" --env-file {path}" if where.env_file else "")
    say(f"wrote {path} (mode 0600) with fresh {', '.join(config.secret_env)}; review it, then `{check}`")
    volumes = LocalTarget(c).run(docker.project_volumes(st.project), warn=True)
    if volumes.ok and volumes.stdout.split():
        say(
            styled("warning:", "yellow") + f" volumes of {st.project} already exist ({', '.join(volumes.stdout.split())}). "
            "PostgreSQL keeps the password it was created with: put the old POSTGRES_PASSWORD back, or, if they are "
            f"{st.name}'s and their data may go, start afresh with `inv down --volumes --stage {st.name}` (asks for the database's name)."
        )
    shared = [] if st.hosts else sorted(n for n, o in config.stages.items() if n != st.name and not o.hosts and o.project == st.project)
    if shared:
        say(
            f"note: {', '.join(shared)} and {st.name} use one Compose project ({st.project}) on this machine's engine: only one "
            f"of them can run here (a task of one refuses while the other's stack runs). To run both here, give {st.name} its own "
            f"project in invoke.yaml (new, empty volumes): deploy.stages.{st.name}.project: {st.project}-{st.name}"
        )
