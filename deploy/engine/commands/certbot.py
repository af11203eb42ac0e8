"""certbot command lines (ACME), run on the host whose nginx answers the HTTP-01
challenge, and the script certbot runs after each new certificate.

certbot keeps its account, keys and renewal settings under one folder of ours (``base``:
``config``, ``work``, ``logs``), never /etc/letsencrypt, so two stacks on one host never
share state. ``ca_bundle``: the CA file that the ACME server's own HTTPS certificate
chains to, for a private ACME server (certbot reads it from REQUESTS_CA_BUNDLE).
"""
from __future__ import annotations

import shlex
from collections.abc import Sequence

from deploy import validators


def _certbot(base: str, ca_bundle: str) -> list[str]:
    env = ["env", f"REQUESTS_CA_BUNDLE={ca_bundle}"] if ca_bundle else []
    return [*env, "certbot", "--non-interactive", "--config-dir", f"{base}/config", "--work-dir", f"{base}/work",
            "--logs-dir", f"{base}/logs"]


def version() -> list[str]:
    return ["certbot", "--version"]


def certonly(base: str, *, server: str, email: str, domains: Sequence[str], webroot: str, name: str, hook: str,
             ca_bundle: str = "") -> list[str]:
    """A certificate for ``domains`` from the ACME ``server``, proved through HTTP-01
    files written into ``webroot`` (served by nginx at /.well-known/acme-challenge/);
    certbot runs the script ``hook`` once it has the certificate (and after each renewal:
    certbot keeps the hook, server and webroot in its renewal settings). Renewals keep
    the key (``--reuse-key``, kept in the same settings): nginx reads the certificate and
    the key of a handshake in two reads of the file, so a renewal that changed both could
    pair the new certificate with the old key for a handshake that straddles the rename."""
    names = [word for domain in domains for word in ("-d", domain)]
    return [*_certbot(base, ca_bundle), "certonly", "--webroot", "-w", webroot, *names, "--cert-name", name,
            "--server", server, "--agree-tos", "-m", email, "--no-eff-email", "--key-type", "ecdsa",
            "--keep-until-expiring", "--expand", "--reuse-key", "--deploy-hook", shlex.quote(hook)]


def renew(base: str, name: str, *, force: bool = False, ca_bundle: str = "") -> list[str]:
    """Renew the certificate ``name`` when it is due (30 days before its end), or now
    with ``force``; no random sleep (the schedule spreads its own minute)."""
    return [*_certbot(base, ca_bundle), "renew", "--cert-name", name, "--no-random-sleep-on-renew",
            *(["--force-renewal"] if force else [])]


def install_hook(staged: str, current: str, owner: str) -> str:
    """The script certbot runs after issuing or renewing (its ``RENEWED_LINEAGE`` is the
    certificate's folder): the key and the chain written to ``staged`` (0600), given to
    nginx's user, renamed over ``current``, the file nginx reads at each handshake."""
    for what, value in (("the staged file", staged), ("the certificate file", current), ("the owner", owner)):
        validators.one_line(value, f"certbot's hook: {what}")
    staged, current = shlex.quote(staged), shlex.quote(current)
    return (
        "#!/bin/sh\n"
        "# Written by `inv tls.issue`: certbot runs it after each new certificate.\n"
        "set -eu\n"
        "umask 077\n"
        f'cat "$RENEWED_LINEAGE/privkey.pem" "$RENEWED_LINEAGE/fullchain.pem" >{staged}\n'
        f"chown {shlex.quote(owner)} {staged}\n"
        f"mv -f -T {staged} {current}\n"
    )
