"""A recording fake of one host (a ``Target``): a Docker engine with one Compose project,
a tiny file system, and a journal of every command, in order. (Longer than our usual
250 lines: it is one simulation, whose parts — containers, Compose's rules, the file
system, the registry — answer each other.)

It simulates just enough for the deploy workflows: containers (service, number, state,
health, image, labels, an address on each network of their service) answering
``docker ps``/``docker inspect`` shaped like Docker's, ``docker compose
config|port|up|pull|build|run|stop|rm|down``, ``docker stop|rm|exec|logs``, images
(``image inspect|rm``, ``tag``, ``push``, ``pull`` by digest; a ``Registry`` shared by
the hosts), ``git``, the lock's ``mkdir``/``test``/``rm -rf``/``mv -n -T`` and the age of its files (``files.age_seconds``, from ``modified``),
a folder's names (``ls -1A``), spawned ``tar``/``psql``/``pg_dump``, ``restic`` as a test answers it, and HTTP through the proxy.
Anything else exits 127, so a command the fake does not know shows up in a test.

The proxy (nginx) routes what its routing file listed when it last started or reloaded
(``nginx -t`` and ``nginx -s reload`` inside it read the file from the fake file system,
in the folder NGINX_UPSTREAMS_DIR named when the proxy was created); addresses are
handed out like Docker's IPAM does (the lowest free one, released when a container stops
or goes, so reused). ``violations`` collects every moment the routing guarantee is
broken: an address routed whose container is gone, another one, or not ready; a routed
container stopped, or one stopped before nginx's old workers finished with it; a
container routed by a reload before a probe from the proxy passed.
"""
from __future__ import annotations

import hashlib
import io
import json
import re
import shlex
import subprocess
import tarfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from invoke.exceptions import UnexpectedExit
from invoke.runners import Result

from deploy.engine.commands import cron
from deploy.engine.commands import docker as docker_commands
from deploy.engine.commands import files as file_commands
from deploy.engine.ops import Executor
from deploy.engine.target import HttpResponse
from deploy.stack import routing

if TYPE_CHECKING:
    from deploy.engine.target import Target

Argv = tuple[str, ...]
STATELESS = ("backend", "web")
DEFAULT_IMAGES = {"nginx": "nginx:1.27-alpine", "postgres": "postgres:16-alpine", "redis": "redis:7-alpine"}
PUBLISHED = 8080  # nginx's published port (and container port)
GIT_SHA = "0123456789abcdef0123456789abcdef01234567"
READ_COMMANDS = ("docker ps", "docker inspect", "docker image inspect", "docker version", "docker logs", "docker exec",
                 "docker info")
READ_COMPOSE = ("config", "port", "version", "ps", "logs")
APP_PORT = 3000  # the stateless services' container port (invoke.yaml deploy.services.stateless)
HEALTH_PATH = "/health"
# The networks of each service, as the compose files declare them; Docker names them PROJECT_NET.
NETWORKS = {"nginx": ("front",), "web": ("front",), "backend": ("front", "back"), "postgres": ("back",), "redis": ("back",)}
SUBNETS = {"front": "172.18.0", "back": "172.19.0"}  # .1 is the gateway; containers get .2 and up
ROUTER_CONFIG = "/etc/nginx/router.conf"
WORKERS = 2  # nginx worker processes per configuration generation
SERVER_LINE = re.compile(r"server (\d{1,3}(?:\.\d{1,3}){3}):(\d+)( [a-z_]+(=\S+)?)*;")


@dataclass(frozen=True)
class Called:
    host: str
    argv: Argv
    env: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)

    @property
    def line(self) -> str:
        return shlex.join(self.argv)


def is_read(argv: Sequence[str]) -> bool:
    """A command that only reads (a fact): ps, inspect, config, port, version, git, test, probes, fetch, a file's age.
    The proxy's ``nginx -t`` and its reload are steps of a plan, not facts."""
    if tuple(argv[:2]) == ("docker", "compose"):
        return compose_sub(argv)[0] in READ_COMPOSE
    if tuple(argv[:2]) == ("docker", "exec"):
        inner = exec_parts(argv)[1]
        return inner[:1] != ("nginx",) and not (inner[:2] == ("sh", "-c") and "-s reload" in inner[2])
    if tuple(argv[:3]) == ("sh", "-c", file_commands.AGE_SCRIPT):  # how old a file is
        return True
    return argv[0] in ("git", "test", "fetch") or shlex.join(argv).startswith(READ_COMMANDS)


def exec_parts(argv: Sequence[str]) -> tuple[str, Argv]:
    """A ``docker exec`` command's container and the command run in it."""
    rest = list(argv[2:])
    while rest and rest[0].startswith("-"):
        rest.pop(0)
    return (rest[0], tuple(rest[1:])) if rest else ("", ())


def compose_sub(argv: Sequence[str]) -> tuple[str, list[str]]:
    """A ``docker compose`` command's subcommand and its arguments (after -p/-f/--env-file)."""
    i = 2
    while i < len(argv) and argv[i] in ("-p", "-f", "--env-file"):
        i += 2
    return (argv[i], list(argv[i + 1:])) if i < len(argv) else ("", [])


