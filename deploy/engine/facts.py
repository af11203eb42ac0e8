"""Facts about a target, parsed from structured engine output into dataclasses.

Each parser takes the text a command builder's command printed (JSON) and never
scrapes human-readable tables.
"""
from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from deploy.engine.commands import docker

SERVICE_LABEL = "com.docker.compose.service"
NUMBER_LABEL = "com.docker.compose.container-number"
VERSION_LABEL = "org.opencontainers.image.version"
CONFIG_HASH_LABEL = "com.docker.compose.config-hash"
TASK_SLOT_LABEL = "com.docker.swarm.task.name"  # STACK_SERVICE.SLOT.TASKID
SWARM_SERVICE_LABEL = "com.docker.swarm.service.name"
STAGE_LABEL = "com.compose-deploy.stage"  # the stage whose tasks made it (compose/docker-compose.yml, from DEPLOY_STAGE)


@dataclass(frozen=True)
class Container:
    id: str
    name: str
    service: str
    number: int
    state: str  # running, exited, restarting, created, paused, dead
    health: str  # healthy, unhealthy, starting, or "" without a healthcheck
    image: str
    version: str
    started_at: datetime | None
    ports: tuple[str, ...]  # "127.0.0.1:8080->8080/tcp"
    exit_code: int
    health_log: str  # the last healthcheck output, for error messages
    config_hash: str = ""  # Compose's hash of the service config the container was made from
    addresses: tuple[tuple[str, str], ...] = ()  # (network, IPv4 address) of each network it is on
    stop_timeout: int = 10  # seconds between SIGTERM and SIGKILL (Compose's stop_grace_period)
    user: str = ""  # the user it runs as ("" = the image's, root unless the image says)
    read_only: bool = False  # its root file system
    log_driver: str = ""  # json-file, local, journald, ...
    log_options: tuple[tuple[str, str], ...] = ()  # max-size, max-file, ...
    stage: str = ""  # the stage that made it ("": made before stages were labelled, or by hand)

    def address_on(self, networks: Iterable[str]) -> str | None:
        """Its address on the first of ``networks`` it is on (None: on none of them)."""
        mine = dict(self.addresses)
        return next((mine[n] for n in networks if mine.get(n)), None)

    @property
    def ok(self) -> bool:
        """Running, and not unhealthy by its healthcheck. ``starting`` (its first check
        still to come) counts: the tasks route a container once their own probe passed,
        which is seconds before Docker's first check; one that never passes turns
        ``unhealthy``."""
        return self.state == "running" and self.health in ("", "healthy", "starting")


@dataclass(frozen=True)
class ContainerStats:
    name: str
    cpu: str
    memory: str
    memory_percent: str
    net_io: str
    block_io: str
    pids: str


def parse_time(value: str | None) -> datetime | None:
    """Docker's RFC 3339 timestamps (nanoseconds cut to microseconds); None for the zero time."""
    if not value or value.startswith("0001-"):
        return None
    m = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)", value)
    if not m:
        return None
    frac = (m.group(2) or ".")[1:7].ljust(6, "0")  # exactly 6 digits: Python 3.10 reads no other count
    zone = "+00:00" if m.group(3) == "Z" else m.group(3)
    return datetime.fromisoformat(f"{m.group(1)}.{frac}{zone}").astimezone(timezone.utc)


def _version(config: Mapping[str, Any], image: str) -> str:
    labels = config.get("Labels") or {}
    if labels.get(VERSION_LABEL):
        return labels[VERSION_LABEL]
    for entry in config.get("Env") or ():
        if entry.startswith("APP_VERSION="):
            return entry.split("=", 1)[1]
    last = image.rsplit("/", 1)[-1]
    return last.split(":", 1)[1] if ":" in last else "latest"


def _ports(network_settings: Mapping[str, Any]) -> tuple[str, ...]:
    out = []
    for container_port, bindings in sorted((network_settings.get("Ports") or {}).items()):
        for b in bindings or ():
            out.append(f"{b.get('HostIp', '')}:{b.get('HostPort', '')}->{container_port}")
    return tuple(out)


def _service(labels: Mapping[str, str]) -> tuple[str, int]:
    """The service and number of a Compose container, or of a Swarm task's container
    (its service without the stack's prefix, its slot)."""
    if SERVICE_LABEL in labels or SWARM_SERVICE_LABEL not in labels:
        return labels.get(SERVICE_LABEL, ""), int(labels.get(NUMBER_LABEL, "0") or 0)
    service = labels[SWARM_SERVICE_LABEL].removeprefix(labels.get(docker.STACK_LABEL, "") + "_")
    slot = labels.get(TASK_SLOT_LABEL, "").split(".")
    return service, int(slot[1]) if len(slot) > 2 and slot[1].isdigit() else 0


