"""The `tls` namespace: the proxy's certificate (README "HTTPS")."""
from datetime import datetime, timezone
from pathlib import Path

from invoke import Collection, Context

from deploy.engine.ops import Executor
from deploy.fleet import Fleet
from deploy.output import say, styled
from deploy.stack import tls as tlsmod
from tasks._input import optional_number
from tasks._open import open_fleet
from tasks._where import Where, on_hosts


def _install(fleet: Fleet, pem: bytes, cert: tlsmod.Certificate) -> None:
    Executor()(tlsmod.install_fleet(fleet, pem, cert))
    where = ", ".join(m.name for m in fleet.with_role("app"))
    say(styled("installed", "green") + f" a certificate for {', '.join(cert.names)} on {where}, "
        f"valid until {cert.not_after:%Y-%m-%d} (in effect for every new connection; no reload)")


@on_hosts(help={"domain": "the name it is for, e.g. app.example.test", "days": "how long it is valid (default 90)"})
def selfsigned(c: Context, domain: str, days: str | None = None, *, where: Where) -> None:
    """Make and install a self-signed certificate (development: clients must be told to trust it).

    On hosts, every app host gets it. nginx serves HTTPS with it at once and HTTP
    redirects to HTTPS (ACME challenges and /nginx-health excepted).
    """
    valid_days = optional_number("--days", days, 90, minimum=1)
    tlsmod.check_domain(domain)
    fleet = open_fleet(c, where)
    pem, cert = tlsmod.self_signed(fleet.here.target, domain, valid_days)
    _install(fleet, pem, cert)


@on_hosts(help={"cert": "the PEM certificate chain (leaf first), e.g. fullchain.pem", "key": "its private key (PEM)"})
def install(c: Context, cert: str, key: str, *, where: Where) -> None:
    """Install a certificate you have (its chain and key) for every app host's nginx, with no reload.

    Checked first: the key is the certificate's and it has not expired. New connections
    get it at once; HTTP redirects to HTTPS (ACME challenges and /nginx-health excepted).
    """
    fleet = open_fleet(c, where)
    pem, described = tlsmod.from_files(fleet.here.target, Path(cert), Path(key), datetime.now(timezone.utc))
    _install(fleet, pem, described)


ns = Collection("tls")
ns.add_task(selfsigned)
ns.add_task(install)
