"""How the library reports a failure: the reason and what to do about it."""
from typing import NoReturn

from invoke.exceptions import Exit


def fail(reason: str, fix: str) -> NoReturn:
    """Stop the task with a non-zero exit, saying what went wrong and how to fix it."""
    raise Exit(f"error: {reason}\n  fix: {fix}", code=1)
