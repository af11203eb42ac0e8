"""Per-service status: desired, running and healthy replicas, image, version, uptime, ports;
per server: each app container and routed address as the router has it."""
from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from deploy.engine.facts import Container


@dataclass(frozen=True)
class ServiceStatus:
    service: str
    desired: int
    running: int
    healthy: int
    routed: int | None  # containers in the proxy's routing (None: not a routed service)
    images: tuple[str, ...]
    versions: tuple[str, ...]
    uptime: timedelta | None  # of the most recently started running container
    ports: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return self.running == self.desired and self.healthy == self.running and self.routed in (None, self.running)


def summarize(
    services: Iterable[str], containers: Iterable[Container], desired: Mapping[str, int], now: datetime | None = None,
    routed: Mapping[str, int] | None = None,
) -> list[ServiceStatus]:
    """Per service, from the containers; ``routed``: how many of each routed service's
    containers the proxy's routing lists."""
    now = now or datetime.now(timezone.utc)
    by_service: dict[str, list[Container]] = {}
    for c in containers:
        by_service.setdefault(c.service, []).append(c)
    out = []
    for name in services:
        cs = by_service.get(name, [])
        running = [c for c in cs if c.state == "running"]
        started = [c.started_at for c in running if c.started_at]
        out.append(
            ServiceStatus(
                service=name,
                desired=desired.get(name, 0),
                running=len(running),
                healthy=sum(1 for c in running if c.ok),
                routed=(routed or {}).get(name),
                images=tuple(sorted({c.image for c in running})),
                versions=tuple(sorted({c.version for c in running})),
                uptime=(now - max(started)) if started else None,
                ports=tuple(sorted({p for c in running for p in c.ports})),
            )
        )
    return out


def human_duration(delta: timedelta | None) -> str:
    """'3d04h', '2h05m', '4m10s', '12s'; '-' for None."""
    if delta is None:
        return "-"
    days, rest = divmod(int(delta.total_seconds()), 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    if days:
        return f"{days}d{hours:02d}h"
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{seconds:02d}s"
    return f"{seconds}s"


# --- per server: each app container and routed address as the router has it ----------------
ROUTED = "routed"
NOT_ROUTED = "not routed"
GONE = "routed but gone"
HEALTH_MESSAGE = 60  # characters of Docker's last healthcheck message shown


@dataclass(frozen=True)
class Server:
    """One row of `inv status`'s routing table: an app container, or a routed address
    that no container of its service has."""
    service: str
    container: str  # its name; "-" for an address no container of the service has
    address: str  # "ip:port" as the router reaches it; "-" when it has none on the proxy's networks
    routing: str  # ROUTED, NOT_ROUTED or GONE: what the routing file (pools.conf) lists
    health: str  # Docker's: healthy, unhealthy: its last message, starting, none; a stopped container's state
    why: str  # the problem in plain words ("" when there is none)
    level: str  # "ok"; "warn": served, or soon, but look; "bad": not served as it should be


def short(message: str, size: int = HEALTH_MESSAGE) -> str:
    """The last line of a healthcheck's output, its spaces collapsed, at most ``size`` characters."""
    lines = [" ".join(line.split()) for line in message.splitlines() if line.strip()]
    text = lines[-1] if lines else ""
    return text if len(text) <= size else text[: size - 3] + "..."


def docker_health(c: Container) -> str:
    if c.state != "running":
        return f"{c.state} (exit {c.exit_code})" if c.state in ("exited", "dead") else c.state
    if c.health == "unhealthy":
        return f"unhealthy: {short(c.health_log)}" if c.health_log.strip() else "unhealthy"
    return c.health or "none"


STOPPED = {  # why a container that does not run is not served, by its state
    "restarting": "Docker restarts it (a crash loop?): see inv logs {s}",
    "paused": "paused, not served: docker unpause {n}",
    "created": "created but never started: inv up starts it",
}


def servers(ports: Mapping[str, int], containers: Iterable[Container], networks: Sequence[str],
            routed: Mapping[str, Collection[str]], answering: Collection[str]) -> list[Server]:
    """Each container of the routed services (``ports``: each one's port, config.stateless)
    and each address the routing lists (``routed``: service -> ``address:port``, as
    routing.routed reads pools.conf) that none of them has, against ``answering`` (the
    containers that answer their health path from the proxy now) and Docker's healthcheck;
    ``networks``: the proxy's. Pure."""
    containers = list(containers)
    holders = {a: c for c in containers if c.state == "running" and (a := c.address_on(networks))}
    out = []
    for s, port in ports.items():
        listed = set(routed.get(s, ()))
        mine = sorted((c for c in containers if c.service == s), key=lambda c: (c.number, c.name))
        seen = set()
        for c in mine:
            address = c.address_on(networks) if c.state == "running" else None
            where = f"{address}:{port}" if address else None
            seen.add(where)
            out.append(_server(s, c, where, where in listed, s in routed, c.name in answering, networks))
        for where in sorted(listed - seen):
            holder = holders.get(where.rsplit(":", 1)[0])
            if holder is None:
                why = "routed, but the container is gone: inv up re-routes"
            elif holder.service == s:
                why = f"routed at another port than {s}'s ({port}): inv up re-routes"
            else:
                why = f"routed, but {holder.name} ({holder.service}) has this address now: inv up re-routes"
            out.append(Server(s, "-", where, GONE, "-", why, "bad"))
    return out


def _server(s: str, c: Container, where: str | None, listed: bool, pooled: bool, answers: bool, networks: Sequence[str]) -> Server:
    def row(why: str = "", level: str = "ok") -> Server:
        return Server(s, c.name, where or "-", ROUTED if listed else NOT_ROUTED, docker_health(c), why, level)

    if c.state != "running":
        return row(STOPPED.get(c.state, "{state}, not served: inv logs {s} says why, inv up starts it again").format(s=s, n=c.name, state=c.state),
                   "bad")
    if where is None:
        on = f"the proxy's network ({', '.join(networks)})" if networks else "a network of the proxy"
        return row(f"not on {on}: nginx cannot reach it", "bad")
    if listed:
        if not answers:
            return row(f"routed, but it does not answer its health path: nginx retries its requests elsewhere; see inv logs {s}", "bad")
        if c.health == "unhealthy":
            return row("Docker says unhealthy but it answers its health path: a busy host, still served", "warn")
        return row()
    if not pooled:
        return row(f"the routing has no pool of {s} (no pools.conf yet?): inv up writes it", "bad")
    if answers:
        return row(f"answers but not routed: the next change of {s} or inv up adds it", "bad")
    if c.health == "starting":
        return row("starting, not routed yet: inv up routes it once it answers", "warn")
    return row(f"does not answer its health path, not routed (nothing is sent to it): see inv logs {s}", "bad")
