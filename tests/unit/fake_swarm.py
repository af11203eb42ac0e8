"""A recording fake of a Docker Swarm, for the deploy workflows on a swarm stage
(tests/unit/test_swarm_orchestration.py). (Longer than our usual 250 lines: like
fake_engine.py, it is one simulation whose parts answer each other.)

- ``Swarm``: the cluster's state, shared by its nodes: nodes and their labels, services
  and their tasks, secrets, configs, networks, and swarmkit's bookkeeping (a service's
  Version.Index moves with every write; an update keeps the spec before it as
  PreviousSpec and resets UpdateStatus).
- ``SwarmNode``: one host of it, a ``Target`` (a ``FakeEngine``: the shared journal, a
  tiny file system for the lock, the history and the stack files, ``docker version``,
  image prune). A manager answers ``docker info``, ``docker service
  ls|inspect|ps|logs|create|rm|scale|rollback``, ``docker stack deploy|rm``, ``docker
  secret|config ls|create|rm`` and ``docker node ls|inspect``, shaped like Docker's JSON; a
  worker refuses the cluster's commands as Docker does. Every node lists its task
  containers (``docker ps``/``docker inspect``: running ones, and the exited containers
  of the tasks still in the history, as Docker keeps them) and answers HTTP through the
  proxy task it runs (edge nodes: published on the node's own port).
- ``Workstation``: this machine (FakeEngine's build, tag, push, git and tests), whose
  ``docker compose config --format json`` prints what Compose makes of the repository's
  compose files (``compose_config``).

``docker stack deploy`` reads the stack file written on the manager (JSON is YAML) and,
as swarmkit does, updates every service it names (its Version.Index moves even when
nothing changed) or creates it; external secrets and configs must exist, networks are
created. Only a changed task template starts new tasks; an image whose version the test
marked unhealthy (``make_unhealthy``) fails its first new task, and the update ends
``rollback_completed`` with the previous spec back (failure_action rollback), the command
exiting ``rollback_exit`` with the CLI's ``service rolled back: rollback completed``. A
one-off task (``docker service create``) runs for ``one_off_polls`` reads of ``docker
service ps``, then ends Complete (or Failed: ``fail_one_offs``). Anything unknown exits
127, so it shows up in a test.
"""
from __future__ import annotations

import copy
import hashlib
import io
import json
import os
import re
import shlex
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deploy.config.inventory import Host
from deploy.engine.target import HttpResponse
from tests.unit.fake_engine import Argv, Called, FakeEngine, FakeProcess, Registry, compose_sub, digest_of, exec_parts, is_read

if TYPE_CHECKING:
    from deploy.engine.target import Target

STACK_LABEL = "com.docker.stack.namespace"
IMAGE_LABEL = "com.docker.stack.image"
REGISTRY = "registry.example.com"  # where the app images are (conftest's FAKE_ENV)
NOT_A_MANAGER = ("Error response from daemon: This node is not a swarm manager. Worker nodes can't be used to view or modify "
                 "cluster state. Please run this command on a manager node or promote the current node to a manager.")
CLUSTER_COMMANDS = ("service", "stack", "secret", "config", "node")
SWARM_READS = (("docker", "info"), ("docker", "service", "ls"), ("docker", "service", "inspect"), ("docker", "service", "ps"),
               ("docker", "service", "logs"), ("docker", "secret", "ls"), ("docker", "config", "ls"), ("docker", "node", "ls"),
               ("docker", "node", "inspect"))
UNHEALTHY_EXIT = "task: non-zero exit (143): dockerexec: unhealthy container"
HISTORY_LIMIT = 5  # swarm's task history retention: the tasks (and their containers) kept per slot
WHEN = "2026-01-02T03:04:05.123456789Z"
COMPOSE_FILES = ("compose/docker-compose.yml", "compose/docker-compose.prod.yml")  # what compose_config merges


def is_swarm_read(argv: Sequence[str]) -> bool:
    """A command that only reads: the cluster's facts, or one of ``fake_engine.is_read``."""
    return any(tuple(argv[:len(p)]) == p for p in SWARM_READS) or is_read(argv)


def tag_of(image: str) -> str:
    """An image reference's tag (``REF:TAG@sha256:...`` -> TAG)."""
    last = image.split("@", 1)[0].rsplit("/", 1)[-1]
    return last.split(":", 1)[1] if ":" in last else "latest"


def pinned(ref: str) -> str:
    """``ref`` as Swarm records it: one pinned already as it is, a tag pinned to the digest
    the registry has for an image no push named otherwise (FakeEngine's ``Registry``)."""
    return ref if "@" in ref else f"{ref}@{digest_of(ref, _hash('id', ref)).split('@')[1]}"


