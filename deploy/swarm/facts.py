"""Facts about a swarm, parsed from ``docker node inspect``, ``docker service inspect``
and ``docker service ps`` JSON into dataclasses."""
from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

# UpdateStatus.State of a service whose last update Swarm undid (or is undoing)
ROLLED_BACK = ("rollback_started", "rollback_completed", "rollback_paused")


@dataclass(frozen=True)
class Node:
    id: str
    hostname: str
    role: str  # manager, worker
    state: str  # ready, down, unknown
    availability: str  # active, pause, drain
    address: str
    labels: tuple[tuple[str, str], ...]
    leader: bool = False

    def label(self, key: str) -> str:
        return dict(self.labels).get(key, "")


@dataclass(frozen=True)
class Service:
    id: str
    name: str
    version: int  # the spec's version: it changes with every update (and rollback)
    image: str  # the spec's image, pinned to its digest (REF@sha256:...)
    replicas: int | None  # None: a global service
    update_state: str  # "" (never updated), updating, completed, paused, rollback_*
    update_message: str
    objects: tuple[str, ...] = ()  # the secrets and configs its spec names

    @property
    def rolled_back(self) -> bool:
        return self.update_state in ROLLED_BACK

    @property
    def tag(self) -> str:
        """The image's tag (its version), without the digest."""
        ref = self.image.split("@", 1)[0]
        last = ref.rsplit("/", 1)[-1]
        return last.split(":", 1)[1] if ":" in last else "latest"


@dataclass(frozen=True)
class Task:
    id: str
    name: str  # SERVICE.SLOT (a global service: SERVICE.NODEID)
    node: str
    desired: str  # Running, Shutdown, Complete
    current: str  # "Running 5 seconds ago", "Failed 1 second ago", ...
    error: str
    image: str

    @property
    def state(self) -> str:
        return self.current.split(" ", 1)[0].lower()

    @property
    def service(self) -> str:
        return self.name.split(".", 1)[0]


def parse_nodes(text: str) -> list[Node]:
    """``docker node inspect``: managers first."""
    out = []
    for item in json.loads(text or "[]"):
        spec, status = item.get("Spec") or {}, item.get("Status") or {}
        manager = item.get("ManagerStatus") or {}
        out.append(Node(
            id=item["ID"][:12],
            hostname=(item.get("Description") or {}).get("Hostname", ""),
            role=spec.get("Role", ""),
            state=status.get("State", ""),
            availability=spec.get("Availability", ""),
            address=status.get("Addr", ""),
            labels=tuple(sorted((spec.get("Labels") or {}).items())),
            leader=bool(manager.get("Leader")),
        ))
    return sorted(out, key=lambda n: (n.role != "manager", n.hostname))


def _image(spec: dict[str, Any]) -> str:
    return str(((spec.get("TaskTemplate") or {}).get("ContainerSpec") or {}).get("Image", ""))


def _objects(spec: dict[str, Any]) -> tuple[str, ...]:
    container = (spec.get("TaskTemplate") or {}).get("ContainerSpec") or {}
    return tuple(sorted({str(s.get("SecretName", "")) for s in container.get("Secrets") or []}
                        | {str(c.get("ConfigName", "")) for c in container.get("Configs") or []}))


def parse_services(text: str) -> list[Service]:
    """``docker service inspect``, by name."""
    out = []
    for item in json.loads(text or "[]"):
        spec = item.get("Spec") or {}
        mode = spec.get("Mode") or {}
        update = item.get("UpdateStatus") or {}
        out.append(Service(
            id=item["ID"][:12],
            name=spec.get("Name", ""),
            version=int((item.get("Version") or {}).get("Index", 0)),
            image=_image(spec),
            replicas=int((mode.get("Replicated") or {}).get("Replicas", 0)) if "Replicated" in mode else None,
            update_state=str(update.get("State", "")),
            update_message=str(update.get("Message", "")),
            objects=_objects(spec),
        ))
    return sorted(out, key=lambda s: s.name)


def parse_tasks(text: str) -> list[Task]:
    """``docker service ps --format '{{json .}}'``: one object a line."""
    out = []
    for line in text.splitlines():
        if line.strip():
            item = json.loads(line)
            out.append(Task(id=item.get("ID", ""), name=item.get("Name", "").lstrip(" \\_"), node=item.get("Node", ""),
                            desired=item.get("DesiredState", ""), current=item.get("CurrentState", ""),
                            error=item.get("Error", ""), image=item.get("Image", "")))
    return out


def swarm_state(text: str) -> dict[str, Any]:
    """``docker info --format '{{json .Swarm}}'``."""
    return dict(json.loads(text or "{}"))


def running_tasks(name: str, service: Service | None, tasks: Sequence[Task]) -> tuple[list[Task], int]:
    """The running tasks of service ``name`` (its full name, STACK_SERVICE) among
    ``tasks``, and how many it wants: its replicas, or for a global service as many as
    the tasks Swarm wants running."""
    wanted = [t for t in tasks if t.service == name and t.desired == "Running"]
    want = service.replicas if service is not None and service.replicas is not None else len(wanted)
    return [t for t in wanted if t.state == "running"], want
