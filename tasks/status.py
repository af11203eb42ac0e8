"""`inv status`, `inv health`, `inv stats`: what runs, whether it is healthy, what it uses."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING

from invoke import Context

from tasks._open import open_fleet
from tasks._show import host_cells
from tasks._where import Where, on_hosts
from tasks.swarm import show_services

if TYPE_CHECKING:
    from deploy.fleet import Member
    from deploy.stack.health import Check
    from deploy.stack.status import Server, ServiceStatus

NOTHING_RUNS = ("no running containers", "start the stack with `inv up`")


def _statuses(m: Member) -> tuple[list[ServiceStatus], str | None, list[Server] | None]:
    """The host's services, its certificate, and its app servers as its router has them
    (app hosts: their nginx terminates TLS and routes; None: no proxy runs there)."""
    from deploy.stack import health, routing
    from deploy.stack import tls as tlsmod
    from deploy.stack.status import servers, summarize

    stack = m.stack
    app = m.host.has("app")
    containers = stack.containers()
    pools = routing.routed(stack) if app else {}
    routed = {s: len(a) for s, a in pools.items()}
    certificate = tlsmod.expiry(tlsmod.installed(stack), datetime.now(timezone.utc))[1] if app else None
    found = None
    if app and routing.proxy_container(stack.settings.config, containers) is not None:
        ports = {s: a.port for s, a in stack.settings.config.stateless.items()}
        found = servers(ports, containers, routing.proxy_networks(stack, containers), pools, health.answering(stack, containers))
    return summarize(m.services(), containers, stack.desired(), routed=routed), certificate, found


def _server_rows(found: list[Server]) -> list[tuple[object, ...]]:
    from deploy.output import styled

    def why(s: Server) -> object:
        return styled(s.why, "red") if s.level == "bad" else styled(s.why, "yellow") if s.level == "warn" else s.why or "-"

    return [(s.container, s.service, s.address, s.routing, s.health, why(s)) for s in found]


@on_hosts()
def status(c: Context, *, where: Where) -> None:
    """Per host: each service's replicas, image, version, uptime, ports; each app server as its router has it; the certificate."""
    from deploy.output import say, styled, table
    from deploy.stack.owner import warn_other_stage
    from deploy.stack.status import human_duration

    fleet = open_fleet(c, where)
    warn_other_stage(fleet)
    if fleet.swarm:
        show_services(fleet)
        return
    found = fleet.each(_statuses, what="status", summary=False)
    for m in fleet.members:
        statuses, certificate, servers = found[m.name]
        table(
            f"{fleet.settings.stage.project} ({fleet.settings.stage.name}) on {m.name}",
            ["service", "desired", "running", "healthy", "routed", "image", "version", "uptime", "ports"],
            (
                (
                    s.service,
                    s.desired,
                    s.running,
                    f"{s.healthy}" if s.ok else styled(f"{s.healthy}", "red"),
                    "-" if s.routed is None else str(s.routed),
                    "\n".join(s.images) or "-",
                    ", ".join(s.versions) or "-",
                    human_duration(s.uptime),
                    "\n".join(s.ports) or "-",
                )
                for s in statuses
            ),
        )
        if servers:
            table(f"servers as the router on {m.name} has them", ["container", "service", "address", "routing", "docker health", "why"],
                  _server_rows(servers), no_wrap=(0,))
        elif servers is None and m.host.has("app"):
            proxy = fleet.settings.config.proxy.service
            say(f"{proxy} does not run{f' on {m.name}' if fleet.remote else ''}: no router, nothing is served (inv up starts it)")
        if certificate is not None:
            say(f"certificate{f' on {m.name}' if fleet.remote else ''}: {certificate}")


def _checks(m: Member) -> list[Check]:
    from deploy.database import scheduled
    from deploy.stack import health as healthmod
    from deploy.stack import tls as tlsmod
    from deploy.stack.status import summarize

    containers = m.stack.containers()
    answers = healthmod.answering(m.stack, containers) if m.host.has("app") else set()
    checks = healthmod.container_checks(containers, answers) + healthmod.replica_checks(summarize(m.services(), containers, m.stack.desired()))
    if m.host.has("app"):
        checks += healthmod.routing_checks(m.stack, containers, answers) + healthmod.http_checks(m.stack)
        ok, detail = tlsmod.expiry(tlsmod.installed(m.stack), datetime.now(timezone.utc))
        checks.append(healthmod.Check("certificate", ok, detail))
    if m.host.has("db"):
        s = m.stack.settings
        ok, detail = scheduled.freshness(scheduled.facts(m.stack), datetime.now(timezone.utc), m.name, s.stage.name)
        checks.append(healthmod.Check("backups", ok, detail))
    return checks


@on_hosts()
def health(c: Context, *, where: Where) -> None:
    """Containers' health, HTTP through the proxy, the certificate's expiry, the backups' freshness; exits 1 naming what fails.

    Checked per host: every container's healthcheck and replica count, the routing,
    HTTP checks through nginx and the certificate (app hosts), and on the db host the
    newest scheduled backup against twice the schedule's interval.
    """
    from deploy.errors import fail
    from deploy.output import mark, table
    from deploy.stack.owner import warn_other_stage
    from deploy.swarm import cluster

    fleet = open_fleet(c, where)
    warn_other_stage(fleet)
    found = fleet.each(lambda m: cluster.checks(fleet, m) if fleet.swarm else _checks(m), what="health", summary=False)
    rows = [(m.name, ch) for m in fleet.members for ch in found[m.name]]
    table("health", ["", *host_cells(fleet, "host"), "what", "detail"],
          ((mark(ch.ok), *host_cells(fleet, host), ch.subject, ch.detail) for host, ch in rows))
    bad = [" on ".join([ch.subject, *host_cells(fleet, host)]) for host, ch in rows if not ch.ok]
    if bad:
        fail(f"unhealthy: {', '.join(bad)}", "see `inv logs SERVICE` for each")


def _running_ids(m: Member) -> list[str]:
    return [ct.id for ct in m.stack.containers() if ct.state == "running"]


@on_hosts(help={"watch": "stream live figures until Ctrl-C (one host: --hosts NAME)"})
def stats(c: Context, watch: bool = False, *, where: Where) -> None:
    """CPU, memory, network and disk I/O of the stack's running containers (per host)."""
    from deploy.engine.commands import docker
    from deploy.engine.facts import parse_stats
    from deploy.errors import fail
    from deploy.output import table

    fleet = open_fleet(c, where)
    if watch:
        m = fleet.one()
        ids = _running_ids(m)
        if not ids:
            fail(*NOTHING_RUNS)
        m.stack.target.run(docker.stats(ids, stream=True), hide=False, pty=True, warn=True)
        return

    def rows(m: Member) -> list:
        ids = _running_ids(m)
        return parse_stats(m.stack.run(docker.stats(ids), what="reading stats").stdout) if ids else []

    found = fleet.each(rows, what="stats", summary=False)
    if not any(found.values()):
        fail(*NOTHING_RUNS)
    table(
        "stats",
        [*host_cells(fleet, "host"), "container", "cpu", "memory", "mem %", "net i/o", "block i/o", "pids"],
        ((*host_cells(fleet, m.name), r.name, r.cpu, r.memory, r.memory_percent, r.net_io, r.block_io, r.pids)
         for m in fleet.members for r in found[m.name]),
    )
