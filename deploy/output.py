"""Printing tables and findings for people (rich is imported only when printing)."""
from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from typing import Any

WIDTH_WITHOUT_TERMINAL = 160  # rich would wrap to 80 columns in CI logs and pipes


def _console() -> Any:
    from rich.console import Console

    return Console(highlight=False, width=None if sys.stdout.isatty() else WIDTH_WITHOUT_TERMINAL)


def table(title: str, columns: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
    from rich.table import Table

    t = Table(title=title, title_justify="left")
    for col in columns:
        t.add_column(col)
    for row in rows:
        t.add_row(*(str(v) for v in row))
    _console().print(t)


def mark(ok: bool, warning: bool = False) -> str:
    if not ok:
        return "[red]FAIL[/red]"
    return "[yellow]WARN[/yellow]" if warning else "[green]ok[/green]"


def say(message: str) -> None:
    _console().print(message)
