"""Where commands run. Workflows only talk to a Target.

A target runs an argv (quoted exactly once, here, at the edge), fetches an HTTP path
from a port published on its host, and reads and writes small state files. The local
target runs on this machine's Docker engine through Invoke; a remote target (SSH)
implements the same interface.
"""
from __future__ import annotations

import os
import shlex
import subprocess
import tempfile
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Protocol

from invoke import Context
from invoke.runners import Result


@dataclass(frozen=True)
class HttpResponse:
    status: int  # 0 when no response came (refused, timed out)
    body: bytes
    error: str = ""


class Process(Protocol):
    """A running command whose raw bytes we read or write (a pg_dump, a pg_restore)."""

    stdin: IO[bytes] | None
    stdout: IO[bytes]

    def wait(self, timeout: float | None = None) -> int: ...

    def kill(self) -> None: ...

    def stderr_text(self) -> str: ...


class Target(Protocol):
    name: str
    local: bool  # False: a host over SSH (its env comes from the uploaded env file)
    workdir: str | None  # a host's deploy directory (compose files, env, state); None = this checkout

    def spawn(self, argv: Sequence[str], *, env: Mapping[str, str] | None = None, stdin: bool = False) -> Process: ...

    def run(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        hide: bool = True,
        warn: bool = False,
        pty: bool = False,
        timeout: float | None = None,
    ) -> Result: ...

    def fetch(self, port: int, path: str, timeout: float = 5.0) -> HttpResponse: ...

    def read_text(self, path: str) -> str | None: ...

    def write_text(self, path: str, text: str) -> None: ...

    def close(self) -> None: ...


class LocalTarget:
    """This machine: commands through an Invoke Context, files on the local disk."""

    local = True
    workdir = None

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
        return self.ctx.run(
            shlex.join(argv), env=dict(env or {}), hide=hide, warn=warn, pty=pty, timeout=timeout, in_stream=in_stream
        )

    def spawn(self, argv: Sequence[str], *, env: Mapping[str, str] | None = None, stdin: bool = False) -> LocalProcess:
        return LocalProcess(argv, env or {}, stdin)

    def fetch(self, port: int, path: str, timeout: float = 5.0) -> HttpResponse:
        url = f"http://127.0.0.1:{port}{path}"
        try:
            with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 (loopback only)
                return HttpResponse(resp.status, resp.read(65536))
        except urllib.error.HTTPError as err:
            return HttpResponse(err.code, err.read(65536))
        except (urllib.error.URLError, OSError) as err:
            return HttpResponse(0, b"", str(getattr(err, "reason", err)))

    def read_text(self, path: str) -> str | None:
        p = Path(path)
        return p.read_text() if p.is_file() else None

    def close(self) -> None:
        """Nothing to drop: commands run as child processes of this one."""

    def write_text(self, path: str, text: str) -> None:
        """Write atomically (temp file, fsync, rename), readable by the owner only."""
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_name(p.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, p)


class LocalProcess:
    """A local subprocess with binary pipes; stderr goes to a temp file (it can never block)."""

    def __init__(self, argv: Sequence[str], env: Mapping[str, str], stdin: bool) -> None:
        self._stderr = tempfile.TemporaryFile()
        self._proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            env={**os.environ, **env},
        )
        self.stdin = self._proc.stdin
        self.stdout = self._proc.stdout

    def wait(self, timeout: float | None = None) -> int:
        return self._proc.wait(timeout)

    def kill(self) -> None:
        if self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()

    def stderr_text(self) -> str:
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace")
