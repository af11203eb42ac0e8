import os
from pathlib import Path

from invoke import Context, task

from deploy.engine.commands import docker
from deploy.config.envfile import render
from deploy.errors import fail
from deploy.output import say
from deploy.config.settings import read_env_file
from deploy.engine.target import LocalTarget
from tasks._common import ROOT, load_config


@task(
    name="init",
    help={
        "stage": "the stage whose env file to create (default: deploy.default_stage)",
        "overrides": "an env file whose variables are set in the new file (e.g. the test bed's images)",
        "force": "replace an existing env file",
    },
)
def init(c: Context, stage: str | None = None, overrides: str | None = None, force: bool = False) -> None:
    """Create the stage's env file from .env.example with fresh random secrets (mode 0600)."""
    config = load_config(c)
    st = config.stage(stage)
    path = ROOT / st.env_file
    if path.exists() and not force:
        fail(f"{path} exists", "edit it, or pass --force to replace it (its secrets are lost)")
    example = ROOT / config.env_example
    if not example.is_file():
        fail(f"{example} not found", "restore .env.example from the repository")
    extra = read_env_file(Path(overrides)) if overrides else {}
    text = render(example.read_text(), config.secret_env, extra)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(path, 0o600)
    say(f"wrote {path} (mode 0600) with fresh {', '.join(config.secret_env)}; review it, then `inv check --stage {st.name}`")
    volumes = LocalTarget(c).run(docker.project_volumes(config.project), warn=True)
    if volumes.ok and volumes.stdout.split():
        say(
            f"[yellow]warning:[/yellow] volumes of {config.project} already exist ({', '.join(volumes.stdout.split())}). "
            "PostgreSQL keeps the password it was created with: put the old POSTGRES_PASSWORD back, "
            "or start afresh with `inv down --volumes --yes` (deletes the data)."
        )