@dataclass
class Container:
    id: str
    service: str
    number: int
    image: str
    state: str = "running"
    health: str = "healthy"  # Docker's healthcheck: starting, healthy, unhealthy
    config_hash: str = ""
    version: str = ""
    ips: dict[str, str] = field(default_factory=dict)  # network -> address, while it runs
    warmup: int = 0  # inspections left before its app answers (and its healthcheck says healthy)
    stuck: bool = False  # its app never answers; its healthcheck stays "starting"
    probed: bool = False  # its health path answered a probe from the proxy (or an earlier deploy's)
    probed_at: int | None = None  # the engine's command count at its first probe that passed
    routed_at: int | None = None  # ... at the first (re)load of the proxy that routed it
    upstreams: str | None = None  # the proxy: the folder its routing file is mounted from (NGINX_UPSTREAMS_DIR)
    stop_timeout: int | None = None  # its stop_grace_period, in seconds (None: Docker's default, not in inspect)
    stage: str = ""  # its com.compose-deploy.stage label: the DEPLOY_STAGE it was made with ("" = none)
    image_id: str = ""  # the image it was created from (what its tag named on this engine then)
    timing_out: bool = False  # its healthcheck times out (a busy host): Docker says unhealthy, the app answers

    def name(self, project: str) -> str:
        return f"{project}-{self.service}-{self.number}"

    @property
    def docker_health(self) -> str:
        """What Docker's healthcheck says."""
        return "unhealthy" if self.timing_out else self.health

    @property
    def ready(self) -> bool:
        """Running, and its app answers its health path."""
        return self.state == "running" and self.health != "unhealthy" and not self.stuck and self.warmup == 0

    def inspect(self, project: str) -> dict:
        running = self.state == "running"
        ports = {f"{PUBLISHED}/tcp": [{"HostIp": "0.0.0.0", "HostPort": str(PUBLISHED)}]} if self.service == "nginx" else {}
        return {
            "Id": self.id,
            "Name": "/" + self.name(project),
            "Config": {"Image": self.image, "Env": [f"APP_VERSION={self.version}"] if self.version else [],
                       **({"StopTimeout": self.stop_timeout} if self.stop_timeout is not None else {}),
                       "Labels": {"com.docker.compose.project": project, "com.docker.compose.service": self.service,
                                  "com.docker.compose.container-number": str(self.number),
                                  "com.docker.compose.oneoff": "False", "com.docker.compose.config-hash": self.config_hash,
                                  **({"com.compose-deploy.stage": self.stage} if self.stage else {})}},
            "State": {"Status": self.state, "Running": running, "ExitCode": 0 if running else 143,
                      "StartedAt": "2026-01-02T03:04:05.123456789Z",
                      **({"Health": {"Status": self.docker_health, "Log": [{"Output": f"fake check: {self.docker_health}"}]}} if running else {})},
            "NetworkSettings": {"Ports": ports, "Networks": {
                f"{project}_{n}": {"Aliases": [self.name(project), self.service], "IPAddress": self.ips.get(n, "") if running else ""}
                for n in NETWORKS.get(self.service, ())}},
        }


@dataclass(frozen=True)
class Violation:
    """A moment the routing guarantee was broken: ``kind`` (routed-gone, routed-stranger,
    routed-unready, stopped-while-routed, stopped-before-drained, unprobed), what, and
    the command during which it happened."""
    kind: str
    detail: str
    during: str


@dataclass
class Failure:
    matches: Callable[[Argv], bool]
    times: int | None  # None: every time
    after: int  # matches let through before the first failure
    stderr: str
    exited: int
    partial: bool  # the command does its work, then fails (Compose started some containers, then gave up)
    drops: bool = False  # the connection to the host drops with it: every command fails until close()


class FakeProcess:
    """A spawned command: stdin is a sink, stdout canned bytes, or (psql) an answer to each
    ``\\echo SENTINEL``-terminated question written to stdin."""

    def __init__(self, out: bytes = b"", code: int = 0, stderr: str = "", answer: Callable[[str], str] | None = None,
                 fed: Callable[[bytes], None] | None = None) -> None:
        self.stdout = io.BytesIO(out)
        self.stdin: io.BytesIO | None = _Questions(self.stdout, answer) if answer else _Fed(fed)
        self.code, self._stderr = code, stderr

    def wait(self, timeout: float | None = None) -> int:
        return self.code

    def kill(self) -> None:
        """Nothing runs."""

    def stderr_text(self) -> str:
        return self._stderr


class _Fed(io.BytesIO):
    """A stdin whose bytes go to ``fed`` when it is closed (tar unpacks them then)."""

    def __init__(self, fed: Callable[[bytes], None] | None) -> None:
        super().__init__()
        self.fed = fed

    def close(self) -> None:
        if self.fed and not self.closed:
            self.fed(self.getvalue())
        super().close()


class _Questions(io.BytesIO):
    def __init__(self, out: io.BytesIO, answer: Callable[[str], str]) -> None:
        super().__init__()
        self.out, self.answer, self.pending = out, answer, ""

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self.pending += bytes(data).decode()
        while "\\echo " in self.pending and "\n" in self.pending.split("\\echo ", 1)[1]:
            sql, rest = self.pending.split("\\echo ", 1)
            sentinel, self.pending = rest.split("\n", 1)
            text = self.answer(sql)
            pos = self.out.tell()
            self.out.seek(0, io.SEEK_END)
            self.out.write(((text + "\n") if text else "").encode() + sentinel.encode() + b"\n")
            self.out.seek(pos)
        return len(data)


def psql_answer(sql: str) -> str:
    if "pg_export_snapshot" in sql:
        return "00000003-00000002-1"
    if "server_version" in sql:
        return "16.4"
    if "json_object_agg" in sql:
        return '{"public.users": 3}'
    return ""


class Registry(set[str]):
    """The registry the hosts share: the refs in it (a set, as tests seed it) and the image
    each names now (a push records it; a ref seeded by hand names an image of its own),
    and every image ever pushed, by digest (a tag moved since still leaves it there)."""

    def __init__(self, refs: Iterable[str] = ()) -> None:
        super().__init__(refs)
        self.images: dict[str, str] = {}  # ref -> image id
        self.by_digest: dict[str, str] = {}  # REPOSITORY@sha256:... -> image id

    def image(self, ref: str) -> str:
        return self.images.get(ref) or _hash("id", ref)

    def push(self, ref: str, image: str) -> str:
        """``ref`` now names ``image`` (ours, or another stage's push of the same tag); its digest."""
        self.add(ref)
        self.images[ref] = image
        digest = digest_of(ref, image)
        self.by_digest[digest] = image
        return digest


def digest_of(ref: str, image: str) -> str:
    """The registry digest ``REPOSITORY@sha256:...`` of ``image`` pushed as ``ref``: its content's."""
    return f"{ref.rsplit(':', 1)[0]}@sha256:{_hash('digest', image)}"


