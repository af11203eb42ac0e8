"""The proxy's certificate (docs/https.md).

One file per app host, ``STATE/tls/current.pem``: the private key and the chain, mode
0600, owned by nginx's user. nginx names it through a variable, so it reads it at each
TLS handshake: a new certificate is a file renamed over the old one, in effect for the
next connection, with no reload and no failed request (connections already open keep
theirs). ``inv status`` and ``inv health`` read that same file with openssl on its host
(names, issuer, expiry); health fails when fewer than ``EXPIRY_FAIL_DAYS`` are left.
A key made or given here is handled on this machine in a private temporary folder and
reaches a host only inside the SFTP upload of that file; an ACME certificate
(deploy.stack.acme) is made on the host and installed there by certbot's hook.
"""
from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from deploy import validators
from deploy.engine.commands import files, tls
from deploy.engine.ops import Ops, Put, run
from deploy.engine.stack import TLS_DIR, Stack, last_lines
from deploy.engine.target import Target
from deploy.errors import fail
from deploy.fleet import Fleet, Member, on_each

EXPIRY_FAIL_DAYS = 14
PEM_FILE = f"{TLS_DIR}/current.pem"
STAGED_FILE = f"{TLS_DIR}/.current.pem.new"
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
NGINX_USER = "101:101"  # the nginx images' user, when the compose files name none


@dataclass(frozen=True)
class Certificate:
    names: tuple[str, ...]
    issuer: str
    not_after: datetime
    fingerprint: str

    def days_left(self, now: datetime) -> float:
        return (self.not_after - now).total_seconds() / 86400


def parse_description(text: str) -> Certificate:
    """What ``openssl x509 -subject -issuer -enddate -fingerprint -ext subjectAltName``
    printed (pure)."""
    fields: dict[str, str] = {}
    lines = text.splitlines()
    for i, line in enumerate(lines):
        key, sep, value = line.partition("=")
        if line.startswith("X509v3 Subject Alternative Name"):
            fields["san"] = lines[i + 1].strip() if i + 1 < len(lines) else ""
        elif sep and key.strip() in ("subject", "issuer", "notAfter", "sha256 Fingerprint"):
            fields[key.strip()] = value.strip()
    if "notAfter" not in fields:
        fail("this is not a certificate openssl can read", "give the PEM certificate (the full chain, leaf first)")
    san = [n.split(":", 1)[1] for n in fields.get("san", "").split(", ") if n.startswith("DNS:")]
    cn = [p.split("=", 1)[1] for p in fields.get("subject", "").split(",") if p.startswith("CN=")]
    not_after = _openssl_date(fields["notAfter"])
    return Certificate(tuple(san or cn), fields.get("issuer", ""), not_after, fields.get("sha256 Fingerprint", ""))


def _openssl_date(text: str) -> datetime:
    """openssl's ``Feb 27 11:57:00 2027 GMT`` (English month names whatever the locale)."""
    try:
        month, day, clock, year, _zone = text.split()
        hour, minute, second = (int(n) for n in clock.split(":"))
        return datetime(int(year), MONTHS.index(month) + 1, int(day), hour, minute, second, tzinfo=timezone.utc)
    except ValueError:
        fail(f"openssl printed an end date this tool cannot read: {text!r}", "report it, with `openssl version`")


def _openssl(local: Target, argv: list[str], what: str, fix: str) -> str:
    result = local.run(argv, warn=True)
    if not result.ok:
        fail(f"{what}: {(result.stderr or result.stdout).strip()[-400:]}", fix)
    return result.stdout


def describe(local: Target, chain: str) -> Certificate:
    """The first certificate of the PEM ``chain`` file, read by openssl on this machine."""
    return parse_description(_openssl(local, tls.describe(chain), "reading the certificate", "give the PEM certificate (the full chain, leaf first)"))


