"""What a host needs to run the stage: the compose files (with the config files beside
them) and the env file, in its deploy directory.

The env file holds the stage's whole merged environment (process env > env file >
defaults), written with mode 0600 through SFTP: secrets never appear on a command line,
in the process list, or in output.
"""
from __future__ import annotations

import io
import tarfile
from collections.abc import Mapping
from pathlib import Path

from deploy.config.envfile import env_line
from deploy.config.settings import REMOTE_ENV_FILE
from deploy.engine.commands import files
from deploy.engine.ops import Ops, Put, run
from deploy.engine.stack import Stack
from deploy.errors import fail

MODE_LIMIT = 0o755  # an uploaded file's bits: its own, without group or world write (or set-id bits)


def render_env(env: Mapping[str, str]) -> str:
    """The env file of a host: every variable by ``env_line``, which Compose (the reader
    there) and python-dotenv read back unchanged."""
    lines = ["# Uploaded by the deploy tasks: the stage's merged environment. Do not edit here."]
    lines += [env_line(k, v) for k, v in sorted(env.items())]
    return "\n".join(lines) + "\n"


def compose_tree(root: Path, compose_files: tuple[str, ...]) -> bytes:
    """A tar of every folder holding a compose file (their config files come along),
    paths relative to the project root, each file with its own permission bits, never
    wider than ``MODE_LIMIT`` (a private file here stays private there). Files named
    ``.env*`` stay here: the stage's env reaches a host only as the 0600 env file."""
    folders = sorted({(root / f).parent.resolve() for f in compose_files})
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for folder in folders:
            if not folder.is_relative_to(root.resolve()):
                fail(f"{folder} is outside the project", "keep the stage's compose files inside the project")
            for path in sorted(folder.rglob("*")):
                if path.is_file() and not path.name.startswith(".env"):
                    info = tar.gettarinfo(str(path), arcname=str(path.relative_to(root.resolve())))
                    info.uid = info.gid = 0
                    info.uname = info.gname = "root"
                    info.mode = path.stat().st_mode & MODE_LIMIT
                    with open(path, "rb") as f:
                        tar.addfile(info, f)
    return buf.getvalue()


def upload(stack: Stack) -> Ops[None]:
    """Put the compose files and the env file in the host's deploy directory."""
    s = stack.settings
    workdir = stack.target.workdir
    if workdir is None:
        fail(f"{stack.target.name} has no deploy directory: only hosts get uploads", "deploy to a stage with hosts")
    yield run(stack, files.install_dir(workdir, 0o750), what=f"creating {workdir}", fix=f"check that the SSH user may create {workdir}")
    yield run(stack, files.untar(workdir), what=f"unpacking the compose files in {workdir}",
              fix=f"check that {workdir} is writable by the SSH user", stdin=compose_tree(s.config.root, s.stage.compose_files))
    env = {k: v for k, v in s.env.items() if k not in s.overrides}  # a run's APP_VERSION goes with each command
    yield Put(stack, f"{workdir}/{REMOTE_ENV_FILE}", render_env(env).encode(), 0o600)
