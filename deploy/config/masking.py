"""Secrets kept out of what is printed and recorded: every form a secret's value takes
in a text is replaced by ``****`` (``Settings.masked`` applies it; docs/security.md).

Which variables are secrets: those the stage declares (``deploy.secret_env``, the offsite
repository's ``password_env`` and ``env_vars``) and every other variable of the stage
whose name says it holds one (``SECRET_NAME``: a word PASSWORD, PASSWD, SECRET, TOKEN, or
API_KEY, ACCESS_KEY, PRIVATE_KEY in it: ``SMTP_PASSWORD``, ``GITHUB_TOKEN``).

The forms of a value: as it is; JSON-escaped (with and without ``\\u`` escapes: a value in
a JSON record or error); URL-encoded (``%40``, and ``+`` for a space: a password in a
URL); as ``shlex.quote`` writes it inside its quotes (a ``'`` becomes ``'"'"'``: a printed
command line).

A short value (fewer than ``MIN_LENGTH`` characters) is masked only where it stands as a
whole word, not inside a longer run of letters, digits and ``_``: a secret ``a`` must not
turn every ``a`` of a text into ``****``. ``inv check`` reports a declared secret that
short (a failure in production: ``deploy.stack.checks``).
"""
from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from functools import lru_cache
from urllib.parse import quote, quote_plus

MASK = "****"
MIN_LENGTH = 8
SECRET_NAME = re.compile(r"(?:^|_)(?:PASSWORD|PASSWD|SECRET|TOKEN|API_KEY|ACCESS_KEY|PRIVATE_KEY)(?:_|$)", re.IGNORECASE)
WORD = "A-Za-z0-9_"


def secrets(env: Mapping[str, str], declared: Sequence[str]) -> dict[str, str]:
    """The declared secrets and the variables named like one, name -> value (non-empty)."""
    return {name: v for name, v in env.items() if v and (name in declared or SECRET_NAME.search(name))}


def secret_values(env: Mapping[str, str], declared: Sequence[str]) -> frozenset[str]:
    """The values (non-empty) of the declared secrets and of the variables named like one."""
    return frozenset(secrets(env, declared).values())


def forms(value: str) -> set[str]:
    """Every way ``value`` may be written in a text (see the module's docstring)."""
    return {value, json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1], quote(value), quote(value, safe=""),
            quote_plus(value), value.replace("'", "'\"'\"'")}


@lru_cache(maxsize=32)
def pattern(values: frozenset[str]) -> re.Pattern[str] | None:
    """One expression matching every form of every value, the longest first (one secret
    inside another leaves nothing of it); short ones only as whole words."""
    alternatives: dict[str, str] = {}
    for value in values:
        for form in forms(value):
            short = len(value) < MIN_LENGTH
            alternatives[form] = f"(?<![{WORD}]){re.escape(form)}(?![{WORD}])" if short else re.escape(form)
    if not alternatives:
        return None
    return re.compile("|".join(alternatives[f] for f in sorted(alternatives, key=len, reverse=True)))


def mask(text: str, values: frozenset[str]) -> str:
    """``text`` with every form of every value replaced by ``****``."""
    found = pattern(values)
    return found.sub(MASK, text) if found else text
