"""The hosts of a stage (``deploy.stages.NAME.hosts`` in invoke.yaml) and their roles.

On a stage of Compose projects (``engine: compose``, the default) a host has roles:
``app`` runs the stateless services and the proxy, ``db`` the stateful ones
(PostgreSQL, Redis); one host may have both. On a Docker Swarm stage (``engine:
swarm``) every host is a ``manager`` or a ``worker`` node, and two roles become node
labels that place services: ``db`` (the stateful services and their volumes, one node)
and ``edge`` (the proxy, published on that node's own ports). A stage without hosts
runs on the local engine.
"""
from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from deploy import validators
from deploy.errors import fail

ROLES = ("app", "db")
SWARM_ROLES = ("manager", "worker", "edge", "db")
ENGINES = ("compose", "swarm")


@dataclass(frozen=True)
class SshOptions:
    """How every host of a stage is reached."""

    known_hosts: str = "~/.ssh/known_hosts"
    ssh_config: str = "~/.ssh/config"
    connect_timeout: float = 10.0  # seconds to connect and authenticate
    command_timeout: float = 900.0  # seconds any one remote command may take
    keepalive: int = 5  # seconds between keepalives; 3 missed = the host is gone
    parallel: int = 8  # hosts worked at once


@dataclass(frozen=True)
class Host:
    """One machine of a stage. ``name`` may be an alias of ~/.ssh/config (then its
    HostName, User, Port, IdentityFile and ProxyJump apply)."""

    name: str
    address: str
    roles: tuple[str, ...]
    deploy_dir: str
    user: str | None = None
    port: int | None = None
    key: str | None = None
    private_address: str = ""  # where other hosts reach it (the db host's address for the app hosts)

    def has(self, role: str) -> bool:
        return role in self.roles

    @property
    def reach(self) -> str:
        return self.private_address or self.address


def _where(stage: str, name: str = "") -> str:
    return f"deploy.stages.{stage}.hosts" + (f".{name}" if name else "")


def parse_ssh(raw: Mapping[str, Any], stage: str) -> SshOptions:
    where = f"deploy.stages.{stage}.ssh"
    unknown = set(raw) - set(SshOptions.__dataclass_fields__)
    if unknown:
        fail(f"invoke.yaml: {where}: unknown key(s) {sorted(unknown)}", f"use {sorted(SshOptions.__dataclass_fields__)}")
    values: dict[str, Any] = {}
    for key, default in SshOptions().__dict__.items():
        if key not in raw:
            continue
        value = raw[key]
        if isinstance(default, str):
            values[key] = str(value)
        elif isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            fail(f"invoke.yaml: {where}.{key} must be a positive number, not {value!r}", f"fix {where}.{key}")
        else:
            values[key] = type(default)(value)
    return SshOptions(**values)


def parse_hosts(raw: Any, stage: str, project: str, default_dir: str | None = None, engine: str = "compose") -> tuple[Host, ...]:
    """``hosts:`` as a mapping ``name: {address, user, port, key, roles, deploy_dir}``."""
    known = SWARM_ROLES if engine == "swarm" else ROLES
    if not raw:
        return ()
    if not isinstance(raw, Mapping):
        fail(f"invoke.yaml: {_where(stage)} must be a mapping of host names", "write it as `app1: {address: 10.0.0.11, roles: [app]}`")
    hosts = []
    for name, spec in raw.items():
        name, spec = str(name), spec or {}
        where = _where(stage, name)
        validators.host(name, f"invoke.yaml: {_where(stage)}")
        roles = spec.get("roles", list(ROLES) if engine == "compose" else None)
        if isinstance(roles, str):
            roles = [roles]
        bad = [r for r in roles or [] if r not in known]
        if bad or not roles:
            example = "[app]" if engine == "compose" else "[worker, edge]"
            fail(f"invoke.yaml: {where}.roles {roles!r} is not a list of {', '.join(known)}", f"give {where}.roles, e.g. {example}")
        if engine == "swarm" and ("manager" in roles) == ("worker" in roles):
            fail(f"invoke.yaml: {where}.roles {roles!r}: a swarm node is a manager or a worker (one of them)",
                 f"add manager or worker to {where}.roles")
        deploy_dir = validators.deploy_dir(str(spec.get("deploy_dir") or default_dir or f"/srv/{project}"), f"invoke.yaml: {where}.deploy_dir")
        port = spec.get("port")
        if port is not None and (isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536):
            fail(f"invoke.yaml: {where}.port {port!r} is not a port number", "give a number from 1 to 65535")
        words = {key: validators.one_line(str(spec[key]), f"invoke.yaml: {where}.{key}")
                 for key in ("address", "user", "key", "private_address") if spec.get(key)}
        hosts.append(Host(
            name=name,
            address=words.get("address", name),
            roles=tuple(r for r in known if r in roles),
            deploy_dir=deploy_dir.rstrip("/") or "/",
            user=words.get("user"),
            port=port,
            key=words.get("key"),
            private_address=words.get("private_address", ""),
        ))
    if engine == "swarm":
        return _swarm_checked(tuple(hosts), stage)
    if not any(h.has("db") for h in hosts):
        fail(f"invoke.yaml: {_where(stage)}: no host has the db role", "give one host roles: [db] (or [app, db])")
    if len([h for h in hosts if h.has("db")]) > 1:
        fail(f"invoke.yaml: {_where(stage)}: more than one host has the db role", "PostgreSQL runs on one host: give db to one")
    if not any(h.has("app") for h in hosts):
        fail(f"invoke.yaml: {_where(stage)}: no host has the app role", "give at least one host roles: [app]")
    return tuple(hosts)


