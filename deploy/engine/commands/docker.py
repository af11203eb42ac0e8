"""Plain ``docker`` command lines (engine-wide or by container/volume id)."""
from __future__ import annotations

from collections.abc import Sequence

PROJECT_LABEL = "com.docker.compose.project"
STACK_LABEL = "com.docker.stack.namespace"  # a Swarm stack's services, tasks, secrets and configs


def version_json() -> list[str]:
    return ["docker", "version", "--format", "{{json .}}"]


def cpus() -> list[str]:
    """How many CPUs the engine's host has."""
    return ["docker", "info", "--format", "{{.NCPU}}"]


def compose_version() -> list[str]:
    return ["docker", "compose", "version", "--short"]


def project_containers(project: str) -> list[str]:
    """Ids of the project's service containers, running or not (one-off `run` containers excluded)."""
    return [
        "docker", "ps", "--all", "--quiet", "--no-trunc",
        "--filter", f"label={PROJECT_LABEL}={project}",
        "--filter", "label=com.docker.compose.oneoff=False",
    ]


def stack_containers(stack: str) -> list[str]:
    """Ids of a Swarm stack's task containers on this node, running or not."""
    return ["docker", "ps", "--all", "--quiet", "--no-trunc", "--filter", f"label={STACK_LABEL}={stack}"]


def inspect(ids: Sequence[str]) -> list[str]:
    return ["docker", "inspect", "--type", "container", *ids]


def exec_(container: str, command: Sequence[str], *, interactive: bool = False, tty: bool = False) -> list[str]:
    """Run ``command`` in a container; -i keeps stdin open (to stream into it), -t a terminal."""
    flags = (["-i"] if interactive else []) + (["-t"] if tty else [])
    return ["docker", "exec", *flags, container, *command]


def logs(container: str, tail: int) -> list[str]:
    return ["docker", "logs", "--tail", str(tail), container]


def stop(containers: Sequence[str]) -> list[str]:
    """SIGTERM, then SIGKILL after each container's own stop timeout (stop_grace_period)."""
    return ["docker", "stop", *containers]


def remove(containers: Sequence[str]) -> list[str]:
    return ["docker", "rm", "--force", *containers]


def stats(ids: Sequence[str], *, stream: bool = False) -> list[str]:
    if stream:
        return ["docker", "stats", *ids]
    return ["docker", "stats", "--no-stream", "--format", "{{json .}}", *ids]


def prune_dangling_images(project: str) -> list[str]:
    """Dangling (untagged, unused) images built for this project only."""
    return ["docker", "image", "prune", "--force", "--filter", f"label={PROJECT_LABEL}={project}"]


def prune_build_cache() -> list[str]:
    return ["docker", "builder", "prune", "--force"]


def project_volumes(project: str) -> list[str]:
    return ["docker", "volume", "ls", "--quiet", "--filter", f"label={PROJECT_LABEL}={project}"]


def remove_volumes(names: Sequence[str]) -> list[str]:
    return ["docker", "volume", "rm", *names]
