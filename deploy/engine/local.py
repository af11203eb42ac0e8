"""This machine as a Target: commands through an Invoke Context, files on the local disk."""
from __future__ import annotations

import http.client
import os
import shlex
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO

from invoke import Context
from invoke.runners import Result

from deploy.atomic import append_atomic, write_atomic
from deploy.engine.target import HttpResponse, get, unverified_tls


class LocalTarget:
    """This machine: commands through an Invoke Context, files on the local disk."""

    local: bool = True
    workdir: str | None = None  # this checkout

    def __init__(self, ctx: Context, name: str = "local") -> None:
        self.ctx = ctx
        self.name = name

    def run(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        hide: bool = True,
        warn: bool = False,
        pty: bool = False,
        timeout: float | None = None,
    ) -> Result:
        # Only an interactive (pty) command reads our stdin.
        in_stream = None if pty else False
        result = self.ctx.run(
            shlex.join(argv), env=dict(env or {}), hide=hide, warn=warn, pty=pty, timeout=timeout, in_stream=in_stream
        )
        assert result is not None  # None only with disown=True
        return result

    def spawn(self, argv: Sequence[str], *, env: Mapping[str, str] | None = None, stdin: bool = False) -> LocalProcess:
        return LocalProcess(argv, env or {}, stdin)

    def fetch(self, port: int, path: str, timeout: float = 5.0, tls: bool = False,
              headers: Mapping[str, str] | None = None) -> HttpResponse:
        """One GET on this machine's loopback (``Target.fetch``)."""
        if tls:
            return get(http.client.HTTPSConnection("127.0.0.1", port, timeout=timeout, context=unverified_tls()), path, headers)
        return get(http.client.HTTPConnection("127.0.0.1", port, timeout=timeout), path, headers)

    def read_text(self, path: str) -> str | None:
        p = Path(path)
        return p.read_text() if p.is_file() else None

    def write_text(self, path: str, text: str) -> None:
        """``write_bytes`` with mode 0600 (readable by the owner only)."""
        self.write_bytes(path, text.encode(), 0o600)

    def write_bytes(self, path: str, data: bytes, mode: int) -> None:
        """Write atomically: a temp file created with ``mode`` (never wider for a moment),
        fsynced, then renamed over ``path``. Missing parent directories are made."""
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, data, mode)

    def append_text(self, path: str, text: str) -> None:
        """One ``write(2)`` with ``O_APPEND`` (``deploy.atomic.append_atomic``), mode 0600."""
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        append_atomic(path, text.encode(), 0o600)

    def close(self) -> None:
        """Nothing to drop: commands run as child processes of this one."""


class LocalProcess:
    """A local subprocess with binary pipes; stderr goes to a temp file (it can never block)."""

    def __init__(self, argv: Sequence[str], env: Mapping[str, str], stdin: bool) -> None:
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 (read by stderr_text after the process ends)
        self._proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            env={**os.environ, **env},
        )
        assert self._proc.stdout is not None
        self.stdin: IO[bytes] | None = self._proc.stdin
        self.stdout: IO[bytes] = self._proc.stdout

    def wait(self, timeout: float | None = None) -> int:
        return self._proc.wait(timeout)

    def kill(self) -> None:
        if self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()

    def stderr_text(self) -> str:
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace")
