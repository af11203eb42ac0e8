"""Where commands run. Workflows only talk to a Target.

A target runs an argv (quoted exactly once, at the edge), fetches an HTTP path from a
port published on its host, and reads and writes small state files. The local target
(deploy.engine.local) runs on this machine's Docker engine through Invoke; the remote
target (deploy.engine.remote, SSH) implements the same interface.
"""
from __future__ import annotations

import http.client
import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import IO, Protocol

from invoke.runners import Result


@dataclass(frozen=True)
class HttpResponse:
    status: int  # 0 when no response came (refused, timed out)
    body: bytes
    error: str = ""
    headers: tuple[tuple[str, str], ...] = ()  # (lower-case name, value)

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k == name.lower()), None)


def unverified_tls() -> ssl.SSLContext:
    """A TLS client that checks nothing of the certificate: for reading what a server
    sends (its headers), never for trusting it (the certificate is checked on its own)."""
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    return ctx


def get(client: http.client.HTTPConnection, path: str, headers: Mapping[str, str] | None = None) -> HttpResponse:
    """One GET on ``client``'s connection (with ``headers``); a redirect is the answer, not followed."""
    try:
        client.request("GET", path, headers={**(headers or {}), "Connection": "close"})
        resp = client.getresponse()
        return HttpResponse(resp.status, resp.read(65536), headers=tuple((k.lower(), v) for k, v in resp.getheaders()))
    except (OSError, http.client.HTTPException) as err:
        return HttpResponse(0, b"", f"{type(err).__name__}: {err}")
    finally:
        client.close()


class Process(Protocol):
    """A running command whose raw bytes we read or write (a pg_dump, a pg_restore)."""

    @property
    def stdin(self) -> IO[bytes] | None: ...  # None unless spawned with stdin=True

    @property
    def stdout(self) -> IO[bytes]: ...

    def wait(self, timeout: float | None = None) -> int: ...

    def kill(self) -> None: ...

    def stderr_text(self) -> str: ...


class Target(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def local(self) -> bool: ...  # False: a host over SSH (its env comes from the uploaded env file)

    @property
    def workdir(self) -> str | None: ...  # a host's deploy directory (compose files, env, state); None = this checkout

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

    def fetch(self, port: int, path: str, timeout: float = 5.0, tls: bool = False,
              headers: Mapping[str, str] | None = None) -> HttpResponse:
        """GET ``path`` from ``port`` on the target's loopback (over TLS with ``tls``,
        certificate unchecked; with request ``headers``); a redirect is the answer, not followed."""

    def read_text(self, path: str) -> str | None: ...

    def write_bytes(self, path: str, data: bytes, mode: int) -> None:
        """Replace ``path`` atomically with ``data``; the file never has a wider mode
        than ``mode``, not even while it is written. Missing parent directories are made."""

    def write_text(self, path: str, text: str) -> None:
        """``write_bytes`` of the UTF-8 text with mode 0600 (state files)."""

    def append_text(self, path: str, text: str) -> None:
        """Add ``text`` (whole lines) at the end of ``path`` in one append (``O_APPEND``),
        the file created with mode 0600 if missing: concurrent writers never lose a line.
        Missing parent directories are made."""

    def close(self) -> None: ...
