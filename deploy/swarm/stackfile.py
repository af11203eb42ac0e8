"""The stack file ``docker stack deploy`` reads, rendered from the stage's compose files.

``docker stack deploy`` takes the v3 schema: it rejects ``build:``, a top-level
``name:`` and ``depends_on`` conditions, reads no .env file, and ignores ``restart``,
``tmpfs`` and ``security_opt``. So the merged configuration (``docker compose config``,
interpolated here with the stage's env) is turned into a stack file:

- the app images are the release's tags pinned to the digests they were pushed as
  (``REPOSITORY:TAG@sha256:...``: Swarm asks the registry nothing for them, so a tag
  moved since changes nothing); the others are tags Swarm pins when it deploys;
- a variable holding one of the stage's secrets becomes ``NAME_FILE`` naming a Swarm
  secret mounted at /run/secrets/NAME (the apps and images read ``*_FILE``); any other
  place a secret's value shows in (a command, a label, a DSN, a mounted file), in any of
  its forms (``deploy.config.masking.forms``, and Compose's ``$$``), is refused; so is a
  variable named like a secret (``masking.SECRET_NAME``) that is not declared;
- a bind-mounted file becomes a Swarm config (named by its content: configs cannot
  change), a bind-mounted directory an empty tmpfs, and ``tmpfs:`` tmpfs mounts;
- every service resolves by DNS round-robin (``endpoint_mode: dnsrr``: the virtual IP
  needs IPVS) and the proxy finds the healthy tasks itself (``NGINX_DISCOVER``);
- the stateless services get their replicas, ``order: start-first`` updates that Swarm
  rolls back when a new task fails; the proxy runs once on every edge node, published
  on that node's ports (``mode: host``); the stateful services stay on the db node.

The stateful services are a file of their own, deployed only when they are missing:
a deploy of the app file leaves them as they run.
"""
from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from deploy.config import masking
from deploy.errors import fail

DROPPED = ("build", "container_name", "depends_on", "restart", "security_opt", "profiles", "pull_policy", "shm_size", "tmpfs",
           "expose", "links", "cgroup_parent", "devices", "network_mode", "userns_mode", "extra_hosts", "init")
SECRETS_DIR = "/run/secrets"
NAME_LIMIT = 64  # Swarm's longest secret or config name
EMBEDDED_MIN = masking.MIN_LENGTH  # a secret this long found inside another value is refused (shorter ones match by chance)
UPDATE_MONITOR = "10s"  # how long a new task is watched after it became healthy before the next one


@dataclass(frozen=True)
class Roles:
    """What the stack's services are (invoke.yaml deploy.services)."""

    stateless: Mapping[str, int]  # service -> its port
    stateful: Sequence[str]
    proxy: str


@dataclass(frozen=True)
class StackFiles:
    """The rendered stack: the app part and the stateful part, and the Swarm secrets
    and configs they use (name -> content), created before either is deployed."""

    app: dict[str, Any]
    stateful: dict[str, Any]
    secrets: dict[str, bytes] = field(repr=False)
    configs: dict[str, bytes]


def object_name(stack: str, key: str, content: bytes) -> str:
    """A secret's or config's name: Swarm cannot change one, so a new content is a new
    name (at most 64 characters: a long key is cut)."""
    digest = hashlib.sha256(stack.encode() + b"\0" + key.encode() + b"\0" + content).hexdigest()[:12]
    key = re.sub(r"[^A-Za-z0-9_.-]", "-", key)[:max(1, NAME_LIMIT - len(stack) - len(digest) - 2)]
    return f"{stack}_{key}_{digest}"


def unescaped(value: str) -> str:
    """A value of ``docker compose config``'s output as the container sees it (``$$`` is ``$``)."""
    return value.replace("$$", "$")


def tmpfs_mount(spec: str) -> dict[str, Any]:
    """Compose's ``tmpfs: ["/tmp:size=64m"]`` as a tmpfs mount."""
    target, _, options = spec.partition(":")
    mount: dict[str, Any] = {"type": "tmpfs", "target": target}
    size = dict(o.split("=", 1) for o in options.split(",") if "=" in o).get("size")
    if size:
        mount["tmpfs"] = {"size": byte_count(size)}
    return mount


def byte_count(text: str) -> int:
    """'64m' (Compose's sizes) in bytes."""
    m = re.fullmatch(r"(\d+)([kmg]?)b?", text.strip().lower())
    if not m:
        fail(f"tmpfs size {text!r} is not a size", "write it as 64m, 1g or a number of bytes")
    return int(m.group(1)) * {"": 1, "k": 1024, "m": 1024 ** 2, "g": 1024 ** 3}[m.group(2)]


