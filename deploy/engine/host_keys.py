"""Host keys: what known_hosts trusts and revokes, the policy every SSH connection (and
each of its ProxyJump hops) is held to, and the refusal a rejected key ends in.

Fabric trusts any host key (it sets paramiko's AutoAddPolicy and never reads
known_hosts). Here known_hosts is loaded and an unknown key is REJECTED, as OpenSSH's
``StrictHostKeyChecking yes``; with ``accept_new`` a new key is recorded, as OpenSSH's
``accept-new``. A changed key is always refused, and so is a key known_hosts marks
``@revoked`` (for any host). ``@cert-authority`` lines are skipped with a warning:
paramiko checks no host certificates, so such hosts need their own keys listed. The
same policy applies to every ProxyJump hop.
"""
from __future__ import annotations

import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import paramiko

from deploy.errors import fail

_known_hosts_lock = threading.Lock()
_warned: set[tuple[str, int]] = set()  # known_hosts lines warned about (once per run)


def fingerprint(key: paramiko.PKey) -> str:
    return key.fingerprint  # "SHA256:..." as ssh-keygen -l prints it


class UnknownHostKey(paramiko.SSHException):
    def __init__(self, hostname: str, key: paramiko.PKey) -> None:
        super().__init__(f"unknown host key for {hostname}")
        self.hostname, self.key = hostname, key


class RevokedHostKey(paramiko.SSHException):
    def __init__(self, hostname: str, key: paramiko.PKey) -> None:
        super().__init__(f"revoked host key for {hostname}")
        self.hostname, self.key = hostname, key


@dataclass(frozen=True)
class KnownHosts:
    """What known_hosts says, as far as paramiko can check it: the host keys trusted, and
    the keys (base64, as in the file) revoked for every host."""

    entries: tuple[paramiko.hostkeys.HostKeyEntry, ...] = ()
    revoked: frozenset[str] = frozenset()


def _warn_once(path: Path, lineno: int, message: str) -> None:
    with _known_hosts_lock:
        if (str(path), lineno) in _warned:
            return
        _warned.add((str(path), lineno))
    sys.stderr.write(f"warning: {path}:{lineno}: {message}\n")