def _swarm_checked(hosts: tuple[Host, ...], stage: str) -> tuple[Host, ...]:
    """A swarm needs a manager, one db node and an edge node, each advertising an IP."""
    for h in hosts:
        try:
            ipaddress.ip_address(h.reach)
        except ValueError:
            fail(f"invoke.yaml: {_where(stage, h.name)}: a swarm node advertises an IP address, not {h.reach!r}",
                 f"give {_where(stage, h.name)}.private_address (the IP the nodes reach it at)")
    if not any(h.has("manager") for h in hosts):
        fail(f"invoke.yaml: {_where(stage)}: no host is a manager", "give the first host roles: [manager, ...]")
    if len([h for h in hosts if h.has("db")]) != 1:
        fail(f"invoke.yaml: {_where(stage)}: one host must have the db role (it keeps the database's volume)",
             "give exactly one host db in its roles")
    if not any(h.has("edge") for h in hosts):
        fail(f"invoke.yaml: {_where(stage)}: no host has the edge role (where the proxy publishes its ports)",
             "give at least one host edge in its roles")
    return hosts


def ad_hoc_hosts(names: Sequence[str], project: str) -> tuple[Host, ...]:
    """Hosts given with --hosts and no stage inventory: one host with both roles."""
    if len(names) != 1:
        fail("--hosts without a stage that lists them names one host (with both roles)",
             "list the hosts and their roles under deploy.stages.NAME.hosts, then pass --stage NAME")
    return parse_hosts({names[0]: {}}, "(--hosts)", project)


def split_list(text: str | None) -> list[str]:
    return [w.strip() for w in (text or "").split(",") if w.strip()]


def select(hosts: Sequence[Host], names: Sequence[str], roles: Sequence[str], stage: str, valid: Sequence[str] = ROLES) -> list[Host]:
    """The stage's hosts narrowed to ``names`` (--hosts) and ``roles`` (--roles, of ``valid``)."""
    known = {h.name: h for h in hosts}
    unknown = [n for n in names if n not in known]
    if unknown:
        fail(f"unknown host(s) {', '.join(map(repr, unknown))} in stage {stage}", f"use one of: {', '.join(known)}")
    bad = [r for r in roles if r not in valid]
    if bad:
        fail(f"unknown role(s) {', '.join(map(repr, bad))}", f"use one of: {', '.join(valid)}")
    chosen = [h for h in hosts if (not names or h.name in names) and (not roles or any(h.has(r) for r in roles))]
    if not chosen:
        listing = ", ".join(f"{h.name} ({'+'.join(h.roles)})" for h in hosts)
        fail(f"no host of stage {stage} matches --hosts {','.join(names) or '(all)'} --roles {','.join(roles) or '(all)'}",
             f"hosts: {listing}")
    return chosen


def role_services(host: Host, stateless: Sequence[str], proxy: str, stateful: Sequence[str]) -> list[str]:
    """The services a host runs: app -> stateless and proxy; db -> stateful."""
    return [*(list(stateless) + [proxy] if host.has("app") else []), *(stateful if host.has("db") else [])]


def is_split(hosts: Sequence[Host]) -> bool:
    """True when the app hosts do not also hold the database (they reach it over the network)."""
    return any(h.has("app") and not h.has("db") for h in hosts)
