"""Free disk space: stopped containers, dangling images and build cache of the project;
volumes only when asked, and the database volumes only when asked twice.

Images used by any container are never removed (Docker refuses, and only dangling
images of this project are pruned).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from deploy.engine.commands import compose, docker
from deploy.engine.stack import Stack
from deploy.errors import fail

RECLAIMED = re.compile(r"Total reclaimed space:\s*(\S+)")


@dataclass
class CleanReport:
    containers: list[str] = field(default_factory=list)
    images: list[str] = field(default_factory=list)
    images_freed: str = "0B"
    cache_freed: str = "0B"
    volumes: list[str] = field(default_factory=list)
    kept_volumes: list[str] = field(default_factory=list)  # "name (why)"


def reclaimed(output: str) -> str:
    m = RECLAIMED.search(output)
    return m.group(1) if m else "0B"


def deleted_images(output: str) -> list[str]:
    return [line.split(":", 1)[1].strip() for line in output.splitlines() if line.startswith(("deleted:", "untagged:"))]


def stateful_volumes(config: dict[str, Any], stateful: tuple[str, ...]) -> set[str]:
    """Engine names of the named volumes mounted by stateful services (the data)."""
    declared = config.get("volumes") or {}
    names = set()
    for service in stateful:
        for mount in (config.get("services", {}).get(service) or {}).get("volumes") or ():
            if mount.get("type") == "volume" and mount.get("source"):
                names.add((declared.get(mount["source"]) or {}).get("name", mount["source"]))
    return names


def check_flags(volumes: bool, include_database: bool, yes: bool) -> None:
    if include_database and not volumes:
        fail("--include-database only makes sense with --volumes", "add --volumes --yes, or leave it out")
    if volumes and not yes:
        fail("--volumes deletes data", "add --yes to confirm (database volumes also need --include-database)")


def clean(stack: Stack, volumes: bool = False, include_database: bool = False, yes: bool = False) -> CleanReport:
    check_flags(volumes, include_database, yes)
    report = CleanReport()
    report.containers = [c.name for c in stack.containers() if c.state != "running"]
    if report.containers:
        stack.run(compose.remove_stopped(stack.project), what="removing stopped containers")
    out = stack.run(docker.prune_dangling_images(stack.settings.stage.project), what="pruning images").stdout
    report.images, report.images_freed = deleted_images(out), reclaimed(out)
    report.cache_freed = reclaimed(stack.run(docker.prune_build_cache(), what="pruning the build cache").stdout)
    if volumes:
        _remove_volumes(stack, include_database, report)
    return report


def _remove_volumes(stack: Stack, include_database: bool, report: CleanReport) -> None:
    protected = set() if include_database else stateful_volumes(stack.config(), stack.settings.config.stateful)
    names = stack.run(docker.project_volumes(stack.settings.stage.project), what="listing volumes").stdout.split()
    for name in names:
        if name in protected:
            report.kept_volumes.append(f"{name} (database; add --include-database)")
            continue
        result = stack.target.run(docker.remove_volumes([name]), warn=True)
        if result.ok:
            report.volumes.append(name)
        else:
            report.kept_volumes.append(f"{name} (in use by a container)")
