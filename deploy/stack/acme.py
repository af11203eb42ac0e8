"""Certificates from an ACME CA (Let's Encrypt unless told otherwise), issued and renewed
by certbot on the stage's first app host (docs/https.md).

certbot proves the domain through HTTP-01: it writes the challenge into the ACME folder
that nginx serves at ``/.well-known/acme-challenge/`` on port 80 (never redirected), so
the domain must resolve to that host. Its hook (``deploy.engine.commands.certbot``)
installs each new certificate the way ``inv tls.install`` does: one rename, read by nginx
at the next handshake, no reload. A cron job renews it on that host twice a day when it
is due (30 days before its end) with nobody there; ``inv tls.renew`` does it now. Other
app hosts get a copy from ``inv tls.issue`` and ``inv tls.renew``. certbot's account,
keys and settings stay in the stage's state folder on the host (0700), out of reach of a
redeploy and of ``git clean``.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from deploy import validators
from deploy.defaults import LETS_ENCRYPT
from deploy.engine.commands import certbot, cron, files
from deploy.engine.ops import Call, Note, Ops, Put, run
from deploy.engine.stack import ACME_DIR, TLS_DIR, Stack
from deploy.errors import fail
from deploy.fleet import Fleet, Member
from deploy.stack import schedule, tls

CERTBOT_DIR = "certbot"  # in the stage's state folder: certbot's config, work and logs
HOOK_FILE = f"{CERTBOT_DIR}/install-certificate.sh"
SETTINGS_FILE = f"{CERTBOT_DIR}/acme.json"  # what tls.renew needs that certbot does not keep


@dataclass(frozen=True)
class Request:
    """What ``inv tls.issue`` asks the CA for."""

    domains: tuple[str, ...]
    email: str
    server: str = LETS_ENCRYPT
    ca_bundle: str = ""  # the CA file of a private ACME server's HTTPS, on the host


def request(domains: str, email: str, server: str, ca_bundle: str) -> Request:
    """The flags of ``inv tls.issue``, checked (pure): ``domains`` comma-separated."""
    names = tuple(dict.fromkeys(validators.domain(d.strip()) for d in domains.split(",")))
    validators.email(email or "", "--email")
    validators.one_line(server, "--server")
    if not server.startswith("https://") or any(ch.isspace() for ch in server):
        fail(f"--server {server!r} is not an https:// URL", f"give the ACME directory URL (Let's Encrypt: {LETS_ENCRYPT})")
    return Request(names, email, server, _ca_bundle(ca_bundle, "--ca-bundle"))


def _ca_bundle(path: str, what: str) -> str:
    """The CA file's path (or ""), as the renewal's cron line and argv may carry it."""
    return validators.absolute_path(path, what) if path else ""


def acme_host(fleet: Fleet) -> Member:
    """The app host that runs certbot: the stage's first (the local engine without hosts),
    which the run must include (a second certbot elsewhere would keep its own account
    and renewals)."""
    first = next((h.name for h in fleet.settings.stage.hosts if h.has("app")), None)
    chosen = fleet.with_role("app")
    if not chosen or (first is not None and chosen[0].name != first):
        fail(f"certbot runs on the stage's first app host, {first or 'this machine'}, which this run leaves out",
             "run the tls task without --hosts/--roles (or with that host among them)")
    return chosen[0]


def cert_name(stack: Stack) -> str:
    return f"{stack.settings.stage.project}-{stack.settings.stage.name}"


def renewal(stack: Stack, ca_bundle: str) -> schedule.Job:
    """The cron job that renews the certificate on its host when it is due, twice a day."""
    name = cron.file_name("deploy", cert_name(stack), "tls-renew")
    minute, hour = cron.spread(name, 60), cron.spread(name[::-1], 12)
    base = stack.state_file(CERTBOT_DIR)
    return schedule.Job(name, f"{minute} {hour},{hour + 12} * * *", (*certbot.renew(base, cert_name(stack), ca_bundle=ca_bundle), "--quiet"),
                        f"{base}/renew.log", f"inv tls.issue: renews the certificate of {cert_name(stack)} when it is due")


def issue(fleet: Fleet, req: Request) -> Ops[None]:
    """A certificate from the CA on the ACME host, installed there by certbot's hook,
    renewed by cron there, and copied to the other app hosts."""
    member = acme_host(fleet)
    stack, host = member.stack, member.name
    base = stack.state_file(CERTBOT_DIR)
    yield run(stack, certbot.version(), what="finding certbot", fix=f"install certbot on {host} (Debian: apt-get install certbot)")
    yield from schedule.require_cron(stack)
    yield run(stack, files.install_dir(base, 0o700), what="creating certbot's folder")
    yield run(stack, files.install_dir(stack.state_file(ACME_DIR), 0o755), what="creating the ACME challenge folder")
    yield run(stack, files.install_dir(stack.state_file(TLS_DIR), 0o755), what="creating the certificate's folder")
    yield Put(stack, stack.state_file(HOOK_FILE),
              certbot.install_hook(stack.state_file(tls.STAGED_FILE), stack.state_file(tls.PEM_FILE), tls.proxy_user(stack)).encode(), 0o700)
    yield Put(stack, stack.state_file(SETTINGS_FILE), (json.dumps({"ca_bundle": req.ca_bundle}) + "\n").encode(), 0o600)
    yield Note(f"asking {req.server} for {', '.join(req.domains)} (HTTP-01 through nginx on {host})")
    yield run(stack, certbot.certonly(base, server=req.server, email=req.email, domains=req.domains, webroot=stack.state_file(ACME_DIR),
                                      name=cert_name(stack), hook=stack.state_file(HOOK_FILE), ca_bundle=req.ca_bundle),
              what="getting a certificate from the ACME server",
              fix=f"each domain must resolve to {host} and reach its nginx on port 80 (inv up first); certbot's log: {base}/logs")
    yield schedule.install(stack, renewal(stack, req.ca_bundle))
    yield from copy_to_peers(fleet, member)


def renew(fleet: Fleet, force: bool) -> Ops[None]:
    """certbot renews now on the ACME host if the certificate is due (or ``force``), its
    hook installs it; then every other app host gets a copy."""
    member = acme_host(fleet)
    stack = member.stack
    text = stack.target.read_text(stack.state_file(SETTINGS_FILE))
    if text is None:
        fail(f"no ACME certificate was issued for this stage on {member.name}", "issue one first: inv tls.issue --domain D --email E")
    ca_bundle = _ca_bundle(str(json.loads(text).get("ca_bundle", "")), f"the ca_bundle kept in {stack.state_file(SETTINGS_FILE)} on {member.name}")
    yield from schedule.require_cron(stack)
    yield run(stack, certbot.renew(stack.state_file(CERTBOT_DIR), cert_name(stack), force=force, ca_bundle=ca_bundle),
              what="renewing the certificate", show=True,
              fix=f"each domain must still resolve to {member.name} and reach its nginx on port 80; certbot's log: "
                  f"{stack.state_file(CERTBOT_DIR)}/logs")
    yield schedule.install(stack, renewal(stack, ca_bundle))
    yield from copy_to_peers(fleet, member)


def copy_to_peers(fleet: Fleet, member: Member) -> Ops[None]:
    """The ACME host's certificate, as installed there, on the other app hosts."""
    peers: Sequence[Member] = [m for m in fleet.with_role("app") if m is not member]
    if not peers:
        return
    path = member.stack.state_file(tls.PEM_FILE)
    pem = yield Call(member.stack, f"read {path}", lambda: member.stack.target.read_text(path))
    yield from tls.install_fleet(fleet, (pem or "").encode(), peers)
