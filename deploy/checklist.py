"""The guide's production checklist (``inv check --production``): its twelve items, each
checked against the stage as it runs, on every host, ok or failed with the fix.

The rules are pure functions of facts (``HostFacts``); ``checklist`` gathers the facts
of all hosts in parallel. An item the stage does not configure (monitoring) is a
warning that says so, not a pass.
"""
from __future__ import annotations

import contextlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from invoke.exceptions import Exit

from deploy.config.settings import example_env
from deploy.database import scheduled
from deploy.engine.commands import docker, nginx
from deploy.engine.facts import Container
from deploy.engine.target import HttpResponse
from deploy.fleet import Fleet, Member
from deploy.stack import firewall, tls
from deploy.stack.checks import Finding, check_defaults, check_jwt, env_file_git

ITEMS = {
    1: "default passwords", 2: "JWT secret", 3: "TLS", 4: "firewall", 5: "non-root users", 6: "read-only file systems",
    7: "security headers", 8: "rate limits", 9: "automatic backups", 10: "logs", 11: "monitoring", 12: "secrets not in git",
}
HEADERS = ("strict-transport-security", "x-frame-options", "x-content-type-options", "referrer-policy", "content-security-policy")
ROOT = frozenset({"", "root", "0", "0:0", "root:root"})
ROTATING = ("json-file", "local")  # rotated on the host (json-file only with max-size)
KEPT_ON_HOST = ("json-file", "local", "none")  # any other driver sends the logs elsewhere: collected
ZONE = re.compile(r"^\s*limit_req_zone\s+\S+\s+zone=(\w+):\S+\s+rate=(\S+);", re.MULTILINE)
LIMIT = re.compile(r"^\s*limit_req\s+zone=(\w+)(?:\s+burst=(\d+))?", re.MULTILINE)


def item(number: int, ok: bool, detail: str, fix: str = "") -> Finding:
    return Finding(ok, f"{number}. {ITEMS[number]}", detail, fix)


@dataclass(frozen=True)
class HostFacts:
    """What the checklist reads on one host."""

    containers: tuple[Container, ...]
    firewall: tuple[bool, str]
    certificate: tls.Certificate | None = None  # app hosts only
    https: HttpResponse | None = None  # GET / through nginx over HTTPS; None: HTTPS not published
    nginx_config: str | None = None  # the front's config (nginx -T); None: nginx not running
    backups: scheduled.Facts | None = None  # db hosts only


def tls_item(cert: tls.Certificate | None, now: datetime, stage: str) -> Finding:
    if cert is None:
        return item(3, False, "no certificate: HTTPS is not configured",
                    f"inv tls.issue --stage {stage} --domain D --email E (or tls.install with your files)")
    ok, detail = tls.expiry(cert, now)
    return item(3, ok, detail, "" if ok else f"inv tls.renew --stage {stage} (or install a new one)")


def users_item(containers: Sequence[Container], services: Sequence[str]) -> Finding:
    """The app services and the proxy run as a user other than root (the stateful images
    start as root and drop to their own user: not judged from outside)."""
    root = sorted(c.name for c in containers if c.service in services and c.user in ROOT)
    if root:
        return item(5, False, f"running as root: {', '.join(root)}", "set USER in their Dockerfiles (or user: in the compose files)")
    mine = sorted({f"{c.service} ({c.user})" for c in containers if c.service in services})
    return item(5, bool(mine), f"{', '.join(mine)}" if mine else "none of them is running", "" if mine else "inv up")


def read_only_item(containers: Sequence[Container], services: Sequence[str]) -> Finding:
    writable = sorted(c.name for c in containers if c.service in services and not c.read_only)
    if writable:
        return item(6, False, f"writable root file system: {', '.join(writable)}",
                    "set read_only: true (with a tmpfs where they write) in docker-compose.prod.yml")
    ran = sorted({c.service for c in containers if c.service in services})
    return item(6, bool(ran), f"read-only: {', '.join(ran)}" if ran else "none of them is running", "" if ran else "inv up")


def headers_item(response: HttpResponse | None) -> Finding:
    """The security headers of a page fetched through nginx over HTTPS."""
    if response is None:
        return item(7, False, "HTTPS is not published", "inv up (nginx publishes HTTPS_PORT), then install a certificate")
    if not response.status:
        return item(7, False, f"no HTTPS answer through nginx: {response.error}", "install a certificate: inv tls.issue or tls.install")
    missing = [h for h in HEADERS if not response.header(h)]
    if missing:
        return item(7, False, f"GET / over HTTPS ({response.status}) lacks {', '.join(missing)}",
                    "include compose/nginx/security-headers.conf in every location that adds headers")
    return item(7, True, f"GET / over HTTPS ({response.status}): {', '.join(HEADERS)}")


def rate_limits_item(config: str | None) -> Finding:
    """nginx's front config (``nginx -T``) limits requests: zones with a rate, used by locations."""
    if config is None:
        return item(8, False, "nginx is not running: cannot read its configuration", "inv up")
    zones = dict(ZONE.findall(config))
    used = [(zone, burst) for zone, burst in LIMIT.findall(config) if zone in zones]
    if not used:
        return item(8, False, "no limit_req in nginx's configuration", "keep limit_req in compose/nginx/site.conf.template")
    described = sorted({f"{zone} {zones[zone]}" + (f" burst {burst}" if burst else "") for zone, burst in used})
    return item(8, True, "; ".join(described))


