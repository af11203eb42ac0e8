"""App image names and the tags every release gets, and the docker commands on them.

Names are ``REGISTRY/NAMESPACE/SERVICE:TAG`` (the compose files build the same
names); a stage without a registry uses the prefix ``local`` and is never pushed.
Tags of a release: its version, the UTC date, the git commit, and ``latest``.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime, timezone

from deploy.versions import Version

LOCAL_REGISTRY = "local"
GIT_SHA = re.compile(r"^[0-9a-f]{7,40}$")


@dataclass(frozen=True)
class ImageName:
    registry: str
    namespace: str
    service: str

    @property
    def repository(self) -> str:
        return f"{self.registry or LOCAL_REGISTRY}/{self.namespace}/{self.service}"

    @property
    def pushable(self) -> bool:
        return bool(self.registry) and self.registry != LOCAL_REGISTRY

    def ref(self, tag: str) -> str:
        return f"{self.repository}:{tag}"


def release_tags(version: Version, when: datetime, git_sha: str | None) -> list[str]:
    """version, date (YYYYMMDD, UTC), short git commit (when known), latest."""
    tags = [version.tag, when.astimezone(timezone.utc).strftime("%Y%m%d")]
    if git_sha and GIT_SHA.match(git_sha):
        tags.append(git_sha[:12])
    return [*tags, "latest"]


def tag(source: str, target: str) -> list[str]:
    return ["docker", "tag", source, target]


def push(ref: str) -> list[str]:
    return ["docker", "push", ref]


def remove(ref: str) -> list[str]:
    """Untag ``ref`` (the image goes when no tag or container holds it)."""
    return ["docker", "image", "rm", ref]


def identity(ref: str) -> list[str]:
    """The image's registry digests (JSON list) and its id, on one line."""
    return ["docker", "image", "inspect", "--format", "{{json .RepoDigests}} {{.Id}}", ref]


def parse_identity(text: str, repository: str) -> str:
    """The digest ``repository@sha256:...`` pushed for the image, else its local id."""
    digests_json, _, image_id = text.strip().rpartition(" ")
    try:
        digests = json.loads(digests_json or "[]")
    except ValueError:
        digests = []
    return next((d for d in digests if d.startswith(repository + "@")), image_id)


def exists(ref: str) -> list[str]:
    return ["docker", "image", "inspect", "--format", "{{.Id}}", ref]
