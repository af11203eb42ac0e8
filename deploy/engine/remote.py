"""A remote host as a Target: Fabric over SSH, with strict host keys (deploy.engine.host_keys).

A dead host fails fast: connect timeout, a command timeout, SSH keepalives, and TCP
keepalive with a user timeout, so that a host whose link drops mid-command fails within
about three keepalive intervals, naming the host.

Byte streams (pg_dump, pg_restore) use a raw session channel with a large window,
never ``Connection.run`` (it decodes text and keeps all of it in memory).
"""
from __future__ import annotations

import contextlib
import http.client
import posixpath
import secrets
import shlex
import socket
import sys
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import paramiko
from invoke.exceptions import CommandTimedOut
from invoke.runners import Result
from paramiko.sftp import CMD_HANDLE, CMD_OPEN, SFTP_FLAG_APPEND, SFTP_FLAG_CREATE, SFTP_FLAG_EXCL, SFTP_FLAG_WRITE

from deploy.config.inventory import Host, SshOptions
from deploy.engine import host_keys
from deploy.engine.commands import files
from deploy.engine.target import HttpResponse, get, unverified_tls
from deploy.errors import fail
from deploy.output import PrefixedStream, host_prefix

WINDOW = 64 * 1024 * 1024  # bytes in flight on a stream channel


def tune_socket(sock: Any, keepalive: int) -> None:
    """TCP keepalive and a user timeout: a peer that vanished is noticed in seconds."""
    if not isinstance(sock, socket.socket):
        return  # a ProxyJump channel: the SSH keepalive covers it
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for name, value in (("TCP_KEEPIDLE", keepalive), ("TCP_KEEPINTVL", keepalive), ("TCP_KEEPCNT", 3),
                        ("TCP_USER_TIMEOUT", keepalive * 3 * 1000)):
        if hasattr(socket, name):
            sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, name), value)


def create_exclusive(sftp: paramiko.SFTPClient, path: str, mode: int) -> paramiko.SFTPFile:
    """A new file on the host (O_CREAT|O_EXCL: never one that exists), open for writing and
    created with ``mode``: the permissions travel in the open request, as open(2)'s mode.
    (``SFTPClient.open`` sends none, so the server would create the file 0666 minus its
    umask, readable by others until a chmod.)"""
    return open_with_mode(sftp, path, SFTP_FLAG_WRITE | SFTP_FLAG_CREATE | SFTP_FLAG_EXCL, mode, "wb")


def open_appending(sftp: paramiko.SFTPClient, path: str, mode: int) -> paramiko.SFTPFile:
    """``path`` on the host open for appending (the server opens it with O_APPEND: each
    write lands at the end of the file as it is then, whoever else appends), created with
    ``mode`` when missing."""
    return open_with_mode(sftp, path, SFTP_FLAG_WRITE | SFTP_FLAG_CREATE | SFTP_FLAG_APPEND, mode, "ab")


def open_with_mode(sftp: paramiko.SFTPClient, path: str, flags: int, mode: int, filemode: str) -> paramiko.SFTPFile:
    """An SFTP open request with ``flags`` and the mode a file it creates gets."""
    attrs = paramiko.SFTPAttributes()
    attrs.st_mode = mode
    # SFTPClient.mkdir sends its mode the same way; open has no parameter for it.
    kind, msg = sftp._request(CMD_OPEN, sftp._adjust_cwd(path), flags, attrs)
    if kind != CMD_HANDLE:
        raise paramiko.SFTPError("Expected handle")
    return paramiko.SFTPFile(sftp, msg.get_binary(), filemode)


def discard(conn: Any) -> None:
    """Close the transports of a connection that failed to open, and of its hops (Fabric's
    ``close`` skips a connection whose ``open`` failed, leaving the server waiting)."""
    while conn is not None and not isinstance(conn, str):
        conn.client.close()
        conn = conn.gateway


class RemoteProcess:
    """A command on the host with raw byte pipes over one SSH channel."""

    def __init__(self, channel: paramiko.Channel, stdin: bool) -> None:
        self.channel = channel
        self.stdout: IO[bytes] = channel.makefile("rb", 1024 * 1024)
        self.stdin: IO[bytes] | None = channel.makefile_stdin("wb", 1024 * 1024) if stdin else None
        self._stderr = channel.makefile_stderr("rb")

    def wait(self, timeout: float | None = None) -> int:
        if not self.channel.status_event.wait(timeout):
            raise TimeoutError("the remote command did not finish in time")
        return self.channel.recv_exit_status()

    def kill(self) -> None:
        self.channel.close()

    def stderr_text(self) -> str:
        return self._stderr.read().decode(errors="replace") if self.channel.exit_status_ready() else ""