class FakeEngine:
    """One host. ``journal`` (shared between hosts if given) records every call in order.
    ``clock``: the tests' Clock, if any: a probe that waits for its rounds in vain takes
    their time on it."""

    clock: Clock | None = None

    def __init__(self, name: str = "local", *, local: bool = True, workdir: str | None = None, project: str = "myapp",
                 journal: list[Called] | None = None, registry: Registry | None = None, replicas: Mapping[str, int] | None = None) -> None:
        self.name, self.local, self.workdir, self.project = name, local, workdir, project
        self.journal: list[Called] = [] if journal is None else journal
        self.registry = registry  # shared by the hosts; None: pulls always succeed
        self.replicas = dict(replicas or {"backend": 2, "web": 1})  # deploy.replicas in the compose files
        self.containers: list[Container] = []
        self.images: dict[str, str] = {}  # ref -> image id
        self.files: dict[str, bytes] = {}
        self.dirs: set[str] = set()
        self.modified: dict[str, float] = {}  # path -> when it was last written (time.time(); set it to age a file)
        self.cron_running = True  # a cron daemon runs (cron.daemon_running)
        self.unhealthy: set[str] = set()  # APP_VERSIONs whose new app containers come up unhealthy
        self.stuck: set[str] = set()  # APP_VERSIONs whose new app containers never answer (health: starting)
        self.warmup = 0  # inspections a new app container takes before it answers
        self.cpus = 2  # the host's CPUs (docker info)
        self.revision: dict[str, str] = {}  # a service's compose configuration changed (its config hash too)
        self.drain_polls = 0  # polls (of their pids) that still see an earlier configuration's workers after a reload
        self.failures: list[Failure] = []
        # The proxy's routing: "ip:port" -> the id of the container that held the address when
        # nginx (re)loaded the file ("" if none did); None while no proxy runs.
        self.routed: dict[str, str] | None = None
        self.reloads: list[dict[str, list[str]]] = []  # each reload's routing: service -> container names
        # Earlier configurations' workers, until a poll saw them gone: [polls that still see
        # them, the ids of the containers they route to, their pids].
        self.draining: list[list] = []
        self.generation = 0  # the router's configuration: its workers' pids derive from it
        self.violations: list[Violation] = []
        self._seen: set[tuple[str, str]] = set()
        self.count = 0  # commands run so far (the order of probes and reloads)
        self._ids = 0
        self._lock = threading.RLock()
        self.nft: str | None = None  # the firewall's table as `nft list table` prints it (None: none)
        self.dropped = False  # the connection dropped (``fail_when(..., drops=True)``) and was not closed since
        # Answers ``psql -d DB -c SQL`` run in a container: (stdout, stderr, exit) of (DB, SQL); None: empty answers.
        self.psql: Callable[[str, str], tuple[str, str, int]] | None = None
        # Answers ``restic ...``: (stdout, stderr, exit) of (argv, env); None: unknown, like any other command.
        self.restic: Callable[[Argv, Mapping[str, str]], tuple[str, str, int]] | None = None

    # --- set-up and failure injection ---------------------------------------------------
    def fail_when(self, match: str | Callable[[Argv], bool], times: int | None = 1, stderr: str = "injected failure",
                  exited: int = 1, after: int = 0, partial: bool = False, drops: bool = False) -> None:
        """Commands matching ``match`` (a substring of the joined command, or a predicate)
        exit ``exited``, changing nothing (``partial``: after doing their work): ``times``
        times (None: always), once ``after`` matching commands went through. ``drops``:
        the connection to the host drops there; every later command fails too, until
        ``close()`` (the next command then opens a new connection)."""
        test = match if callable(match) else (lambda argv, s=match: s in shlex.join(argv))
        self.failures.append(Failure(test, times, after, stderr, exited, partial, drops))

    def make_unhealthy(self, version: str) -> None:
        self.unhealthy.add(version)

    def never_ready(self, version: str) -> None:
        """New app containers of ``version`` start and never answer (their health stays "starting")."""
        self.stuck.add(version)

    def image_ref(self, service: str, env: Mapping[str, str]) -> str:
        if service in STATELESS:
            registry, ns = env.get("DOCKER_REGISTRY") or "local", env.get("DOCKER_NAMESPACE") or "myapp"
            return f"{registry}/{ns}/{service}:{env.get('APP_VERSION') or 'latest'}"
        return env.get(f"{service.upper()}_IMAGE") or DEFAULT_IMAGES[service]

    def config_hash(self, service: str, env: Mapping[str, str]) -> str:
        """What Compose labels a container of ``service`` made now with: its image and configuration."""
        rev = self.revision.get(service)
        return _hash(service, self.image_ref(service, env), *([rev] if rev else []))

    def start(self, services: Sequence[str], env: Mapping[str, str], counts: Mapping[str, int] | None = None) -> None:
        """Seed running containers (``counts`` or the replicas) of ``services`` with ``env``'s
        images: what an earlier deploy left, so its app containers passed their probe, and a
        proxy among them routes every running app container (its routing file written into
        NGINX_UPSTREAMS_DIR when ``env`` names it)."""
        with self._lock:
            for s in services:
                for _ in range((counts or {}).get(s, self.replicas.get(s, 1))):
                    c = self._create(s, env)
                    c.probed, c.warmup = True, 0
                    if c.health == "starting" and not c.stuck:
                        c.health = "healthy"
            proxy = self.proxy()
            if proxy is not None and proxy.upstreams is not None:
                self.files[f"{proxy.upstreams}/{routing.POOLS_FILE.rsplit('/', 1)[-1]}"] = self.render_routing().encode()
                self._proxy_started(proxy)

    def crash(self, name: str) -> None:
        """The app in container ``name`` dies (no workflow's doing): it exits, its addresses
        are freed. nginx routing the dead address is the crash's doing, not a violation."""
        with self._lock:
            c = self._find(name)
            assert c is not None, name
            c.state, c.ips = "exited", {}
            seen = len(self.violations)
            self._audit(("(crash)", name))
            del self.violations[seen:]

    def unroute(self, names: Sequence[str]) -> None:
        """An older routing that lost the running containers ``names`` (a snapshot taken
        while their healthchecks timed out): the file without them, loaded by the proxy.
        Routing them again needs a new probe."""
        with self._lock:
            proxy = self.proxy()
            assert proxy is not None and proxy.upstreams is not None
            lost = [c for c in self.containers if c.name(self.project) in names]
            pools = [routing.Pool(s, APP_PORT, tuple(c.ips["front"] for c in sorted(self.running(s), key=lambda c: c.number) if c not in lost))
                     for s in STATELESS]
            self.files[f"{proxy.upstreams}/pools.conf"] = routing.render(pools).encode()
            for c in lost:
                c.probed, c.probed_at, c.routed_at = False, None, None
            self._load(proxy, reload=False)

    def wipe(self) -> None:
        """Nothing on the host any more: no containers (no proxy, so no routing), no files."""
        with self._lock:
            self.containers.clear()
            self.files.clear()
            self.routed, self.draining = None, []

    def render_routing(self) -> str:
        """The routing file of every running app container, as the tasks render it."""
        pools = [routing.Pool(s, APP_PORT, tuple(c.ips["front"] for c in sorted(self.running(s), key=lambda c: c.number)))
                 for s in STATELESS]
        return routing.render(pools)

    def running(self, service: str | None = None) -> list[Container]:
        return [c for c in self.containers if c.state == "running" and (service is None or c.service == service)]

    def versions(self, service: str) -> list[str]:
        """The image tags of ``service``'s running containers, by number."""
        return [c.image.rsplit(":", 1)[-1] for c in sorted(self.running(service), key=lambda c: c.number)]

    def commands(self) -> list[Argv]:
        return [c.argv for c in self.journal if c.host == self.name]

    def proxy(self) -> Container | None:
        return next((c for c in self.containers if c.service == "nginx" and c.state == "running"), None)

    def holder(self, ip: str) -> Container | None:
        """The container that has ``ip`` now (on any network: the subnets differ)."""
        return next((c for c in self.containers if ip in c.ips.values()), None)

    def routed_containers(self, service: str | None = None) -> list[Container]:
        """The containers the proxy routes to now (per its last load), by service and number."""
        held = [self.holder(a.rsplit(":", 1)[0]) for a in (self.routed or {})]
        return sorted((c for c in held if c and (service is None or c.service == service)), key=lambda c: (c.service, c.number))

    def routed_names(self, service: str | None = None) -> list[str]:
        return [c.name(self.project) for c in self.routed_containers(service)]

    def pools_text(self) -> str | None:
        """The routing file the proxy reads (None: no proxy, or no file)."""
        proxy = self.proxy()
        return self.read_text(f"{proxy.upstreams}/pools.conf") if proxy and proxy.upstreams else None

    # --- the Target protocol ------------------------------------------------------------
    def run(self, argv: Sequence[str], *, env: Mapping[str, str] | None = None, hide: bool = True, warn: bool = False,
            pty: bool = False, timeout: float | None = None) -> Result:
        argv = tuple(argv)
        with self._lock:
            self.journal.append(Called(self.name, argv, dict(env or {})))
            self.count += 1
            failure = self._failure(argv)
            if failure is None or failure.partial:
                out, err, code = self._simulate(argv, self._env(argv, env))
                self._audit(argv)
            if failure:
                out, err, code = "", failure.stderr, failure.exited
        result = Result(stdout=out, stderr=err, command=shlex.join(argv), exited=code, hide=("stdout", "stderr"))
        if code != 0 and not warn:
            raise UnexpectedExit(result)
        return result

    def spawn(self, argv: Sequence[str], *, env: Mapping[str, str] | None = None, stdin: bool = False) -> FakeProcess:
        argv = tuple(argv)
        with self._lock:
            self.journal.append(Called(self.name, argv, dict(env or {})))
            failure = self._failure(argv)
        if failure:
            return FakeProcess(code=failure.exited, stderr=failure.stderr)
        if "pg_dump" in argv:
            return FakeProcess(b"PGDMP fake archive\n")
        if argv[:2] == ("tar", "-x"):
            return FakeProcess(fed=lambda data: self._untar(argv[argv.index("-C") + 1], data))
        return FakeProcess(answer=psql_answer if "psql" in argv else None)

    def fetch(self, port: int, path: str, timeout: float = 5.0, tls: bool = False,
              headers: Mapping[str, str] | None = None) -> HttpResponse:
        """HTTP through the proxy: its own /nginx-health, /api/ to a ready backend it routes,
        the rest to a ready web container it routes (502 when it routes none)."""
        argv = ("fetch", str(port), path)
        with self._lock:
            self.journal.append(Called(self.name, argv))
            failure = self._failure(argv)
            if failure:
                return HttpResponse(502, b"", failure.stderr)
            if port != PUBLISHED or self.proxy() is None:
                return HttpResponse(0, b"", "connection refused")
            if path == "/nginx-health":
                return HttpResponse(200, b"ok")
            service = "backend" if path.startswith("/api/") else "web"
            ready = [c for c in self.routed_containers(service) if c.ready]
            return HttpResponse(200, b"ok") if ready else HttpResponse(502, b"", "502 Bad Gateway")

    def read_text(self, path: str) -> str | None:
        data = self.files.get(path)
        return None if data is None else data.decode()

    def write_text(self, path: str, text: str) -> None:
        self.write_bytes(path, text.encode(), 0o600)

    def write_bytes(self, path: str, data: bytes, mode: int) -> None:
        with self._lock:
            self.journal.append(Called(self.name, ("write", path)))
            self.files[path] = bytes(data)
            self.modified[path] = time.time()

    def append_text(self, path: str, text: str) -> None:
        with self._lock:
            self.journal.append(Called(self.name, ("append", path)))
            self.files[path] = self.files.get(path, b"") + text.encode()
            self.modified[path] = time.time()

    def close(self) -> None:
        """Drop the connection: one that dropped is opened anew by the next command."""
        self.dropped = False

    # --- the simulation -------------------------------------------------------------------
    def _failure(self, argv: Argv) -> Failure | None:
        if self.dropped:
            return Failure(lambda argv: True, None, 0, f"lost the connection to {self.name}", 255, False)
        for f in self.failures:
            if (f.times is None or f.times > 0) and f.matches(argv):
                if f.after > 0:
                    f.after -= 1
                    continue
                if f.times is not None:
                    f.times -= 1
                self.dropped = f.drops
                return f
        return None

    def _env(self, argv: Argv, env: Mapping[str, str] | None) -> dict[str, str]:
        """The command's env over the env file it names, when that file was uploaded here."""
        out: dict[str, str] = {}
        if "--env-file" in argv and (text := self.read_text(argv[argv.index("--env-file") + 1])):
            for line in text.splitlines():
                if "=" in line and not line.startswith("#"):
                    k, v = line.split("=", 1)
                    out[k] = v.strip("'\"")
        return {**out, **(env or {})}

    def _create(self, service: str, env: Mapping[str, str], number: int | None = None) -> Container:
        self._ids += 1
        image = self.image_ref(service, env)
        version = env.get("APP_VERSION", "") if service in STATELESS else ""
        app = service in STATELESS
        stuck = app and version in self.stuck
        warmup = self.warmup if app else 0
        health = "unhealthy" if app and version in self.unhealthy else "starting" if stuck or warmup else "healthy"
        taken = [c.number for c in self.containers if c.service == service]
        c = Container(hashlib.sha256(f"{self.name}{self._ids}".encode()).hexdigest(), service,
                      number or max(taken, default=0) + 1, image, health=health, config_hash=self.config_hash(service, env),
                      version=version, warmup=warmup, stuck=stuck,
                      upstreams=env.get("NGINX_UPSTREAMS_DIR") if service == "nginx" else None, stage=env.get("DEPLOY_STAGE", ""))
        c.image_id = self.images.setdefault(image, _hash("id", image))
        self.containers.append(c)
        self._connect(c)
        return c

    def _connect(self, c: Container) -> None:
        """An address on each of its networks: the lowest free one (Docker reuses freed ones)."""
        for net in NETWORKS.get(c.service, ()):
            taken = {x.ips.get(net) for x in self.containers if x is not c}
            c.ips[net] = next(f"{SUBNETS[net]}.{n}" for n in range(2, 255) if f"{SUBNETS[net]}.{n}" not in taken)

    def _stopping(self, containers: Iterable[Container], how: str) -> None:
        """``containers`` stop (or go): their addresses are freed. One the proxy routes, or
        one an earlier configuration's workers still send requests to, is a violation; a
        proxy that stops routes nothing."""
        for c in containers:
            if c.state != "running":
                continue
            name = c.name(self.project)
            if self.routed is not None and c.id in self.routed.values():
                self._violate("stopped-while-routed", f"{name} {how} while the proxy routes it")
            if any(c.id in ids for _polls, ids, _pids in self.draining):
                self._violate("stopped-before-drained", f"{name} {how} while nginx's old workers still send it requests")
            c.state, c.ips = "exited", {}
            if c.service == "nginx":
                self.routed, self.draining = None, []

    def _violate(self, kind: str, detail: str, during: str = "") -> None:
        if (kind, detail) not in self._seen:
            self._seen.add((kind, detail))
            self.violations.append(Violation(kind, detail, during or (shlex.join(self.journal[-1].argv) if self.journal else "")))

    def _audit(self, argv: Argv) -> None:
        """After each command: every routed address still belongs to the container it was
        routed to, which runs and answers."""
        for address, cid in (self.routed or {}).items():
            c = self.holder(address.rsplit(":", 1)[0])
            if c is None or c.id != cid:
                self._violate("routed-gone" if c is None else "routed-stranger",
                              f"{address} is routed but {'no container has it' if c is None else c.name(self.project) + ' has it now'}",
                              shlex.join(argv))
            elif not c.ready:
                self._violate("routed-unready", f"{address} is routed but {c.name(self.project)} is not ready ({c.state}, {c.health})",
                              shlex.join(argv))

    def worker_pids(self) -> list[int]:
        """The pids of the router's workers of the current configuration."""
        return [1000 + 10 * self.generation + i for i in range(WORKERS)]

    def router_children(self) -> list[int]:
        """The router master's children: its current workers and those of earlier
        configurations still finishing their requests (what ``ps`` would list)."""
        return sorted({p for d in self.draining for p in d[2]} | set(self.worker_pids()))

    def _pools_file(self, proxy: Container) -> str | None:
        return self.read_text(f"{proxy.upstreams}/pools.conf") if proxy.upstreams else None

    def _load(self, proxy: Container, reload: bool) -> None:
        """The proxy's router reads its routing file (valid: ``nginx_check``)."""
        text = self._pools_file(proxy) or ""
        before = self.routed or {}
        routed = {}
        for addresses in routing.parse(text).values():
            for address in addresses:
                holder = self.holder(address.rsplit(":", 1)[0])
                routed[address] = holder.id if holder else ""
                if holder and holder.routed_at is None:
                    holder.routed_at = self.count
                if reload and holder and holder.id not in before.values() and not holder.probed:
                    self._violate("unprobed", f"{holder.name(self.project)} routed before a probe from the proxy passed")
        if reload and before and self.drain_polls:
            self.draining.append([self.drain_polls, set(before.values()), set(self.worker_pids())])
        if reload:
            self.generation += 1
        self.routed = routed
        self.reloads.append({s: [c.name(self.project) for c in self.routed_containers(s)] for s in STATELESS})

    def _proxy_started(self, proxy: Container) -> str | None:
        """A proxy starting loads its routing; it exits when the file is missing or invalid."""
        self.routed, self.draining = None, []
        self.generation += 1  # a new master: new workers
        if proxy.upstreams is None:  # the by-hand routing (compose/nginx/upstreams): service names, resolved now
            self.routed = {f"{c.ips['front']}:{APP_PORT}": c.id for s in STATELESS for c in self.running(s)}
            return None
        error = nginx_check(self._pools_file(proxy))
        if error:
            proxy.state, proxy.ips = "exited", {}
            return error
        self._load(proxy, reload=False)
        return None

    def _untar(self, directory: str, data: bytes) -> None:
        with tarfile.open(fileobj=io.BytesIO(data)) as tar, self._lock:
            for member in tar.getmembers():
                if member.isfile():
                    self.files[f"{directory}/{member.name}"] = tar.extractfile(member).read()  # type: ignore[union-attr]

    def _find(self, ref: str) -> Container | None:
        return next((c for c in self.containers if ref in (c.id, c.id[:12], c.name(self.project))), None)

    def _exec(self, argv: Argv) -> tuple[str, str, int]:
        """``docker exec``: the proxy's nginx (-t; the router's worker pids, then a reload),
        its probes (wget by address), which of some pids still run, or anything else in a
        running container."""
        ref, inner = exec_parts(argv)
        inside = self._find(ref)
        if inside is None:
            return "", f"Error response from daemon: No such container: {ref}", 1
        if inside.state != "running":
            return "", f"Error response from daemon: container {inside.id} is not running", 1
        if inner[:1] == ("nginx",) and inside.service == "nginx":
            return self._nginx(inside, inner)
        if inner[:2] == ("sh", "-c") and "wget" in inner[2]:  # the proxy's probe: the URLs that answer its first round
            answered = "".join(f"{url}\n" for url in inner[6:] if self._wget(inside, url)[2] == 0)
            if not answered and self.clock is not None:  # it polled for all the time it was given
                self.clock.sleep(int(inner[5]))
            return answered, "", 0
        if inner[:2] == ("sh", "-c") and "router.pid" in inner[2] and inside.service == "nginx":  # its workers, then a reload
            workers = "".join(f"{p}\n" for p in self.router_children())
            out, err, code = self._nginx(inside, ("nginx", "-c", ROUTER_CONFIG, "-s", "reload"))
            return workers + out, err, code
        if inner[:2] == ("sh", "-c") and "/proc/$p" in inner[2]:  # which of these pids still run
            asked = {int(p) for p in inner[4:]}
            if inside.service != "nginx":
                return "", "", 0
            # Old workers asked after are seen ``drain_polls`` times, then they have exited:
            # only a poll that no longer sees them proves they finished.
            self.draining = [d for d in self.draining if not (d[2] & asked and d[0] == 0)]
            for d in self.draining:
                if d[2] & asked:
                    d[0] -= 1
            alive = sorted(set(self.router_children()) & asked)
            return "".join(f"{p}\n" for p in alive), "", 0
        if inner[:1] == ("psql",) and "-c" in inner and self.psql is not None:
            return self.psql(inner[inner.index("-d") + 1], inner[inner.index("-c") + 1])
        return "", "", 0

    def _nginx(self, proxy: Container, inner: Argv) -> tuple[str, str, int]:
        if "-c" not in inner or inner[inner.index("-c") + 1] != ROUTER_CONFIG:
            return "", "", 0  # the front nginx: it does not route (and a reload changes nothing)
        error = nginx_check(self._pools_file(proxy))
        if error:
            return "", f"nginx: [emerg] {error}\nnginx: configuration file {ROUTER_CONFIG} test failed", 1
        if "-t" in inner:
            return "", "", 0
        if inner[-2:] == ("-s", "reload"):
            self._load(proxy, reload=True)
            return "", "", 0
        return "", f"fake engine: unknown nginx command: {shlex.join(inner)}", 127

    def _wget(self, proxy: Container, url: str) -> tuple[str, str, int]:
        host, _, rest = url.removeprefix("http://").partition(":")
        port, _, path = rest.partition("/")
        target = self.holder(host)
        reachable = target is not None and any(ip == host and net in proxy.ips for net, ip in target.ips.items())
        if not reachable or target is None or port != str(APP_PORT):  # not on a network the proxy is on
            return "", f"wget: can't connect to remote host ({host}): Connection refused", 1
        if "/" + path != HEALTH_PATH or not target.ready:
            return "", "wget: server returned error: HTTP/1.1 503 Service Unavailable", 1
        target.probed = True
        if target.probed_at is None:
            target.probed_at = self.count
        return "", "", 0

    def _simulate(self, argv: Argv, env: Mapping[str, str]) -> tuple[str, str, int]:
        if argv[:2] == ("docker", "compose") and len(argv) > 2 and argv[2] != "version":
            return self._compose(argv, env)
        head, rest = argv[:2], argv[2:]
        if argv[:3] == ("docker", "compose", "version"):
            return "2.29.7\n", "", 0
        if head == ("docker", "version"):
            return json.dumps({"Server": {"Version": "27.3.1"}}), "", 0
        if argv == tuple(docker_commands.cpus()):
            return f"{self.cpus}\n", "", 0
        if head == ("docker", "ps"):
            other = any(a.startswith("label=com.docker.compose.project=") and a.split("=", 2)[2] != self.project for a in rest)
            return "".join(c.id + "\n" for c in self.containers if not other), "", 0
        if head == ("docker", "inspect"):
            seen = [c for c in map(self._find, rest[2:]) if c]
            for c in seen:  # time passes: a starting app gets ready
                if c.state == "running" and c.warmup:
                    c.warmup -= 1
                    if not c.warmup and c.health == "starting" and not c.stuck:
                        c.health = "healthy"
            found = [c.inspect(self.project) for c in seen]
            return (json.dumps(found), "", 0) if found else ("[]", "Error: No such container", 1)
        if head in (("docker", "stop"), ("docker", "rm")):
            names = [a for a in rest if not a.startswith("-")]
            gone = [n for n in names if not self._find(n)]
            targeted = [c for c in map(self._find, names) if c]
            self._stopping(targeted, "stopped" if head[1] == "stop" else "removed")
            if head[1] == "rm":
                self.containers = [c for c in self.containers if c not in targeted]
            return "", "".join(f"Error: No such container: {n}\n" for n in gone), 1 if gone else 0
        if head == ("docker", "exec"):
            return self._exec(argv)
        if head == ("docker", "logs"):
            return "fake log line\n", "", 0
        if head == ("docker", "tag"):
            if rest[0] not in self.images:
                return "", f"Error: No such image: {rest[0]}", 1
            self.images[rest[1]] = self.images[rest[0]]
            return "", "", 0
        if head == ("docker", "push"):
            if rest[0] not in self.images:
                return "", f"An image does not exist locally with the tag: {rest[0]}", 1
            if self.registry is not None:
                self.registry.push(rest[0], self.images[rest[0]])
            return "", "", 0
        if head == ("docker", "pull"):  # by digest: the image pushed as it, whatever the tags name now
            ref = rest[-1]
            image = self.registry.by_digest.get(ref) if self.registry is not None else _hash("id", ref.split("@")[0])
            if image is None:
                return "", f"Error response from daemon: manifest for {ref} not found: manifest unknown", 1
            self.images[ref] = image
            return f"{ref}\n", "", 0
        if argv[:3] == ("docker", "image", "inspect"):
            ref = argv[-1]
            if ref not in self.images:
                return "", f"Error: No such image: {ref}", 1
            if argv[-2] == "{{.Size}}":
                return "123456789\n", "", 0
            digests = [digest_of(ref, self.images[ref])] if self.registry is None or ref in self.registry else []
            return (f"{json.dumps(digests)} " if "RepoDigests" in argv[-2] else "") + f"sha256:{self.images[ref]}\n", "", 0
        if argv[:3] == ("docker", "image", "rm"):
            if any(c.image == argv[3] for c in self.containers):
                return "", f"Error: conflict: unable to remove {argv[3]}: image is being used", 1
            return ("", "", 0) if self.images.pop(argv[3], None) else ("", f"Error: No such image: {argv[3]}", 1)
        if argv[:3] in (("docker", "image", "prune"), ("docker", "builder", "prune")):
            return "Total reclaimed space: 0B\n", "", 0
        if head == ("git", "-C"):
            return {"HEAD": GIT_SHA + "\n", "--is-inside-work-tree": "true\n"}.get(argv[-1], ""), "", 0 if "ls-files" not in argv else 1
        if argv[0] in ("mkdir", "install"):
            path = argv[-1]
            if argv[1:2] == ("-p",) or argv[0] == "install":
                self.dirs.add(path)
                return "", "", 0
            if path in self.dirs:
                return "", f"mkdir: cannot create directory '{path}': File exists", 1
            self.dirs.add(path)
            self.modified[path] = time.time()
            return "", "", 0
        if argv[:2] == ("test", "-d"):
            return "", "", 0 if argv[2] in self.dirs else 1
        if list(argv) == cron.daemon_running():
            return "", "", 0 if self.cron_running else 1
        if argv[:2] == ("test", "-f"):
            return "", "", 0 if argv[2] in self.files else 1
        if list(argv) == file_commands.list_dir(argv[-1]):  # the names of the files in a folder
            names = sorted({f[len(argv[-1]) + 1:].split("/")[0] for f in self.files if f.startswith(argv[-1] + "/")})
            return "".join(f"{n}\n" for n in names), "", 0 if names or argv[-1] in self.dirs else 2
        if argv[:2] == ("rm", "-rf"):
            path = argv[2]
            self.dirs = {d for d in self.dirs if d != path and not d.startswith(path + "/")}
            self.files = {f: v for f, v in self.files.items() if not f.startswith(path + "/")}
            return "", "", 0
        if argv[:3] == ("mv", "-n", "-T") and len(argv) == 5:
            return self._move(argv[3], argv[4])
        if argv[:3] == ("sh", "-c", file_commands.AGE_SCRIPT):
            aged = next((p for p in argv[4:] if p in self.files or p in self.dirs), None)
            return ("", "", 1) if aged is None else (f"{int(time.time() - self.modified.get(aged, time.time()))}\n", "", 0)
        if argv[:3] == ("mv", "-f", "-T") and len(argv) == 5:  # a rename within a folder
            if argv[3] not in self.files:
                return "", f"mv: cannot stat '{argv[3]}': No such file or directory", 1
            self.files[argv[4]] = self.files.pop(argv[3])
            return "", "", 0
        if argv[0] == "chown":
            return ("", "", 0) if argv[2] in self.files else ("", f"chown: cannot access '{argv[2]}': No such file or directory", 1)
        if argv[0] in ("nft", "printenv") or argv[:2] in (("rm", "--"), ("rm", "-f"), ("setsid", "-f")):
            return self._host_command(argv)
        if argv[0] == "restic" and self.restic:
            return self.restic(argv, env)
        if argv[0] == "pnpm":  # the test command
            return "tests pass\n", "", 0
        if argv[0] == "certbot" or argv[:1] == ("env",) and "certbot" in argv:  # the ACME client: says yes
            return ("certbot 2.1.0\n" if "--version" in argv else ""), "", 0
        if argv[:2] == ("openssl", "x509") and "-in" in argv:  # real openssl, on the fake's file
            path = argv[argv.index("-in") + 1]
            if path not in self.files:
                return "", f"Could not open file or uri for loading certificate from {path}", 1
            real = [*argv[:argv.index("-in")], *argv[argv.index("-in") + 2:]]
            done = subprocess.run(real, input=self.files[path], capture_output=True, timeout=30)
            return done.stdout.decode(), done.stderr.decode(), done.returncode
        return "", f"fake engine: unknown command: {shlex.join(argv)}", 127

    def _move(self, source: str, destination: str) -> tuple[str, str, int]:
        """``mv -n -T``: a file or a folder (with what is in it) renamed, unless the destination exists."""
        if source not in self.files and source not in self.dirs:
            return "", f"mv: cannot stat '{source}': No such file or directory", 1
        if destination in self.files or destination in self.dirs:
            return "", "", 0  # -n: nothing done (GNU mv says nothing)

        def moved(path: str) -> str:
            return destination + path[len(source):] if path == source or path.startswith(source + "/") else path

        self.dirs = {moved(d) for d in self.dirs}
        self.files = {moved(f): v for f, v in self.files.items()}
        self.modified = {moved(f): t for f, t in self.modified.items()}
        return "", "", 0

    def _host_command(self, argv: Argv) -> tuple[str, str, int]:
        """The firewall's commands (deploy.engine.commands.nft): our nftables table, loaded
        from a replacement file or removed; the SSH session's addresses; removing files.
        ``setsid -f`` starts nothing: the tests play the revert job from the journal."""
        if argv[:3] == ("nft", "list", "table"):
            return (self.nft, "", 0) if self.nft else ("", "Error: No such file or directory", 1)
        if argv[:2] == ("nft", "-f"):
            if argv[2] not in self.files:
                return "", f"Error: Could not process rule: No such file or directory: {argv[2]}", 1
            table = self.files[argv[2]].decode().split("\ndelete table inet deploy_firewall\n", 1)[1]
            self.nft = table or None
            return "", "", 0
        if argv[0] == "nft" and "delete table" in argv[-1]:
            self.nft = None
            return "", "", 0
        if argv == ("printenv", "SSH_CONNECTION"):
            return ("", "", 1) if self.local else ("192.0.2.1 50022 192.0.2.2 22\n", "", 0)
        if argv[:2] == ("rm", "--"):
            if argv[2] not in self.files:
                return "", f"rm: cannot remove '{argv[2]}': No such file or directory", 1
            del self.files[argv[2]]
            return "", "", 0
        if argv[:3] == ("rm", "-f", "--"):
            for path in argv[3:]:
                self.files.pop(path, None)
            return "", "", 0
        return ("", "", 0) if argv[:2] == ("setsid", "-f") else ("", f"fake engine: unknown command: {shlex.join(argv)}", 127)

    def _compose(self, argv: Argv, env: Mapping[str, str]) -> tuple[str, str, int]:
        sub, args = compose_sub(argv)
        missing = [f for i, f in enumerate(argv[:-1]) if argv[i - 1] == "-f" and self.workdir and f not in self.files]
        if missing and sub != "version":  # on a host, Compose reads the uploaded files
            return "", f"open {missing[0]}: no such file or directory", 14
        services = [a for a in args if not a.startswith("-") and "=" not in a and not a.isdigit()]
        every = [*STATELESS, "nginx", "postgres", "redis"]
        if sub == "config" and "--hash" in args:
            wanted = args[args.index("--hash") + 1].split(",")
            return "".join(f"{s} {self.config_hash(s, env)}\n" for s in wanted), "", 0
        if sub == "config" and "json" in args:
            config = {s: {"image": self.image_ref(s, env), "networks": {n: None for n in NETWORKS[s]},
                          **({"deploy": {"replicas": self.replicas[s]}} if s in self.replicas else {}),
                          **({"build": {"context": f"/src/{s}"}} if s in STATELESS else {})}
                      for s in every}
            networks = {n: {"name": f"{self.project}_{n}"} for n in SUBNETS}
            return json.dumps({"name": self.project, "services": config, "networks": networks}), "", 0
        if sub == "config":
            return "", "", 0
        if sub == "port":
            return (f"0.0.0.0:{PUBLISHED}\n", "", 0) if self.running("nginx") else ("", "no container found for nginx", 1)
        if sub in ("build", "pull"):
            for s in [s for s in services or every if sub == "pull" or s in STATELESS]:
                ref = self.image_ref(s, env)
                if sub == "pull" and s in STATELESS and self.registry is not None:
                    if ref not in self.registry:
                        return "", f"manifest for {ref} not found", 1
                    self.images[ref] = self.registry.image(ref)  # what the tag names there now
                self.images.setdefault(ref, _hash("id", ref))
            return "", "", 0
        if sub == "run":
            return "migrated\n", "", 0
        if sub == "up":
            return self._up(services or every, args, env)
        if sub in ("stop", "down", "rm"):
            chosen = [c for c in self.containers if not services or c.service in services]
            if sub == "down":
                self._stopping(sorted(chosen, key=lambda c: c.service != "nginx"), "stopped by compose down")
            elif sub == "stop":
                self._stopping(chosen, "stopped by compose stop")
            self.containers = [c for c in self.containers if c not in chosen or (sub == "stop" or (sub == "rm" and c.state == "running"))]
            return "", "", 0
        return "", f"fake engine: unknown compose command: {sub}", 127

    def _up(self, services: Sequence[str], args: Sequence[str], env: Mapping[str, str]) -> tuple[str, str, int]:
        scale = dict(a.split("=") for a in args if "=" in a)
        fresh: list[Container] = []
        started: list[Container] = []
        for s in services:
            want = int(scale.get(s, self.replicas.get(s, 1)))
            mine = sorted((c for c in self.containers if c.service == s), key=lambda c: c.number)
            for k, c in enumerate(mine[:want]):
                if "--no-recreate" not in args and c.config_hash != self.config_hash(s, env):
                    self._stopping([c], "recreated by compose")  # recreated in place: the config (image) changed
                    self.containers.remove(c)
                    mine[k] = self._create(s, env, c.number)
                    fresh.append(mine[k])
                elif c.state != "running":  # Compose starts stopped containers again: their apps start anew
                    c.state, c.probed, c.probed_at, c.routed_at = "running", False, None, None
                    if s in STATELESS and self.warmup and not c.stuck and c.health != "unhealthy":
                        c.warmup, c.health = self.warmup, "starting"
                    self._connect(c)
                    started.append(c)
            for c in mine[want:]:  # scaled down: the highest numbers go
                self._stopping([c], "removed by compose (scaled down)")
                self.containers.remove(c)
            fresh += [self._create(s, env) for _ in range(want - len(mine))]
        self._audit(("docker", "compose", "up", "(starting containers)"))  # what nginx routes while Compose waits
        if "--wait" in args:  # Compose waits until each started container's healthcheck passes
            for c in [*fresh, *started]:
                if c.health == "starting" and not c.stuck:
                    c.warmup, c.health = 0, "healthy"
        for proxy in [c for c in [*fresh, *started] if c.service == "nginx"]:
            error = self._proxy_started(proxy)
            if error:
                return "", f"container {proxy.name(self.project)} exited (1): nginx: [emerg] {error}", 1
        sick = [c.name(self.project) for c in [*fresh, *started] if c.health != "healthy" and c.service in STATELESS]
        if "--wait" in args and sick:
            return "", f"container {sick[0]} is unhealthy", 1
        return "", "", 0


