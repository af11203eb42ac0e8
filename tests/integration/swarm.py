"""The Docker Swarm stage on the test hosts, as tests/integration/test_swarm.py and
bench/swarm use it: the stage (h1 manager, edge and db; h2 worker and edge; h3 worker),
an independent look at the swarm from its manager (the system ssh client and the docker
CLI's JSON, never our own code), load through every edge's nginx and the failed lines
of every edge's access log, and the removal of all of it.

The three nodes share this machine's hostname ("vm"), so nodes are told apart by their
ids and addresses, never by the hostname ``docker node ls`` or ``docker service ps`` show.
Traffic goes only to the test hosts' own addresses.
"""
from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import os
import re
import shlex
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from tests import load
from tests.integration.conftest import ROOT, Inv, make_stack
from tests.integration.hosts import HOSTS_ENV, remote_env, remove_from_hosts, ssh, stage_config

STAGE = "swarm"
MANAGER = "h1"
EDGES = ("h1", "h2")
ROLES = {"h1": ["manager", "edge", "db"], "h2": ["worker", "edge"], "h3": ["worker"]}
OVERRIDE = "tests/integration/swarm-testbed.yml"
COMPOSE_FILES = ("compose/docker-compose.yml", "compose/docker-compose.prod.yml", OVERRIDE)
STACK_LABEL = "com.docker.stack.namespace"
SERVICE_LABEL = "com.docker.swarm.service.name"
# The deploy's steps before anything on the swarm changes: load starts after them.
PREPARE_STEPS = ("preflight", "tests", "build", "tag", "push")
STEP = re.compile(r"^\[\d+/\d+\] ([\w.-]+)")


def swarm_stage(testbed: dict, name: str = STAGE) -> dict:
    """The swarm stage of the three test hosts, as invoke.yaml would list it. The overlay
    is not encrypted: this kernel has no CONFIG_INET_ESP (IPsec)."""
    stages = stage_config(testbed, roles=ROLES, name=name)
    stages[name].update(engine="swarm", compose_files=list(COMPOSE_FILES), encrypt_overlay=False)
    return stages


@dataclasses.dataclass
class SwarmStack(Inv):
    """A test stack on the swarm stage, and what the swarm fixture learnt setting it up."""

    ids: dict[str, str] = dataclasses.field(default_factory=dict)  # host -> its node id (once the swarm is formed)
    first_deploy: subprocess.CompletedProcess | None = None  # the deploy from nothing


def make_swarm_stack(tmp: Path, images: dict[str, str], testbed: dict, name: str = STAGE) -> SwarmStack:
    """A test stack on the swarm stage: its own project (the stack's name), ports, state."""
    # A swarm publishes on every address of a node (no bind address): HTTPS too.
    stack = make_stack(tmp, images, stages=swarm_stage(testbed, name), **remote_env(testbed), HTTPS_BIND="0.0.0.0")
    fields = {f.name: getattr(stack, f.name) for f in dataclasses.fields(stack)}
    return SwarmStack(**{**fields, "stage": name, "backups": stack.backups.parent / name, "compose_files": COMPOSE_FILES})


def on_manager(testbed: dict, command: str, check: bool = True) -> subprocess.CompletedProcess:
    return ssh(testbed, MANAGER, command, check=check)


