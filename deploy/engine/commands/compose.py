"""``docker compose`` command lines for one project."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class ComposeProject:
    name: str
    files: tuple[str, ...]
    env_file: str | None = None


def base(p: ComposeProject) -> list[str]:
    argv = ["docker", "compose", "-p", p.name]
    for f in p.files:
        argv += ["-f", f]
    if p.env_file:
        argv += ["--env-file", p.env_file]
    return argv


def build(p: ComposeProject, services: Sequence[str] = (), no_cache: bool = False) -> list[str]:
    return [*base(p), "build", *(["--no-cache"] if no_cache else []), *services]


def up(
    p: ComposeProject,
    services: Sequence[str] = (),
    *,
    build: bool = False,
    scale: Mapping[str, int] | None = None,
    no_recreate: bool = False,
    no_deps: bool = False,
    wait_timeout: int | None = None,
    no_build: bool = False,
) -> list[str]:
    """``up -d``; with ``wait_timeout``, wait until every started container is healthy;
    ``no_build``: never build a missing image (a release's images are built and pushed
    beforehand; on a host, pulled)."""
    argv = [*base(p), "up", "-d", "--remove-orphans"]
    if no_build:
        argv.append("--no-build")
    if build:
        argv.append("--build")
    if no_recreate:
        argv.append("--no-recreate")
    if no_deps:
        argv.append("--no-deps")
    if wait_timeout is not None:
        argv += ["--wait", "--wait-timeout", str(wait_timeout)]
    for service, count in sorted((scale or {}).items()):
        argv += ["--scale", f"{service}={count}"]
    return [*argv, *services]


def pull(p: ComposeProject, services: Sequence[str] = ()) -> list[str]:
    return [*base(p), "pull", "--quiet", *services]


def down(p: ComposeProject, volumes: bool = False) -> list[str]:
    return [*base(p), "down", "--remove-orphans", *(["--volumes"] if volumes else [])]



def config_json(p: ComposeProject) -> list[str]:
    return [*base(p), "config", "--format", "json"]


def config_hashes(p: ComposeProject, services: Sequence[str]) -> list[str]:
    """'SERVICE HASH' lines: the hash Compose labels containers with (config-hash)."""
    return [*base(p), "config", "--hash", ",".join(services)]


def config_check(p: ComposeProject) -> list[str]:
    return [*base(p), "config", "--quiet"]


def logs(
    p: ComposeProject,
    services: Sequence[str] = (),
    *,
    follow: bool = False,
    tail: int | None = None,
    since: str | None = None,
) -> list[str]:
    argv = [*base(p), "logs", "--timestamps"]
    if follow:
        argv.append("--follow")
    if tail is not None:
        argv += ["--tail", str(tail)]
    if since:
        argv += ["--since", since]
    return [*argv, *services]


def exec_(p: ComposeProject, service: str, command: Sequence[str], *, tty: bool, index: int | None = None) -> list[str]:
    argv = [*base(p), "exec"]
    if not tty:
        argv.append("-T")
    if index is not None:
        argv += ["--index", str(index)]
    return [*argv, service, *command]


def stop(p: ComposeProject, services: Sequence[str]) -> list[str]:
    return [*base(p), "stop", *services]


def run_once(p: ComposeProject, service: str, command: Sequence[str]) -> list[str]:
    """A one-off container of ``service``'s image and settings, removed afterwards."""
    return [*base(p), "run", "--rm", "--no-deps", "-T", service, *command]


def port(p: ComposeProject, service: str, container_port: int) -> list[str]:
    return [*base(p), "port", service, str(container_port)]


def remove_stopped(p: ComposeProject) -> list[str]:
    """Remove the project's stopped containers (running ones are left alone)."""
    return [*base(p), "rm", "--force"]