def self_signed(local: Target, domain: str, days: int) -> tuple[bytes, Certificate]:
    """A new key and a self-signed certificate for ``domain`` (development: browsers
    and clients warn unless told to trust it), as the installed file and its description."""
    if not 1 <= days <= 825:
        fail(f"--days {days} is out of range", "give 1 to 825 days")
    with tempfile.TemporaryDirectory(prefix="deploy-tls-") as tmp:  # mode 0700: the key never readable by others
        key, cert = Path(tmp, "key.pem"), Path(tmp, "cert.pem")
        _openssl(local, tls.self_signed(validators.domain(domain), days, str(key), str(cert)), "making a self-signed certificate",
                 "check that openssl runs here")
        return key.read_bytes() + cert.read_bytes(), describe(local, str(cert))


def from_files(local: Target, chain: Path, key: Path, now: datetime) -> tuple[bytes, Certificate]:
    """The user's certificate chain and key, checked: both readable PEM, the key the
    certificate's, the certificate not expired."""
    for path in (chain, key):
        if not path.is_file():
            fail(f"{path} is not a file", "give the paths of the PEM chain (--cert) and of its private key (--key)")
    cert = describe(local, str(chain))
    public = _openssl(local, tls.key_public_key(str(key)), f"reading the key {key}", "give the certificate's private key (PEM)")
    if public.strip() != _openssl(local, tls.cert_public_key(str(chain)), "reading the certificate", "").strip():
        fail(f"{key} is not the private key of the certificate in {chain}", "give the key the certificate was issued for")
    if cert.days_left(now) <= 0:
        fail(f"the certificate in {chain} expired on {cert.not_after:%Y-%m-%d}", "renew it, then install the new one")
    return key.read_bytes().rstrip(b"\n") + b"\n" + chain.read_bytes(), cert


def proxy_user(stack: Stack) -> str:
    """The proxy container's user, which must read the key (the compose files' ``user:``)."""
    service = stack.config().get("services", {}).get(stack.settings.config.proxy.service, {})
    return str(service.get("user") or NGINX_USER)


def install(stack: Stack, pem: bytes) -> Ops[None]:
    """The key and chain ``pem`` into the stack's proxy folder on its target, at once:
    written aside (0600), given to nginx's user, renamed over the current one."""
    yield run(stack, files.install_dir(stack.state_file(TLS_DIR), 0o755), what="creating the certificate's folder")
    staged, path = stack.state_file(STAGED_FILE), stack.state_file(PEM_FILE)
    yield Put(stack, staged, pem, 0o600)
    yield run(stack, files.chown(proxy_user(stack), staged), what="giving the key to nginx's user",
              fix="nginx reads the key as its own user: run the tasks as root on this target (or as a user allowed to chown)")
    yield run(stack, files.rename(staged, path), what="installing the certificate")


def install_fleet(fleet: Fleet, pem: bytes, members: Sequence[Member] | None = None) -> Ops[None]:
    """The certificate on every app host of the fleet (their nginx terminates TLS), or on ``members``."""
    yield on_each(fleet, fleet.with_role("app") if members is None else members, lambda m: install(m.stack, pem), "certificate")


def installed(stack: Stack) -> Certificate | None:
    """The certificate nginx serves on the stack's target (read there by openssl), if any."""
    path = stack.state_file(PEM_FILE)
    if not stack.target.run(files.is_file(path), warn=True).ok:
        return None
    result = stack.target.run(tls.describe(path), warn=True)
    if not result.ok:
        fail(f"cannot read the certificate {path} on {stack.target.name}: {last_lines(result.stderr, 1)}",
             "check that openssl is installed there and that the tasks run as root; reinstall it with inv tls.install")
    return parse_description(result.stdout)


def expiry(cert: Certificate | None, now: datetime) -> tuple[bool, str]:
    """(ok, detail) for ``inv health``: no certificate is no failure (HTTP only)."""
    if cert is None:
        return True, "none installed: HTTP only (inv tls.issue, inv tls.install or inv tls.selfsigned)"
    left = cert.days_left(now)
    detail = f"{', '.join(cert.names)}: expires {cert.not_after:%Y-%m-%d %H:%M} UTC"
    if left <= 0:
        return False, f"{detail}, EXPIRED"
    if left < EXPIRY_FAIL_DAYS:
        return False, f"{detail}, in {left:.0f} days (under {EXPIRY_FAIL_DAYS}): renew it"
    return True, f"{detail} ({left:.0f} days)"
