"""Env files: the one writer of an assignment (``env_line``), used by ``inv init`` and
by the upload to hosts, and the stage's env file made from .env.example with fresh
secrets (``render``).

Two readers must read every line back exactly: python-dotenv (what these tasks read,
without interpolation) and Compose (what reads the file on a host, with interpolation).
Their rules differ, so each value gets the form both read the same way:

- only ``A-Z a-z 0-9 _ . / : @ % + , = -``: unquoted (``NAME=value``);
- no ``$`` that Compose would expand (``$`` before a letter, ``_``, ``{`` or ``$``):
  double quotes, with ``\\``, ``"``, newline and carriage return escaped (``\\\\``,
  ``\\"``, ``\\n``, ``\\r``: both readers decode exactly these);
- otherwise single quotes (literal in both, ``'`` written ``\\'``). Single quotes cannot
  carry a backslash before another backslash or a quote or at the end (python-dotenv
  decodes ``\\\\``, Compose does not), nor a carriage return (python-dotenv reads it as
  a newline). Such a value — an expanding ``$`` *and* one of those — is refused: no
  line reads back the same in both.
"""
from __future__ import annotations

import re
import secrets
from collections.abc import Mapping, Sequence

from deploy import validators
from deploy.errors import fail

ASSIGNMENT = re.compile(r"(\s*#\s*)?([A-Z][A-Z0-9_]*)=(.*)")
PLAIN = re.compile(r"[A-Za-z0-9_./:@%+,=-]*")
EXPANDING_DOLLAR = re.compile(r"\$[A-Za-z_{$]")  # what Compose interpolates outside single quotes
NOT_SINGLE_QUOTABLE = re.compile(r"\\[\\']|\\$|\r")
DOUBLE_QUOTE_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r"}


def env_line(name: str, value: str) -> str:
    """``NAME=value`` that python-dotenv and Compose both read back as exactly ``value``
    (see the module's docstring); a value no line can carry is refused, naming the
    variable (never its value: it may be a secret)."""
    validators.env_name(name)
    try:
        value.encode()
    except UnicodeEncodeError:
        fail(f"the value of {name} is not valid text (UTF-8)", f"set {name} to text")
    if PLAIN.fullmatch(value):
        return f"{name}={value}"
    if not EXPANDING_DOLLAR.search(value):
        return f'{name}="' + "".join(DOUBLE_QUOTE_ESCAPES.get(ch, ch) for ch in value) + '"'
    if NOT_SINGLE_QUOTABLE.search(value):
        fail(f"the value of {name} cannot be written to an env file that both Compose and python-dotenv read back unchanged: "
             "it has a $ before a letter, _, { or $ (which Compose expands unless the value is in single quotes) and a backslash "
             "before a backslash or a quote or at its end, or a carriage return (which single quotes cannot carry)",
             f"change {name}: without that backslash (or carriage return), or without the $")
    return f"{name}='" + value.replace("'", "\\'") + "'"


def fresh_secret(name: str) -> str:
    """64 hex characters (256 bits): long enough for JWT_SECRET's production rule."""
    return secrets.token_hex(32)


def render(example: str, secret_names: Sequence[str], overrides: Mapping[str, str]) -> str:
    """The example's text with secrets replaced and ``overrides`` set (each written by
    ``env_line``; the example's other lines are kept as they are).

    A commented-out example line (``# NODE_IMAGE=...``) is enabled when overridden;
    overrides the example does not mention are appended at the end.
    """
    lines, seen = [], set()
    for line in example.splitlines():
        m = ASSIGNMENT.fullmatch(line)
        if m:
            name = m.group(2)
            if name in overrides and name not in seen:
                lines.append(env_line(name, overrides[name]))
                seen.add(name)
                continue
            if not m.group(1) and name in secret_names:
                lines.append(env_line(name, fresh_secret(name)))
                continue
        lines.append(line)
    extra = [env_line(k, v) for k, v in overrides.items() if k not in seen]
    if extra:
        lines += ["", "# --- Set when this file was created ---", *extra]
    return "\n".join(lines) + "\n"
