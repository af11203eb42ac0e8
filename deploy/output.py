"""Printing tables and findings for people (rich is imported only when printing).

Nothing printed here is ever parsed as rich markup: a plain ``str`` (a message, a table
cell, a title) is printed exactly as it is, so untrusted text (health output, compose
errors, queries, paths) shows literally and cannot break printing. Styling is asked for
with ``Styled`` text, made by ``styled`` and ``mark``: a str (its plain text) that also
says which of its parts get which style; ``styled(...) + text`` keeps the styles.
"""
from __future__ import annotations

import sys
import threading
import time
from collections.abc import Collection, Iterable, Sequence
from typing import Any

Span = tuple[int, int, str]  # start, end, rich style

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


class Styled(str):
    """Text styled on purpose: the plain text, and ``spans`` (start, end, rich style).

    Concatenation with ``+`` keeps the styles of both sides (a plain str adds unstyled
    text); anything else (an f-string, ``str.join``) makes a plain str, printed unstyled.
    """

    spans: tuple[Span, ...]

    def __new__(cls, text: str = "", spans: Iterable[Span] = ()) -> Styled:
        self = super().__new__(cls, text)
        self.spans = tuple(spans)
        return self

    def __add__(self, other: str) -> Styled:
        return Styled(str(self) + other, (*self.spans, *_spans(other, len(self))))

    def __radd__(self, other: str) -> Styled:
        return Styled(other + str(self), (*_spans(other), *_spans(self, len(other))))


def _spans(text: str, shift: int = 0) -> tuple[Span, ...]:
    return tuple((start + shift, end + shift, style) for start, end, style in text.spans) if isinstance(text, Styled) else ()


def styled(text: str, style: str) -> Styled:
    """``text`` printed in rich ``style`` ("red", "bold green"); the text itself is never markup."""
    return Styled(text, [(0, len(text), style), *_spans(text)])


def _rich(value: object) -> Any:
    """A rich Text of ``value``: its plain text, styled only by a Styled's spans."""
    from rich.text import Text

    text = Text(str(value))
    if isinstance(value, Styled):
        for start, end, style in value.spans:
            text.stylize(style, start, end)
    return text


def table(title: str, columns: Sequence[str], rows: Iterable[Sequence[object]], no_wrap: Collection[int] = ()) -> None:
    """Every cell is printed as it is (``Styled`` cells with their styles); the columns
    numbered in ``no_wrap`` are never wrapped (names a reader or a test looks rows up by)."""
    from rich.table import Table

    t = Table(title=_rich(title), title_justify="left")
    for i, col in enumerate(columns):
        t.add_column(_rich(col), no_wrap=i in no_wrap)
    for row in rows:
        t.add_row(*(_rich(v) for v in row))
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


def mark(ok: bool, warning: bool = False) -> Styled:
    if not ok:
        return styled("FAIL", "red")
    return styled("WARN", "yellow") if warning else styled("ok", "green")


def say(message: str) -> None:
    """Print ``message`` as it is (a ``Styled`` one with its styles), each line prefixed
    with the host this thread works on."""
    text = _rich(message)
    prefix = host_prefix()
    if prefix:
        text = _rich("\n").join(_rich(styled(prefix, "bold")) + line for line in text.split("\n"))
    with _print_lock:
        _console().print(text)


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