def _hash(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def _ns(duration: str) -> int:
    m = re.fullmatch(r"(\d+)(ms|s|m)", duration)
    return int(m.group(1)) * {"ms": 10 ** 6, "s": 10 ** 9, "m": 60 * 10 ** 9}[m.group(2)] if m else 0


def options(argv: Sequence[str], valued: Sequence[str]) -> tuple[dict[str, list[str]], list[str]]:
    """A CLI's flags (those in ``valued`` take a value, ``--flag=value`` too) and the words after them."""
    found: dict[str, list[str]] = {}
    rest = list(argv)
    while rest and rest[0].startswith("-") and rest[0] != "-":
        flag = rest.pop(0)
        if "=" in flag:
            key, value = flag.split("=", 1)
            found.setdefault(key, []).append(value)
        elif flag in valued:
            found.setdefault(flag, []).append(rest.pop(0))
        else:
            found.setdefault(flag, []).append("")
    return found, rest


def label_filters(found: Mapping[str, list[str]]) -> list[tuple[str, str | None]]:
    """``--filter label=K=V`` / ``label=K`` as (K, V or None)."""
    out: list[tuple[str, str | None]] = []
    for f in found.get("--filter", []):
        kind, _, value = f.partition("=")
        if kind == "label":
            key, eq, val = value.partition("=")
            out.append((key, val if eq else None))
    return out


def matches(labels: Mapping[str, str], wanted: Sequence[tuple[str, str | None]]) -> bool:
    return all(k in labels and (v is None or labels[k] == v) for k, v in wanted)


@dataclass
class SwarmObject:
    """A secret or a config."""
    id: str
    name: str
    content: bytes = field(repr=False)
    labels: dict[str, str]


@dataclass
class SwarmTask:
    id: str
    service: str  # its service's name (myapp_backend)
    slot: int | None  # None: a global service's task (named by its node)
    node: str  # the host it runs on
    spec: dict[str, Any] = field(repr=False)  # its service's spec when it was made (its image, env, ports)
    container_labels: dict[str, str] = field(repr=False)
    desired: str = "Running"  # Running, Shutdown
    state: str = "running"  # pending, running, complete, shutdown, failed, rejected
    error: str = ""
    polls: int = 0  # a one-off task: `docker service ps` reads before it ends ...
    ends: str = ""  # ... and how: complete or failed
    output: tuple[str, ...] = ()  # the lines it logs
    exit_code: int = 0

    @property
    def image(self) -> str:
        return str(self.spec["image"])

    @property
    def container(self) -> str:
        """Its container's id (every task here got as far as a container)."""
        return _hash("container", self.id)

    def name(self, node_id: str) -> str:
        return f"{self.service}.{self.slot if self.slot is not None else node_id}"


@dataclass
class SwarmService:
    id: str
    name: str  # myapp_backend
    spec: dict[str, Any]  # the stack file's service (networks by their full names, the image pinned), or a one-off's
    labels: dict[str, str]  # the service's (the stack's namespace, the image as the file names it)
    container_labels: dict[str, str]  # what its task containers get (a stack's services: the namespace)
    version: int
    created: int
    previous: dict[str, Any] | None = None
    update: tuple[str, str] | None = None  # UpdateStatus (State, Message); None: no update since the last write

    @property
    def key(self) -> str:
        """Its name in the compose files (a stack's services; a one-off: its whole name)."""
        return self.name.split("_", 1)[1] if "_" in self.name else self.name

    @property
    def global_mode(self) -> bool:
        return (self.spec.get("deploy") or {}).get("mode") == "global"

    @property
    def replicas(self) -> int:
        return int((self.spec.get("deploy") or {}).get("replicas", 1))


def template(spec: Mapping[str, Any]) -> str:
    """What makes a task of ``spec`` out of date when it changes (its task template): not the
    replicas, the update and rollback configs, the endpoint or the published ports."""
    deploy = {k: v for k, v in (spec.get("deploy") or {}).items()
              if k not in ("replicas", "update_config", "rollback_config", "endpoint_mode", "mode")}
    return json.dumps({**{k: v for k, v in spec.items() if k not in ("deploy", "ports")}, "deploy": deploy}, sort_keys=True)


class Swarm:
    """The cluster of ``hosts`` (all joined: managers and workers as their roles say, the
    edge and db roles as node labels), running stack ``project``."""

    def __init__(self, hosts: Sequence[Host], project: str = "myapp") -> None:
        self.project = project
        self.hosts = {h.name: h for h in hosts}
        self.node_ids = {h.name: _hash("node", h.name)[:25] for h in hosts}
        self.labels = {h.name: {r: "true" for r in ("edge", "db") if h.has(r)} for h in hosts}
        self.services: dict[str, SwarmService] = {}
        self.tasks: list[SwarmTask] = []
        self.secrets: dict[str, SwarmObject] = {}
        self.configs: dict[str, SwarmObject] = {}
        self.networks: dict[str, dict[str, Any]] = {}
        self.deployed: list[tuple[str, dict[str, Any]]] = []  # every stack file `docker stack deploy` read: (path, content)
        self.index = 10  # swarmkit's store version: every write moves it
        self.unhealthy: dict[str, set[str] | None] = {}  # version -> the services whose new tasks fail (None: every one)
        self.rollback_exit = 1  # how `docker stack deploy --detach=false` exits when Swarm rolled an update back
        self.one_off_polls = 1
        self.one_off_failure: tuple[str, ...] | None = None  # the output of one-off tasks that fail (None: they succeed)
        self.one_off_output: tuple[str, ...] = ("> node dist/migrate.js", "No migrations to run!")
        self.lock = threading.RLock()
        self._ids = 0

    # --- set-up --------------------------------------------------------------------------
    def make_unhealthy(self, version: str, *services: str) -> None:
        """New tasks of ``version``'s images (of ``services``: by default every service) never become healthy."""
        self.unhealthy[version] = set(services) or None

    def fail_one_offs(self, *output: str) -> None:
        """One-off tasks end Failed (exit 1), after logging ``output``."""
        self.one_off_failure = output or ("error: migration failed",)

    # --- what tests read -----------------------------------------------------------------------
    def service(self, key: str) -> SwarmService:
        return self.services[f"{self.project}_{key}"]

    def running(self, key: str) -> list[SwarmTask]:
        """The running tasks of a stack's service, by slot (global: by node)."""
        name = f"{self.project}_{key}"
        return sorted((t for t in self.tasks if t.service == name and t.desired == "Running" and t.state == "running"),
                      key=lambda t: (t.slot or 0, t.node))

    def versions(self, key: str) -> list[str]:
        """The image tags of a service's running tasks."""
        return [tag_of(t.image) for t in self.running(key)]

    def snapshot(self) -> tuple[Any, ...]:
        """Everything the cluster holds (to show that nothing changed)."""
        return (self.index, json.dumps({n: (s.version, s.spec, s.previous, s.update) for n, s in self.services.items()}, sort_keys=True),
                sorted((t.id, t.desired, t.state) for t in self.tasks), sorted(self.secrets), sorted(self.configs), sorted(self.networks))

    # --- the manager's commands ---------------------------------------------------------------
    def manage(self, node: SwarmNode, argv: Argv) -> tuple[str, str, int]:
        with self.lock:
            kind, sub, rest = argv[1], argv[2] if len(argv) > 2 else "", argv[3:]
            if kind == "service":
                handlers: dict[str, Callable[[Argv], tuple[str, str, int]]] = {
                    "ls": self._service_ls, "inspect": self._service_inspect, "ps": self._service_ps, "logs": self._service_logs,
                    "create": self._service_create, "rm": self._service_rm, "scale": self._service_scale, "rollback": self._service_rollback}
                if sub in handlers:
                    return handlers[sub](rest)
            if kind == "stack" and sub == "deploy":
                return self._stack_deploy(node, rest)
            if kind == "stack" and sub == "rm":
                return self._stack_rm(rest)
            if kind in ("secret", "config") and sub == "ls":
                found, _ = options(rest, ("--filter", "--format"))
                objects = self.secrets if kind == "secret" else self.configs
                names = sorted(o.name for o in objects.values() if matches(o.labels, label_filters(found)))
                return "".join(f"{n}\n" for n in names), "", 0
            if kind in ("secret", "config") and sub == "create":  # by run(): no stdin to read the content from
                return self.create_object(kind, rest, b"")
            if kind in ("secret", "config") and sub == "rm":
                return self._remove_objects(kind, rest)
            if kind == "node" and sub == "ls":
                return "".join(f"{self.node_ids[n]}\n" for n in self.hosts), "", 0
            if kind == "node" and sub == "inspect":
                return json.dumps([self._node_json(n) for n in self.hosts if self.node_ids[n] in rest]), "", 0
            return "", f"fake swarm: unknown command: {shlex.join(argv)}", 127

    def info(self, node: str) -> str:
        """``docker info --format {{json .Swarm}}`` on ``node``."""
        host = self.hosts[node]
        managers = [h for h in self.hosts.values() if h.has("manager")]
        return json.dumps({"NodeID": self.node_ids[node], "NodeAddr": host.reach, "LocalNodeState": "active",
                           "ControlAvailable": host.has("manager"), "Error": "",
                           "RemoteManagers": [{"NodeID": self.node_ids[m.name], "Addr": f"{m.reach}:2377"} for m in managers],
                           "Nodes": len(self.hosts), "Managers": len(managers)}) + "\n"

    def create_object(self, kind: str, args: Sequence[str], content: bytes) -> tuple[str, str, int]:
        """``docker secret|config create [--label K=V] NAME -`` with ``content`` read from stdin."""
        with self.lock:
            found, words = options(args, ("--label", "-l", "--template-driver", "--driver", "-d"))
            if len(words) != 2 or words[1] != "-":
                return "", f"fake swarm: {kind}s are created from stdin here: {shlex.join(args)}", 127
            name = words[0]
            objects = self.secrets if kind == "secret" else self.configs
            if name in objects:
                return "", f"Error response from daemon: rpc error: code = AlreadyExists desc = {kind} {name} already exists", 1
            if not content:
                return "", ("Error response from daemon: rpc error: code = InvalidArgument desc = "
                            f"{kind} data must be larger than 0 and less than 500 KB"), 1
            labels = dict(v.split("=", 1) for v in found.get("--label", []) + found.get("-l", []))
            objects[name] = SwarmObject(self._id(kind), name, content, labels)
            self.index += 1
            return objects[name].id + "\n", "", 0

    # services
    def _service_ls(self, args: Argv) -> tuple[str, str, int]:
        found, _ = options(args, ("--filter", "-f", "--format"))
        names = [f.split("=", 1)[1] for f in found.get("--filter", []) if f.startswith("name=")]
        chosen = [s for s in self.services.values()
                  if matches(s.labels, label_filters(found)) and all(s.name.startswith(n) for n in names)]
        return "".join(f"{s.id}\n" for s in sorted(chosen, key=lambda s: s.name)), "", 0

    def _find(self, ref: str) -> SwarmService | None:
        by_id = [s for s in self.services.values() if s.id.startswith(ref)]
        return self.services.get(ref) or (by_id[0] if len(by_id) == 1 else None)

    def _service_inspect(self, args: Argv) -> tuple[str, str, int]:
        _, refs = options(args, ("--format", "-f"))
        found = [self._find(r) for r in refs]
        missing = [r for r, s in zip(refs, found, strict=True) if s is None]
        out = json.dumps([self._service_json(s) for s in found if s is not None], indent=4)
        return out + "\n", "".join(f"Error: no such service: {r}\n" for r in missing), 1 if missing else 0

    def _service_ps(self, args: Argv) -> tuple[str, str, int]:
        found, refs = options(args, ("--format", "--filter", "-f"))
        lines, missing = [], []
        for ref in refs:
            svc = self._find(ref)
            if svc is None:
                missing.append(ref)
                continue
            mine = [t for t in self.tasks if t.service == svc.name]
            for t in mine:  # time passes for a one-off task
                if t.ends and t.state == "running":
                    t.polls -= 1
                    if t.polls < 0:
                        self._end(t, t.ends)
            for t in sorted(mine, key=lambda t: (t.slot or 0, t.node, -self.tasks.index(t))):
                lines.append(json.dumps({"CurrentState": f"{t.state.capitalize()} 5 seconds ago", "DesiredState": t.desired,
                                         "Error": t.error, "ID": t.id, "Image": t.image, "Name": t.name(self.node_ids[t.node]),
                                         "Node": t.node, "Ports": ""}))
        if missing:
            return "", f"no such service: {missing[0]}\n", 1
        return "".join(line + "\n" for line in lines), "", 0

    def _service_logs(self, args: Argv) -> tuple[str, str, int]:
        _, refs = options(args, ("--tail", "-n", "--since"))
        svc = self._find(refs[0]) if refs else None
        if svc is None:
            return "", f"Error response from daemon: No such task or service: {refs[0] if refs else ''}\n", 1
        out = []
        for t in [t for t in self.tasks if t.service == svc.name]:
            prefix = f"{t.name(self.node_ids[t.node])}.{t.id}@{t.node}"
            out += [f"{WHEN} {prefix}    | {line}\n" for line in (t.output or ("fake log line",))]
        return "".join(out), "", 0

    def _service_create(self, args: Argv) -> tuple[str, str, int]:
        valued = ("--name", "--restart-condition", "--label", "-l", "--network", "--env", "-e", "--secret", "--constraint", "--replicas",
                  "--mode", "--container-label")
        found, words = options(args, valued)
        if not words or not found.get("--name"):
            return "", f"fake swarm: docker service create needs --name and an image: {shlex.join(args)}", 127
        name, image, command = found["--name"][0], words[0], words[1:]
        if self._find(name) is not None:
            return "", "Error response from daemon: rpc error: code = AlreadyExists desc = name conflicts with an existing object: " \
                       f"service {name} already exists", 1
        for network in found.get("--network", []):
            if network not in self.networks:
                return "", f"Error response from daemon: network {network} not found", 1
        secrets = []
        for given in found.get("--secret", []):
            parts = dict(p.split("=", 1) for p in given.split(","))
            if parts["source"] not in self.secrets:
                return "", f"Error response from daemon: secret not found: {parts['source']}", 1
            secrets.append({"source": parts["source"], "target": parts.get("target", parts["source"]), "mode": 0o444})
        env = dict(e.split("=", 1) for e in found.get("--env", []) + found.get("-e", []))
        restart = (found.get("--restart-condition") or ["any"])[0]
        spec = {"image": pinned(image), "command": list(command), "environment": env, "secrets": secrets,
                "networks": list(found.get("--network", [])),
                "deploy": {"replicas": 1, "restart_policy": {"condition": restart},
                           "placement": {"constraints": list(found.get("--constraint", []))}}}
        labels = dict(v.split("=", 1) for v in found.get("--label", []) + found.get("-l", []))
        container_labels = dict(v.split("=", 1) for v in found.get("--container-label", []))
        self.index += 1
        svc = SwarmService(self._id("service"), name, spec, labels, container_labels, self.index, self.index)
        self.services[name] = svc
        nodes = self._eligible(spec)
        task = self._start(svc, 1, nodes[0] if nodes else "")
        if restart == "none":  # it runs once
            task.polls, task.ends = self.one_off_polls, "failed" if self.one_off_failure is not None else "complete"
            task.output = self.one_off_failure if self.one_off_failure is not None else self.one_off_output
        return f"{svc.id}\n", "", 0

    def _service_rm(self, args: Argv) -> tuple[str, str, int]:
        out, err = [], []
        for ref in args:
            svc = self._find(ref)
            if svc is None:
                err.append(f"Error: No such service: {ref}\n")
                continue
            self._remove(svc)
            out.append(f"{ref}\n")
        return "".join(out), "".join(err), 1 if err else 0

    def _service_scale(self, args: Argv) -> tuple[str, str, int]:
        _, pairs = options(args, ())
        out, err = [], []
        for pair in pairs:
            ref, _, count = pair.partition("=")
            svc = self._find(ref)
            if svc is None:
                err.append(f"{ref}: Error: No such service: {ref}\n")
                continue
            if svc.global_mode:
                err.append(f"{ref}: scale can only be used with replicated or replicated-job mode\n")
                continue
            spec = copy.deepcopy(svc.spec)
            spec.setdefault("deploy", {})["replicas"] = int(count)
            self._update(svc, spec)
            out.append(f"{ref} scaled to {count}\noverall progress: {count} out of {count} tasks\nverify: Service converged\n")
        return "".join(out), "".join(err), 1 if err else 0

    def _service_rollback(self, args: Argv) -> tuple[str, str, int]:
        _, refs = options(args, ())
        svc = self._find(refs[0]) if refs else None
        if svc is None:
            return "", f"Error: No such service: {refs[0] if refs else ''}\n", 1
        if svc.previous is None:
            return "", f"Error response from daemon: rpc error: code = FailedPrecondition desc = service {svc.id} does not have a previous spec\n", 1
        self.index += 1
        svc.spec, svc.previous = svc.previous, svc.spec
        svc.version, svc.update = self.index, ("rollback_started", "manually requested rollback")
        if template(svc.spec) != template(svc.previous):
            self._replace_tasks(svc, rollback=True)
        self._place(svc)
        self.index += 1
        svc.version, svc.update = self.index, ("rollback_completed", "rollback completed")
        n = len([t for t in self.tasks if t.service == svc.name and t.desired == "Running"])
        return (f"{refs[0]}\nrollback: manually requested rollback\noverall progress: rolling back update: {n} out of {n} tasks\n"
                "verify: Service converged\n"), "", 0

    # stacks
    def _stack_deploy(self, node: SwarmNode, args: Argv) -> tuple[str, str, int]:
        found, words = options(args, ("--compose-file", "-c", "--resolve-image", "--prune"))
        if len(words) != 1 or "--compose-file" not in found:
            return "", f"fake swarm: docker stack deploy needs --compose-file FILE STACK: {shlex.join(args)}", 127
        namespace, path = words[0], found["--compose-file"][0]
        text = node.read_text(path)
        if text is None:
            return "", f"open {path}: no such file or directory\n", 1
        stack = json.loads(text)
        for key in ("name", "include"):
            if key in stack:
                return "", f"(root) Additional property {key} is not allowed\n", 1
        services: dict[str, dict[str, Any]] = stack.get("services") or {}
        for key, spec in services.items():
            for dropped in ("build", "container_name", "profiles"):
                if dropped in spec:
                    return "", f"services.{key} Additional property {dropped} is not allowed\n", 1
            if any(isinstance(d, Mapping) for d in (spec.get("depends_on") or {}).values()):
                return "", f"services.{key}.depends_on must be a list\n", 1
            for kind, objects in (("secret", self.secrets), ("config", self.configs)):
                for ref in spec.get(f"{kind}s") or []:
                    declared = (stack.get(f"{kind}s") or {}).get(ref["source"])
                    if declared is None:
                        return "", f"service {key}: undefined {kind} \"{ref['source']}\"\n", 1
                    if not declared.get("external"):
                        return "", f"fake swarm: only external {kind}s here ({ref['source']})\n", 127
                    if ref["source"] not in objects:
                        return "", f"failed to create service {namespace}_{key}: Error response from daemon: rpc error: " \
                                   f"code = InvalidArgument desc = {kind} not found: {ref['source']}\n", 1
        self.deployed.append((path, stack))
        for key, net in (stack.get("networks") or {}).items():
            name = f"{namespace}_{key}"
            if name not in self.networks:
                self.index += 1
                self.networks[name] = {"id": self._id("network"), "driver": net.get("driver", "overlay"),
                                       "internal": bool(net.get("internal")), "encrypted": "encrypted" in (net.get("driver_opts") or {}),
                                       "labels": {STACK_LABEL: namespace}}
        failed = []
        for key, given in sorted(services.items()):
            name = f"{namespace}_{key}"
            spec = copy.deepcopy(given)
            spec["image"] = pinned(spec["image"])
            spec["networks"] = [f"{namespace}_{n}" for n in spec.get("networks", [])]
            labels = {STACK_LABEL: namespace, IMAGE_LABEL: given["image"]}
            svc = self.services.get(name)
            if svc is None:
                self.index += 1
                svc = SwarmService(self._id("service"), name, spec, labels, {STACK_LABEL: namespace}, self.index, self.index)
                self.services[name] = svc
                self._place(svc)
            else:
                svc.labels = labels
                self._update(svc, spec)
            if svc.update and svc.update[0] in ("rollback_completed", "paused", "rollback_paused"):
                failed.append(f"{svc.id}: service {'rolled back' if svc.update[0] == 'rollback_completed' else 'update paused'}: "
                              f"{svc.update[1]}\n")
        return "", "".join(failed), self.rollback_exit if failed else 0

    def _stack_rm(self, args: Argv) -> tuple[str, str, int]:
        for namespace in args:
            for svc in [s for s in self.services.values() if s.labels.get(STACK_LABEL) == namespace]:
                self._remove(svc)
            for name in [n for n, net in self.networks.items() if net["labels"].get(STACK_LABEL) == namespace]:
                del self.networks[name]
        return "", "", 0

    def _remove_objects(self, kind: str, names: Sequence[str]) -> tuple[str, str, int]:
        objects = self.secrets if kind == "secret" else self.configs
        err = []
        for name in names:
            users = [s.name for s in self.services.values() if name in {r["source"] for r in s.spec.get(f"{kind}s") or []}]
            if name not in objects:
                err.append(f"Error response from daemon: {kind} {name} not found\n")
            elif users:
                err.append(f"Error response from daemon: rpc error: code = InvalidArgument desc = {kind} '{name}' is in use by the "
                           f"following service: {', '.join(users)}\n")
            else:
                del objects[name]
        return "", "".join(err), 1 if err else 0

    # --- swarmkit: updates, the orchestrator, the scheduler ---------------------------------
    def _update(self, svc: SwarmService, spec: dict[str, Any]) -> None:
        """controlapi.UpdateService, then the updater: every update is a write (the version
        moves, the spec before is kept, UpdateStatus is reset); new tasks only for a changed
        task template, which may fail and be rolled back."""
        self.index += 1
        svc.previous, svc.spec, svc.update, svc.version = svc.spec, spec, None, self.index
        assert svc.previous is not None
        if template(svc.previous) == template(spec):
            self._place(svc)  # the replicas may have changed: no update, the orchestrator adds or removes tasks
            return
        self.index += 1
        svc.update, svc.version = ("updating", "update in progress"), self.index
        outcome = self._replace_tasks(svc)
        self.index += 1
        svc.version = self.index
        if outcome is None:
            self._place(svc)
            svc.update = ("completed", "update completed")
            return
        config = (spec.get("deploy") or {}).get("update_config") or {}
        action = config.get("failure_action", "pause")
        if action == "rollback":
            svc.update = ("rollback_started", f"update rolled back due to failure or early termination of task {outcome.id}")
            svc.spec, svc.previous = svc.previous, None
            self._replace_tasks(svc, rollback=True)  # the slots updated already go back
            self._place(svc)  # the old tasks run (start-first), or the stopped one starts again
            self.index += 1
            svc.version, svc.update = self.index, ("rollback_completed", "rollback completed")
        else:
            svc.update = ("paused", f"update paused due to failure or early termination of task {outcome.id}")

    def _replace_tasks(self, svc: SwarmService, rollback: bool = False) -> SwarmTask | None:
        """Each task of another task template replaced by one of the current spec
        (start-first: the new one first; stop-first: the old one stopped first); the first
        new task that fails stops the update and is returned."""
        deploy = svc.spec.get("deploy") or {}
        config = deploy.get("rollback_config" if rollback else "update_config") or {}
        start_first = config.get("order") == "start-first"
        outdated = [t for t in self._active(svc) if template(t.spec) != template(svc.spec)]
        for old in sorted(outdated, key=lambda t: (t.slot or 0, t.node)):
            if not start_first:
                self._stop(old)
            new = self._start(svc, old.slot, old.node)
            if new.state != "running":
                return new
            if start_first:
                self._stop(old)
        return None

    def _place(self, svc: SwarmService) -> None:
        """The orchestrator: a task per slot (replicated) or per eligible node (global), of the current spec."""
        nodes = self._eligible(svc.spec)
        active = self._active(svc)
        if svc.global_mode:
            have = {t.node for t in active}
            for n in nodes:
                if n not in have:
                    self._start(svc, None, n)
            for t in active:
                if t.node not in nodes:
                    self._stop(t)
            return
        slots = {t.slot for t in active}
        for slot in range(1, svc.replicas + 1):
            if slot not in slots:
                self._start(svc, slot, nodes[(slot - 1) % len(nodes)] if nodes else "")
        for t in active:
            if (t.slot or 0) > svc.replicas:
                self._stop(t)

    def _eligible(self, spec: Mapping[str, Any]) -> list[str]:
        constraints = (((spec.get("deploy") or {}).get("placement") or {}).get("constraints")) or []
        return [n for n in self.hosts if all(self._satisfies(n, c) for c in constraints)]

    def _satisfies(self, node: str, constraint: str) -> bool:
        m = re.fullmatch(r"\s*node\.(?:labels\.([\w.-]+)|(role|hostname))\s*(==|!=)\s*(\S+)\s*", constraint)
        if not m:
            return False
        if m.group(1):
            value = self.labels[node].get(m.group(1), "")
        elif m.group(2) == "role":
            value = "manager" if self.hosts[node].has("manager") else "worker"
        else:
            value = node
        return (value == m.group(4)) == (m.group(3) == "==")

    def _active(self, svc: SwarmService) -> list[SwarmTask]:
        return [t for t in self.tasks if t.service == svc.name and t.desired == "Running" and t.state in ("running", "pending")]

    def _healthy(self, svc: SwarmService) -> bool:
        """A task of ``svc`` now passes its healthcheck (a one-off has none: it runs to its end)."""
        marked = self.unhealthy.get(tag_of(str(svc.spec["image"])), set())
        return not svc.spec.get("healthcheck") or not (marked is None or svc.key in marked)

    def _start(self, svc: SwarmService, slot: int | None, node: str) -> SwarmTask:
        self.index += 1
        task = SwarmTask(self._id("task"), svc.name, slot, node, copy.deepcopy(svc.spec), dict(svc.container_labels))
        if not node:
            task.state, task.error = "pending", f"no suitable node (scheduling constraints not satisfied on {len(self.hosts)} nodes)"
        elif not self._healthy(svc):
            task.desired, task.state, task.error, task.exit_code = "Shutdown", "failed", UNHEALTHY_EXIT, 143
        self.tasks.append(task)
        self._prune(svc.name, slot, node)
        return task

    def _stop(self, task: SwarmTask) -> None:
        self.index += 1
        task.desired = "Shutdown"
        if task.state in ("running", "pending"):
            task.state = "shutdown"

    def _end(self, task: SwarmTask, how: str) -> None:
        task.desired, task.state = "Shutdown", how
        if how == "failed":
            task.error, task.exit_code = "task: non-zero exit (1)", 1

    def _prune(self, service: str, slot: int | None, node: str) -> None:
        """The task history: the newest HISTORY_LIMIT tasks of a slot are kept (and their containers)."""
        mine = [t for t in self.tasks if t.service == service and t.slot == slot and (slot is not None or t.node == node)]
        for t in mine[:-HISTORY_LIMIT]:
            self.tasks.remove(t)

    def _remove(self, svc: SwarmService) -> None:
        self.index += 1
        del self.services[svc.name]
        self.tasks = [t for t in self.tasks if t.service != svc.name]

    def _id(self, kind: str) -> str:
        self._ids += 1
        return _hash(kind, str(self._ids))[:25]

    # --- Docker's JSON -----------------------------------------------------------------------
    def _service_json(self, svc: SwarmService) -> dict[str, Any]:
        out: dict[str, Any] = {"ID": svc.id, "Version": {"Index": svc.version}, "CreatedAt": WHEN, "UpdatedAt": WHEN,
                               "Spec": self._spec_json(svc, svc.spec)}
        if svc.previous is not None:
            out["PreviousSpec"] = self._spec_json(svc, svc.previous)
        out["Endpoint"] = {"Spec": out["Spec"]["EndpointSpec"]}
        if svc.update is not None:
            out["UpdateStatus"] = {"State": svc.update[0], "StartedAt": WHEN, "Message": svc.update[1],
                                   **({"CompletedAt": WHEN} if svc.update[0].endswith("completed") else {})}
        return out

    def _spec_json(self, svc: SwarmService, spec: Mapping[str, Any]) -> dict[str, Any]:
        deploy = spec.get("deploy") or {}
        env = spec.get("environment") or {}
        container: dict[str, Any] = {
            "Image": spec["image"], "Labels": dict(svc.container_labels), "Env": [f"{k}={v}" for k, v in sorted(env.items())],
            "Secrets": [{"File": {"Name": s["target"], "UID": "0", "GID": "0", "Mode": s.get("mode", 0o444)},
                         "SecretID": self.secrets[s["source"]].id if s["source"] in self.secrets else "", "SecretName": s["source"]}
                        for s in spec.get("secrets") or []],
            "Configs": [{"File": {"Name": c["target"], "UID": "0", "GID": "0", "Mode": c.get("mode", 0o444)},
                         "ConfigID": self.configs[c["source"]].id if c["source"] in self.configs else "", "ConfigName": c["source"]}
                        for c in spec.get("configs") or []],
            "Isolation": "default"}
        if spec.get("command"):
            container["Args"] = list(spec["command"])
        if spec.get("user"):
            container["User"] = spec["user"]
        constraints = (deploy.get("placement") or {}).get("constraints") or []
        task = {"ContainerSpec": container, "Placement": {"Constraints": list(constraints)} if constraints else {},
                "Networks": [{"Target": self.networks[n]["id"] if n in self.networks else n, "Aliases": [svc.key]}
                             for n in spec.get("networks", [])],
                "ForceUpdate": 0, "Runtime": "container"}
        mode = {"Global": {}} if deploy.get("mode") == "global" else {"Replicated": {"Replicas": int(deploy.get("replicas", 1))}}
        ports = [{"Protocol": p.get("protocol", "tcp"), "TargetPort": int(p["target"]), "PublishedPort": int(p["published"]),
                  "PublishMode": p.get("mode", "ingress")} for p in spec.get("ports") or []]
        out: dict[str, Any] = {"Name": svc.name, "Labels": dict(svc.labels), "TaskTemplate": task, "Mode": mode,
                               "EndpointSpec": {"Mode": deploy.get("endpoint_mode", "vip"), **({"Ports": ports} if ports else {})}}
        for key, config in (("UpdateConfig", deploy.get("update_config")), ("RollbackConfig", deploy.get("rollback_config"))):
            if config:
                out[key] = {"Parallelism": config.get("parallelism", 1), "FailureAction": config.get("failure_action", "pause"),
                            "Monitor": _ns(str(config.get("monitor", "5s"))), "MaxFailureRatio": config.get("max_failure_ratio", 0),
                            "Order": config.get("order", "stop-first")}
        return out

    def _node_json(self, node: str) -> dict[str, Any]:
        host = self.hosts[node]
        return {"ID": self.node_ids[node], "Description": {"Hostname": node},
                "Spec": {"Role": "manager" if host.has("manager") else "worker", "Availability": "active", "Labels": dict(self.labels[node])},
                "Status": {"State": "ready", "Addr": host.reach},
                **({"ManagerStatus": {"Leader": node == next(n for n, h in self.hosts.items() if h.has("manager")),
                                      "Reachability": "reachable", "Addr": f"{host.reach}:2377"}} if host.has("manager") else {})}

    # --- a node's task containers, and HTTP through its proxy --------------------------------
    def containers_on(self, node: str, running_only: bool = False) -> list[SwarmTask]:
        """The tasks on ``node`` that have a container: running ones, and the exited containers of
        the tasks still in the history."""
        return [t for t in self.tasks if t.node == node and t.state not in ("pending", "rejected")
                and (t.state == "running" or not running_only)]

    def docker_ps(self, node: str, args: Argv) -> tuple[str, str, int]:
        with self.lock:
            found, _ = options(args, ("--filter", "-f", "--format"))
            chosen = [t for t in self.containers_on(node, running_only="--all" not in found and "-a" not in found)
                      if matches(t.container_labels, label_filters(found))]
            return "".join(f"{t.container}\n" for t in chosen), "", 0

    def docker_inspect(self, node: str, args: Argv) -> tuple[str, str, int]:
        with self.lock:
            _, refs = options(args, ("--type", "--format", "-f"))
            mine = {t.container: t for t in self.containers_on(node)}
            found = [mine[r] for r in refs if r in mine]
            missing = [r for r in refs if r not in mine]
            return (json.dumps([self._container_json(t) for t in found]), "".join(f"Error: No such container: {r}\n" for r in missing),
                    1 if missing else 0)

    def task_container(self, node: str, ref: str) -> SwarmTask | None:
        """The running task whose container is ``ref`` (an id or a name) on ``node``."""
        with self.lock:
            return next((t for t in self.containers_on(node, running_only=True)
                         if ref in (t.container, t.container[:12], self._container_name(t))), None)

    def _container_name(self, task: SwarmTask) -> str:
        return f"{task.name(self.node_ids[task.node])}.{task.id}"

    def _container_json(self, task: SwarmTask) -> dict[str, Any]:
        spec = task.spec
        running = task.state == "running"
        key = task.service.split("_", 1)[-1]
        image_labels = ({"org.opencontainers.image.version": tag_of(task.image), "org.opencontainers.image.title": key}
                        if task.image.startswith(f"{REGISTRY}/") else {})
        labels = {**image_labels, **task.container_labels, "com.docker.swarm.service.name": task.service,
                  "com.docker.swarm.task.name": self._container_name(task), "com.docker.swarm.task.id": task.id,
                  "com.docker.swarm.node.id": self.node_ids[task.node], "com.docker.swarm.task": ""}
        ports = {f"{p['target']}/{p.get('protocol', 'tcp')}": [{"HostIp": "0.0.0.0", "HostPort": str(p["published"])}]
                 for p in spec.get("ports") or [] if p.get("mode") == "host"}
        logging = spec.get("logging") or {}
        state: dict[str, Any] = {"Status": "running" if running else "exited", "Running": running,
                                 "ExitCode": 0 if running or task.state == "complete" else task.exit_code, "StartedAt": WHEN}
        if running and spec.get("healthcheck"):
            state["Health"] = {"Status": "healthy", "Log": [{"Output": ""}]}
        return {"Id": task.container, "Name": "/" + self._container_name(task),
                "Config": {"Image": task.image, "Labels": labels, "User": str(spec.get("user") or ""),
                           "Env": [f"{k}={v}" for k, v in sorted((spec.get("environment") or {}).items())]},
                "State": state,
                "HostConfig": {"ReadonlyRootfs": bool(spec.get("read_only")),
                               "LogConfig": {"Type": logging.get("driver", "json-file"), "Config": dict(logging.get("options") or {})}},
                "NetworkSettings": {"Ports": ports, "Networks": {
                    n: {"IPAddress": f"10.0.{i + 1}.{self.tasks.index(task) % 250 + 2}" if running else ""}
                    for i, n in enumerate(spec.get("networks", []))}}}

    def http(self, node: str, port: int, path: str) -> HttpResponse:
        """GET through the proxy task ``node`` runs, published on ``port``: its own health, the
        API (a running backend task answers, with its version), the rest (a running web task)."""
        with self.lock:
            proxies = [t for t in self.containers_on(node, running_only=True)
                       if any(int(p["published"]) == port for p in t.spec.get("ports") or [] if p.get("mode") == "host")]
            if not proxies:
                return HttpResponse(0, b"", "connection refused")
            if path == "/nginx-health":
                return HttpResponse(200, b"ok")
            answering = self.running("backend" if path.startswith("/api/") else "web")
            if not answering:
                return HttpResponse(502, b"", "502 Bad Gateway")
            return HttpResponse(200, b"ok", headers=(("x-app-version", tag_of(answering[0].image)),))


class _Stdin(io.BytesIO):
    """A stdin whose bytes go to ``fed`` when it is closed."""

    def __init__(self, fed: Callable[[bytes], None]) -> None:
        super().__init__()
        self.fed = fed

    def close(self) -> None:
        if not self.closed:
            self.fed(self.getvalue())
        super().close()


class Creation(FakeProcess):
    """A spawned ``docker secret|config create ... NAME -``: the object is made from its
    stdin once closed (until then the command has not ended: exit -1)."""

    def __init__(self, make: Callable[[bytes], tuple[str, str, int]]) -> None:
        super().__init__(code=-1)
        self.stdin = _Stdin(self._fed)
        self.make = make

    def _fed(self, data: bytes) -> None:
        out, self._stderr, self.code = self.make(data)
        self.stdout = io.BytesIO(out.encode())


class SwarmNode(FakeEngine):
    """One host of ``swarm`` over SSH, its deploy directory ``host.deploy_dir``."""

    def __init__(self, swarm: Swarm, host: Host, journal: list[Called], registry: Registry | None = None) -> None:
        super().__init__(host.name, local=False, workdir=host.deploy_dir, project=swarm.project, journal=journal, registry=registry)
        self.swarm, self.host = swarm, host
        self.modes: dict[str, int] = {}  # the mode each file was written with
        self.fed: list[tuple[Argv, bytes]] = []  # what spawned commands read on their stdin

    def _simulate(self, argv: Argv, env: Mapping[str, str]) -> tuple[str, str, int]:
        if argv[:2] == ("docker", "info") and "{{json .Swarm}}" in argv:
            return self.swarm.info(self.name), "", 0
        if argv[:1] == ("docker",) and len(argv) > 1 and argv[1] in CLUSTER_COMMANDS:
            return self.swarm.manage(self, argv) if self.host.has("manager") else ("", NOT_A_MANAGER, 1)
        if argv[:2] == ("docker", "ps"):
            return self.swarm.docker_ps(self.name, argv[2:])
        if argv[:2] == ("docker", "inspect"):
            return self.swarm.docker_inspect(self.name, argv[2:])
        if argv[:2] == ("docker", "exec"):
            ref = exec_parts(argv)[0]
            if self.swarm.task_container(self.name, ref) is None:
                return "", f"Error response from daemon: No such container: {ref}", 1
            return "", "", 0
        return super()._simulate(argv, env)

    def spawn(self, argv: Sequence[str], *, env: Mapping[str, str] | None = None, stdin: bool = False) -> FakeProcess:
        argv = tuple(argv)
        creating = argv[:1] == ("docker",) and len(argv) > 2 and argv[1] in ("secret", "config") and argv[2] == "create"
        missing = argv[:2] == ("docker", "exec") and self.swarm.task_container(self.name, exec_parts(argv)[0]) is None
        if not (creating or missing):
            return super().spawn(argv, env=env, stdin=stdin)
        with self._lock:
            self.journal.append(Called(self.name, argv, dict(env or {})))
            failure = self._failure(argv)
        if failure:
            return FakeProcess(code=failure.exited, stderr=failure.stderr)
        if missing:
            return FakeProcess(code=1, stderr=f"Error response from daemon: No such container: {exec_parts(argv)[0]}")
        if not self.host.has("manager"):
            return FakeProcess(code=1, stderr=NOT_A_MANAGER)

        def make(data: bytes) -> tuple[str, str, int]:
            self.fed.append((argv, data))
            return self.swarm.create_object(argv[1], argv[3:], data)

        return Creation(make)

    def fetch(self, port: int, path: str, timeout: float = 5.0, tls: bool = False,
              headers: Mapping[str, str] | None = None) -> HttpResponse:
        argv = ("fetch", str(port), path)
        with self._lock:
            self.journal.append(Called(self.name, argv))
            failure = self._failure(argv)
        if failure:
            return HttpResponse(502, b"", failure.stderr)
        return self.swarm.http(self.name, port, path)

    def write_bytes(self, path: str, data: bytes, mode: int) -> None:
        super().write_bytes(path, data, mode)
        self.modes[path] = mode


class MissingVariable(Exception):
    """A ``${NAME:?message}`` Compose would refuse."""


def compose_config(root: Path, env: Mapping[str, str], project: str = "myapp") -> dict[str, Any]:
    """What ``docker compose -p PROJECT -f compose/docker-compose.yml -f
    compose/docker-compose.prod.yml config --format json`` prints with ``env`` (Compose
    v2.40; the ``x-`` extensions, ``ipam: {}`` and bind options left out). A test checks it
    against the real Compose when there is one."""
    base = root / "compose"

    def var(name: str, default: str = "") -> str:  # ${NAME:-default}
        return env.get(name) or default

    def required(name: str) -> str:  # ${NAME:?...}
        if not env.get(name):
            raise MissingVariable(f"required variable {name} is missing a value: {name} is required (see .env.example)")
        return env[name]

    def path(value: str) -> str:
        return os.path.normpath(os.path.join(base, value))

    def bind(source: str, target: str) -> dict[str, Any]:
        return {"type": "bind", "source": path(source), "target": target, "read_only": True}

    logging = {"driver": "json-file", "options": {"max-file": "3", "max-size": "10m"}}
    node_health = ["CMD", "node", "-e", "require('http').get({host: '127.0.0.1', port: 3000, path: '/health'}, (r) => "
                   "process.exit(r.statusCode === 200 ? 0 : 1)).on('error', () => process.exit(1))"]
    stage = {"com.compose-deploy.stage": var("DEPLOY_STAGE")}  # every container's label (x-stage)
    app = {"command": None, "entrypoint": None, "labels": stage, "logging": logging, "read_only": True, "restart": "always",
           "security_opt": ["no-new-privileges:true"], "stop_grace_period": "30s", "tmpfs": ["/tmp:size=64m"]}
    registry, namespace, version = var("DOCKER_REGISTRY", "local"), var("DOCKER_NAMESPACE", "myapp"), var("APP_VERSION", "latest")

    def node_app(name: str, replicas: int, cpus: float, memory: str, start: str) -> dict[str, Any]:
        dockerfile = f"../compose/dockerfiles/{name}.{'nestjs' if name == 'backend' else 'nextjs'}.Dockerfile"
        return {**app, "build": {"context": path(var(f"{name.upper()}_CONTEXT", "../examples")), "network": "host",
                                 "dockerfile": var(f"{name.upper()}_DOCKERFILE", dockerfile)},
                "deploy": {"replicas": replicas, "resources": {"limits": {"cpus": 2 if name == "backend" else 1, "memory": memory},
                                                               "reservations": {"cpus": cpus, "memory": "536870912"}}, "placement": {}},
                "healthcheck": {"test": node_health, "timeout": "5s", "interval": "5s", "retries": 3, "start_period": start},
                "image": f"{registry}/{namespace}/{name}:{version}"}

    backend = node_app("backend", 3, 1, "2147483648", "30s")
    backend["build"]["args"] = {"APP_VERSION": var("APP_VERSION", "dev"), "NODE_IMAGE": var("NODE_IMAGE", "node:20-alpine")}
    backend.update(
        depends_on={"postgres": {"condition": "service_healthy", "required": True}, "redis": {"condition": "service_healthy", "required": True}},
        environment={"CORS_ORIGIN": var("CORS_ORIGIN"), "JWT_SECRET": required("JWT_SECRET"), "NODE_ENV": "production",
                     "PGDATABASE": var("POSTGRES_DB", "app"), "PGHOST": "postgres", "PGPASSWORD": required("POSTGRES_PASSWORD"),
                     "PGPORT": "5432", "PGUSER": var("POSTGRES_USER", "app"), "PG_POOL_MAX": var("PG_POOL_MAX", "50"), "PORT": "3000",
                     "REDIS_HOST": "redis", "REDIS_PASSWORD": required("REDIS_PASSWORD"), "REDIS_PORT": "6379"},
        networks={"back": None, "front": None})
    web = node_app("web", 4, 0.5, "1073741824", "20s")
    web["build"]["args"] = {"APP_VERSION": var("APP_VERSION", "dev"), "NEXT_PUBLIC_API_URL": var("NEXT_PUBLIC_API_URL", "/api"),
                            "NEXT_PUBLIC_APP_URL": var("NEXT_PUBLIC_APP_URL", "http://localhost"), "NODE_IMAGE": var("NODE_IMAGE", "node:20-alpine")}
    web.update(environment={"NEXT_PUBLIC_API_URL": var("NEXT_PUBLIC_API_URL", "/api"),
                            "NEXT_PUBLIC_APP_URL": var("NEXT_PUBLIC_APP_URL", "http://localhost"), "NODE_ENV": "production", "PORT": "3000"},
               networks={"front": None})
    nginx_files = [("nginx.conf.template", "/etc/nginx/templates/nginx.conf.template"), ("proxy.conf", "/etc/nginx/proxy.conf"),
                   ("router.conf", "/etc/nginx/router.conf"), ("start.sh", "/etc/nginx/start.sh"),
                   ("site.conf.template", "/etc/nginx/templates/site.conf.template"), ("tls.conf", "/etc/nginx/tls.conf"),
                   ("router-proxy.conf", "/etc/nginx/router-proxy.conf"), ("security-headers.conf", "/etc/nginx/security-headers.conf")]
    nginx = {
        **{k: v for k, v in app.items() if k != "tmpfs"}, "tmpfs": ["/tmp"], "user": "101:101",
        "command": ["/bin/sh", "/etc/nginx/start.sh"],
        "sysctls": {"net.ipv4.tcp_keepalive_intvl": "1", "net.ipv4.tcp_keepalive_probes": "3", "net.ipv4.tcp_keepalive_time": "3",
                    "net.ipv4.tcp_retries2": "4"},
        "depends_on": {"backend": {"condition": "service_started", "required": True}, "web": {"condition": "service_started", "required": True}},
        "deploy": {"resources": {"limits": {"cpus": 1, "memory": "268435456"}}, "placement": {}},
        "environment": {"NGINX_API_BURST": var("NGINX_API_BURST", "100"), "NGINX_API_RATE": var("NGINX_API_RATE", "50r/s"),
                        "NGINX_HTTPS_PORT": var("HTTPS_PORT", "443"), "NGINX_WEB_BURST": var("NGINX_WEB_BURST", "200"),
                        "NGINX_WEB_RATE": var("NGINX_WEB_RATE", "100r/s")},
        "healthcheck": {"test": ["CMD", "wget", "-q", "-t", "1", "-T", "2", "-O", "/dev/null", "http://127.0.0.1:8080/nginx-health"],
                        "timeout": "3s", "interval": "3s", "retries": 3, "start_period": "5s"},
        "image": var("NGINX_IMAGE", "nginx:1.27-alpine"), "networks": {"front": None},
        "ports": [{"mode": "ingress", "host_ip": var("HTTP_BIND", "0.0.0.0"), "target": 8080, "published": var("HTTP_PORT", "80"),
                   "protocol": "tcp"},
                  {"mode": "ingress", "host_ip": var("HTTPS_BIND", "0.0.0.0"), "target": 8443, "published": var("HTTPS_PORT", "443"),
                   "protocol": "tcp"}],
        "volumes": [*(bind(f"./nginx/{f}", target) for f, target in nginx_files),
                    bind(var("NGINX_UPSTREAMS_DIR", "./nginx/upstreams"), "/etc/nginx/upstreams"),
                    bind(var("NGINX_TLS_DIR", "./nginx/tls"), "/etc/nginx/tls"), bind(var("NGINX_ACME_DIR", "./nginx/acme"), "/var/www/acme")],
    }
    postgres = {
        "command": ["postgres", "-c", "config_file=/etc/postgresql/postgresql.conf"], "entrypoint": None,
        "deploy": {"resources": {"limits": {"cpus": 2, "memory": "4294967296"}, "reservations": {"memory": "1073741824"}}, "placement": {}},
        "environment": {"POSTGRES_DB": var("POSTGRES_DB", "app"), "POSTGRES_PASSWORD": required("POSTGRES_PASSWORD"),
                        "POSTGRES_USER": var("POSTGRES_USER", "app")},
        "healthcheck": {"test": ["CMD-SHELL", 'pg_isready -q -h 127.0.0.1 -U "$$POSTGRES_USER" -d "$$POSTGRES_DB"'],
                        "timeout": "3s", "interval": "3s", "retries": 10, "start_period": "30s"},
        "image": var("POSTGRES_IMAGE", "postgres:16-alpine"), "labels": stage, "logging": logging, "networks": {"back": None}, "restart": "always",
        "shm_size": "268435456", "stop_grace_period": "1m0s",
        "volumes": [{"type": "volume", "source": "postgres-data", "target": "/var/lib/postgresql/data"},
                    bind("./postgres/postgresql.conf", "/etc/postgresql/postgresql.conf"),
                    bind("./postgres/init.sql", "/docker-entrypoint-initdb.d/10-init.sql")],
    }
    redis_password = required("REDIS_PASSWORD")
    redis = {
        "command": ["/bin/sh", "-c", 'if [ -n "$${REDIS_PASSWORD_FILE:-}" ]; then REDIS_PASSWORD=$$(cat "$$REDIS_PASSWORD_FILE") || exit 1; fi\n'
                    'case "$$REDIS_PASSWORD" in *[[:cntrl:]\\"\\\\]*)\n    echo "redis: REDIS_PASSWORD holds a double quote, a backslash '
                    'or a control character (redis.conf cannot carry it)" >&2; exit 1 ;;\nesac\n'
                    'exec redis-server /usr/local/etc/redis/redis.conf - <<EOF\nrequirepass "$$REDIS_PASSWORD"\nEOF\n'],
        "deploy": {"resources": {"limits": {"cpus": 1, "memory": "2147483648"}, "reservations": {"memory": "268435456"}}, "placement": {}},
        "entrypoint": None, "environment": {"REDISCLI_AUTH": redis_password, "REDIS_PASSWORD": redis_password},
        "healthcheck": {"test": ["CMD-SHELL", '[ -z "$${REDISCLI_AUTH_FILE:-}" ] || export REDISCLI_AUTH="$$(cat "$$REDISCLI_AUTH_FILE")"; '
                                 "redis-cli ping | grep -q PONG"],
                        "timeout": "3s", "interval": "3s", "retries": 10, "start_period": "10s"},
        "image": var("REDIS_IMAGE", "redis:7-alpine"), "labels": stage, "logging": logging, "networks": {"back": None}, "restart": "always",
        "stop_grace_period": "30s", "user": "redis",
        "volumes": [{"type": "volume", "source": "redis-data", "target": "/data"}, bind("./redis/redis.conf", "/usr/local/etc/redis/redis.conf")],
    }
    return {"name": project,
            "networks": {"back": {"name": f"{project}_back", "internal": True}, "front": {"name": f"{project}_front"}},
            "services": {"backend": backend, "nginx": nginx, "postgres": postgres, "redis": redis, "web": web},
            "volumes": {"postgres-data": {"name": f"{project}_postgres-data"}, "redis-data": {"name": f"{project}_redis-data"}}}


class Workstation(FakeEngine):
    """This machine: build, tag, push, git and the tests (FakeEngine), and ``docker compose
    config --format json`` as the repository's compose files give it (``compose_config``)."""

    def __init__(self, root: Path, journal: list[Called], registry: Registry | None = None) -> None:
        super().__init__("here", journal=journal, registry=registry)
        self.root = root

    def _compose(self, argv: Argv, env: Mapping[str, str]) -> tuple[str, str, int]:
        sub, args = compose_sub(argv)
        if sub == "config" and "json" in args:
            files = tuple(argv[i + 1] for i, a in enumerate(argv[:-1]) if a == "-f")
            if files != tuple(str(self.root / f) for f in COMPOSE_FILES):
                return "", f"fake workstation: compose_config merges {', '.join(COMPOSE_FILES)}, not {', '.join(files)}", 127
            try:
                return json.dumps(compose_config(self.root, env, self.project)), "", 0
            except MissingVariable as err:
                return "", str(err), 15
        return super()._compose(argv, env)


if TYPE_CHECKING:
    _node: Target = SwarmNode(Swarm([]), Host("n", "", ("manager",), "/srv/x"), [])  # mypy checks the fakes implement the protocol
    _here: Target = Workstation(Path("/"), [])
