"""Plain ``docker`` command lines (engine-wide or by container/volume id)."""
from __future__ import annotations

from collections.abc import Sequence

PROJECT_LABEL = "com.docker.compose.project"


def version_json() -> list[str]:
    return ["docker", "version", "--format", "{{json .}}"]


def compose_version() -> list[str]:
    return ["docker", "compose", "version", "--short"]


def inspect(ids: Sequence[str]) -> list[str]:
    return ["docker", "inspect", "--type", "container", *ids]


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


def system_df() -> list[str]:
    return ["docker", "system", "df", "--format", "{{json .}}"]