def logs_item(containers: Sequence[Container]) -> Finding:
    """Every container's log is rotated on the host (json-file with max-size, local) or
    sent to a collector (any other driver)."""
    if not containers:
        return item(10, False, "no container is running", "inv up")
    unbounded = sorted(c.name for c in containers if c.log_driver == "json-file" and "max-size" not in dict(c.log_options))
    lost = sorted(c.name for c in containers if c.log_driver == "none")
    if unbounded or lost:
        detail = "; ".join(p for p in (f"json-file without max-size (grows without end): {', '.join(unbounded)}" if unbounded else "",
                                       f"no log at all (driver none): {', '.join(lost)}" if lost else "") if p)
        return item(10, False, detail, "set logging: {driver: json-file, options: {max-size: 10m, max-file: '3'}} (x-logging in docker-compose.yml)")
    drivers = sorted({c.log_driver + (f" {dict(c.log_options)['max-size']}" if "max-size" in dict(c.log_options) else "")
                      for c in containers})
    kind = "collected" if all(c.log_driver not in KEPT_ON_HOST for c in containers) else "rotated"
    return item(10, True, f"{kind}: {', '.join(drivers)}")


def backups_item(facts: scheduled.Facts, now: datetime, where: str, stage: str) -> Finding:
    """A schedule on the db host, and its newest complete backup younger than twice its interval."""
    if facts.plan is None:
        return item(9, False, f"no scheduled backups on {where} (only the one before each deploy)",
                    f"inv db.schedule --stage {stage} --every 6h")
    ok, detail = scheduled.freshness(facts, now, where, stage)
    return item(9, ok, detail, "" if ok else f"inv db.schedule --stage {stage} (its last run and log)")


def monitoring_item() -> Finding:
    return item(11, True, "not configured: this stage names no monitoring to reach", "watch inv health from your monitoring")


def gather(fleet: Fleet, member: Member, exposed: firewall.Exposure | None) -> HostFacts:
    """One host's facts (read only); ``exposed``: the stage's firewall exposure, read once."""
    stack = member.stack
    containers = tuple(stack.containers())
    facts = HostFacts(containers, firewall.state(fleet, member, exposed),
                      backups=scheduled.facts(stack) if member.host.has("db") else None)
    if not member.host.has("app"):
        return facts
    proxy = next((c for c in containers if c.service == fleet.settings.config.proxy.service and c.state == "running"), None)
    config = None
    if proxy is not None:
        result = stack.target.run(docker.exec_(proxy.name, nginx.dump_front()), warn=True)
        config = result.stdout if result.ok else None
    port = stack.proxy_port(tls=True) if proxy is not None else None
    https = stack.target.fetch(port, "/", tls=True) if port else None
    return replace(facts, certificate=tls.installed(stack), https=https, nginx_config=config)


def host_items(fleet: Fleet, member: Member, facts: HostFacts, now: datetime) -> list[Finding]:
    cfg = fleet.settings.config
    apps = (*cfg.stateless, cfg.proxy.service)
    ok, detail = facts.firewall
    if not fleet.remote:
        fix = "let in only SSH, HTTP and HTTPS here (nftables, or your provider's firewall)"
    else:
        fix = "" if ok or "inv hosts.firewall" in detail else f"inv hosts.firewall --stage {fleet.settings.stage.name}"
    found = [item(4, ok, detail, fix)]
    if member.host.has("app"):
        found = [tls_item(facts.certificate, now, fleet.settings.stage.name), *found, users_item(facts.containers, apps),
                 read_only_item(facts.containers, apps), headers_item(facts.https), rate_limits_item(facts.nginx_config)]
    if facts.backups is not None:
        found.append(backups_item(facts.backups, now, member.name, fleet.settings.stage.name))
    return [*found, logs_item(facts.containers)]


def checklist(fleet: Fleet, now: datetime) -> list[tuple[str, Finding]]:
    """(where, item) of every item of the checklist, in the guide's order."""
    s = fleet.settings
    s = replace(s, stage=replace(s.stage, production=True))
    weak = check_defaults(s.env, s.config.secret_env, example_env(s.config), production=True)
    rows = [("local", item(1, f.ok, f"{f.subject} {f.detail}", f.fix)) for f in weak] or [
        ("local", item(1, True, f"none of {', '.join(s.config.secret_env)} is a default or the example's value"))]
    jwt = check_jwt(s.env, s.config.secret_env, production=True)
    rows.append(("local", item(2, jwt.ok, jwt.detail, jwt.fix) if jwt else item(2, True, "the stack has no JWT_SECRET")))
    exposed = None
    if fleet.remote:  # the compose configuration, once for every host (an error: each host's firewall line says it)
        with contextlib.suppress(Exit):
            exposed = firewall.exposure(fleet)
    facts = fleet.each(lambda m: gather(fleet, m, exposed), what="check", summary=False)
    rows += [(m.name, f) for m in fleet.members for f in host_items(fleet, m, facts[m.name], now)]
    rows.append(("local", monitoring_item()))
    rows += [("local", item(12, f.ok, f"{f.subject} {f.detail}", f.fix)) for f in env_file_git(s, fleet.here.target)]
    return sorted(rows, key=lambda r: int(r[1].subject.split(".")[0]))
