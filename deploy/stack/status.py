"""Per-service status: desired, running and healthy replicas, image, version, uptime, ports."""
from __future__ import annotations

from collections.abc import Iterable, Mapping
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
