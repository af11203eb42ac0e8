"""Printing tables and findings for people (rich is imported only when printing)."""
from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterable, Sequence
from typing import Any

WIDTH_WITHOUT_TERMINAL = 160  # rich would wrap to 80 columns in CI logs and pipes
_print_lock = threading.Lock()  # hosts worked in parallel print whole lines
_local = threading.local()  # .host: the host this thread works on (its lines' prefix)


def set_host(name: str | None) -> None:
    """Prefix every line this thread prints with ``[name]`` (None: no prefix)."""
    _local.host = name


def host_prefix() -> str:
    host = getattr(_local, "host", None)
    return f"[{host}] " if host else ""


def _console() -> Any:
    from rich.console import Console

    return Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else WIDTH_WITHOUT_TERMINAL)


def table(title: str, columns: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
    from rich.table import Table

    t = Table(title=title, title_justify="left")
    for col in columns:
        t.add_column(col)
    for row in rows:
        t.add_row(*(str(v) for v in row))
    _console().print(t)


def human_bytes(size: float) -> str:
    """'512 B', '4.6 kB', '1.2 GB' (powers of 1000, as docker prints them)."""
    if size < 1000:
        return f"{size:,.0f} B"
    for unit in ("kB", "MB"):
        size /= 1000
        if size < 1000:
            return f"{size:,.1f} {unit}"
    return f"{size / 1000:,.1f} GB"


def mark(ok: bool, warning: bool = False) -> str:
    if not ok:
        return "[red]FAIL[/red]"
    return "[yellow]WARN[/yellow]" if warning else "[green]ok[/green]"


def say(message: str) -> None:
    prefix = host_prefix()
    if prefix:
        escaped = prefix.replace("[", "\\[")  # not rich markup
        message = "\n".join(f"[bold]{escaped}[/bold]{line}" for line in message.splitlines() or [""])
    with _print_lock:
        _console().print(message)


class PrefixedStream:
    """A text stream that writes whole lines to ``stream``, each prefixed with
    ``[name]`` (remote command output of hosts worked in parallel)."""

    def __init__(self, name: str, stream: Any) -> None:
        self.prefix = f"[{name}] "
        self.stream = stream
        self.pending = ""

    def write(self, text: str) -> int:
        self.pending += text
        *lines, self.pending = self.pending.split("\n")
        if lines:
            with _print_lock:
                self.stream.write("".join(f"{self.prefix}{line}\n" for line in lines))
                self.stream.flush()
        return len(text)

    def flush(self) -> None:
        if self.pending:
            self.write("\n")


class ByteProgress:
    """Bytes done and the rate, on stderr: redrawn each second on a terminal, a line
    every ``quiet_interval`` seconds otherwise."""

    def __init__(self, label: str, quiet_interval: float = 10.0) -> None:
        self.label = label
        self.tty = sys.stderr.isatty()
        self.interval = 1.0 if self.tty else quiet_interval
        self.start = self.last = time.monotonic()
        self.done_bytes = 0

    def line(self) -> str:
        elapsed = max(time.monotonic() - self.start, 1e-6)
        mb = self.done_bytes / 1e6
        return f"{self.label}: {mb:,.1f} MB, {mb / elapsed:,.1f} MB/s"

    def __call__(self, done_bytes: int) -> None:
        self.done_bytes = done_bytes
        now = time.monotonic()
        if now - self.last >= self.interval:
            self.last = now
            sys.stderr.write(("\r" + self.line()) if self.tty else self.line() + "\n")
            sys.stderr.flush()

    def finish(self) -> None:
        if self.tty and self.last != self.start:
            sys.stderr.write("\r" + self.line() + "\n")
