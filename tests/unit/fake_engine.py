"""A recording fake of one host (a ``Target``): a Docker engine with one Compose project,
a tiny file system, and a journal of every command, in order. (Longer than our usual
250 lines: it is one simulation, whose parts — containers, Compose's rules, the file
system, the registry — answer each other.)

It simulates just enough for the deploy workflows: containers (service, number, state,
health, image, labels) answering ``docker ps``/``docker inspect`` shaped like Docker's,
``docker compose config|port|up|pull|build|run|stop|rm|down``, ``docker stop|rm|exec|logs``,
images (``image inspect|rm``, ``tag``, ``push``), ``git``, the lock's ``mkdir``/``test``/
``rm -rf``, spawned ``tar``/``psql``/``pg_dump``, and HTTP through the proxy. Anything else
exits 127, so a command the fake does not know shows up in a test.
"""
from __future__ import annotations

import hashlib
import io
import json
import shlex
import tarfile
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from invoke.exceptions import UnexpectedExit
from invoke.runners import Result

from deploy.engine.target import HttpResponse

if TYPE_CHECKING:
    from deploy.engine.target import Target

Argv = tuple[str, ...]
STATELESS = ("backend", "web")
DEFAULT_IMAGES = {"nginx": "nginx:1.27-alpine", "postgres": "postgres:16-alpine", "redis": "redis:7-alpine"}
PUBLISHED = 8080  # nginx's published port (and container port)
GIT_SHA = "0123456789abcdef0123456789abcdef01234567"
READ_COMMANDS = ("docker ps", "docker inspect", "docker image inspect", "docker version", "docker logs", "docker exec")
READ_COMPOSE = ("config", "port", "version", "ps", "logs")


@dataclass(frozen=True)
class Called:
    host: str
    argv: Argv
    env: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)

    @property
    def line(self) -> str:
        return shlex.join(self.argv)


def is_read(argv: Sequence[str]) -> bool:
    """A command that only reads (a fact): ps, inspect, config, port, version, git, test, probes, fetch."""
    if tuple(argv[:2]) == ("docker", "compose"):
        return compose_sub(argv)[0] in READ_COMPOSE
    return argv[0] in ("git", "test", "fetch") or shlex.join(argv).startswith(READ_COMMANDS)


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
    health: str = "healthy"
    config_hash: str = ""
    version: str = ""

    def name(self, project: str) -> str:
        return f"{project}-{self.service}-{self.number}"

    def inspect(self, project: str) -> dict:
        running = self.state == "running"
        ports = {f"{PUBLISHED}/tcp": [{"HostIp": "0.0.0.0", "HostPort": str(PUBLISHED)}]} if self.service == "nginx" else {}
        return {
            "Id": self.id,
            "Name": "/" + self.name(project),
            "Config": {"Image": self.image, "Env": [f"APP_VERSION={self.version}"] if self.version else [],
                       "Labels": {"com.docker.compose.project": project, "com.docker.compose.service": self.service,
                                  "com.docker.compose.container-number": str(self.number),
                                  "com.docker.compose.oneoff": "False", "com.docker.compose.config-hash": self.config_hash}},
            "State": {"Status": self.state, "Running": running, "ExitCode": 0 if running else 143,
                      "StartedAt": "2026-01-02T03:04:05.123456789Z",
                      **({"Health": {"Status": self.health, "Log": [{"Output": f"fake check: {self.health}"}]}} if running else {})},
            "NetworkSettings": {"Ports": ports},
        }


@dataclass
class Failure:
    matches: Callable[[Argv], bool]
    times: int | None  # None: every time
    after: int  # matches let through before the first failure
    stderr: str
    exited: int
    partial: bool  # the command does its work, then fails (Compose started some containers, then gave up)


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
    if "count(*)" in sql:
        return "public.users\t3"
    if "format('%I.%I'" in sql:
        return "public.users"
    return ""


