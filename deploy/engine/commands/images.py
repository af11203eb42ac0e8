"""``docker image`` command lines for release images (named by deploy.engine.images)."""
from __future__ import annotations


def tag(source: str, target: str) -> list[str]:
    return ["docker", "tag", source, target]


def push(ref: str) -> list[str]:
    return ["docker", "push", ref]


def pull(ref: str) -> list[str]:
    """Pull ``ref`` (by digest, ``REPOSITORY@sha256:...``: the engine checks the content against it)."""
    return ["docker", "pull", "--quiet", ref]


def remove(ref: str) -> list[str]:
    """Untag ``ref`` (the image goes when no tag or container holds it)."""
    return ["docker", "image", "rm", ref]


def identity(ref: str) -> list[str]:
    """The image's registry digests (JSON list) and its id, on one line
    (parsed by deploy.engine.facts.parse_identity)."""
    return ["docker", "image", "inspect", "--format", "{{json .RepoDigests}} {{.Id}}", ref]


def size(ref: str) -> list[str]:
    """The image's size in bytes (its layers, the base image's included)."""
    return ["docker", "image", "inspect", "--format", "{{.Size}}", ref]


def exists(ref: str) -> list[str]:
    """Succeeds only when the image is on the engine."""
    return ["docker", "image", "inspect", "--format", "{{.Id}}", ref]