def ssh_input(testbed: dict, host: str, command: str, data: str) -> subprocess.CompletedProcess:
    """ssh, with ``data`` on the command's stdin (a file written on the host)."""
    argv = ["ssh", "-i", testbed["TESTBED_SSH_KEY"], "-o", f"UserKnownHostsFile={testbed['TESTBED_KNOWN_HOSTS']}",
            "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-o", "ConnectTimeout=5", f"root@{testbed['addrs'][host]}", command]
    result = subprocess.run(argv, input=data, capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        raise AssertionError(f"ssh {host} {command}: {result.returncode}\n{result.stdout}\n{result.stderr}")
    return result


def on_all(testbed: dict, command: str | Callable[[str], str], check: bool = False) -> dict[str, subprocess.CompletedProcess]:
    """``command`` (or ``command(host)``) on every test host at once."""
    def one(host: str) -> subprocess.CompletedProcess:
        return ssh(testbed, host, command(host) if callable(command) else command, check=check)
    with ThreadPoolExecutor(max_workers=len(testbed["addrs"])) as pool:
        return dict(zip(testbed["addrs"], pool.map(one, testbed["addrs"]), strict=True))


def wait_for(what: str, probe: Callable[[], Any], timeout: float, every: float = 1.0) -> Any:
    """``probe()`` until it returns something true; its last value in the failure."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not after {timeout:.0f} s (last: {value!r})")
        time.sleep(every)


def link(host: str, state: str) -> None:
    """The host's veth on this machine's side (scripts/testbed/hosts.sh) up or down."""
    subprocess.run(["ip", "link", "set", f"veth-{host}", state], check=True, timeout=30)


@contextlib.contextmanager
def hosts_swarm_lock(timeout: float = 3600) -> Iterator[None]:
    """One swarm on the test hosts at a time: a run of test_swarm.py or bench/swarm holds
    this lock from before it forms its swarm until every host left it, so that a second
    run waits instead of taking its hosts out of the first one's swarm."""
    with open(HOSTS_ENV.parent / "swarm.lock", "a") as lock:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise AssertionError(f"another run held {lock.name} for {timeout:.0f} s") from None
                time.sleep(2)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


# --- the swarm as its manager sees it ------------------------------------------------


def node_ids(testbed: dict) -> dict[str, str]:
    """Each host's swarm node id, as the host itself knows it (empty: not in a swarm)."""
    out = on_all(testbed, "docker info --format '{{.Swarm.NodeID}}'")
    return {host: result.stdout.strip() for host, result in out.items()}


@dataclasses.dataclass(frozen=True)
class NodeView:
    id: str
    state: str  # ready, down, unknown
    availability: str  # active, pause, drain
    role: str
    labels: dict[str, str]


def nodes(testbed: dict) -> dict[str, NodeView]:
    """Every node by id, from ``docker node inspect`` on the manager."""
    text = on_manager(testbed, "docker node inspect $(docker node ls -q)").stdout
    out = {}
    for item in json.loads(text):
        spec, status = item.get("Spec") or {}, item.get("Status") or {}
        out[item["ID"]] = NodeView(id=item["ID"], state=status.get("State", ""), availability=spec.get("Availability", ""),
                                   role=spec.get("Role", ""), labels=dict(spec.get("Labels") or {}))
    return out


@dataclasses.dataclass(frozen=True)
class TaskView:
    id: str
    service: str  # without the stack's prefix
    node: str  # node id
    state: str  # Status.State: new, pending, ..., running, shutdown, failed
    desired: str
    addresses: tuple[str, ...] = ()  # on the stack's overlay networks


def tasks(testbed: dict, project: str, running_only: bool = True) -> list[TaskView]:
    """The stack's tasks (by default those Swarm wants running), from the manager's
    ``docker service inspect`` and ``docker inspect`` of each task."""
    flt = "--filter desired-state=running " if running_only else ""
    command = (f"ids=$(docker service ls -q --filter label={STACK_LABEL}={project}); [ -n \"$ids\" ] || {{ echo '[]'; echo '[]'; exit 0; }}; "
               f"docker service inspect $ids | tr -d '\\n'; echo; "
               f"t=$(docker service ps -q --no-trunc {flt}$ids); "
               f"if [ -n \"$t\" ]; then docker inspect --type task $t | tr -d '\\n'; echo; else echo '[]'; fi")
    services_json, tasks_json = on_manager(testbed, command).stdout.splitlines()[:2]
    names = {s["ID"]: s["Spec"]["Name"].removeprefix(f"{project}_") for s in json.loads(services_json)}
    return [TaskView(id=t["ID"], service=names.get(t.get("ServiceID", ""), t.get("ServiceID", "")), node=t.get("NodeID", ""),
                     state=(t.get("Status") or {}).get("State", ""), desired=t.get("DesiredState", ""),
                     addresses=tuple(a.split("/")[0] for n in t.get("NetworksAttachments") or [] for a in n.get("Addresses") or []))
            for t in json.loads(tasks_json)]


def tasks_on(testbed: dict, project: str, node: str) -> list[TaskView]:
    return [t for t in tasks(testbed, project) if t.node == node]


def replicas(testbed: dict, project: str) -> dict[str, str]:
    """``docker service ls``'s REPLICAS of each of the stack's services ("3/3"; global: "2/2")."""
    out = on_manager(testbed, f"docker service ls --filter label={STACK_LABEL}={project} --format '{{{{.Name}}}} {{{{.Replicas}}}}'").stdout
    return {name.removeprefix(f"{project}_"): count.split()[0] for name, _, count in (line.partition(" ") for line in out.splitlines())}


def task_history(testbed: dict, project: str) -> list[str]:
    """Every task of the stack that Swarm ended or could not start, with its error
    (``docker service ps``: name, node, state, error), newest first: why a service is
    short of what it wants."""
    out = on_manager(testbed, f"ids=$(docker service ls -q --filter label={STACK_LABEL}={project}); [ -z \"$ids\" ] || "
                              "docker service ps --no-trunc --format '{{.Name}} {{.Node}} {{.DesiredState}} {{.CurrentState}} {{.Error}}' $ids",
                     check=False).stdout
    return [line for line in out.splitlines() if line.split()[3:4] != ["Running"]]


def converged(testbed: dict, project: str) -> dict[str, str] | None:
    """The replicas when every service runs all it should (None while one does not)."""
    counts = replicas(testbed, project)
    if not counts or any(a != b for a, b in (c.split("/") for c in counts.values())):
        return None
    return counts


def wait_converged(testbed: dict, project: str, what: str, timeout: float, also: Callable[[], bool] = lambda: True) -> dict[str, str]:
    """The replicas once every service runs all it wants (and ``also()`` holds); a failure
    says which service is short and why (the tasks Swarm ended, with their errors)."""
    try:
        return wait_for(what, lambda: also() and converged(testbed, project), timeout=timeout)
    except AssertionError as err:
        history = "\n  ".join(task_history(testbed, project)[:30])
        raise AssertionError(f"{err}\nreplicas: {replicas(testbed, project)}\nended tasks:\n  {history}") from None


def service_spec(testbed: dict, project: str, service: str) -> dict:
    return json.loads(on_manager(testbed, f"docker service inspect {project}_{service}").stdout)[0]


def image_tag(spec: dict) -> str:
    """The tag of a service's image (``REF:TAG@sha256:...`` -> TAG)."""
    ref = spec["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"].split("@", 1)[0]
    return ref.rsplit("/", 1)[-1].partition(":")[2] or "latest"


def postgres_container(testbed: dict, project: str) -> str:
    """The id of the database task's container on the db node (h1)."""
    out = ssh(testbed, "h1", f"docker ps -q --filter label={SERVICE_LABEL}={project}_postgres").stdout.split()
    assert len(out) == 1, f"postgres containers of {project} on h1: {out}"
    return out[0]


def pg_dumpall(testbed: dict, project: str) -> str:
    """The whole cluster as SQL, without the random \\restrict keys of recent pg_dump."""
    out = ssh(testbed, "h1", f"docker exec {postgres_container(testbed, project)} pg_dumpall -U app").stdout
    return "\n".join(line for line in out.splitlines() if not line.startswith(("\\restrict", "\\unrestrict")))


# --- load through every edge ---------------------------------------------------------


class EdgeTraffic:
    """load.Traffic through the nginx of every edge node at once: ``connections`` mixed
    connections in all (GET pages, static files and the API, POSTs), split between the
    edges, and on each edge 4 more holding 2 s requests."""

    def __init__(self, testbed: dict, port: int, connections: int = 50, edges: tuple[str, ...] = EDGES) -> None:
        self.edges: dict[str, load.Traffic] = {}
        try:
            for host in edges:
                self.edges[host] = load.Traffic(port, connections=connections // len(edges), host=testbed["addrs"][host])
        except BaseException:
            self.results()
            raise
        self.since = min(t.since for t in self.edges.values())

    def results(self) -> dict[str, tuple[load.LoadResult, load.LoadResult]]:
        return {host: traffic.results() for host, traffic in self.edges.items()}


@contextlib.contextmanager
def traffic_through_edges(testbed: dict, port: int, results: dict, warmup: float = 2.0) -> Iterator[EdgeTraffic]:
    """EdgeTraffic for the length of a block; its figures land in ``results`` (also when
    the block fails), per edge."""
    traffic = EdgeTraffic(testbed, port)
    try:
        time.sleep(warmup)
        yield traffic
        time.sleep(1)
    finally:
        results.update(traffic.results())
        results["since"] = traffic.since


def edge_logs(testbed: dict, host: str, project: str, since: str) -> tuple[str, str]:
    """The access log (stdout) and error log (stderr) since ``since`` of every nginx task
    container on ``host``, running or not (a restarted task is a new container)."""
    command = (f"for c in $(docker ps -aq --filter label={SERVICE_LABEL}={project}_nginx); do "
               f"docker logs --since {shlex.quote(since)} $c; done")
    result = ssh(testbed, host, command, check=False)
    return result.stdout, result.stderr


def failed_lines(access_log: str) -> list[str]:
    """Access-log lines whose status is not 2xx/3xx (499: wrk closed its connections when
    told to stop; it counts its own failures)."""
    return [line for line in access_log.splitlines() if "rt=" in line and not re.search(r'" ([23]\d\d|499) ', line)]


def cut_short(nginx_errors: list[str], lost: set[str]) -> list[str]:
    """The router's lines for responses a task at one of the ``lost`` addresses had begun
    to send when it vanished: nginx had passed their status and first bytes on to the
    client, so neither it nor any proxy could finish or retry them."""
    return [line for line in nginx_errors if "while reading upstream" in line
            and (m := re.search(r'upstream: "http://([\d.]+):\d+', line)) and m.group(1) in lost]


def assert_edges_clean(testbed: dict, project: str, results: dict, min_requests: int = 100, lost: set[str] | None = None) -> int:
    """Every edge: 0 non-2xx and 0 socket errors in both wrk runs, and no failed line in
    the access log of its nginx while the traffic ran. ``lost``: addresses of tasks on a
    node that vanished; the responses they were in the middle of sending (``cut_short``)
    may end early (wrk: read errors), at most one each, and nothing else may fail.
    Returns how many were so cut short."""
    since = results["since"]
    problems = []
    tolerated = 0
    for host in (h for h in results if h != "since"):
        fast, slow = results[host]
        access, errors = edge_logs(testbed, host, project, since)
        failed = failed_lines(access)
        slowest = [line for line in access.splitlines() if (m := re.search(r"rt=([\d.]+)", line)) and float(m.group(1)) > 4][-10:]
        nginx_errors = [line for line in errors.splitlines() if "[error]" in line or "[crit]" in line or "[alert]" in line]
        allowed = len(cut_short(nginx_errors, lost or set()))
        reads = fast.socket_errors.get("read", 0) + slow.socket_errors.get("read", 0)
        others = fast.errors + slow.errors - reads
        tolerated += min(reads, allowed)
        # the lines nginx retried on another task (nothing sent yet), the last few; every other one
        retried = [line for line in nginx_errors if re.search(r"while (connecting to upstream|reading response header from upstream)", line)]
        nginx_errors = [*retried[-5:], *[line for line in nginx_errors if line not in retried][-30:]]
        if fast.requests < min_requests or others or reads > allowed or slow.requests == 0 or failed:
            problems.append("\n".join([f"== edge {host}: {fast.requests} requests, {fast.errors} failed; slow: {slow.requests}, "
                                       f"{slow.errors} failed; {len(failed)} failed line(s) in nginx's access log"
                                       + (f"; {allowed} response(s) cut short by the lost node" if lost else ""),
                                       fast.raw, slow.raw, "failed lines:", *failed[-20:], "nginx errors:", *nginx_errors,
                                       "slowest requests:", *slowest]))
    assert not problems, "\n".join(problems)
    return tolerated


# --- an inv command with load once it changes the swarm -------------------------------


@dataclasses.dataclass
class LoadedRun:
    returncode: int
    output: str  # stdout and stderr, as they came
    results: dict  # per edge; empty when the traffic never started


def run_under_traffic(stack: Inv, testbed: dict, *args: str, env: dict[str, str] | None = None, timeout: float = 900,
                      at_once: bool = False) -> LoadedRun:
    """``inv ARGS`` with load through every edge from the first step that acts on the
    swarm (the steps of PREPARE_STEPS build and push on this machine: no request is at
    stake, and the load would only slow the build down), or from the start (``at_once``),
    until it ended."""
    with tempfile.TemporaryFile("w+") as captured:
        proc = subprocess.Popen(stack.argv(*args), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                stdin=subprocess.DEVNULL, env={**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1"})
        assert proc.stdout is not None
        switching = threading.Event()
        if at_once:
            switching.set()

        def read() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                captured.write(line)
                m = STEP.match(line)
                if m and m.group(1) not in PREPARE_STEPS:
                    switching.set()

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        deadline = time.monotonic() + timeout
        results: dict = {}
        try:
            while not switching.wait(0.2) and proc.poll() is None:
                if time.monotonic() > deadline:
                    raise AssertionError(f"inv {' '.join(args)} still running after {timeout:.0f} s")
            if switching.is_set() and proc.poll() is None:
                with traffic_through_edges(testbed, stack.http_port, results, warmup=0):
                    proc.wait(timeout=max(1.0, deadline - time.monotonic()))
            proc.wait(timeout=max(1.0, deadline - time.monotonic()))
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            reader.join(timeout=30)
            captured.seek(0)
            output = captured.read()
        return LoadedRun(returncode=proc.returncode, output=output, results=results)


# --- removal -------------------------------------------------------------------------


def leave_swarm(testbed: dict) -> None:
    """Every test host out of any swarm (workers first), and the bridge Swarm made."""
    states = on_all(testbed, "docker info --format '{{.Swarm.LocalNodeState}} {{.Swarm.ControlAvailable}}'")
    order = sorted(testbed["addrs"], key=lambda h: states[h].stdout.split()[1:2] == ["true"])  # managers last
    for host in order:
        if states[host].stdout.split()[:1] not in ([], ["inactive"]):
            ssh(testbed, host, "docker swarm leave --force", check=False)
    # The gateway bridge of the overlay's containers stays after a leave; nothing of ours uses it.
    on_all(testbed, "docker network rm docker_gwbridge >/dev/null 2>&1; true")


def remove_swarm_stack(stack: Inv, testbed: dict, engine) -> None:
    """The stack off the swarm (services, then its volumes, secrets and configs), every
    host out of the swarm, and the stack's images off the hosts and this engine. Tolerates
    a half-made swarm and hosts already out of it."""
    for host in testbed["addrs"]:
        subprocess.run(["ip", "link", "set", f"veth-{host}", "up"], capture_output=True, timeout=30)
    project = stack.project
    manager = on_manager(testbed, "docker info --format '{{.Swarm.ControlAvailable}}'", check=False)
    if manager.stdout.strip() == "true":
        on_manager(testbed, f"docker stack rm {project}", check=False)

        def gone() -> bool:
            left = on_all(testbed, f"docker ps -aq --filter label={STACK_LABEL}={project} --filter label={SERVICE_LABEL}")
            services = on_manager(testbed, f"docker service ls -q --filter label={STACK_LABEL}={project}", check=False)
            return not any(r.stdout.strip() for r in left.values()) and not services.stdout.strip()

        with contextlib.suppress(AssertionError):  # what is left is removed by force below
            wait_for(f"the containers of stack {project} gone", gone, timeout=120, every=2)
        for kind in ("secret", "config"):
            on_manager(testbed, f"docker {kind} ls -q --filter name={project}_ | xargs -r docker {kind} rm >/dev/null 2>&1; true", check=False)
    on_all(testbed, f"docker ps -aq --filter label={STACK_LABEL}={project} | xargs -r docker rm -f >/dev/null 2>&1; "
                    f"docker volume ls -q --filter label={STACK_LABEL}={project} | xargs -r docker volume rm -f >/dev/null 2>&1; "
                    f"docker volume ls -q --filter name={project}_ | xargs -r docker volume rm -f >/dev/null 2>&1; true")
    leave_swarm(testbed)
    remove_from_hosts(stack, testbed, engine)
