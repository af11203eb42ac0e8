"""The ``deploy:`` section of invoke.yaml, validated into dataclasses.

Every key is documented in docs/configuration.md.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deploy import validators
from deploy.config.inventory import ENGINES, Host, SshOptions, parse_hosts, parse_ssh
from deploy.errors import fail
from deploy.retention import Policy, parse_duration, policy


@dataclass(frozen=True)
class AppService:
    """A stateless service: scaled and rolled freely behind the proxy."""

    name: str
    port: int
    health_path: str


@dataclass(frozen=True)
class Proxy:
    """The reverse proxy in front: its container ports (HTTP, HTTPS) and the paths checked through it."""

    service: str
    port: int
    checks: tuple[str, ...]
    tls_port: int = 8443


@dataclass(frozen=True)
class Offsite:
    """Where the db host copies each scheduled backup (a restic repository), and how."""

    repository: str  # restic's: /path, sftp:user@host:/path, s3:..., rest:...
    password_env: str = "RESTIC_PASSWORD"  # the stage's variable holding the repository's password
    keep: int = 30  # the newest snapshots kept (--keep-last); deploy.retention's buckets and minimum age too
    sftp_command: str = ""  # restic's -o sftp.command (a key or known_hosts of its own)
    env_vars: tuple[str, ...] = ()  # more of the stage's variables restic needs (AWS_ACCESS_KEY_ID, ...)
    append_only: bool = False  # served append-only to the db host (rest:): its retention is inv db.offsite.prune's, from elsewhere
    admin_env_file: str = ""  # on the operator's machine: restic's variables for the repository's storage itself (db.offsite.prune)


@dataclass(frozen=True)
class Stage:
    """A named environment: its env file, its compose files, whether it is production,
    its hosts (none = the local engine) and what runs the stack on them: a Compose
    project per host (``compose``) or one Docker Swarm of them (``swarm``), named
    ``project`` (deploy.stages.NAME.project, default deploy.project: two stages on one
    engine need two)."""

    name: str
    env_file: str
    compose_files: tuple[str, ...]
    production: bool
    project: str
    hosts: tuple[Host, ...] = ()
    ssh: SshOptions = SshOptions()
    offsite: Offsite | None = None
    engine: str = "compose"
    encrypt_overlay: bool = True  # a swarm's overlay networks are IPsec-encrypted (needs the kernel's ESP)

    @property
    def swarm(self) -> bool:
        return self.engine == "swarm"


@dataclass(frozen=True)
class Retention:
    releases: int
    backups: Policy  # of the database's backups, here, on the db host and offsite (deploy.retention)


@dataclass(frozen=True)
class DatabaseConfig:
    """The PostgreSQL service, where its backups go, and the app's migrate/seed commands."""

    service: str
    user_env: str
    name_env: str
    backups_dir: str
    migrate_service: str
    migrate_command: tuple[str, ...]
    seed_command: tuple[str, ...]


@dataclass(frozen=True)
class DeployConfig:
    project: str
    root: Path
    stages: Mapping[str, Stage]
    default_stage: str
    stateless: Mapping[str, AppService]
    stateful: tuple[str, ...]
    proxy: Proxy
    required_env: tuple[str, ...]
    secret_env: tuple[str, ...]
    env_defaults: Mapping[str, str]
    env_example: str
    state_dir: str  # "" = the default (deploy.config.state_home)
    retention: Retention
    up_timeout: int
    database: DatabaseConfig
    test_command: tuple[str, ...]
    max_surge: int  # new app containers a rollout or scale starts at once (0: twice the host's CPUs)

    @property
    def services(self) -> tuple[str, ...]:
        """Every service the stack defines, in a stable order."""
        return (*self.stateless, self.proxy.service, *self.stateful)

    def stage(self, name: str | None) -> Stage:
        """The stage called ``name`` (the default stage when None)."""
        name = name or self.default_stage
        if name not in self.stages:
            fail(
                f"unknown stage {name!r}",
                f"use one of: {', '.join(sorted(self.stages))} (invoke.yaml deploy.stages)",
            )
        return self.stages[name]

    def check_services(self, names: list[str] | tuple[str, ...]) -> None:
        """Refuse service names the stack does not define."""
        unknown = [n for n in names if n not in self.services]
        if unknown:
            fail(
                f"unknown service(s): {', '.join(map(repr, unknown))}",
                f"use one of: {', '.join(self.services)}",
            )


def plain(value: Any) -> Any:
    """Invoke's config proxies (and any Mapping or list) as plain dicts and lists."""
    if isinstance(value, Mapping) or hasattr(value, "_config"):
        return {str(k): plain(value[k]) for k in value}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def _require(raw: Mapping[str, Any], key: str, where: str) -> Any:
    if key not in raw or raw[key] in (None, ""):
        fail(f"invoke.yaml: {where}.{key} is missing", f"set {where}.{key} (see docs/configuration.md)")
    return raw[key]


