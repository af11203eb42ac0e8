"""Release versions: semantic versioning (semver.org 2.0.0), validated and bumped."""
from __future__ import annotations

import re
from dataclasses import dataclass

from deploy.errors import fail

# The regular expression suggested by semver.org.
SEMVER = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?\Z"
)
BUMPS = ("major", "minor", "patch")


@dataclass(frozen=True)
class Version:
    major: int
    minor: int
    patch: int
    prerelease: str = ""

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}" + (f"-{self.prerelease}" if self.prerelease else "")

    @property
    def tag(self) -> str:
        """The image tag: the version itself (build metadata is not allowed in tags)."""
        return str(self)

    def bump(self, part: str) -> Version:
        if part not in BUMPS:
            fail(f"--bump {part!r} is not one of {', '.join(BUMPS)}", "use --bump major, minor or patch")
        if part == "major":
            return Version(self.major + 1, 0, 0)
        if part == "minor":
            return Version(self.major, self.minor + 1, 0)
        return Version(self.major, self.minor, self.patch + 1)


def parse(text: str) -> Version:
    """A version like 1.4.0 or 2.0.0-rc.1; anything else is refused with the rule."""
    m = SEMVER.match(text or "")
    if not m or m.group(5):
        fail(
            f"version {text!r} is not a semantic version",
            "use MAJOR.MINOR.PATCH with an optional -prerelease, e.g. 1.4.0, v1.4.0 (a git tag) or 2.0.0-rc.1 (no +build)",
        )
    return Version(int(m.group(1)), int(m.group(2)), int(m.group(3)), m.group(4) or "")


def given(text: str) -> Version:
    """A version as a user or a CI job gives it: a git tag's leading ``v`` is dropped
    (``v2.0.0`` is 2.0.0), then ``parse``."""
    return parse(text[1:] if text[:1] in ("v", "V") and text[1:2].isdigit() else text)