class FakeEngine:
    """One host. ``journal`` (shared between hosts if given) records every call in order."""

    def __init__(self, name: str = "local", *, local: bool = True, workdir: str | None = None, project: str = "myapp",
                 journal: list[Called] | None = None, registry: set[str] | None = None, replicas: Mapping[str, int] | None = None) -> None:
        self.name, self.local, self.workdir, self.project = name, local, workdir, project
        self.journal: list[Called] = [] if journal is None else journal
        self.registry = registry  # refs pushed (shared by hosts); None: pulls always succeed
        self.replicas = dict(replicas or {"backend": 2, "web": 1})  # deploy.replicas in the compose files
        self.containers: list[Container] = []
        self.images: dict[str, str] = {}  # ref -> image id
        self.files: dict[str, bytes] = {}
        self.dirs: set[str] = set()
        self.unhealthy: set[str] = set()  # APP_VERSIONs whose new app containers come up unhealthy
        self.failures: list[Failure] = []
        self._ids = 0
        self._lock = threading.RLock()

    # --- set-up and failure injection ---------------------------------------------------
    def fail_when(self, match: str | Callable[[Argv], bool], times: int | None = 1, stderr: str = "injected failure",
                  exited: int = 1, after: int = 0, partial: bool = False) -> None:
        """Commands matching ``match`` (a substring of the joined command, or a predicate)
        exit ``exited``, changing nothing (``partial``: after doing their work): ``times``
        times (None: always), once ``after`` matching commands went through."""
        test = match if callable(match) else (lambda argv, s=match: s in shlex.join(argv))
        self.failures.append(Failure(test, times, after, stderr, exited, partial))

    def make_unhealthy(self, version: str) -> None:
        self.unhealthy.add(version)

    def image_ref(self, service: str, env: Mapping[str, str]) -> str:
        if service in STATELESS:
            registry, ns = env.get("DOCKER_REGISTRY") or "local", env.get("DOCKER_NAMESPACE") or "myapp"
            return f"{registry}/{ns}/{service}:{env.get('APP_VERSION') or 'latest'}"
        return env.get(f"{service.upper()}_IMAGE") or DEFAULT_IMAGES[service]

    def start(self, services: Sequence[str], env: Mapping[str, str], counts: Mapping[str, int] | None = None) -> None:
        """Seed running containers (``counts`` or the replicas) of ``services`` with ``env``'s images."""
        for s in services:
            for _ in range((counts or {}).get(s, self.replicas.get(s, 1))):
                self._create(s, env)

    def running(self, service: str | None = None) -> list[Container]:
        return [c for c in self.containers if c.state == "running" and (service is None or c.service == service)]

    def versions(self, service: str) -> list[str]:
        """The image tags of ``service``'s running containers, by number."""
        return [c.image.rsplit(":", 1)[-1] for c in sorted(self.running(service), key=lambda c: c.number)]

    def commands(self) -> list[Argv]:
        return [c.argv for c in self.journal if c.host == self.name]

    # --- the Target protocol ------------------------------------------------------------
    def run(self, argv: Sequence[str], *, env: Mapping[str, str] | None = None, hide: bool = True, warn: bool = False,
            pty: bool = False, timeout: float | None = None) -> Result:
        argv = tuple(argv)
        with self._lock:
            self.journal.append(Called(self.name, argv, dict(env or {})))
            failure = self._failure(argv)
            if failure is None or failure.partial:
                out, err, code = self._simulate(argv, self._env(argv, env))
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

    def fetch(self, port: int, path: str, timeout: float = 5.0) -> HttpResponse:
        argv = ("fetch", str(port), path)
        with self._lock:
            self.journal.append(Called(self.name, argv))
            failure = self._failure(argv)
        if failure:
            return HttpResponse(502, b"", failure.stderr)
        if port != PUBLISHED or not self.running("nginx"):
            return HttpResponse(0, b"", "connection refused")
        return HttpResponse(200, b"ok")

    def read_text(self, path: str) -> str | None:
        data = self.files.get(path)
        return None if data is None else data.decode()

    def write_text(self, path: str, text: str) -> None:
        self.write_bytes(path, text.encode(), 0o600)

    def write_bytes(self, path: str, data: bytes, mode: int) -> None:
        with self._lock:
            self.journal.append(Called(self.name, ("write", path)))
            self.files[path] = bytes(data)

    def close(self) -> None:
        """Nothing to drop."""

    # --- the simulation -------------------------------------------------------------------
    def _failure(self, argv: Argv) -> Failure | None:
        for f in self.failures:
            if (f.times is None or f.times > 0) and f.matches(argv):
                if f.after > 0:
                    f.after -= 1
                    continue
                if f.times is not None:
                    f.times -= 1
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
        health = "unhealthy" if service in STATELESS and version in self.unhealthy else "healthy"
        taken = [c.number for c in self.containers if c.service == service]
        c = Container(hashlib.sha256(f"{self.name}{self._ids}".encode()).hexdigest(), service,
                      number or max(taken, default=0) + 1, image, health=health, config_hash=_hash(service, image), version=version)
        self.containers.append(c)
        self.images.setdefault(image, _hash("id", image))
        return c

    def _untar(self, directory: str, data: bytes) -> None:
        with tarfile.open(fileobj=io.BytesIO(data)) as tar, self._lock:
            for member in tar.getmembers():
                if member.isfile():
                    self.files[f"{directory}/{member.name}"] = tar.extractfile(member).read()  # type: ignore[union-attr]

    def _find(self, ref: str) -> Container | None:
        return next((c for c in self.containers if ref in (c.id, c.id[:12], c.name(self.project))), None)

    def _simulate(self, argv: Argv, env: Mapping[str, str]) -> tuple[str, str, int]:
        if argv[:2] == ("docker", "compose") and len(argv) > 2 and argv[2] != "version":
            return self._compose(argv, env)
        head, rest = argv[:2], argv[2:]
        if argv[:3] == ("docker", "compose", "version"):
            return "2.29.7\n", "", 0
        if head == ("docker", "version"):
            return json.dumps({"Server": {"Version": "27.3.1"}}), "", 0
        if head == ("docker", "ps"):
            return "".join(c.id + "\n" for c in self.containers), "", 0
        if head == ("docker", "inspect"):
            found = [c.inspect(self.project) for c in map(self._find, rest[2:]) if c]
            return (json.dumps(found), "", 0) if found else ("[]", "Error: No such container", 1)
        if head in (("docker", "stop"), ("docker", "rm")):
            names = [a for a in rest if not a.startswith("-")]
            gone = [n for n in names if not self._find(n)]
            for c in filter(None, map(self._find, names)):
                if head[1] == "stop":
                    c.state = "exited"
                else:
                    self.containers.remove(c)
            return "", "".join(f"Error: No such container: {n}\n" for n in gone), 1 if gone else 0
        if head == ("docker", "exec"):
            inside = self._find(next(a for a in rest if not a.startswith("-")))
            target = self._find(argv[-1].split("//", 1)[-1].split(":", 1)[0]) if "wget" in argv else inside
            ok = all(c and c.state == "running" and c.health != "unhealthy" for c in (inside, target))
            return ("", "", 0) if ok else ("", "wget: server returned error", 1)
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
                self.registry.add(rest[0])
            return "", "", 0
        if argv[:3] == ("docker", "image", "inspect"):
            ref = argv[-1]
            if ref not in self.images:
                return "", f"Error: No such image: {ref}", 1
            digests = [f"{ref.rsplit(':', 1)[0]}@sha256:{_hash('digest', ref)}"] if self.registry is None or ref in self.registry else []
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
            return "", "", 0
        if argv[:2] == ("test", "-d"):
            return "", "", 0 if argv[2] in self.dirs else 1
        if argv[:2] == ("test", "-f"):
            return "", "", 0 if argv[2] in self.files else 1
        if argv[:2] == ("rm", "-rf"):
            path = argv[2]
            self.dirs = {d for d in self.dirs if d != path and not d.startswith(path + "/")}
            self.files = {f: v for f, v in self.files.items() if not f.startswith(path + "/")}
            return "", "", 0
        if argv[0] == "node":  # the test command
            return "tests pass\n", "", 0
        return "", f"fake engine: unknown command: {shlex.join(argv)}", 127

    def _compose(self, argv: Argv, env: Mapping[str, str]) -> tuple[str, str, int]:
        sub, args = compose_sub(argv)
        missing = [f for i, f in enumerate(argv[:-1]) if argv[i - 1] == "-f" and self.workdir and f not in self.files]
        if missing and sub != "version":  # on a host, Compose reads the uploaded files
            return "", f"open {missing[0]}: no such file or directory", 14
        services = [a for a in args if not a.startswith("-") and "=" not in a and not a.isdigit()]
        every = [*STATELESS, "nginx", "postgres", "redis"]
        if sub == "config" and "--hash" in args:
            wanted = args[args.index("--hash") + 1].split(",")
            return "".join(f"{s} {_hash(s, self.image_ref(s, env))}\n" for s in wanted), "", 0
        if sub == "config" and "json" in args:
            config = {s: {"image": self.image_ref(s, env), **({"deploy": {"replicas": self.replicas[s]}} if s in self.replicas else {})}
                      for s in every}
            return json.dumps({"name": self.project, "services": config}), "", 0
        if sub == "config":
            return "", "", 0
        if sub == "port":
            return (f"0.0.0.0:{PUBLISHED}\n", "", 0) if self.running("nginx") else ("", "no container found for nginx", 1)
        if sub in ("build", "pull"):
            for s in [s for s in services or every if sub == "pull" or s in STATELESS]:
                ref = self.image_ref(s, env)
                if sub == "pull" and s in STATELESS and self.registry is not None and ref not in self.registry:
                    return "", f"manifest for {ref} not found", 1
                self.images.setdefault(ref, _hash("id", ref))
            return "", "", 0
        if sub == "run":
            return "migrated\n", "", 0
        if sub == "up":
            return self._up(services or every, args, env)
        if sub in ("stop", "down", "rm"):
            for c in [c for c in self.containers if not services or c.service in services]:
                if sub == "stop":
                    c.state = "exited"
                elif sub == "down" or c.state != "running":
                    self.containers.remove(c)
            return "", "", 0
        return "", f"fake engine: unknown compose command: {sub}", 127

    def _up(self, services: Sequence[str], args: Sequence[str], env: Mapping[str, str]) -> tuple[str, str, int]:
        scale = dict(a.split("=") for a in args if "=" in a)
        fresh: list[Container] = []
        for s in services:
            want = int(scale.get(s, self.replicas.get(s, 1)))
            mine = sorted((c for c in self.containers if c.service == s), key=lambda c: c.number)
            for k, c in enumerate(mine[:want]):
                if "--no-recreate" not in args and c.config_hash != _hash(s, self.image_ref(s, env)):
                    self.containers.remove(c)  # recreated in place: the config (image) changed
                    mine[k] = self._create(s, env, c.number)
                    fresh.append(mine[k])
                elif c.state != "running":  # Compose starts stopped containers again
                    c.state = "running"
            for c in mine[want:]:  # scaled down: the highest numbers go
                self.containers.remove(c)
            fresh += [self._create(s, env) for _ in range(want - len(mine))]
        sick = [c.name(self.project) for c in fresh if c.health == "unhealthy"]
        if "--wait" in args and sick:
            return "", f"container {sick[0]} is unhealthy", 1
        return "", "", 0


def _hash(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


if TYPE_CHECKING:
    _conforms: Target = FakeEngine()  # mypy checks that the fake implements the protocol
