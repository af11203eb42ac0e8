"""Writing a stage's env file from .env.example with fresh secrets."""
from __future__ import annotations

import re
import secrets
from collections.abc import Mapping, Sequence

ASSIGNMENT = re.compile(r"^(\s*#\s*)?([A-Z][A-Z0-9_]*)=(.*)$")


def fresh_secret(name: str) -> str:
    """64 hex characters (256 bits): long enough for JWT_SECRET's production rule."""
    return secrets.token_hex(32)


def render(example: str, secret_names: Sequence[str], overrides: Mapping[str, str]) -> str:
    """The example's text with secrets replaced and ``overrides`` set.

    A commented-out example line (``# NODE_IMAGE=...``) is enabled when overridden;
    overrides the example does not mention are appended at the end.
    """
    lines, seen = [], set()
    for line in example.splitlines():
        m = ASSIGNMENT.match(line)
        if m:
            name = m.group(2)
            if name in overrides and name not in seen:
                lines.append(f"{name}={overrides[name]}")
                seen.add(name)
                continue
            if not m.group(1) and name in secret_names:
                lines.append(f"{name}={fresh_secret(name)}")
                continue
        lines.append(line)
    extra = [f"{k}={v}" for k, v in overrides.items() if k not in seen]
    if extra:
        lines += ["", "# --- Set when this file was created ---", *extra]
    return "\n".join(lines) + "\n"