class Clock:
    """Time for the waits of the rollout and the routing (``monkeypatch`` it over their
    ``time``): a sleep passes at once, and a deadline comes after as many polls as it would."""

    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def nginx_check(text: str | None) -> str | None:
    """What ``nginx -t`` says of the router's config with this routing file (None: valid):
    an upstream block per app service (router.conf proxies to backend and web), each with
    a server at an address:port; nothing else."""
    if text is None:
        return 'open() "/etc/nginx/upstreams/pools.conf" failed (2: No such file or directory)'
    upstream: str | None = None
    servers = 0
    names = []
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if upstream is None:
            words = line.split()
            if len(words) != 3 or words[0] != "upstream" or words[2] != "{":
                return f'unknown directive "{words[0]}" in pools.conf:{n}'
            upstream, servers = words[1], 0
            names.append(upstream)
        elif line == "}":
            if not servers:
                return f'no servers are inside upstream in pools.conf:{n}'
            upstream = None
        elif line.startswith("server "):
            if not SERVER_LINE.fullmatch(line):
                return f'invalid server "{line}" in pools.conf:{n}'
            servers += 1
        elif not (line.startswith(("keepalive ", "keepalive_timeout ")) and line.endswith(";")):
            return f'unknown directive "{line.split()[0]}" in pools.conf:{n}'
    if upstream is not None:
        return "unexpected end of file, expecting \"}\" in pools.conf"
    missing = [s for s in STATELESS if s not in names]
    if missing:
        return f'host not found in upstream "{missing[0]}" in {ROUTER_CONFIG}'
    return None


def _hash(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


if TYPE_CHECKING:
    _conforms: Target = FakeEngine()  # mypy checks that the fake implements the protocol


def marking_executor(said: list[str], journal: list[Called], hosts: bool, dry_run: bool = False) -> Executor:
    """An executor whose output is kept in ``said``, and whose step headers
    (``[i/n] step ...``) are marked in the ``journal``."""

    def say(line: str) -> None:
        said.append(line)
        m = re.match(r"\[\d+/\d+\] (\w+)(?: on .*)?(?: \.\.\.)?$", line)
        if m:
            journal.append(Called("step", (m.group(1),)))

    return Executor(dry_run=dry_run, say=say, hosts=hosts)
