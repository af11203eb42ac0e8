"""Integration fixtures: the real engine, Compose v2 and the test bed's images.

Every stack gets its own Compose project name, free ports and a private state
directory, and is removed (containers, volumes, images) when the module ends, also
when a test fails. Tests drive the real `inv` command line.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import docker
import pytest

from deploy.config.envfile import render
from deploy.config.settings import read_env_file

ROOT = Path(__file__).resolve().parents[2]
TESTBED_STATE = Path(os.environ.get("TESTBED_STATE", "/var/lib/deploy-testbed"))
SECRETS = ("POSTGRES_PASSWORD", "REDIS_PASSWORD", "JWT_SECRET")



def pytest_collection_modifyitems(items):
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.fspath).parents:
            item.add_marker(pytest.mark.integration)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def engine() -> docker.DockerClient:
    """The Docker SDK on the local engine: an independent view to check our output against."""
    try:
        client = docker.from_env(timeout=120)
        client.ping()
    except Exception as err:  # noqa: BLE001
        pytest.fail(f"no Docker engine ({err}); run: bash scripts/testbed/setup.sh")
    return client


@pytest.fixture(scope="session")
def testbed() -> dict:
    """The SSH test hosts' settings (scripts/testbed/hosts.sh up)."""
    from tests.integration.hosts import HOSTS_ENV, read_testbed  # hosts.py imports this module

    if not HOSTS_ENV.is_file():
        pytest.fail(f"{HOSTS_ENV} missing; run: bash scripts/testbed/hosts.sh up")
    return read_testbed()


@pytest.fixture(scope="session")
def images(engine) -> dict[str, str]:
    """Image overrides written by scripts/testbed/setup.sh."""
    path = TESTBED_STATE / "images.env"
    if not path.is_file():
        pytest.fail(f"{path} missing; run: bash scripts/testbed/setup.sh")
    return read_env_file(path)


@dataclass
class Inv:
    """Runs `inv TASK` against one test stack (its project, stage and env file)."""

    project: str
    runtime_config: Path
    env_file: Path
    http_port: int
    https_port: int
    backups: Path
    stage: str = "production"
    compose_files: tuple[str, ...] = field(default=("compose/docker-compose.yml", "compose/docker-compose.prod.yml"))

    def argv(self, task: str, *args: str, command: list[str] | None = None) -> list[str]:
        argv = [sys.executable, "-m", "invoke", "-f", str(self.runtime_config), task, *args,
                "--stage", self.stage, "--env-file", str(self.env_file)]
        return argv if command is None else [*argv, "--", *command]

    def __call__(self, task: str, *args: str, command: list[str] | None = None, check: bool = True, timeout: float = 600):
        argv = self.argv(task, *args, command=command)
        result = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        if check and result.returncode != 0:
            raise AssertionError(f"inv {task} {' '.join(args)} exited {result.returncode}\n{result.stdout}\n{result.stderr}")
        return result

    def compose(self, *args: str) -> subprocess.CompletedProcess:
        """Raw docker compose on the same project (for cleanup and independent checks)."""
        files = [a for f in self.compose_files for a in ("-f", str(ROOT / f))]
        return subprocess.run(
            ["docker", "compose", "-p", self.project, *files, "--env-file", str(self.env_file), *args],
            cwd=ROOT, capture_output=True, text=True, timeout=300,
        )


def make_stack(tmp: Path, images: dict[str, str], stages: dict | None = None, **env: str) -> Inv:
    """A test stack: its own project, port, state and backups; ``stages`` adds stages."""
    project = f"it{uuid.uuid4().hex[:10]}"
    port, https_port = free_port(), free_port()
    runtime = tmp / "invoke.json"
    deploy = {"project": project, "state_dir": str(tmp / "state"), "database": {"backups_dir": str(tmp / "backups")}}
    if stages:
        deploy["stages"] = stages
    runtime.write_text(json.dumps({"deploy": deploy}))
    overrides = {
        **images,
        "DOCKER_REGISTRY": "127.0.0.1:5000",
        "DOCKER_NAMESPACE": project,
        "HTTP_BIND": "127.0.0.1",
        "HTTP_PORT": str(port),
        "HTTPS_BIND": "127.0.0.1",
        "HTTPS_PORT": str(https_port),
        "NGINX_API_RATE": "20000r/s",
        "NGINX_API_BURST": "20000",
        "NGINX_WEB_RATE": "20000r/s",
        "NGINX_WEB_BURST": "20000",
        **env,
    }
    env_file = tmp / "stack.env"
    env_file.write_text(render((ROOT / ".env.example").read_text(), SECRETS, overrides))
    env_file.chmod(0o600)
    backups = tmp / "backups" / project / "production"
    return Inv(project=project, runtime_config=runtime, env_file=env_file, http_port=port, https_port=https_port, backups=backups)


def workspace_copy(tmp: Path) -> tuple[Path, dict[str, str]]:
    """A copy of the example workspace's sources (no installed or built files), and the
    env that builds the backend from it."""
    copy = tmp / "workspace"
    shutil.copytree(ROOT / "examples", copy, ignore=shutil.ignore_patterns("node_modules", "dist", ".next", ".test-out"))
    return copy, {"BACKEND_CONTEXT": str(copy), "BACKEND_DOCKERFILE": str(ROOT / "compose/dockerfiles/backend.nestjs.Dockerfile")}


def changed_backend(tmp: Path, old: str, new: str) -> dict[str, str]:
    """A copy of the example workspace whose backend's health controller has ``old``
    replaced by ``new`` (a release that fails in a chosen way), and the env that builds
    the backend from it."""
    copy, env = workspace_copy(tmp)
    source = copy / "apps/backend/src/health.controller.ts"
    text = source.read_text()
    assert old in text, f"examples/apps/backend/src/health.controller.ts changed: adapt {old!r}"
    source.write_text(text.replace(old, new))
    return env


def container_address(container) -> str:
    """A container's address on its first network (this machine reaches it over the bridge)."""
    container.reload()
    return next(n["IPAddress"] for n in container.attrs["NetworkSettings"]["Networks"].values() if n.get("IPAddress"))


def remove_stack(stack: Inv, engine: docker.DockerClient) -> None:
    stack.compose("down", "--volumes", "--remove-orphans", "--timeout", "5")
    for image in engine.images.list(filters={"label": f"com.docker.compose.project={stack.project}"}):
        with contextlib.suppress(docker.errors.APIError):
            engine.images.remove(image.id, force=True)


@pytest.fixture(scope="module")
def prod_stack(tmp_path_factory, images, engine):
    """The example's production stack, built and up (healthy) for the whole module."""
    stack = make_stack(tmp_path_factory.mktemp("stack"), images)
    try:
        stack("up", "--build", timeout=900)
        stack("exec", "backend", command=["node", "dist/migrate.js"])
        yield stack
    finally:
        remove_stack(stack, engine)


def table_rows(output: str) -> list[list[str]]:
    """The cells of each row of a table printed by a task."""
    return [[c.strip() for c in line.strip().strip("│").split("│")] for line in output.splitlines() if line.startswith("│")]


def row(output: str, column: int, value: str) -> list[str]:
    """The row whose cell ``column`` is ``value``."""
    for cells in table_rows(output):
        if len(cells) > column and cells[column] == value:
            return cells
    raise AssertionError(f"no row with {value!r} in column {column}:\n{output}")