def parse_inspect(text: str) -> list[Container]:
    """Containers from ``docker inspect`` JSON, ordered by service and number."""
    containers = []
    for item in json.loads(text or "[]"):
        config = item.get("Config") or {}
        labels = config.get("Labels") or {}
        state = item.get("State") or {}
        health = state.get("Health") or {}
        log = health.get("Log") or []
        host_config = item.get("HostConfig") or {}
        log_config = host_config.get("LogConfig") or {}
        service, number = _service(labels)
        containers.append(
            Container(
                id=item["Id"][:12],
                name=item.get("Name", "").lstrip("/"),
                service=service,
                number=number,
                state=state.get("Status", "unknown"),
                health=health.get("Status", ""),
                image=config.get("Image", ""),
                version=_version(config, config.get("Image", "")),
                started_at=parse_time(state.get("StartedAt")) if state.get("Running") else None,
                ports=_ports(item.get("NetworkSettings") or {}),
                exit_code=int(state.get("ExitCode", 0) or 0),
                health_log=(log[-1].get("Output") or "").strip() if log else "",
                config_hash=labels.get(CONFIG_HASH_LABEL, ""),
                stage=str(labels.get(STAGE_LABEL) or ""),
                stop_timeout=int(config["StopTimeout"]) if config.get("StopTimeout") is not None else 10,
                user=str(config.get("User") or ""),
                read_only=bool(host_config.get("ReadonlyRootfs")),
                log_driver=str(log_config.get("Type") or ""),
                log_options=tuple(sorted((str(k), str(v)) for k, v in (log_config.get("Config") or {}).items())),
                addresses=tuple(sorted((name, (net or {}).get("IPAddress", ""))
                                       for name, net in ((item.get("NetworkSettings") or {}).get("Networks") or {}).items())),
            )
        )
    return sorted(containers, key=lambda c: (c.service, c.number))


def parse_stats(text: str) -> list[ContainerStats]:
    """``docker stats --no-stream --format '{{json .}}'``: one JSON object a line."""
    out = []
    for line in text.splitlines():
        if not line.strip():
            continue
        s = json.loads(line)
        out.append(
            ContainerStats(
                name=s.get("Name", ""),
                cpu=s.get("CPUPerc", ""),
                memory=s.get("MemUsage", ""),
                memory_percent=s.get("MemPerc", ""),
                net_io=s.get("NetIO", ""),
                block_io=s.get("BlockIO", ""),
                pids=s.get("PIDs", ""),
            )
        )
    return sorted(out, key=lambda s: s.name)


def version_tuple(text: str) -> tuple[int, ...]:
    """(20, 10, 24) from '20.10.24+dfsg1' or 'v2.40.3'; () when there is no number."""
    m = re.search(r"(\d+)\.(\d+)(?:\.(\d+))?", text or "")
    return tuple(int(g) for g in m.groups() if g is not None) if m else ()


def parse_engine_version(text: str) -> str:
    """The server version from ``docker version --format '{{json .}}'`` ('' if absent)."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return ""
    return ((data or {}).get("Server") or {}).get("Version", "")


def desired_replicas(config: Mapping[str, Any], overrides: Mapping[str, int]) -> dict[str, int]:
    """Replicas per service: a persisted scale first, then deploy.replicas / scale, else 1."""
    out = {}
    for name, svc in (config.get("services") or {}).items():
        deploy = svc.get("deploy") or {}
        count = overrides.get(name, deploy.get("replicas", svc.get("scale", 1)))
        out[name] = int(count if count is not None else 1)
    return out


def parse_published(text: str) -> int | None:
    """The host port from ``docker compose port`` output ('0.0.0.0:8080' -> 8080)."""
    line = text.strip().splitlines()[0] if text.strip() else ""
    port = line.rsplit(":", 1)[-1]
    return int(port) if port.isdigit() and int(port) > 0 else None


def parse_identity(text: str, repository: str) -> str:
    """The digest ``repository@sha256:...`` pushed for the image, else its local id, from
    the line ``commands.images.identity`` prints."""
    digests_json, _, image_id = text.strip().rpartition(" ")
    try:
        digests = json.loads(digests_json or "[]")
    except ValueError:
        digests = []
    return next((d for d in digests if d.startswith(repository + "@")), image_id)


def parse_hashes(text: str) -> dict[str, str]:
    """``docker compose config --hash`` output: 'service hash' per line."""
    return dict(line.split(None, 1) for line in text.splitlines() if line.strip())