def socket_over(channel: paramiko.Channel) -> socket.socket:
    """A real socket joined to an SSH channel (what ``ssl`` can wrap, a channel is not):
    one end of a socket pair, whose other end two threads copy to and from the channel."""
    near, far = socket.socketpair()

    def copy(read: Any, write: Any, *done: Any) -> None:
        with contextlib.suppress(OSError, EOFError, paramiko.SSHException):
            while data := read(65536):
                write(data)
        for step in done:
            with contextlib.suppress(OSError):
                step()

    threading.Thread(target=copy, args=(channel.recv, far.sendall, lambda: far.shutdown(socket.SHUT_WR)), daemon=True).start()
    threading.Thread(target=copy, args=(far.recv, channel.sendall, channel.close, far.close), daemon=True).start()
    return near


class RemoteTarget:
    """One host over SSH. Files (compose files, env, state) live under its deploy_dir."""

    local = False

    def __init__(self, host: Host, ssh: SshOptions, accept_new_host_keys: bool = False) -> None:
        self.host = host
        self.ssh = ssh
        self.name = host.name
        self.workdir = host.deploy_dir
        self.accept_new = accept_new_host_keys
        self._conn: Any = None
        self._sftp: paramiko.SFTPClient | None = None
        self._lock = threading.Lock()
        # One file operation at a time on the SFTP session: paramiko's client hands each
        # response to whichever thread reads next, so two threads' requests (the deploy
        # lock's check from every host's thread, say) would wait for each other's answers.
        self._files = threading.Lock()

    # --- the connection ------------------------------------------------------------
    def connection(self) -> Any:
        with self._lock:
            if self._conn is not None and self._conn.is_connected:
                return self._conn
            from fabric import Config, Connection

            ssh_config = Path(self.ssh.ssh_config).expanduser()
            # That file, or none at all (Fabric would fall back to the system's files).
            config = Config(runtime_ssh_path=str(ssh_config)) if ssh_config.is_file() else Config(ssh_config=paramiko.SSHConfig())
            timeout = self.ssh.connect_timeout
            kwargs: dict[str, Any] = {"banner_timeout": timeout, "auth_timeout": timeout, "allow_agent": True}
            if self.host.key:
                kwargs["key_filename"] = str(Path(self.host.key).expanduser())
            conn = Connection(self.host.address, user=self.host.user, port=self.host.port, config=config,
                              connect_timeout=int(timeout), connect_kwargs=kwargs)
            revoked = host_keys.enforce(conn, Path(self.ssh.known_hosts).expanduser(), self.accept_new)
            try:
                try:
                    conn.open()
                except BaseException:
                    discard(conn)
                    raise
            except host_keys.REFUSED as err:
                host_keys.refuse(err, conn, self.name, self.host.address, self.ssh.known_hosts, revoked)
            except paramiko.AuthenticationException as err:
                fail(f"{self.name}: SSH authentication failed ({err})", "check the host's user and key in invoke.yaml (or ~/.ssh/config)")
            except (OSError, paramiko.SSHException, EOFError) as err:
                fail(f"cannot reach {self.name} ({self.host.address}): {err or type(err).__name__}",
                     f"check that the host is up and sshd answers (ssh {self.host.address}); connect timeout {timeout:g} s")
            conn.transport.set_keepalive(self.ssh.keepalive)
            tune_socket(conn.transport.sock, self.ssh.keepalive)
            self._conn, self._sftp = conn, None
            return conn

    def close(self) -> None:
        """Drop the connection: commands still running on it end."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
            self._conn, self._sftp = None, None

    def _lost(self, what: str) -> None:
        fail(f"lost the connection to {self.name} ({self.host.address}) during {what}",
             "check the host and its network; the deploy lock and history tell what was done (inv lock.status, inv releases)")

    def _command(self, argv: Sequence[str], env: Mapping[str, str] | None) -> str:
        """The one place a remote command line is made: every word quoted once. Values
        in ``env`` are only ever non-secret overrides (APP_VERSION); secrets stay in the
        uploaded env file."""
        words = ["env", *(f"{k}={v}" for k, v in env.items())] if env else []
        return shlex.join([*words, *argv])

    # --- the Target interface --------------------------------------------------------
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
        conn = self.connection()
        streams: dict[str, Any] = {}
        if not hide and host_prefix():  # hosts worked in parallel: every line says whose it is
            streams = {"out_stream": PrefixedStream(self.name, sys.stdout), "err_stream": PrefixedStream(self.name, sys.stderr)}
        try:
            result = conn.run(self._command(argv, env), hide=hide, warn=True, pty=pty, in_stream=None if pty else False,
                              timeout=timeout or self.ssh.command_timeout, **streams)
        except CommandTimedOut:
            fail(f"{self.name}: `{shlex.join(argv)[:120]}` took longer than {timeout or self.ssh.command_timeout:g} s",
                 "check the host (inv status); raise deploy.stages.STAGE.ssh.command_timeout if it is just slow")
        except (OSError, EOFError, paramiko.SSHException):
            self._lost(shlex.join(argv)[:80])
        if not conn.is_connected:
            self._lost(shlex.join(argv)[:80])
        if not result.ok and not warn:
            from invoke.exceptions import UnexpectedExit

            raise UnexpectedExit(result)
        return result

    def spawn(self, argv: Sequence[str], *, env: Mapping[str, str] | None = None, stdin: bool = False) -> RemoteProcess:
        transport = self.connection().transport
        try:
            channel = transport.open_session(window_size=WINDOW, max_packet_size=32768)
            channel.exec_command(self._command(argv, env))
        except (OSError, EOFError, paramiko.SSHException):
            self._lost(shlex.join(argv)[:80])
        return RemoteProcess(channel, stdin)

    def fetch(self, port: int, path: str, timeout: float = 5.0, tls: bool = False,
              headers: Mapping[str, str] | None = None) -> HttpResponse:
        """GET a port on the host's loopback, through the SSH connection (no port needs
        to be open to us); ``Target.fetch``."""
        transport = self.connection().transport
        try:
            channel = transport.open_channel("direct-tcpip", ("127.0.0.1", port), ("127.0.0.1", 0), timeout=timeout)
        except (OSError, EOFError, paramiko.SSHException) as err:
            return HttpResponse(0, b"", f"{type(err).__name__}: {err}")
        channel.settimeout(timeout)
        client = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        try:
            # Over a real socket, not the channel itself: http.client reading a chunked
            # response (Next.js streams its pages) from a paramiko channel stops at the
            # first chunk boundary that falls between two SSH packets (IncompleteRead).
            sock = socket_over(channel)
            sock.settimeout(timeout)
            client.sock = unverified_tls().wrap_socket(sock, server_hostname=None) if tls else sock
        except (OSError, EOFError, paramiko.SSHException) as err:
            channel.close()
            return HttpResponse(0, b"", f"{type(err).__name__}: {err}")
        try:
            return get(client, path, headers)
        except (EOFError, paramiko.SSHException) as err:  # what a channel raises beside OSError
            return HttpResponse(0, b"", f"{type(err).__name__}: {err}")

    def sftp(self) -> paramiko.SFTPClient:
        conn = self.connection()
        with self._lock:
            if self._sftp is None:
                self._sftp = conn.sftp()
            return self._sftp

    def read_text(self, path: str) -> str | None:
        sftp = self.sftp()
        try:
            with self._files, sftp.open(path, "r") as f:
                return f.read().decode()
        except FileNotFoundError:
            return None

    def write_text(self, path: str, text: str) -> None:
        self.write_bytes(path, text.encode(), 0o600)

    def append_text(self, path: str, text: str) -> None:
        """One SFTP write on the file opened for appending (``open_appending``), mode 0600
        if it is created. (A write over 32 KiB is sent in pieces: lines are far shorter.)"""
        self.run(files.make_dirs(posixpath.dirname(path)))
        with open_appending(self.sftp(), path, 0o600) as f:
            f.write(text.encode())

    def write_bytes(self, path: str, data: bytes, mode: int) -> None:
        """Write atomically: a new temp file beside ``path``, created with ``mode`` (never
        wider for a moment), then renamed over ``path``. Missing parent directories are made."""
        directory = posixpath.dirname(path)
        self.run(files.make_dirs(directory))
        sftp = self.sftp()
        tmp = f"{path}.{secrets.token_hex(4)}.tmp"
        with self._files:
            try:
                with create_exclusive(sftp, tmp, mode) as f:
                    f.chmod(mode)  # exactly ``mode``: the server's umask may have narrowed it
                    f.write(data)
                sftp.posix_rename(tmp, path)
            except BaseException:
                with contextlib.suppress(OSError, EOFError, paramiko.SSHException):
                    sftp.remove(tmp)
                raise
