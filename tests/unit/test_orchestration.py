"""The deploy and rollback workflows (deploy.release) on recording fake engines: the local
engine (a fleet of one) and a stage with hosts (2 or 3 app hosts + 1 db host). (One
module over 250 lines: its scenarios share the worlds built at its top.)

What is checked: the order of the steps and which host runs what; that a dry run prints
exactly the state-changing commands a real run executes; that a failure in any step
leaves the old version serving (before the rollout: untouched; in or after it: every
switched host returned); batches; the lock; the release history and the audit log.
The routing guarantee itself (who nginx routes to at each moment): test_routing.py.
"""
from __future__ import annotations

import json
import re
import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from types import SimpleNamespace

import pytest
from invoke.exceptions import Exit

from deploy.config.envfile import env_line
from deploy.config.inventory import Host
from deploy.engine.commands import http
from deploy.engine.facts import parse_inspect
from deploy.engine.ops import Executor, Put, Run
from deploy.engine.stack import UPSTREAMS_DIR, Stack
from deploy.engine.upload import render_env
from deploy.fleet import Fleet, Member, host_settings, local_fleet
from deploy.release import push as push_module
from deploy.release.deploy import DeployOptions, deploy
from deploy.release.push import TO_BE_PUSHED
from deploy.release.rollback import rollback
from deploy.stack import lifecycle
from deploy.stack import rollout as rollout_module
from deploy.stack import routing as routing_module
from deploy.stack.health import VERIFY_NEEDED
from deploy.state import history, lock
from deploy.state.history import Release
from deploy.state.lock_holder import LockInfo
from deploy.versions import parse
from tests.unit.fake_engine import STATELESS, Called, Clock, FakeEngine, Registry, compose_sub, is_read, marking_executor

OLD, NEW = "1.0.0", "2.0.0"
APP = ["backend", "web", "nginx"]
DB = ["postgres", "redis"]
STEPS = ["preflight", "tests", "build", "tag", "push", "upload", "pull", "backup", "stateful", "migrate", "rollout", "verify",
         "promote", "cleanup"]
BEFORE_ROLLOUT = STEPS[:STEPS.index("rollout")]


WORLDS: list[World] = []  # the worlds the running test built


@pytest.fixture(autouse=True)
def routing_guarantee():
    """After every scenario here, whatever failed: the routing guarantee held on every host
    (tests/unit/fake_engine.py, ``violations``; test_routing.py shows that it can fail)."""
    WORLDS.clear()
    yield
    broken = [(e.name, v) for w in WORLDS for e in w.engines.values() for v in e.violations]
    assert broken == []