class Renderer:
    """Renders one stage's merged compose configuration (``config``) for stack
    ``stack``. ``secrets``: the values of the stage's secret variables (each a Swarm
    secret); ``named``: the other variables that hold one (named like a secret: shown
    nowhere, from EMBEDDED_MIN characters, shorter ones match by chance); ``replicas``:
    each stateless service's count; ``read``: a bind-mounted file's content, or None
    when the source is a directory; ``images``: a service's image instead of the one the
    configuration names (the app images, by digest)."""

    def __init__(self, stack: str, config: Mapping[str, Any], roles: Roles, secrets: Mapping[str, str],
                 replicas: Mapping[str, int], read: Callable[[str], bytes | None], encrypt: bool = True,
                 images: Mapping[str, str] | None = None, named: Mapping[str, str] | None = None) -> None:
        self.stack, self.config, self.roles = stack, config, roles
        self.images = dict(images or {})
        self.secret_values = {value: name for name, value in secrets.items() if value}
        self.shown_nowhere = {**{v: n for n, v in (named or {}).items() if len(v) >= EMBEDDED_MIN}, **self.secret_values}
        self.replicas = replicas
        self.read = read
        self.encrypt = encrypt
        self.secrets: dict[str, bytes] = {}
        self.configs: dict[str, bytes] = {}

    def render(self) -> StackFiles:
        """The app and stateful stack files, and the secrets and configs they name."""
        services = self.config.get("services") or {}
        missing = [s for s in [*self.roles.stateless, self.roles.proxy, *self.roles.stateful] if s not in services]
        if missing:
            fail(f"the compose files have no service {', '.join(missing)} (invoke.yaml deploy.services names them)",
                 "name the services of the compose files in deploy.services")
        app = [*self.roles.stateless, self.roles.proxy]
        rendered = {s: self.service(s, services[s]) for s in [*app, *self.roles.stateful]}
        for service, spec in rendered.items():
            self.refuse_secrets(service, spec)
        for config, content in self.configs.items():
            self.refuse_secrets(f"the config {config}", content.decode("latin-1"))
        app_file = self._file({s: rendered[s] for s in app})
        stateful_file = self._file({s: rendered[s] for s in self.roles.stateful})
        return StackFiles(app=app_file, stateful=stateful_file, secrets=dict(self.secrets), configs=dict(self.configs))

    def refuse_secrets(self, where: str, spec: Any, path: str = "") -> None:
        """Refuse a spec that shows one of the stage's secrets anywhere (command, healthcheck,
        labels, a DSN, a config file ...), in any of its forms (as masking finds them: as it
        is, JSON-escaped, URL-encoded with or without ``/``, with ``+`` for a space, inside
        shell quotes; and as Compose escapes it): a whole value of any length, inside a
        longer one from EMBEDDED_MIN characters (shorter ones match by chance)."""
        if isinstance(spec, Mapping):
            for key, value in spec.items():
                self.refuse_secrets(where, str(key), path)
                self.refuse_secrets(where, value, f"{path}.{key}" if path else str(key))
        elif isinstance(spec, (list, tuple)):
            for i, value in enumerate(spec):
                self.refuse_secrets(where, value, f"{path}[{i}]")
        elif isinstance(spec, str):
            for secret, name in self.shown_nowhere.items():
                forms = {*masking.forms(secret), secret.replace("$", "$$")}
                if any(spec == form or (len(secret) >= EMBEDDED_MIN and form in spec) for form in forms):
                    declared = secret in self.secret_values
                    fail(f"{where}{f' ({path})' if path else ''} shows the secret {name}: the stack file and the service's spec would show it",
                         f"pass {name} to the app as a variable of its own (it becomes a Swarm secret), "
                         "never inside commands, labels, other values or mounted files"
                         + ("" if declared else f"; and declare it a secret: invoke.yaml deploy.secret_env: [..., {name}]"))

    def _file(self, services: dict[str, dict[str, Any]]) -> dict[str, Any]:
        used_networks = sorted({n for s in services.values() for n in s.get("networks", [])})
        used_volumes = sorted({m["source"] for s in services.values() for m in s.get("volumes", []) if m.get("type") == "volume"})
        used_secrets = sorted({m["source"] for s in services.values() for m in s.get("secrets", [])})
        used_configs = sorted({m["source"] for s in services.values() for m in s.get("configs", [])})
        out: dict[str, Any] = {"version": "3.8", "services": services,
                               "networks": {n: self.network(n) for n in used_networks}}
        if used_volumes:
            out["volumes"] = {v: {} for v in used_volumes}
        if used_secrets:
            out["secrets"] = {name: {"external": True} for name in used_secrets}
        if used_configs:
            out["configs"] = {name: {"external": True} for name in used_configs}
        return out

    def network(self, name: str) -> dict[str, Any]:
        """An overlay network (encrypted unless the stage says not), internal if it was."""
        spec = (self.config.get("networks") or {}).get(name) or {}
        net: dict[str, Any] = {"driver": "overlay"}
        if spec.get("internal"):
            net["internal"] = True
        if self.encrypt:
            net["driver_opts"] = {"encrypted": ""}
        return net

    def service(self, name: str, spec: Mapping[str, Any]) -> dict[str, Any]:
        """One service of the v3 schema, from its merged compose configuration."""
        out = {k: v for k, v in spec.items() if k not in DROPPED and v is not None and k not in ("deploy", "ports", "volumes", "environment")}
        if name in self.images:
            out["image"] = self.images[name]
        env = {str(k): "" if v is None else str(v) for k, v in (spec.get("environment") or {}).items()}
        out["environment"], secrets = self.environment(env)
        if secrets:
            out["secrets"] = secrets
        mounts, configs = self.mounts(name, spec)
        if mounts:
            out["volumes"] = mounts
        if configs:
            out["configs"] = configs
        if isinstance(spec.get("networks"), Mapping):
            out["networks"] = sorted(spec["networks"])
        out["deploy"] = self.deploy(name, spec.get("deploy") or {})
        if name == self.roles.proxy:
            out["environment"]["NGINX_DISCOVER"] = " ".join(f"{s}:{p}" for s, p in sorted(self.roles.stateless.items()))
            out["ports"] = [self.port(name, p) for p in spec.get("ports") or [] if p.get("published")]
        return out

    def port(self, service: str, port: Mapping[str, Any]) -> dict[str, Any]:
        """A published port on the node's own address (``mode: host``): every address of
        the node, since a service's port cannot be bound to one address on a swarm."""
        published, host_ip = str(port["published"]), port.get("host_ip") or "0.0.0.0"
        if host_ip not in ("0.0.0.0", "::"):
            fail(f"{service} publishes {published} on {host_ip} only, which a swarm cannot do (every address of the node)",
                 "set its bind address to 0.0.0.0 (HTTP_BIND, HTTPS_BIND) and firewall the port instead")
        if not published.isdigit():
            fail(f"{service} publishes {published!r}: a swarm service publishes single ports", "give one port number")
        return {"target": int(port["target"]), "published": int(published), "protocol": port.get("protocol", "tcp"), "mode": "host"}

    def environment(self, env: Mapping[str, str]) -> tuple[dict[str, str], list[dict[str, Any]]]:
        """The variables, those holding a secret's value swapped for NAME_FILE and the secret."""
        plain: dict[str, str] = {}
        secrets = []
        for key, value in sorted(env.items()):
            real = unescaped(value)
            source = self.secret_values.get(real)
            if source is None:
                plain[key] = value
                continue
            secret = object_name(self.stack, source, real.encode())
            self.secrets[secret] = real.encode()
            secrets.append({"source": secret, "target": key, "mode": 0o444})
            plain[f"{key}_FILE"] = f"{SECRETS_DIR}/{key}"
        return plain, secrets

    def mounts(self, service: str, spec: Mapping[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        mounts: list[dict[str, Any]] = [tmpfs_mount(t) for t in spec.get("tmpfs") or []]
        if spec.get("shm_size"):  # a service gets no shm_size on a swarm: the same size as a tmpfs
            mounts.append({"type": "tmpfs", "target": "/dev/shm", "tmpfs": {"size": byte_count(str(spec["shm_size"]))}})
        configs = []
        for volume in spec.get("volumes") or []:
            kind, target = volume.get("type"), volume["target"]
            if kind == "volume":
                mounts.append({"type": "volume", "source": volume["source"], "target": target})
            elif kind == "tmpfs":
                mounts.append(tmpfs_mount(target))
            elif kind == "bind":
                content = self.read(volume["source"])
                if content is None:  # a directory: the tasks' state on one host has no place on a swarm
                    mounts.append({"type": "tmpfs", "target": target})
                    continue
                name = object_name(self.stack, f"{service}-{PurePosixPath(target).name}", content)
                self.configs[name] = content
                configs.append({"source": name, "target": target, "mode": 0o444})
            else:
                fail(f"{service}: a {kind} mount ({target}) cannot be deployed to a swarm", "use a named volume or a file")
        return mounts, configs

    def deploy(self, name: str, given: Mapping[str, Any]) -> dict[str, Any]:
        """Its ``deploy:``: replicas, placement and update order by what the service is."""
        out: dict[str, Any] = {"endpoint_mode": "dnsrr", "restart_policy": {"condition": "any", "delay": "2s"}}
        resources = given.get("resources")
        if resources:
            out["resources"] = {k: {r: str(v) for r, v in limits.items() if v} for k, limits in resources.items() if limits}
        if name in self.roles.stateless:
            out["replicas"] = int(self.replicas.get(name, given.get("replicas") or 1))
            out["update_config"] = {"parallelism": 0, "order": "start-first", "failure_action": "rollback",
                                    "monitor": UPDATE_MONITOR, "max_failure_ratio": 0}
            out["rollback_config"] = {"parallelism": 0, "order": "start-first", "failure_action": "pause", "monitor": UPDATE_MONITOR}
        elif name == self.roles.proxy:
            # Once per edge node, on its own ports: a new task cannot start beside the old one
            # (the port is taken), so edges are updated one at a time.
            out["mode"] = "global"
            out["placement"] = {"constraints": ["node.labels.edge == true"]}
            out["update_config"] = {"parallelism": 1, "order": "stop-first", "failure_action": "rollback", "monitor": UPDATE_MONITOR}
        else:
            out["replicas"] = 1
            out["placement"] = {"constraints": ["node.labels.db == true"]}
            out["update_config"] = {"order": "stop-first", "failure_action": "rollback"}
        return out
