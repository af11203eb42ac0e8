"""The `tls` namespace: the proxy's certificate (docs/https.md)."""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from invoke import Collection, Context

from deploy.defaults import LETS_ENCRYPT
from tasks._input import optional_number
from tasks._open import compose_only, open_fleet
from tasks._where import Where, on_hosts
from tasks.deploy import DRY_RUN_HELP

if TYPE_CHECKING:
    from deploy.fleet import Fleet
    from deploy.stack.tls import Certificate

NOT_ON_SWARM = "terminate TLS in front of the edge nodes (a load balancer) until the tls tasks know a swarm"


def _install(fleet: Fleet, pem: bytes, cert: Certificate) -> None:
    from deploy.engine.ops import Executor
    from deploy.output import say, styled
    from deploy.stack import tls as tlsmod

    Executor()(tlsmod.install_fleet(fleet, pem))
    where = ", ".join(m.name for m in fleet.with_role("app"))
    say(styled("installed", "green") + f" a certificate for {', '.join(cert.names)} on {where}, "
        f"valid until {cert.not_after:%Y-%m-%d} (in effect for every new connection; no reload)")


@on_hosts(held="tls.selfsigned", help={"domain": "the name it is for, e.g. app.example.test", "days": "how long it is valid (default 90)"})
def selfsigned(c: Context, domain: str, days: str | None = None, *, where: Where) -> None:
    """Make and install a self-signed certificate (development: clients must be told to trust it).

    On hosts, every app host gets it. nginx serves HTTPS with it at once and HTTP
    redirects to HTTPS (ACME challenges and /nginx-health excepted).
    """
    from deploy import validators
    from deploy.stack import tls as tlsmod

    valid_days = optional_number("--days", days, 90, minimum=1)
    validators.domain(domain)
    fleet = compose_only(open_fleet(c, where), "tls.*", NOT_ON_SWARM)
    pem, cert = tlsmod.self_signed(fleet.here.target, domain, valid_days)
    _install(fleet, pem, cert)


@on_hosts(held="tls.install", help={"cert": "the PEM certificate chain (leaf first), e.g. fullchain.pem", "key": "its private key (PEM)"})
def install(c: Context, cert: str, key: str, *, where: Where) -> None:
    """Install a certificate you have (its chain and key) for every app host's nginx, with no reload.

    Checked first: the key is the certificate's and it has not expired. New connections
    get it at once; HTTP redirects to HTTPS (ACME challenges and /nginx-health excepted).
    """
    from deploy.stack import tls as tlsmod

    fleet = compose_only(open_fleet(c, where), "tls.*", NOT_ON_SWARM)
    pem, described = tlsmod.from_files(fleet.here.target, Path(cert), Path(key), datetime.now(timezone.utc))
    _install(fleet, pem, described)


def _served(fleet: Fleet) -> None:
    from deploy.output import say, styled
    from deploy.stack import acme
    from deploy.stack import tls as tlsmod

    host = acme.acme_host(fleet)
    cert = tlsmod.installed(host.stack)
    if cert is not None:
        say(styled("installed", "green") + f" {', '.join(cert.names)} from {cert.issuer}, valid until {cert.not_after:%Y-%m-%d}, "
            f"on {', '.join(m.name for m in fleet.with_role('app'))} (no reload); renewed by cron on {host.name} when due")


@on_hosts(held="tls.issue", help={"domain": "the name(s) it is for, comma-separated: app.example.com,www.example.com",
                "email": "where the CA writes about expiry", "server": f"the ACME directory URL (default {LETS_ENCRYPT})",
                "ca_bundle": "a private ACME server's CA file on the host (its HTTPS is not publicly trusted)",
                "dry_run": DRY_RUN_HELP})
def issue(c: Context, domain: str, email: str, server: str = LETS_ENCRYPT, ca_bundle: str = "", dry_run: bool = False, *,
          where: Where) -> None:
    """Get a certificate from an ACME CA (Let's Encrypt) through HTTP-01, install it and schedule its renewal.

    certbot runs on the stage's first app host (it must have certbot: apt-get install
    certbot), answers the challenge through that host's nginx on port 80, and installs
    the certificate with no reload; a cron job there renews it when due. The domains
    must resolve to that host. The other app hosts get a copy.
    """
    from deploy.engine.ops import Executor
    from deploy.stack import acme

    req = acme.request(domain, email, server, ca_bundle)
    fleet = compose_only(open_fleet(c, where), "tls.*", NOT_ON_SWARM)
    Executor(dry_run=dry_run, hosts=fleet.remote)(acme.issue(fleet, req))
    if not dry_run:
        _served(fleet)


@on_hosts(held="tls.renew", help={"force": "renew now even if it is not due (30 days before its end)", "dry_run": DRY_RUN_HELP})
def renew(c: Context, force: bool = False, dry_run: bool = False, *, where: Where) -> None:
    """Renew the ACME certificate now if it is due (or --force), with no reload; cron does it by itself twice a day."""
    from deploy.engine.ops import Executor
    from deploy.stack import acme

    fleet = compose_only(open_fleet(c, where), "tls.*", NOT_ON_SWARM)
    Executor(dry_run=dry_run, hosts=fleet.remote)(acme.renew(fleet, force))
    if not dry_run:
        _served(fleet)


ns = Collection("tls")
ns.add_task(issue)
ns.add_task(renew)
ns.add_task(selfsigned)
ns.add_task(install)