def load_known_hosts(path: Path) -> KnownHosts:
    """Read known_hosts as OpenSSH does, within what paramiko supports (its own reader
    fails on marker lines): plain and hashed host lines are trusted; an ``@revoked`` key
    is never accepted, for any host, even one that also lists it (revocation wins);
    ``@cert-authority`` lines, and lines paramiko cannot read, are skipped with a warning
    (a host is then checked against its own key, or refused as unknown)."""
    entries, revoked = [], set()
    for lineno, raw in enumerate(path.read_text(errors="replace").splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("@"):
            marker, _, rest = line.partition(" ")
            fields = rest.split()
            if marker == "@revoked":
                if len(fields) < 3:
                    fail(f"{path}:{lineno}: cannot read the @revoked line (expected: @revoked HOSTS KEYTYPE BASE64)",
                         f"fix or remove line {lineno} of {path}; nothing was connected to")
                revoked.add(fields[2])
            elif marker == "@cert-authority":
                _warn_once(path, lineno, "@cert-authority line skipped: host certificates are not supported here; hosts are checked "
                                         "against their own keys (add them: ssh-keyscan -t ed25519 HOST, checked out of band)")
            else:
                _warn_once(path, lineno, f"unknown marker {marker}: line skipped")
            continue
        try:
            entry = paramiko.hostkeys.HostKeyEntry.from_line(line, lineno)
        except (paramiko.SSHException, paramiko.hostkeys.InvalidHostKey, ValueError):
            entry = None
        if entry is None:
            _warn_once(path, lineno, "line skipped: not a host key paramiko can read")
            continue
        entries.append(entry)
    trusted = tuple(e for e in entries if e.key.get_base64() not in revoked)
    return KnownHosts(trusted, frozenset(revoked))


class RejectUnknown(paramiko.MissingHostKeyPolicy):
    """OpenSSH ``StrictHostKeyChecking yes``; a revoked key is refused as such."""

    def __init__(self, revoked: frozenset[str] = frozenset()) -> None:
        self.revoked = revoked

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        if key.get_base64() in self.revoked:
            raise RevokedHostKey(hostname, key)
        raise UnknownHostKey(hostname, key)


class AcceptNew(RejectUnknown):
    """OpenSSH ``accept-new``: record a key never seen before (a changed key is refused
    before any policy is asked; a revoked one here)."""

    def __init__(self, known_hosts: Path, revoked: frozenset[str] = frozenset()) -> None:
        super().__init__(revoked)
        self.known_hosts = known_hosts

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        if key.get_base64() in self.revoked:
            raise RevokedHostKey(hostname, key)
        line = paramiko.hostkeys.HostKeyEntry([hostname], key).to_line()
        with _known_hosts_lock:
            self.known_hosts.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            with open(self.known_hosts, "a") as f:
                f.write(line)
        client.get_host_keys().add(hostname, key.get_name(), key)
        sys.stderr.write(f"[{hostname}] recorded its new host key {key.get_name()} {fingerprint(key)} in {self.known_hosts}\n")


def enforce(conn: Any, known_hosts: Path, accept_new: bool) -> frozenset[str]:
    """Strict host keys on the Fabric connection ``conn`` and every gateway hop, from the
    file ``known_hosts`` (none: every key is unknown); the revoked keys."""
    known = load_known_hosts(known_hosts) if known_hosts.is_file() else KnownHosts()
    while conn is not None and not isinstance(conn, str):
        policy = AcceptNew(known_hosts, known.revoked) if accept_new else RejectUnknown(known.revoked)
        conn.client.set_missing_host_key_policy(policy)
        keys = conn.client.get_host_keys()
        for entry in known.entries:
            for name in entry.hostnames:
                keys.add(name, entry.key.get_name(), entry.key)
        conn = conn.gateway
    return known.revoked


REFUSED = (RevokedHostKey, paramiko.BadHostKeyException, UnknownHostKey)  # what ``refuse`` explains


def refuse(err: RevokedHostKey | paramiko.BadHostKeyException | UnknownHostKey, conn: Any, name: str, address: str,
           known_hosts: str, revoked: frozenset[str]) -> NoReturn:
    """Fail, saying why the key ``conn`` (host ``name`` at ``address``, or one of its hops)
    offered was refused, and what to do about it."""
    who = _who(conn, name, err.hostname)
    if isinstance(err, RevokedHostKey) or (isinstance(err, paramiko.BadHostKeyException) and err.key.get_base64() in revoked):
        fail(f"REVOKED host key for {who}: it offered {err.key.get_name()} {fingerprint(err.key)}, which "
             f"{known_hosts} marks @revoked; refusing to connect, nothing was run",
             "give the host a new key, check it out of band and add it to known_hosts (never remove the @revoked line)")
    if isinstance(err, paramiko.BadHostKeyException):
        fail(f"HOST KEY CHANGED for {who}: it offered {err.key.get_name()} {fingerprint(err.key)}, "
             f"but {known_hosts} has another key. Someone may be intercepting the connection; nothing was run",
             f"if the host was really reinstalled, check its new key out of band, then: ssh-keygen -R {err.hostname}")
    fail(f"unknown host key for {who}: {err.key.get_name()} {fingerprint(err.key)} is not in {known_hosts}; refusing to connect",
         f"check the fingerprint out of band, then pass --accept-new-host-keys (or ssh {address} once)")


def _who(conn: Any, name: str, hostname: str) -> str:
    """'h1 (10.0.0.11)', or 'h1's ProxyJump hop (10.0.0.5)' when a hop's key is at fault."""
    if hostname in (conn.host, f"[{conn.host}]:{conn.port}"):
        return f"{name} ({hostname})"
    return f"the ProxyJump hop of {name} ({hostname})"