@pytest.fixture(autouse=True)
def no_waiting(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(rollout_module, "time", clock)
    monkeypatch.setattr(rollout_module, "POLL_SECONDS", 2.0)  # fewer polls until a deadline of minutes
    monkeypatch.setattr(FakeEngine, "clock", clock)
    monkeypatch.setattr(routing_module, "time", clock)
    monkeypatch.setattr(push_module, "time", SimpleNamespace(sleep=lambda s: None))
    return clock


# --- the worlds: a fleet of fake engines serving OLD -----------------------------------------
@dataclass
class World:
    fleet: Fleet
    engines: dict[str, FakeEngine]  # by host name; "here" is this machine's engine
    journal: list[Called]
    said: list[str]
    open_fleet: Callable[[], Fleet]

    def reopen(self) -> None:
        """The fleet as the next task would open it (pinned to the release now serving)."""
        self.fleet = self.open_fleet()

    @property
    def home(self) -> Stack:
        return self.fleet.primary.stack

    @property
    def apps(self) -> list[str]:
        return [m.name for m in self.fleet.with_role("app")]

    def executor(self, dry_run: bool = False) -> Executor:
        """An executor whose output is kept, and whose step headers mark the journal."""
        return marking_executor(self.said, self.journal, self.fleet.remote, dry_run)

    def deploy(self, version: str = NEW, **options) -> Release:
        """A real deploy (not a dry run): it always records its release."""
        release = deploy(self.fleet, parse(version), DeployOptions(**options), self.executor())
        assert release is not None, "a deploy that ran returned no release"
        return release

    def snapshot(self) -> dict[str, list[tuple[str, str, str, str]]]:
        """Every host's containers: (id, service, image, state)."""
        return {n: sorted((c.id, c.service, c.image, c.state) for c in e.containers) for n, e in self.engines.items()}

    def mutations(self) -> list[Called]:
        """The state-changing commands run, without the lock, history and audit files (the
        proxy's routing file counts: writing it is a step of the plan)."""
        return [c for c in self.journal if c.host != "step" and not is_read(c.argv) and not bookkeeping(self, c)]

    def audit(self) -> list[dict]:
        return [json.loads(line) for line in (self.home.target.read_text(self.home.state_file("audit.log")) or "").splitlines()]

    def lock_held(self) -> bool:
        return lock.read(self.home) is not None

    def holder(self) -> LockInfo:
        """The lock as the primary host holds it now (the test fails if there is none)."""
        info = lock.read(self.home)
        assert info is not None, "no lock is held"
        return info


def bookkeeping(world: World, call: Called) -> bool:
    """A write or command on the deploy's own state (lock, history, audit), not the routing."""
    state = world.home.state_file("").rstrip("/")
    routing = world.home.state_file(UPSTREAMS_DIR)
    return any(state in a and routing not in a for a in call.argv)


def env(settings, version: str, stack: Stack | None = None) -> dict[str, str]:
    """The env a stack of ``settings`` was started with (the routing folder of ``stack``'s state)."""
    return {**settings.env, "APP_VERSION": version, **({"NGINX_UPSTREAMS_DIR": stack.state_file(UPSTREAMS_DIR)} if stack else {})}


def serving_version(stack: Stack) -> str | None:
    """The version of the release now serving (history.current), None before the first."""
    release = history.current(stack)
    return release.version if release else None


def seed_history(stack: Stack) -> None:
    history.record(stack, Release(version=OLD, status="success", started_at="2026-01-01T00:00:00+00:00"))


def local_world(fake_settings) -> World:
    engine = FakeEngine("local")
    engine.start([*APP, *DB], env(fake_settings, OLD, Stack(fake_settings, engine)))
    seed_history(Stack(fake_settings, engine))
    engine.journal.clear()
    world = World(local_fleet(fake_settings, engine), {"local": engine}, engine.journal, [], lambda: local_fleet(fake_settings, engine))
    WORLDS.append(world)
    return world


def hosts_world(fake_settings, apps: int = 2) -> World:
    """``apps`` app hosts and a db host over SSH (fakes), and this machine's engine."""
    hosts = [Host(f"app{i}", f"10.0.0.{i}", ("app",), "/srv/myapp") for i in range(1, apps + 1)]
    hosts.append(Host("db1", "10.0.0.9", ("db",), "/srv/myapp", private_address="10.1.0.9"))
    settings = host_settings(fake_settings, hosts)
    journal: list[Called] = []
    registry = Registry()
    engines = {h.name: FakeEngine(h.name, local=False, workdir=h.deploy_dir, journal=journal, registry=registry) for h in hosts}
    here = FakeEngine("here", journal=journal, registry=registry)
    old = env(settings, OLD)
    for h in hosts:  # what an earlier deploy left: the uploaded files, and the stack running
        e = engines[h.name]
        e.files.update({f: b"" for f in settings.compose_in(h.deploy_dir).files})
        e.files[f"{h.deploy_dir}/.env"] = render_env(settings.env).encode()
        e.start(APP if h.has("app") else DB, env(settings, OLD, Stack(settings, e)))
    for s in STATELESS:
        ref = here.image_ref(s, old)
        registry.add(ref)
        here.images[ref] = "old-" + s
    db = next(h for h in hosts if h.has("db"))
    seed_history(Stack(settings, engines[db.name]))

    def open_fleet() -> Fleet:  # as deploy.fleet.remote_fleet does, with fakes for the SSH targets
        primary = Member(db, history.pin_current(Stack(settings, engines[db.name])))
        pinned = primary.stack.settings.overrides
        members = tuple(Member(h, Stack(settings, engines[h.name]).with_env(**pinned)) for h in hosts)
        return Fleet(settings, members, primary, parallel=8, here=Stack(settings, here).with_env(**pinned))

    fleet = open_fleet()
    journal.clear()
    world = World(fleet, {**engines, "here": here}, journal, [], open_fleet)
    WORLDS.append(world)
    return world


@pytest.fixture(params=["local", "hosts"])
def world(request, fake_settings) -> World:
    return local_world(fake_settings) if request.param == "local" else hosts_world(fake_settings)


def by_step(world: World) -> dict[str, list[Called]]:
    """The journal cut at the step headers the executor printed."""
    out: dict[str, list[Called]] = {}
    current = None
    for c in world.journal:
        if c.host == "step":
            current = c.argv[0]
            out[current] = []
        elif current is not None and not bookkeeping(world, c):
            out[current].append(c)
    return out


def serving(world: World, host: str) -> dict[str, list[str]]:
    """The image tags of each app service's running containers on ``host``; its proxy
    routes exactly those containers, as its routing file says."""
    e = world.engines[host]
    running = sorted((c for c in e.running() if c.service in STATELESS), key=lambda c: (c.service, c.number))
    assert e.routed_names() == [c.name(e.project) for c in running], f"{host} routes other containers than it runs"
    assert sorted(a for pool in routing_module.parse(e.pools_text() or "").values() for a in pool) == sorted(e.routed or {})
    return {s: e.versions(s) for s in STATELESS}


# --- step order and who runs what -------------------------------------------------------------
def test_step_order_on_the_local_engine(fake_settings):
    w = local_world(fake_settings)
    assert w.deploy().status == "success"
    heads = [line for line in w.said if re.match(r"\[\d+/14\] \w+( \.\.\.|: skipped)", line)]
    assert [m.group(1) for h in heads if (m := re.match(r"\[\d+/14\] (\w+)", h))] == STEPS
    assert "[6/14] upload: skipped (the local engine reads this checkout's files)" in heads
    assert "[7/14] pull: skipped (the local engine has the images it built)" in heads
    steps = by_step(w)
    assert "upload" not in steps and "pull" not in steps
    assert {c.host for cs in steps.values() for c in cs} == {"local"}
    mutating = {name: [c.line for c in cs if not is_read(c.argv)] for name, cs in steps.items()}
    assert mutating["preflight"] == []
    assert mutating["tests"] == ["pnpm --dir examples test"]
    assert [compose_sub(a.split())[0] for a in mutating["build"]] == ["build"]
    assert any(re.fullmatch(r"built in \d+\.\d s: backend 123\.5 MB, web 123\.5 MB", line) for line in w.said), w.said
    assert all(a.startswith("docker tag registry.example.com/myapp/") for a in mutating["tag"]) and len(mutating["tag"]) == 4
    assert len(mutating["push"]) == 6 and all(a.startswith("docker push ") for a in mutating["push"])
    assert any("pg_dump" in c.line for c in steps["backup"])
    assert [compose_sub(a.split())[0] for a in mutating["migrate"]] == ["run"]
    roll = mutating["rollout"]
    pools = w.home.state_file("upstreams/pools.conf")
    # the new containers start, are probed, routed (the old ones out: nginx -t, a graceful
    # reload), nginx drains, then the old ones stop; no DNS settle any more
    # (the proxy runs: it is left as it is)
    assert [r.split()[:2] for r in roll] == [["docker", "compose"], ["write", pools], ["docker", "exec"], ["docker", "exec"],
                                             ["docker", "stop"], ["docker", "rm"]]
    assert "--scale backend=4 --scale web=2" in roll[0] and "--no-recreate" in roll[0]
    assert roll[2] == "docker exec myapp-nginx-1 nginx -t -q -e stderr -c /etc/nginx/router.conf"
    assert roll[3].startswith("docker exec myapp-nginx-1 sh -c") and roll[3].endswith("exec nginx -e stderr -c /etc/nginx/router.conf -s reload'")
    assert roll[4] == "docker stop myapp-backend-1 myapp-backend-2 myapp-web-1"
    reads = [c.line for c in steps["rollout"] if is_read(c.argv)]
    probes = [r for r in reads if "wget -q" in r]  # all new containers in one probe, from the proxy
    assert len(probes) == 1 and probes[0].startswith("docker exec myapp-nginx-1 sh -c")
    assert set(re.findall(r"http://([\d.:]+)/health", probes[0])) == {
        f"{c.ips['front']}:3000" for c in w.engines["local"].running() if c.service in STATELESS}
    lines = [c.line for c in steps["rollout"]]
    assert lines.index(probes[0]) < lines.index(roll[3])
    # the reload printed the router's workers of before it; they are polled until gone before the stop
    polls = [i for i, line in enumerate(lines) if "/proc/$p" in line]
    assert "/tmp/router.pid" in roll[3] and polls and lines.index(roll[3]) < polls[0] and polls[-1] < lines.index(roll[4])
    assert w.engines["local"].routed_names() == ["myapp-backend-3", "myapp-backend-4", "myapp-web-2"]
    assert mutating["verify"] == [] and [c.argv[0] for c in steps["verify"] if c.argv[0] == "fetch"] == ["fetch"] * 3 * VERIFY_NEEDED
    assert mutating["promote"][:2] == [f"docker tag registry.example.com/myapp/{s}:{NEW} registry.example.com/myapp/{s}:latest"
                                       for s in STATELESS]


def test_step_order_and_hosts_with_two_app_hosts_and_a_db_host(fake_settings):
    w = hosts_world(fake_settings)
    release = w.deploy()
    assert release.status == "success" and release.hosts == ["app1", "app2", "db1"]
    steps = by_step(w)
    assert list(steps) == STEPS
    hosts = {name: {c.host for c in cs} for name, cs in steps.items()}
    assert hosts == {
        "preflight": {"here", "app1", "app2", "db1"}, "tests": {"here"}, "build": {"here"}, "tag": {"here"}, "push": {"here"},
        "upload": {"app1", "app2", "db1"}, "pull": {"app1", "app2", "db1"}, "backup": {"db1"}, "stateful": {"db1"},
        "migrate": {"app1"}, "rollout": {"app1", "app2"}, "verify": {"app1", "app2"}, "promote": {"here"},
        "cleanup": {"here", "app1", "app2", "db1"},
    }
    # the app images by the digest the push recorded (tagged as the compose files name them), the others by tag
    pinned = [a for s in STATELESS for a in (("docker", "pull", "--quiet", release.digests[s]),
                                              ("docker", "tag", release.digests[s], release.images[s]))]
    pulls = {h: [("compose", *compose_sub(c.argv)[1]) if c.argv[1] == "compose" else c.argv for c in steps["pull"] if c.host == h]
             for h in ("app1", "app2", "db1")}
    assert pulls == {"app1": [*pinned, ("compose", "--quiet", "nginx")], "app2": [*pinned, ("compose", "--quiet", "nginx")],
                     "db1": [("compose", "--quiet", "postgres", "redis")]}
    for h in ("app1", "app2", "db1"):
        assert [c.argv for c in steps["upload"] if c.host == h] == [
            ("install", "-d", "-m", "0750", "/srv/myapp"), ("tar", "-x", "--no-same-owner", "-C", "/srv/myapp", "-f", "-"),
            ("write", "/srv/myapp/.env")]
        assert "/srv/myapp/compose/docker-compose.hosts.yml" in w.engines[h].files
    env_file = w.engines["app1"].files["/srv/myapp/.env"].decode()
    assert env_line("DB_HOST", "10.1.0.9") in env_file.splitlines() and "APP_VERSION" not in env_file  # the version goes with each command
    # each host's commands name the version in their env, not on the command line
    ups = [c for c in steps["rollout"] if c.argv[:2] == ("docker", "compose") and compose_sub(c.argv)[0] == "up"]
    state = "/srv/myapp/state/development"  # the proxy mounts its folders there (NGINX_*_DIR)
    folders = {"NGINX_UPSTREAMS_DIR": f"{state}/upstreams", "NGINX_TLS_DIR": f"{state}/tls", "NGINX_ACME_DIR": f"{state}/acme"}
    assert {c.host for c in ups} == {"app1", "app2"} and all(c.env == {"APP_VERSION": NEW, **folders, "DEPLOY_STAGE": "development"}
                                                             for c in ups)
    # one host at a time (parallel 1): app1 is done before app2 starts
    last_app1 = max(i for i, c in enumerate(steps["rollout"]) if c.host == "app1")
    first_app2 = min(i for i, c in enumerate(steps["rollout"]) if c.host == "app2")
    assert last_app1 < first_app2
    for h in ("app1", "app2"):
        assert serving(w, h) == {"backend": [NEW, NEW], "web": [NEW]}
    assert [c.service for c in w.engines["db1"].running()] == DB


# --- the plan is the action --------------------------------------------------------------------
def planned_commands(world: World, executor: Executor) -> list[tuple[str, str]]:
    """(host, command) of every Run and Put a dry run printed; each must be in its output."""
    out = []
    for op in executor.planned:
        if isinstance(op, Run):
            line = op.stack.settings.masked(shlex.join(op.argv))
        elif isinstance(op, Put):
            line = f"write {op.path}"
        else:
            continue
        prefix = f"    {op.stack.target.name}: " if world.fleet.remote else "    "
        assert prefix + op.describe() in world.said
        out.append((op.stack.target.name, line))
    return out


def run_kind(world: World, kind: str, executor: Executor) -> Release | None:
    if kind == "deploy":
        return deploy(world.fleet, parse(NEW), DeployOptions(), executor)
    return rollback(world.fleet, None, DeployOptions(), executor)


@pytest.mark.parametrize("kind", ["deploy", "rollback"])
def test_a_dry_run_prints_exactly_the_state_changing_commands_a_real_run_executes(world, kind):
    settings = world.fleet.settings
    if kind == "rollback":
        world.deploy()
        world.reopen()
    world.journal.clear()
    world.said.clear()
    before = world.snapshot()
    dry = world.executor(dry_run=True)
    assert run_kind(world, kind, dry) is None
    assert world.snapshot() == before and world.mutations() == []  # facts only: nothing changed
    assert not world.lock_held()
    secrets = [settings.env[k] for k in settings.config.secret_env]
    assert not [line for line in world.said if any(v in line for v in secrets)]
    plan = planned_commands(world, dry)
    world.journal.clear()
    release = run_kind(world, kind, world.executor())
    assert release is not None and release.status == "success"
    # A deploy's plan names the digests of its push before it (a rollback's: the recorded ones).
    pushed = {d.split("@")[1] for d in release.digests.values()} if kind == "deploy" else set()
    done = [(c.host, settings.masked(shlex.join(re.sub(r"sha256:[0-9a-f]{64}", lambda m: TO_BE_PUSHED if m.group(0) in pushed else m.group(0), a)
                                                for a in c.argv))) for c in world.mutations()]
    for host in sorted({h for h, _ in plan} | {h for h, _ in done}):
        assert [line for h, line in plan if h == host] == [line for h, line in done if h == host], host
    assert len(plan) >= (20 if kind == "deploy" else 4)


# --- a failure in any step ---------------------------------------------------------------------
def compose_cmd(sub: str) -> Callable[[tuple[str, ...]], bool]:
    return lambda argv: argv[:2] == ("docker", "compose") and compose_sub(argv)[0] == sub


def inject(world: World, step: str) -> None:
    """Make ``step`` fail (on the last app host where it runs on every app host)."""
    here = world.engines["here" if world.fleet.remote else "local"]
    first_app, last_app = world.engines[world.apps[0]], world.engines[world.apps[-1]]
    primary = world.home.target
    assert isinstance(primary, FakeEngine)
    failing: dict[str, Callable[[], None]] = {
        "preflight": lambda: last_app.fail_when("docker version", stderr="Cannot connect to the Docker daemon"),
        "tests": lambda: here.fail_when("pnpm --dir examples test", stderr="1 test failed"),
        "build": lambda: here.fail_when(compose_cmd("build"), stderr="build failed"),
        "tag": lambda: here.fail_when("docker tag"),
        "push": lambda: here.fail_when("docker push", times=None, stderr="connection reset"),
        "upload": lambda: last_app.fail_when("tar -x", stderr="No space left on device"),
        "pull": lambda: last_app.fail_when(compose_cmd("pull"), stderr="manifest unknown"),
        "backup": lambda: primary.fail_when("pg_dump", stderr="pg_dump: error: connection failed"),
        "stateful": lambda: primary.fail_when("config --hash"),
        "migrate": lambda: first_app.fail_when(compose_cmd("run"), stderr="migration 7 failed"),  # it runs once, there
        "rollout": lambda: last_app.make_unhealthy(NEW),
        # the rollout checks each host through its proxy (3 paths): the verify step's checks come after
        "verify": lambda: last_app.fail_when("fetch", times=None, after=3 * VERIFY_NEEDED, stderr="502 Bad Gateway"),
        "promote": lambda: here.fail_when(lambda a: a[:2] == ("docker", "tag") and a[-1].endswith(":latest")),
    }
    failing[step]()


def check_failed_release(world: World, step: str) -> None:
    entries = history.history(world.home)
    assert [(r.version, r.status) for r in entries] == [(OLD, "success"), (NEW, "failed")]
    assert entries[-1].error, "the failure is recorded"
    assert entries[-1].images == {} and serving_version(world.home) == OLD
    assert not world.lock_held()
    events = world.audit()
    assert events[-1]["event"] == "deploy failed" and events[-1]["error"] == entries[-1].error[:500]
    assert [e["event"] for e in events if e["event"].startswith("step ")] == [f"step {s}" for s in STEPS[:STEPS.index(step)]
                                                                              if s not in ("upload", "pull") or world.fleet.remote]


@pytest.mark.parametrize("step", [s for s in BEFORE_ROLLOUT])
def test_a_failure_before_the_rollout_leaves_the_old_version_untouched(world, step):
    if step in ("upload", "pull") and not world.fleet.remote:
        pytest.skip("the local engine skips upload and pull")
    before = world.snapshot()
    inject(world, step)
    with pytest.raises(Exit):
        world.deploy()
    assert world.snapshot() == before  # the same containers, states and images: nothing stopped, nothing new
    ups = [c for c in world.journal if c.argv[:2] == ("docker", "compose") and compose_sub(c.argv)[0] == "up"]
    assert ups == []
    check_failed_release(world, step)


@pytest.mark.parametrize("step", ["rollout", "verify", "promote"])
def test_a_failure_in_or_after_the_rollout_returns_every_switched_host(world, step):
    counts = {h: len(world.engines[h].containers) for h in world.apps}
    inject(world, step)
    with pytest.raises(Exit):
        world.deploy()
    for host in world.apps:
        assert serving(world, host) == {"backend": [OLD, OLD], "web": [OLD]}, host
        engine = world.engines[host]
        assert len(engine.containers) == counts[host] and not [c for c in engine.containers if c.state != "running"]
    check_failed_release(world, step)
    if world.fleet.remote or step != "rollout":  # a switched host went back with the zero-downtime rollout
        first = world.apps[0]
        back = [c for c in world.journal if c.host == first and c.env.get("APP_VERSION") == OLD and c.argv[:2] == ("docker", "compose")
                and compose_sub(c.argv)[0] == "up"]
        assert back, f"{first} was not returned to {OLD}"


def test_a_failure_in_cleanup_does_not_fail_a_deploy_that_serves(world):
    for e in world.engines.values():
        e.fail_when("image prune", times=None)
    assert world.deploy().status == "success"
    for host in world.apps:
        assert serving(world, host) == {"backend": [NEW, NEW], "web": [NEW]}


def test_a_failed_rollback_of_a_host_is_reported_and_the_first_failure_raised(fake_settings):
    w = hosts_world(fake_settings)
    inject(w, "verify")  # app2's verify fails after both hosts switched
    w.engines["app1"].make_unhealthy(OLD)  # and app1 cannot go back
    with pytest.raises(Exit, match="verify failed on app2: .*HTTP 502"):
        w.deploy()
    assert serving(w, "app2") == {"backend": [OLD, OLD], "web": [OLD]}
    assert serving(w, "app1") == {"backend": [NEW, NEW], "web": [NEW]}  # still serving: its rollback removed the sick ones
    assert any("the rollback failed" in line for line in w.said)
    assert history.history(w.home)[-1].status == "failed" and not w.lock_held()


# --- batches --------------------------------------------------------------------------------------
def break_host(engine: FakeEngine, how: str) -> None:
    if how == "unhealthy":
        engine.make_unhealthy(NEW)  # its rollout fails: it removes its own new containers
    else:
        engine.fail_when("fetch 8080 /api/health", times=None)  # switched, then its proxy check fails: it must be returned


@pytest.mark.parametrize("how", ["unhealthy", "proxy check"])
def test_the_second_batch_failing_returns_the_first_batch(fake_settings, how):
    w = hosts_world(fake_settings, apps=3)
    break_host(w.engines["app3"], how)
    with pytest.raises(Exit, match="app3"):
        w.deploy(parallel=2)
    assert any(line.endswith("batch 1: app1, app2") for line in w.said)
    assert any(line.endswith("batch 2: app3") for line in w.said)
    for h in ("app1", "app2", "app3"):
        assert serving(w, h) == {"backend": [OLD, OLD], "web": [OLD]}, h
    assert NEW not in {v for e in w.engines.values() if e.name != "here" for s in STATELESS for v in e.versions(s)}
    # batch 2 began only after both hosts of batch 1 had removed their old containers
    removed = [i for i, c in enumerate(w.journal) if c.host in ("app1", "app2") and c.argv[:2] == ("docker", "rm")]
    started = [i for i, c in enumerate(w.journal) if c.host == "app3" and c.argv[:2] == ("docker", "compose")
               and compose_sub(c.argv)[0] == "up"]
    assert len(removed) >= 2 and started and max(removed[:2]) < min(started)
    assert history.history(w.home)[-1].status == "failed" and not w.lock_held()


@pytest.mark.parametrize("how", ["unhealthy", "proxy check"])
def test_a_failing_first_batch_returns_its_other_host_and_stops_before_the_next(fake_settings, how):
    w = hosts_world(fake_settings, apps=3)
    untouched = w.snapshot()["app3"]
    break_host(w.engines["app2"], how)
    with pytest.raises(Exit, match="app2"):
        w.deploy(parallel=2)
    for h in ("app1", "app2"):
        assert serving(w, h) == {"backend": [OLD, OLD], "web": [OLD]}, h
    assert not any(line.endswith("batch 2: app3") for line in w.said)
    assert w.snapshot()["app3"] == untouched  # never switched, never returned: the same containers
    assert not [c for c in w.mutations() if c.host == "app3" and c.argv[:2] == ("docker", "compose") and compose_sub(c.argv)[0] == "up"]


# --- the lock and the history -------------------------------------------------------------------
def test_a_held_lock_refuses_a_second_deploy_and_stays(world):
    lock.acquire(world.home, "deploy 1.9.0")
    before = world.snapshot()
    world.journal.clear()
    with pytest.raises(Exit, match="another deploy holds the lock: deploy 1.9.0"):
        world.deploy()
    assert world.snapshot() == before
    assert [c.line for c in world.mutations()] == []
    assert world.holder().purpose == "deploy 1.9.0"  # not broken by the refused deploy
    assert [(r.version, r.status) for r in history.history(world.home)] == [(OLD, "success")]


def test_the_lock_is_held_while_the_deploy_runs(world):
    seen = []
    holder = world.home.state_file("deploy.lock") + "/holder.json"
    engine = world.engines[world.apps[0]]
    def note(argv):  # whether the lock is held when the containers start
        if compose_cmd("up")(argv):
            seen.append(holder in world.home.target.files)
        return False

    engine.fail_when(note, times=None)
    world.deploy()
    assert seen and all(seen)
    assert not world.lock_held()


def test_the_history_records_a_success_with_its_images_and_digests(world):
    release = world.deploy()
    entries = history.history(world.home)
    assert [(r.version, r.status, r.kind) for r in entries] == [(OLD, "success", "deploy"), (NEW, "success", "deploy")]
    last = entries[-1]
    assert last == release
    assert last.images == {s: f"registry.example.com/myapp/{s}:{NEW}" for s in STATELESS}
    assert set(last.digests) == set(STATELESS)
    assert all(re.fullmatch(rf"registry\.example\.com/myapp/{s}@sha256:[0-9a-f]{{64}}", d) for s, d in last.digests.items())
    assert last.tags[0] == NEW and last.tags[-1] == "latest" and last.git_sha == "0123456789abcdef0123456789abcdef01234567"
    assert last.hosts == (["app1", "app2", "db1"] if world.fleet.remote else [])
    assert serving_version(world.home) == NEW
    events = [e["event"] for e in world.audit()]
    ran = [s for s in STEPS if s not in ("upload", "pull") or world.fleet.remote]
    assert events == ["deploy started", *[f"step {s}" for s in ran], "deploy success"]
    assert not world.lock_held()


# --- rollback -------------------------------------------------------------------------------------
def test_rollback_returns_to_the_previous_release_and_records_it(world):
    world.deploy()
    world.reopen()
    release = rollback(world.fleet, None, DeployOptions(), world.executor())
    assert release is not None
    assert (release.version, release.kind, release.status) == (OLD, "rollback", "success")
    for host in world.apps:
        assert serving(world, host) == {"backend": [OLD, OLD], "web": [OLD]}
    assert serving_version(world.home) == OLD
    events = [e["event"] for e in world.audit()]
    ran = ["upload", "pull", "rollout", "verify"] if world.fleet.remote else ["rollout", "verify"]
    assert events[events.index("rollback started"):] == ["rollback started", *[f"step {s}" for s in ran], "rollback success"]
    assert not world.lock_held()


# --- what hosts run: the images pushed, by digest, whatever the registry's tags name since ------
def another_stage_pushes(world: World, version: str) -> None:
    """Another stage pushes its own images under ``version``'s tags now."""
    registry = world.engines["here"].registry
    assert registry is not None
    for s in STATELESS:
        registry.push(world.engines["here"].image_ref(s, env(world.fleet.settings, version)), f"another-stage-{s}")


def built(world: World, version: str) -> dict[str, str]:
    """The image of each app service this machine built for ``version``."""
    here = world.engines["here"]
    return {s: here.images[here.image_ref(s, env(world.fleet.settings, version))] for s in STATELESS}


def running_images(world: World, host: str) -> dict[str, set[str]]:
    """The images each app service's containers on ``host`` were created from."""
    return {s: {c.image_id for c in world.engines[host].running(s)} for s in STATELESS}


def test_a_tag_moved_in_the_registry_after_the_push_does_not_change_what_the_hosts_run(fake_settings, monkeypatch):
    w = hosts_world(fake_settings)
    here = w.engines["here"]
    push = here.run

    def run(argv, **kwargs):  # right after each push of ours, another stage pushes the same tag
        result = push(argv, **kwargs)
        if tuple(argv[:2]) == ("docker", "push") and argv[-1].endswith(f":{NEW}"):
            another_stage_pushes(w, NEW)
        return result

    monkeypatch.setattr(here, "run", run)
    release = w.deploy()
    assert release.status == "success"
    ours = built(w, NEW)
    assert here.registry is not None
    assert all(here.registry.image(release.images[s]) == f"another-stage-{s}" for s in STATELESS)  # the tags moved
    for h in w.apps:
        assert serving(w, h) == {"backend": [NEW, NEW], "web": [NEW]}
        assert running_images(w, h) == {s: {ours[s]} for s in STATELESS}
        assert {s: w.engines[h].images[release.images[s]] for s in STATELESS} == ours  # the tag there names ours too


def test_rollback_runs_the_images_its_release_pushed_even_when_the_tags_moved_since(fake_settings):
    w = hosts_world(fake_settings)
    first = w.deploy()
    assert first is not None and first.status == "success"
    ours = built(w, NEW)
    w.reopen()
    assert w.deploy("3.0.0").status == "success"
    another_stage_pushes(w, NEW)
    w.reopen()
    back = rollback(w.fleet, NEW, DeployOptions(), w.executor())
    assert back is not None and (back.version, back.status) == (NEW, "success")
    for h in w.apps:
        assert serving(w, h) == {"backend": [NEW, NEW], "web": [NEW]}
        assert running_images(w, h) == {s: {ours[s]} for s in STATELESS}
    assert back.digests == first.digests and back.images == first.images  # recorded again: the next rollback pins them too


def test_up_on_hosts_keeps_the_images_the_release_pushed_when_the_tags_moved(fake_settings):
    w = hosts_world(fake_settings)
    release = w.deploy()
    assert release is not None and release.status == "success"
    ours = built(w, NEW)
    another_stage_pushes(w, NEW)
    w.reopen()
    Executor(say=w.said.append)(lifecycle.up_fleet(w.fleet))
    for h in w.apps:  # what runs, and what a container started from the tag would run
        assert running_images(w, h) == {s: {ours[s]} for s in STATELESS}
        assert {s: w.engines[h].images[release.images[s]] for s in STATELESS} == ours


def test_rollback_refuses_a_version_that_never_succeeded(world):
    with pytest.raises(Exit, match="3.0.0 is not a successful release"):
        rollback(world.fleet, "3.0.0", DeployOptions(), world.executor())
    assert not world.lock_held()


def test_a_failed_rollback_returns_the_switched_hosts_to_what_they_ran(fake_settings):
    w = hosts_world(fake_settings)
    w.deploy()
    w.reopen()
    w.engines["app2"].make_unhealthy(OLD)
    with pytest.raises(Exit):
        rollback(w.fleet, OLD, DeployOptions(), w.executor())
    for host in w.apps:
        assert serving(w, host) == {"backend": [NEW, NEW], "web": [NEW]}, host
    last = history.history(w.home)[-1]
    assert (last.kind, last.status) == ("rollback", "failed") and serving_version(w.home) == NEW
    assert not w.lock_held()


def test_the_fake_engine_simulates_a_rollout_faithfully(fake_settings):
    """The fake itself: new containers beside the old ones, numbered after them, of the
    image the command's env names, each with an address on its service's networks (the
    lowest free one: a removed container's goes to the next one, as Docker does); stop/rm
    removes; unhealthy versions come up unhealthy; the proxy's probe reaches a container
    by address and fails for an unhealthy or absent one."""
    e = FakeEngine()
    e.start(["backend", "nginx"], env(fake_settings, OLD))
    e.make_unhealthy(NEW)
    e.run(["docker", "compose", "-p", "myapp", "up", "-d", "--no-recreate", "--scale", "backend=4", "backend"],
          env=env(fake_settings, NEW))
    backends = [c for c in e.containers if c.service == "backend"]
    assert [(c.number, c.image.rsplit(":", 1)[1], c.health, c.ips) for c in backends] == [
        (1, OLD, "healthy", {"front": "172.18.0.2", "back": "172.19.0.2"}),
        (2, OLD, "healthy", {"front": "172.18.0.3", "back": "172.19.0.3"}),
        (3, NEW, "unhealthy", {"front": "172.18.0.5", "back": "172.19.0.4"}),  # nginx has .4 on front
        (4, NEW, "unhealthy", {"front": "172.18.0.6", "back": "172.19.0.5"})]

    ips = ("172.18.0.2", "172.18.0.5", "172.18.0.99", "172.19.0.2")
    urls = [f"http://{ip}:3000/health" for ip in ips]
    answered = e.run(["docker", "exec", "myapp-nginx-1", *http.probe(urls, timeout=2)]).stdout
    assert http.answered(answered) == {urls[0]}
    e.run(["docker", "rm", "--force", "myapp-backend-3", "myapp-backend-4"])
    assert [c.number for c in e.containers if c.service == "backend"] == [1, 2]
    e.run(["docker", "compose", "-p", "myapp", "up", "-d", "--no-recreate", "--scale", "backend=3", "backend"],
          env=env(fake_settings, OLD))
    assert e.containers[-1].ips == {"front": "172.18.0.5", "back": "172.19.0.4"}  # reused
    e.run(["docker", "stop", "myapp-backend-1"])
    (c, stopped) = parse_inspect(e.run(["docker", "inspect", "--type", "container", backends[1].id, backends[0].id]).stdout)[::-1]
    assert (c.name, c.service, c.number, c.version, c.ok) == ("myapp-backend-2", "backend", 2, OLD, True)
    assert c.addresses == (("myapp_back", "172.19.0.3"), ("myapp_front", "172.18.0.3"))
    assert stopped.address_on(["myapp_front"]) is None  # a stopped container's address is freed
    config = json.loads(e.run(["docker", "compose", "-p", "myapp", "config", "--format", "json"]).stdout)
    assert config["services"]["nginx"]["networks"] == {"front": None}
    assert config["networks"]["front"] == {"name": "myapp_front"}


# --- first deploys, interruptions -----------------------------------------------------------------
def fresh(world: World) -> World:
    """The same fleet with nothing on it yet: no files, no containers, no history."""
    for e in world.engines.values():
        e.wipe()
    world.reopen()
    world.journal.clear()
    return world


def test_a_first_deploy_starts_everything(world):
    w = fresh(world)
    release = w.deploy()
    assert release.status == "success"
    for host in w.apps:
        assert serving(w, host) == {"backend": [NEW, NEW], "web": [NEW]}
        assert w.engines[host].running("nginx")
    db = w.home.target
    assert isinstance(db, FakeEngine)
    assert sorted(c.service for c in db.running() if c.service in DB) == DB
    assert [(r.version, r.status) for r in history.history(w.home)] == [(NEW, "success")]


def test_a_dry_run_of_a_first_deploy_prints_the_plan(world):
    """Before the first upload a host has no compose files: the routing is planned with
    the proxy's networks unknown (found once the files are there)."""
    w = fresh(world)
    assert deploy(w.fleet, parse(NEW), DeployOptions(), w.executor(dry_run=True)) is None
    assert any("rollout" in line for line in w.said) and w.mutations() == []
    pools = w.home.state_file("upstreams/pools.conf") if not w.fleet.remote else "/srv/myapp/state/development/upstreams/pools.conf"
    assert any(f"write {pools} (" in line for line in w.said)  # the routing is planned


def test_an_interrupted_deploy_is_not_left_running_in_the_history(world):
    def interrupt(argv):
        if argv[0] == "fetch":
            raise KeyboardInterrupt
        return False

    world.engines[world.apps[-1]].fail_when(interrupt, times=None)
    with pytest.raises(KeyboardInterrupt):
        world.deploy()
    assert not world.lock_held()
    assert history.history(world.home)[-1].status != "running"


def test_a_failed_start_of_the_new_containers_leaves_none_of_them(world):
    host = world.apps[-1]
    world.engines[host].fail_when(lambda argv: compose_cmd("up")(argv) and "--scale" in argv, partial=True,
                                  stderr="Error response from daemon: driver failed programming external connectivity")
    with pytest.raises(Exit, match="starting new backend, web containers failed"):
        world.deploy()
    for h in world.apps:
        assert serving(world, h) == {"backend": [OLD, OLD], "web": [OLD]}, h
    assert history.history(world.home)[-1].status == "failed" and not world.lock_held()


def test_a_quick_retry_keeps_the_failed_attempt_in_the_history(fake_settings, monkeypatch):
    class Frozen(datetime):
        @classmethod
        def now(cls, tz=None):
            return datetime(2026, 3, 1, 12, 0, 0, tzinfo=timezone.utc)

    monkeypatch.setattr(history, "datetime", Frozen)
    w = local_world(fake_settings)
    w.engines["local"].fail_when("pnpm --dir examples test", stderr="1 test failed")
    with pytest.raises(Exit):
        w.deploy()
    w.deploy()
    assert [(r.version, r.status) for r in history.history(w.home)] == [(OLD, "success"), (NEW, "failed"), (NEW, "success")]


# --- hardening: one owner per lock, interrupted releases, versions never reused, masked history --------
def test_a_deploy_whose_lock_was_broken_and_taken_stops_and_undoes_only_its_own_change(world):
    """B breaks A's lock mid-rollout and takes it: A stops at its next op, removes the new
    containers it had just started (its own change, never routed), changes nothing else,
    and its end leaves B's lock alone."""
    taken: list[LockInfo] = []
    after: list[Sequence[str]] = []

    def break_and_take(argv):
        if not taken and compose_cmd("up")(argv):
            world.home.target.run(["rm", "-rf", world.home.state_file("deploy.lock")])  # inv lock.release --force, by B
            taken.append(lock.acquire(world.home, "deploy 9.9.9 by B"))
        elif taken:
            after.append(argv)
        return False

    world.engines[world.apps[0]].fail_when(break_and_take, times=None)
    with pytest.raises(Exit, match=r"the deploy lock on \w+ was broken while this task \(deploy 2\.0\.0\) held it: it stopped"):
        world.deploy()
    assert taken and lock.read(world.home) is not None, "A's end removed B's lock: a third deploy could run beside B"
    assert world.holder().purpose == "deploy 9.9.9 by B"
    for host in world.apps:
        assert serving(world, host) == {"backend": [OLD, OLD], "web": [OLD]}, host
    changes = [a for a in after if not is_read(a) and not any(world.home.state_file("") in w for w in a)]
    assert changes and all(a[:2] in (("docker", "stop"), ("docker", "rm")) for a in changes), changes  # only its undo
    assert history.history(world.home)[-1].status == "failed"
    assert "lock lost" in [e["event"] for e in world.audit()]


def break_after_the_first_host(w: World, then: Callable[[], None] = lambda: None) -> list[LockInfo]:
    """B breaks the lock and takes it when app2's rollout starts (app1 is switched), then does ``then``."""
    taken: list[LockInfo] = []

    def break_and_take(argv):
        if not taken and compose_cmd("up")(argv):
            w.home.target.run(["rm", "-rf", w.home.state_file("deploy.lock")])
            taken.append(lock.acquire(w.home, "deploy 9.9.9 by B"))
            then()
        return False

    w.engines["app2"].fail_when(break_and_take, times=None)
    return taken


def test_a_deploy_whose_lock_was_broken_returns_the_hosts_it_switched(fake_settings):
    w = hosts_world(fake_settings)
    taken = break_after_the_first_host(w)
    with pytest.raises(Exit, match="was broken while this task"):
        w.deploy(parallel=1)
    assert taken and w.holder().token == taken[0].token
    for host in w.apps:  # app1 was its change: returned; app2's new containers removed
        assert serving(w, host) == {"backend": [OLD, OLD], "web": [OLD]}, host


def test_a_deploy_whose_lock_was_broken_leaves_a_host_changed_since_to_the_new_holder(fake_settings):
    w = hosts_world(fake_settings)
    app1 = w.engines["app1"]

    def b_changes_app1():  # B starts a container of its own beside those A left (never routed)
        app1.run(["docker", "compose", "-p", "myapp", "up", "-d", "--no-recreate", "--scale", "backend=3", "backend"],
                 env=env(w.fleet.settings, "9.9.9", w.fleet.member("app1").stack))

    break_after_the_first_host(w, b_changes_app1)
    with pytest.raises(Exit, match="was broken while this task"):
        w.deploy(parallel=1)
    assert sorted(c.image.rsplit(":", 1)[1] for c in app1.running() if c.service == "backend") == [NEW, NEW, "9.9.9"]
    assert any("app1 is left as it is" in line for line in w.said)
    assert serving(w, "app2") == {"backend": [OLD, OLD], "web": [OLD]}


def test_a_killed_deploy_is_marked_interrupted_when_its_stale_lock_is_broken(world, monkeypatch):
    """A deploy killed with SIGKILL leaves its release running and its lock; inv lock.release ends both."""
    import subprocess

    from invoke import Context

    import tasks.lock
    from tasks import ns as root

    dead = subprocess.Popen(["true"])
    dead.wait()
    killed = Release(version=NEW, status="running")
    lock.acquire(world.home, f"deploy {NEW}")
    history.record(world.home, killed)
    holder = world.home.state_file("deploy.lock/holder.json")
    details = json.loads(world.home.target.read_text(holder))
    world.home.target.write_text(holder, json.dumps({**details, "pid": dead.pid}))  # its process is gone
    monkeypatch.setattr(tasks.lock, "open_fleet", lambda c, where, max_surge=None: world.fleet)
    root["lock.release"](Context())
    assert not world.lock_held()
    assert [(r.version, r.status) for r in history.history(world.home)] == [(OLD, "success"), (NEW, "interrupted")]


def test_bump_never_reuses_a_version_pushed_by_a_failed_deploy(world):
    from deploy.release.deploy import choose_version

    inject(world, "verify")  # fails after the push: 1.0.1's images are in the registry
    with pytest.raises(Exit):
        world.deploy("1.0.1")
    assert choose_version(world.home, None, "patch").tag == "1.0.2"
    with pytest.raises(Exit, match=r"1\.0\.1 was pushed by a deploy that ended failed"):
        choose_version(world.home, "1.0.1", None)
    assert history.history(world.home)[-1].pushed


def test_a_deploy_that_failed_before_pushing_leaves_its_version_free(world):
    inject(world, "tag")
    with pytest.raises(Exit):
        world.deploy("1.0.1")
    assert not history.history(world.home)[-1].pushed
    assert world.deploy("1.0.1").status == "success"


def test_bump_after_a_rollback_goes_above_every_version_in_the_history(world):
    from deploy.release.deploy import choose_version

    world.deploy()
    world.reopen()
    rollback(world.fleet, OLD, DeployOptions(), world.executor())
    assert serving_version(world.home) == OLD
    assert choose_version(world.home, None, "patch").tag == "2.0.1"


def test_secrets_in_a_failed_steps_error_are_masked_in_the_history_and_the_audit(fake_settings):
    from deploy.errors import fail

    world = local_world(fake_settings)
    settings = world.fleet.settings
    secrets = [settings.env[k] for k in settings.config.secret_env]

    def unhealthy(argv):  # a failing container whose last log lines show a secret
        if argv[0] == "fetch":
            fail(f"backend-3 not ready\n  last log lines:\nconnecting with password {secrets[0]} and JWT {secrets[-1]}", "fix it")
        return False

    world.engines[world.apps[-1]].fail_when(unhealthy, times=None)
    with pytest.raises(Exit):
        world.deploy()
    for name in ("releases.jsonl", "audit.log"):
        text = world.home.target.read_text(world.home.state_file(name))
        assert text is not None, name
        assert "password ****" in text and not [s for s in secrets if s in text], name
