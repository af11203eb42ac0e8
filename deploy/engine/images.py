"""App image names and the tags every release gets (their docker commands are in
deploy.engine.commands.images).

Names are what the compose files say (``REGISTRY/NAMESPACE/SERVICE:TAG`` in ours; a
stage without a registry uses the prefix ``local`` and is never pushed).
Tags of a release: its version, the UTC date, the git commit, and ``latest``. Hosts run
a release's images by the digest its push recorded (``Pinned``), never by a tag another
push may have moved.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from deploy.errors import fail
from deploy.versions import Version

if TYPE_CHECKING:
    from deploy.engine.stack import Stack

GIT_SHA = re.compile(r"[0-9a-f]{7,40}")


@dataclass(frozen=True)
class ImageName:
    """An app service's image repository, as the compose files name it."""

    service: str
    repository: str  # REGISTRY/NAMESPACE/SERVICE (without a tag)

    @classmethod
    def parse(cls, service: str, image: str) -> ImageName:
        """From a compose ``image:`` value; its tag (``:APP_VERSION``) is dropped."""
        name, _, tag = image.rpartition(":")
        return cls(service, name if name and "/" not in tag else image)

    @property
    def pushable(self) -> bool:
        """Docker's rule: the first part names a registry when it has a '.' or a ':' or is
        localhost (``local/...``, a stage without DOCKER_REGISTRY, is never pushed)."""
        first, sep, _ = self.repository.partition("/")
        return bool(sep) and ("." in first or ":" in first or first == "localhost")

    def ref(self, tag: str) -> str:
        return f"{self.repository}:{tag}"


@dataclass(frozen=True)
class Pinned:
    """An app image of a release: the tag the compose files name, and the digest it was
    pushed as (what a host pulls, whatever the tag names in the registry since)."""

    ref: str  # REGISTRY/NAMESPACE/SERVICE:TAG
    digest: str  # REGISTRY/NAMESPACE/SERVICE@sha256:...

    @property
    def exact(self) -> str:
        """``REPOSITORY:TAG@sha256:...``: the digest decides, the tag is shown (Swarm's specs)."""
        return f"{self.ref}@{self.digest.partition('@')[2]}"


def is_digest(reference: str) -> bool:
    """``REPOSITORY@sha256:...`` (not an image id, which an unpushed image is recorded with)."""
    name, _, digest = reference.partition("@")
    return bool(name) and digest.startswith("sha256:")


def app_images(stack: Stack) -> list[ImageName]:
    """The images of the stage's stateless services (the ones a release builds), read
    from the merged compose configuration: Compose's interpolation of ``image:`` is the
    one rule that names them."""
    services = stack.config().get("services", {})
    names = []
    for service in stack.settings.config.stateless:
        image = services.get(service, {}).get("image")
        if not image:
            fail(f"service {service} has no image: in the compose files",
                 f"name it, e.g. image: ${{DOCKER_REGISTRY}}/${{DOCKER_NAMESPACE}}/{service}:${{APP_VERSION}}")
        names.append(ImageName.parse(service, image))
    return names


def release_tags(version: Version, when: datetime, git_sha: str | None) -> list[str]:
    """version, date (YYYYMMDD, UTC), short git commit (when known), latest."""
    tags = [version.tag, when.astimezone(timezone.utc).strftime("%Y%m%d")]
    if git_sha and GIT_SHA.fullmatch(git_sha):
        tags.append(git_sha[:12])
    return [*tags, "latest"]