def _positive_int(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        fail(f"invoke.yaml: {where} must be a whole number of at least 1, not {value!r}", f"fix {where}")
    return value


def _count(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        fail(f"invoke.yaml: {where} must be a whole number (0 or more), not {value!r}", f"fix {where}")
    return value


def _backup_policy(raw: Mapping[str, Any]) -> Policy:
    where = "deploy.retention"
    return policy(_positive_int(raw.get("backups", 7), f"{where}.backups"), _count(raw.get("keep_daily", 7), f"{where}.keep_daily"),
                  _count(raw.get("keep_weekly", 4), f"{where}.keep_weekly"), _count(raw.get("keep_monthly", 6), f"{where}.keep_monthly"),
                  parse_duration(raw.get("min_age", "1d"), f"invoke.yaml: {where}.min_age"))


def _stage(name: str, raw: Mapping[str, Any], project: str) -> Stage:
    validators.stage(name, "invoke.yaml: deploy.stages")
    where = f"deploy.stages.{name}"
    files = _require(raw, "compose_files", where)
    if isinstance(files, str) or not files:
        fail(f"invoke.yaml: {where}.compose_files must be a list of files", "write it as [file, ...]")
    engine = str(raw.get("engine", "compose"))
    if engine not in ENGINES:
        fail(f"invoke.yaml: {where}.engine {engine!r} is not one of {', '.join(ENGINES)}", f"set {where}.engine to compose or swarm")
    if engine == "swarm" and not raw.get("hosts"):
        fail(f"invoke.yaml: {where}: engine swarm needs the swarm's hosts", f"list them under {where}.hosts with roles [manager|worker, edge, db]")
    project = validators.project(str(raw.get("project") or project), f"invoke.yaml: {where}.project")
    return Stage(
        name=name,
        env_file=str(_require(raw, "env_file", where)),
        compose_files=tuple(str(f) for f in files),
        production=bool(raw.get("production", False)),
        project=project,
        hosts=parse_hosts(raw.get("hosts"), name, project, raw.get("deploy_dir"), engine),
        ssh=parse_ssh(raw.get("ssh") or {}, name),
        offsite=_offsite(raw["offsite"], f"{where}.offsite") if raw.get("offsite") else None,
        engine=engine,
        encrypt_overlay=bool(raw.get("encrypt_overlay", True)),
    )


def _offsite(raw: Mapping[str, Any], where: str) -> Offsite:
    unknown = set(raw) - set(Offsite.__dataclass_fields__)
    if unknown:
        fail(f"invoke.yaml: {where}: unknown key(s) {sorted(unknown)}", f"use {sorted(Offsite.__dataclass_fields__)}")
    env_vars = raw.get("env_vars") or ()
    if isinstance(env_vars, str) or not all(isinstance(v, str) for v in env_vars):
        fail(f"invoke.yaml: {where}.env_vars must be a list of variable names", f"fix {where}.env_vars, e.g. [AWS_ACCESS_KEY_ID]")
    for v in env_vars:
        validators.env_name(v, f"invoke.yaml: {where}.env_vars")
    repository = str(_require(raw, "repository", where))
    if re.search(r"://[^/@]*:[^/@]*@", repository):
        fail(f"invoke.yaml: {where}.repository holds a password (invoke.yaml is not a secret file)",
             f"write it without user:password@ and give the credentials as variables of the stage's env file ({where}.env_vars)")
    validators.one_line(repository, f"invoke.yaml: {where}.repository")
    password_env = validators.env_name(str(raw.get("password_env", "RESTIC_PASSWORD")), f"invoke.yaml: {where}.password_env")
    sftp_command = validators.one_line(str(raw.get("sftp_command") or ""), f"invoke.yaml: {where}.sftp_command")
    append_only = raw.get("append_only", False)
    if not isinstance(append_only, bool):
        fail(f"invoke.yaml: {where}.append_only {append_only!r} is not true or false", f"write {where}.append_only: true (or leave it out)")
    if append_only and not repository.startswith("rest:"):
        fail(f"invoke.yaml: {where}.append_only needs a rest: repository ({repository} is not one: the db host could delete from it)",
             "serve the repository append-only (rclone serve restic --append-only) and give its rest: URL (docs/backups.md, \"Offsite copies\")")
    admin_env_file = validators.one_line(str(raw.get("admin_env_file") or ""), f"invoke.yaml: {where}.admin_env_file")
    return Offsite(repository=repository, password_env=password_env,
                   keep=_positive_int(raw.get("keep", 30), f"{where}.keep"), sftp_command=sftp_command,
                   env_vars=tuple(env_vars), append_only=append_only, admin_env_file=admin_env_file)


def _service_name(name: str, where: str) -> str:
    return validators.service(name, f"invoke.yaml: {where}")


def _env_names(values: Any, where: str) -> tuple[str, ...]:
    if isinstance(values, str):
        fail(f"invoke.yaml: {where} must be a list of variable names", f"write {where} as [NAME, ...]")
    return tuple(validators.env_name(str(v), f"invoke.yaml: {where}") for v in values or ())


def _command(value: Any, where: str) -> tuple[str, ...]:
    if isinstance(value, str) or not value or not all(isinstance(v, str) for v in value):
        fail(f"invoke.yaml: {where} must be a list of words, e.g. [pnpm, prisma, migrate, deploy]", f"fix {where}")
    return tuple(value)


def _database(raw: Mapping[str, Any], stateful: tuple[str, ...], stateless: Mapping[str, AppService]) -> DatabaseConfig:
    where = "deploy.database"
    service = str(raw.get("service", "postgres"))
    if service not in stateful:
        fail(f"invoke.yaml: {where}.service {service!r} is not a stateful service", "list it in deploy.services.stateful")
    migrate_service = str(raw.get("migrate_service", "backend"))
    if migrate_service not in stateless:
        fail(f"invoke.yaml: {where}.migrate_service {migrate_service!r} is not a stateless service", "name the app image that migrates")
    return DatabaseConfig(
        service=service,
        user_env=validators.env_name(str(raw.get("user_env", "POSTGRES_USER")), f"invoke.yaml: {where}.user_env"),
        name_env=validators.env_name(str(raw.get("name_env", "POSTGRES_DB")), f"invoke.yaml: {where}.name_env"),
        backups_dir=str(raw.get("backups_dir", "backups")),
        migrate_service=migrate_service,
        migrate_command=_command(_require(raw, "migrate_command", where), f"{where}.migrate_command"),
        seed_command=_command(_require(raw, "seed_command", where), f"{where}.seed_command"),
    )


def parse_config(raw: Mapping[str, Any], root: Path) -> DeployConfig:
    """Validate the ``deploy:`` section (already plain data) into a DeployConfig."""
    project = validators.project(str(_require(raw, "project", "deploy")), "invoke.yaml: deploy.project")
    stages = {str(n): _stage(str(n), s or {}, project) for n, s in (_require(raw, "stages", "deploy")).items()}
    default_stage = str(raw.get("default_stage", "development"))
    if default_stage not in stages:
        fail(f"invoke.yaml: deploy.default_stage {default_stage!r} is not a stage", f"use one of {sorted(stages)}")

    services = _require(raw, "services", "deploy")
    stateless = {
        _service_name(str(n), "deploy.services.stateless"): AppService(
            name=str(n),
            port=_positive_int(s.get("port"), f"deploy.services.stateless.{n}.port"),
            health_path=str(s.get("health_path", "/health")),
        )
        for n, s in (services.get("stateless") or {}).items()
    }
    stateful = tuple(_service_name(str(n), "deploy.services.stateful") for n in services.get("stateful") or ())
    proxy_raw = _require(services, "proxy", "deploy.services")
    proxy = Proxy(
        service=_service_name(str(_require(proxy_raw, "service", "deploy.services.proxy")), "deploy.services.proxy"),
        port=_positive_int(proxy_raw.get("port"), "deploy.services.proxy.port"),
        checks=tuple(str(p) for p in proxy_raw.get("checks") or ("/",)),
        tls_port=_positive_int(proxy_raw.get("tls_port", 8443), "deploy.services.proxy.tls_port"),
    )
    overlap = set(stateless) & set(stateful)
    if overlap:
        fail(f"invoke.yaml: {sorted(overlap)} listed as both stateless and stateful", "list each service once")

    env_defaults = {validators.env_name(str(k), "invoke.yaml: deploy.env_defaults"): str(v) for k, v in (raw.get("env_defaults") or {}).items()}
    for key, var in (("registry", "DOCKER_REGISTRY"), ("namespace", "DOCKER_NAMESPACE")):
        if raw.get(key):
            env_defaults.setdefault(var, str(raw[key]))
    retention = raw.get("retention") or {}
    return DeployConfig(
        project=project,
        root=root,
        stages=stages,
        default_stage=default_stage,
        stateless=stateless,
        stateful=stateful,
        proxy=proxy,
        required_env=_env_names(raw.get("required_env"), "deploy.required_env"),
        secret_env=_env_names(raw.get("secret_env"), "deploy.secret_env"),
        env_defaults=env_defaults,
        env_example=str(raw.get("env_example", ".env.example")),
        state_dir=str(raw.get("state_dir") or ""),
        retention=Retention(_positive_int(retention.get("releases", 5), "deploy.retention.releases"), _backup_policy(retention)),
        up_timeout=_positive_int(raw.get("up_timeout", 180), "deploy.up_timeout"),
        database=_database(_require(raw, "database", "deploy"), stateful, stateless),
        test_command=_command(raw["test_command"], "deploy.test_command") if raw.get("test_command") else (),
        max_surge=_count(raw.get("max_surge", 0), "deploy.max_surge"),
    )
