"""The deploy, rollback and scale workflows on a Docker Swarm stage (``engine: swarm``),
against the recording fake swarm of tests/unit/fake_swarm.py: node1 (manager, edge),
node2 (worker, edge) and node3 (worker, db), and this machine's engine. (One module over
250 lines: its scenarios share the world built at its top.)

What is checked: the order of what a deploy does to the swarm (secrets and configs from
stdin, the stateful stack file before the migration's one-off task, the app stack file,
then every edge's proxy); that no secret is on a command line or in a stack file; the
release history; a version Swarm rolled back; the services rolled back after a later
failure; a failed migration; scale counts kept for the next deploy; a dry run's plan;
``inv rollback``; a node's health and its old images after a deploy. The stack file's
rendering itself: test_swarm.py.
"""
from __future__ import annotations

import copy
import json
import re
import shlex
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from invoke.exceptions import Exit

from deploy.config.inventory import Host
from deploy.config.schema import parse_config
from deploy.config.settings import Settings
from deploy.engine import remote as remote_module
from deploy.engine.ops import Executor, Put, Run
from deploy.fleet import Fleet, open_fleet
from deploy.release import push as push_module
from deploy.release.deploy import DeployOptions, deploy
from deploy.release.push import TO_BE_PUSHED
from deploy.release.rollback import rollback
from deploy.stack.health import VERIFY_NEEDED
from deploy.state import history, lock
from deploy.state.history import Release
from deploy.swarm import cluster
from deploy.swarm import switch as switch_module
from deploy.swarm.scale import scale as swarm_scale
from deploy.swarm.stackfile import Renderer, Roles
from deploy.versions import parse
from tests.unit.conftest import FAKE_ENV, ROOT
from tests.unit.fake_engine import Called, Clock, Registry, marking_executor
from tests.unit.fake_swarm import COMPOSE_FILES, Swarm, SwarmNode, Workstation, compose_config, is_swarm_read, pinned, tag_of

OLD, NEW = "1.0.0", "2.0.0"
STAGE = "cluster"
NODES = {"node1": ("10.0.0.11", ["manager", "edge"]), "node2": ("10.0.0.12", ["worker", "edge"]), "node3": ("10.0.0.13", ["worker", "db"])}
EDGES = ["node1", "node2"]
APPS = ("backend", "web")
STATE = f"/srv/myapp/state/{STAGE}"
STEPS = ["preflight", "tests", "build", "tag", "push", "upload", "backup", "stateful", "migrate", "rollout", "verify", "promote",
         "cleanup"]  # pull is skipped: Swarm's nodes pull when they start a task


@pytest.fixture(autouse=True)
def no_waiting(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(switch_module, "time", clock)
    monkeypatch.setattr(push_module, "time", SimpleNamespace(sleep=lambda s: None))
    return clock


@pytest.fixture
def settings(raw_config: dict, tmp_path: Path) -> Settings:
    """The repository's deploy config with a swarm stage of three nodes (production's
    compose files); the known secrets of conftest's FAKE_ENV; backups to tmp_path."""
    raw = copy.deepcopy(raw_config)
    raw["stages"][STAGE] = {"engine": "swarm", "env_file": ".env.cluster", "compose_files": list(COMPOSE_FILES),
                            "hosts": {name: {"address": address, "roles": roles} for name, (address, roles) in NODES.items()}}
    raw["database"]["backups_dir"] = str(tmp_path / "backups")
    cfg = parse_config(raw, ROOT)
    return Settings(cfg, cfg.stage(STAGE), ROOT / ".env.cluster", dict(FAKE_ENV))


# --- the world: a swarm of fake nodes, this machine's engine, one journal -----------------------
@dataclass
class World:
    settings: Settings
    swarm: Swarm
    nodes: dict[str, SwarmNode]
    here: Workstation
    journal: list[Called]
    said: list[str] = field(default_factory=list)
    fleet: Fleet = field(init=False)

    def __post_init__(self) -> None:
        self.reopen()

    def reopen(self) -> None:
        """The fleet as the next task opens it (deploy.fleet.open_fleet, the SSH targets
        being the fake nodes), pinned to the release now serving."""
        self.fleet = open_fleet(self.settings, [], [], False, self.here)

    @property
    def manager(self) -> SwarmNode:
        return self.nodes["node1"]

    def executor(self, dry_run: bool = False) -> Executor:
        """An executor whose output is kept, and whose step headers mark the journal."""
        return marking_executor(self.said, self.journal, self.fleet.remote, dry_run)

    def deploy(self, version: str = NEW, dry_run: bool = False, **options: Any) -> Release | None:
        return deploy(self.fleet, parse(version), DeployOptions(**options), self.executor(dry_run))

    def clear(self) -> None:
        self.journal.clear()
        self.said.clear()

    def calls(self, *prefix: str) -> list[Called]:
        """The journal's commands that begin with ``prefix``, in order."""
        return [c for c in self.journal if c.argv[:len(prefix)] == prefix]

    def position(self, test: Callable[[Called], bool], last: bool = False) -> int:
        found = [i for i, c in enumerate(self.journal) if test(c)]
        assert found, "not in the journal"
        return found[-1] if last else found[0]

    def stack_deploys(self) -> list[str]:
        """The stack files deployed, by name (stack-app.yml), in order."""
        return [c.argv[c.argv.index("--compose-file") + 1].rsplit("/", 1)[-1] for c in self.calls("docker", "stack", "deploy")]

    def rolled_back(self) -> list[str]:
        """The services we rolled back with ``docker service rollback``."""
        return [c.argv[-1] for c in self.calls("docker", "service", "rollback")]

    def mutations(self) -> list[Called]:
        """The state-changing commands and writes, without the lock, history and audit files."""
        return [c for c in self.journal if c.host != "step" and not is_swarm_read(c.argv) and not bookkeeping(c)]

    def served(self) -> dict[str, str | None]:
        """The version each edge's proxy serves the API of (its X-App-Version)."""
        return {e: self.swarm.http(e, 80, "/api/health").header("x-app-version") for e in EDGES}

    def secrets(self) -> list[str]:
        return [self.settings.env[k] for k in self.settings.config.secret_env]

    def leaks(self) -> list[str]:
        """Where a secret's value shows: a command line, the env of a command on a node (this
        machine's commands get the stage's env, as Compose reads it), a file on a node, the output."""
        out = [f"{c.host}: {c.line}" for c in self.journal for v in self.secrets()
               if v in c.line or (c.host in self.nodes and v in json.dumps(dict(c.env)))]
        out += [f"{n}:{path}" for n, node in self.nodes.items() for path, data in node.files.items()
                for v in self.secrets() if v.encode() in data]
        return out + [line for line in self.said for v in self.secrets() if v in line]


def bookkeeping(call: Called) -> bool:
    """A command or write on the deploy's own state (lock, history, audit), not a stack file."""
    return any(STATE in a and "/stack-" not in a for a in call.argv)


@pytest.fixture
def world(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> World:
    """A swarm with nothing of the stack on it yet, and no history."""
    journal: list[Called] = []
    registry = Registry()
    swarm = Swarm(settings.stage.hosts)
    nodes = {h.name: SwarmNode(swarm, h, journal, registry) for h in settings.stage.hosts}

    class Connect:  # deploy.fleet's RemoteTarget(host, ssh, accept_new_host_keys): the host's fake node
        def __new__(cls, host: Host, ssh: object, accept: bool) -> SwarmNode:  # type: ignore[misc]
            return nodes[host.name]

    monkeypatch.setattr(remote_module, "RemoteTarget", Connect)
    return World(settings, swarm, nodes, Workstation(ROOT, journal, registry), journal)


@pytest.fixture
def served(world: World) -> World:
    """The swarm serving OLD, deployed by a first deploy; the next task's fleet."""
    release = world.deploy(OLD)
    assert release is not None and release.status == "success", world.said
    world.reopen()
    world.clear()
    return world


def serving(world: World) -> str | None:
    """The release the history says serves."""
    current = history.current(world.fleet.primary.stack)
    return current.version if current else None


def rendered_app(world: World) -> dict[str, Any]:
    """The app stack file last deployed."""
    return next(content for path, content in reversed(world.swarm.deployed) if path.endswith("stack-app.yml"))


# --- a first deploy -------------------------------------------------------------------------------
def test_a_first_deploy_creates_the_secrets_then_the_stateful_stack_the_migration_and_the_app(world: World,
                                                                                             capsys: pytest.CaptureFixture[str]) -> None:
    release = world.deploy(OLD)
    assert release is not None and release.status == "success"
    steps = [c.argv[0] for c in world.journal if c.host == "step"]
    assert steps == STEPS
    assert any(line.startswith("[7/14] pull: skipped (each node pulls") for line in world.said)

    # upload: the secrets and configs, each created on the manager with its content on stdin
    creates = world.calls("docker", "secret", "create") + world.calls("docker", "config", "create")
    assert creates and {c.host for c in creates} == {"node1"} and all(c.argv[-1] == "-" for c in creates)
    fed = {argv[-2]: data for argv, data in world.manager.fed}
    assert sorted(fed) == sorted(c.argv[-2] for c in creates)
    secrets = world.swarm.secrets
    assert sorted(s.content.decode() for s in secrets.values()) == sorted(world.secrets())
    assert all(fed[name] == s.content and s.labels == {"com.docker.stack.namespace": "myapp"} for name, s in secrets.items())
    assert {c.name for c in world.swarm.configs.values()} >= {n for n in fed if "nginx-nginx.conf.template" in n}
    assert world.leaks() == []  # no secret on any command line or in its env, in any file written, in the output

    # the stateful stack file, then the migration's one-off task (created, then removed), then the app's
    assert world.stack_deploys() == ["stack-stateful.yml", "stack-app.yml"]
    stateful = world.position(lambda c: c.argv[:3] == ("docker", "stack", "deploy"))
    created = world.position(lambda c: c.argv[:3] == ("docker", "service", "create"))
    removed = world.position(lambda c: c.argv[:3] == ("docker", "service", "rm"), last=True)
    app = world.position(lambda c: c.argv[:3] == ("docker", "stack", "deploy"), last=True)
    checks = [i for i, c in enumerate(world.journal) if c.argv[0] == "fetch"]
    made = world.position(lambda c: c.argv[1:3] in (("secret", "create"), ("config", "create")), last=True)
    assert made < stateful < created < removed < app < checks[0]
    assert [c.argv[2] for c in world.calls("docker", "service") if not is_swarm_read(c.argv)] == ["rm", "create", "rm"]  # a leftover first
    assert {world.journal[i].host for i in checks} == set(EDGES) and len(checks) == 2 * 3 * VERIFY_NEEDED  # each edge: the 3 paths, each judged
    once = world.journal[created].argv
    assert once[once.index("--name") + 1] == "myapp_backend_once" and once[-3:] == (
        f"registry.example.com/myapp/backend:{OLD}@{release.digests['backend'].split('@')[1]}", "node", "dist/migrate.js")
    assert once[once.index("--network"):once.index("--network") + 2] == ("--network", "myapp_back")
    assert {a.split(",")[1] for a in once if a.startswith("source=")} == {"target=PGPASSWORD", "target=REDIS_PASSWORD", "target=JWT_SECRET"}
    assert world.journal[removed].argv[-1] == "myapp_backend_once" and "myapp_backend_once" not in world.swarm.services
    assert "  No migrations to run!\n" in capsys.readouterr().out  # the task's output, shown

    # the stack files: written 0600 on the manager, no secret in them, networks encrypted
    for part in ("app", "stateful"):
        path = f"{STATE}/stack-{part}.yml"
        assert world.manager.modes[path] == 0o600 and path in [c.argv[1] for c in world.calls("write")]
    assert world.swarm.networks["myapp_back"]["encrypted"] and world.swarm.networks["myapp_back"]["internal"]

    # what runs: the stateful services on the db node, the proxy on each edge, the app everywhere
    assert {t.node for s in ("postgres", "redis") for t in world.swarm.running(s)} == {"node3"}
    assert sorted(t.node for t in world.swarm.running("nginx")) == EDGES
    assert world.swarm.versions("backend") == [OLD] * 3 and world.swarm.versions("web") == [OLD] * 4
    assert world.served() == {"node1": OLD, "node2": OLD}

    # the release: success, with the images and the digests Swarm pinned
    assert [(r.version, r.status) for r in history.history(world.fleet.primary.stack)] == [(OLD, "success")]
    assert release.images == {s: f"registry.example.com/myapp/{s}:{OLD}" for s in APPS}
    for s in APPS:  # the stack file names each by the digest it was pushed as: Swarm asks the registry nothing
        assert world.swarm.service(s).spec["image"] == rendered_app(world)["services"][s]["image"] == pinned(release.images[s])
        assert release.digests[s].split("@")[1] == world.swarm.service(s).spec["image"].split("@")[1]
    assert release.hosts == list(NODES) and not lock.read(world.fleet.primary.stack)


# --- the next deploys -----------------------------------------------------------------------------
def test_a_second_deploy_backs_up_and_leaves_the_stateful_stack_as_it_runs(served: World) -> None:
    w = served
    stateful = {s: (w.swarm.service(s).version, [t.id for t in w.swarm.running(s)]) for s in ("postgres", "redis")}
    proxies = [t.id for t in w.swarm.running("nginx")]
    release = w.deploy(NEW)
    assert release is not None and release.status == "success"
    assert w.stack_deploys() == ["stack-app.yml"]
    assert any(line.startswith("  running: postgres, redis") for line in w.said)
    assert {s: (w.swarm.service(s).version, [t.id for t in w.swarm.running(s)]) for s in ("postgres", "redis")} == stateful
    assert w.calls("docker", "secret", "create") == [] and w.calls("docker", "config", "create") == []  # the same contents: the same names
    # the backup: pg_dump in the database's task container on the db node, before the migration
    dump = w.position(lambda c: c.host == "node3" and "pg_dump" in c.argv)
    assert w.journal[dump].argv[:2] == ("docker", "exec") and w.journal[dump].argv[2].startswith("myapp_postgres.1.")
    assert dump < w.position(lambda c: c.argv[:3] == ("docker", "service", "create"))
    assert list((Path(w.settings.config.database.backups_dir) / "myapp" / STAGE).glob(f"*pre-{NEW}*.dump"))
    # start-first: every app task replaced; the proxy's spec did not change: its tasks run on
    assert w.swarm.versions("backend") == [NEW] * 3 and w.swarm.versions("web") == [NEW] * 4
    assert [t.id for t in w.swarm.running("nginx")] == proxies
    assert w.served() == {"node1": NEW, "node2": NEW}
    assert [(r.version, r.status) for r in history.history(w.fleet.primary.stack)] == [(OLD, "success"), (NEW, "success")]
    assert w.rolled_back() == [] and w.leaks() == []


@pytest.mark.parametrize("exit_code", [1, 0], ids=["cli-exits-1", "cli-exits-0"])
def test_an_unhealthy_version_is_rolled_back_by_swarm_and_the_deploy_fails_saying_so(served: World, exit_code: int) -> None:
    """Every app image of NEW fails its healthcheck: Swarm rolls each update back by itself
    (failure_action rollback); `docker stack deploy --detach=false` may exit 1 (the CLI's
    "service rolled back") or 0: either way the deploy fails saying so, and issues no
    rollback of its own."""
    w = served
    w.swarm.make_unhealthy(NEW)
    w.swarm.rollback_exit = exit_code
    with pytest.raises(Exit, match=r"Swarm rolled back backend \(rollback_completed: rollback completed\), web \(rollback_completed"):
        w.deploy(NEW)
    for s in APPS:
        assert w.swarm.service(s).update == ("rollback_completed", "rollback completed")
        assert tag_of(w.swarm.service(s).spec["image"]) == OLD and set(w.swarm.versions(s)) == {OLD}
    assert w.served() == {"node1": OLD, "node2": OLD}
    entries = history.history(w.fleet.primary.stack)
    assert [(r.version, r.status) for r in entries] == [(OLD, "success"), (NEW, "failed")]
    assert "Swarm rolled back backend" in (entries[-1].error or "") and serving(w) == OLD
    assert not lock.read(w.fleet.primary.stack) and w.calls("fetch") == []  # stopped before the verify step
    # Swarm rolled back what failed; nothing else changed (nginx's spec is the same): no rollback of ours.
    # `docker stack deploy` writes every service of the file: an unchanged one (nginx) gets no update to undo.
    assert w.rolled_back() == []


def test_the_services_swarm_did_not_roll_back_are_rolled_back_by_the_deploy(served: World) -> None:
    """Only backend's new tasks fail: Swarm rolls backend back, web's update completed; the
    release is all or nothing, so web is rolled back by the deploy."""
    w = served
    w.swarm.make_unhealthy(NEW, "backend")
    with pytest.raises(Exit, match=r"Swarm rolled back backend \("):
        w.deploy(NEW)
    assert "myapp_web" in w.rolled_back() and "myapp_backend" not in w.rolled_back()
    assert set(w.swarm.versions("web")) == {OLD} and set(w.swarm.versions("backend")) == {OLD}
    assert w.swarm.service("web").update == ("rollback_completed", "rollback completed")
    assert history.history(w.fleet.primary.stack)[-1].status == "failed"


def test_a_failure_after_the_rollout_rolls_back_exactly_the_services_the_deploy_updated(served: World) -> None:
    w = served
    w.nodes["node2"].fail_when("fetch 80 /api/health", times=None, stderr="502 Bad Gateway")
    with pytest.raises(Exit, match="verify failed on node2: .*HTTP 502"):
        w.deploy(NEW)
    assert w.stack_deploys() == ["stack-app.yml"]
    assert {c.host for c in w.calls("docker", "service", "rollback")} == {"node1"}
    assert {"myapp_backend", "myapp_web"} <= set(w.rolled_back())
    for s in APPS:
        assert tag_of(w.swarm.service(s).spec["image"]) == OLD and set(w.swarm.versions(s)) == {OLD}
    assert w.served() == {"node1": OLD, "node2": OLD}
    assert [(r.version, r.status) for r in history.history(w.fleet.primary.stack)] == [(OLD, "success"), (NEW, "failed")]
    assert not lock.read(w.fleet.primary.stack)
    # nginx's spec did not change (its Version.Index moved: Swarm writes every service of the file).
    assert sorted(w.rolled_back()) == ["myapp_backend", "myapp_web"]


def test_a_failed_migration_stops_the_deploy_before_the_app_stack_deploy(served: World, capsys: pytest.CaptureFixture[str]) -> None:
    w = served
    w.swarm.fail_one_offs("error: migration 007_items failed: relation \"items\" already exists")
    with pytest.raises(Exit, match=r"the migration failed: its task ended Failed 5 seconds ago: task: non-zero exit \(1\)"):
        w.deploy(NEW)
    assert '  error: migration 007_items failed: relation "items" already exists\n' in capsys.readouterr().out  # its output, shown
    assert w.stack_deploys() == []
    assert w.calls("docker", "service", "rm")[-1].argv[-1] == "myapp_backend_once" and "myapp_backend_once" not in w.swarm.services
    assert w.swarm.versions("backend") == [OLD] * 3 and w.served() == {"node1": OLD, "node2": OLD}
    assert w.rolled_back() == []
    assert [(r.version, r.status) for r in history.history(w.fleet.primary.stack)] == [(OLD, "success"), (NEW, "failed")]


# --- scale ------------------------------------------------------------------------------------------
def test_scale_on_a_swarm_scales_the_services_and_the_next_deploy_keeps_the_counts(served: World) -> None:
    w = served
    Executor(say=w.said.append)(swarm_scale(w.fleet, {"backend": 5, "web": 2}, timeout=60))
    assert [c.argv for c in w.calls("docker", "service", "scale")] == [
        ("docker", "service", "scale", "--detach=false", "myapp_backend=5", "myapp_web=2")]
    assert w.calls("docker", "service", "scale")[0].host == "node1"
    assert w.swarm.versions("backend") == [OLD] * 5 and w.swarm.versions("web") == [OLD] * 2
    assert json.loads(w.manager.read_text(f"{STATE}/scale.json") or "{}") == {"backend": 5, "web": 2}
    w.reopen()
    w.clear()
    assert (release := w.deploy(NEW)) is not None and release.status == "success"
    services = rendered_app(w)["services"]
    assert (services["backend"]["deploy"]["replicas"], services["web"]["deploy"]["replicas"]) == (5, 2)
    assert w.swarm.versions("backend") == [NEW] * 5 and w.swarm.versions("web") == [NEW] * 2


# --- the plan is the action -------------------------------------------------------------------------
@pytest.mark.parametrize("first", [True, False], ids=["first-deploy", "next-deploy"])
def test_a_dry_run_prints_the_plan_and_changes_nothing(world: World, first: bool) -> None:
    if not first:
        assert (release := world.deploy(OLD)) is not None and release.status == "success"
        world.reopen()
        world.clear()
    before = (world.swarm.snapshot(), {n: dict(node.files) for n, node in world.nodes.items()})
    assert world.deploy(NEW, dry_run=True) is None
    assert (world.swarm.snapshot(), {n: dict(node.files) for n, node in world.nodes.items()}) == before
    assert world.mutations() == [] and not any(c.argv[0] == "write" for c in world.journal)
    plan = [line.strip() for line in world.said]
    deploys = [line for line in plan if line.startswith("node1: docker stack deploy")]
    assert deploys == [f"node1: docker stack deploy --detach=false --quiet --with-registry-auth --resolve-image changed "
                       f"--compose-file {STATE}/stack-{part}.yml myapp" for part in (["stateful", "app"] if first else ["app"])]
    assert any(line.startswith(f"node1: write {STATE}/stack-app.yml (") and line.endswith("mode 0600)") for line in plan)
    creates = [line for line in plan if line.startswith("node1: docker secret create")]
    assert len(creates) == (3 if first else 0) and all(re.search(r" - < \([\d,]+ bytes\)$", line) for line in creates)
    assert any(line.startswith("node1: docker service create --detach --quiet --name myapp_backend_once") for line in plan)
    assert [s for s in world.secrets() if any(s in line for line in world.said)] == []


def test_a_dry_run_plans_exactly_the_commands_a_real_run_executes(served: World) -> None:
    w = served
    dry = w.executor(dry_run=True)
    assert deploy(w.fleet, parse(NEW), DeployOptions(), dry) is None
    plan = []
    for op in dry.planned:
        if isinstance(op, Run):
            plan.append((op.stack.target.name, shlex.join(op.argv)))
        elif isinstance(op, Put):
            plan.append((op.stack.target.name, f"write {op.path}"))
    w.clear()
    assert (release := w.deploy(NEW)) is not None and release.status == "success"
    # The digests of the push, which a plan names before it: the same words otherwise.
    pushed = {d.split("@")[1] for d in release.digests.values()}
    done = [(c.host, shlex.join(re.sub(r"sha256:[0-9a-f]{64}", lambda m: TO_BE_PUSHED if m.group(0) in pushed else m.group(0), a)
                                for a in c.argv)) for c in w.mutations()]
    for host in sorted({h for h, _ in plan} | {h for h, _ in done}):
        assert [line for h, line in plan if h == host] == [line for h, line in done if h == host], host


# --- inv rollback -------------------------------------------------------------------------------------
def test_rollback_returns_the_swarm_to_the_previous_release(served: World) -> None:
    w = served
    assert (release := w.deploy(NEW)) is not None and release.status == "success"
    w.reopen()
    w.clear()
    back = rollback(w.fleet, None, DeployOptions(), w.executor())
    assert back is not None and (back.version, back.kind, back.status) == (OLD, "rollback", "success")
    assert w.stack_deploys() == ["stack-app.yml"] and w.rolled_back() == []
    first = next(r for r in history.history(w.fleet.primary.stack) if r.version == OLD and r.kind == "deploy")
    digest = first.digests["backend"].split("@")[1]  # what OLD's deploy pushed: the rollback names it again
    assert rendered_app(w)["services"]["backend"]["image"] == f"registry.example.com/myapp/backend:{OLD}@{digest}"
    assert back.digests == first.digests
    assert w.swarm.versions("backend") == [OLD] * 3 and w.served() == {"node1": OLD, "node2": OLD}
    assert serving(w) == OLD and back.images["backend"].endswith(f":{OLD}")


# --- after a deploy: health, cleanup ------------------------------------------------------------------
def test_health_after_a_deploy_judges_the_tasks_swarm_runs_not_the_exited_ones_it_keeps(served: World) -> None:
    """Swarm keeps the exited containers of the last tasks of each slot (its task history,
    5 by default; moby/swarmkit#1372): on a node, `docker ps --all` lists the old release's
    stopped containers beside the running ones. `inv health` of a node that serves must pass."""
    w = served
    assert (release := w.deploy(NEW)) is not None and release.status == "success"
    w.reopen()
    assert [t.state for t in w.swarm.containers_on("node2") if t.state != "running"]  # the old tasks' containers, exited
    failing = {m.name: [f"{c.subject}: {c.detail}" for c in cluster.checks(w.fleet, m) if not c.ok] for m in w.fleet.members}
    assert failing == {"node1": [], "node2": [], "node3": []}


def test_cleanup_removes_the_images_of_releases_beyond_retention_on_every_node(served: World) -> None:
    """Any node may have run a release's app tasks (Swarm places them): beyond
    ``retention.releases`` their images go, as on Compose's app hosts."""
    w = served
    keep = w.settings.config.retention.releases
    for minor in range(1, keep + 1):
        assert (release := w.deploy(f"1.{minor}.0")) is not None and release.status == "success"
        w.reopen()
    removed = {n: [c.argv[-1] for c in w.calls("docker", "image", "rm") if c.host == n] for n in NODES}
    assert removed == {n: [f"registry.example.com/myapp/{s}:{OLD}" for s in APPS] for n in NODES}


# --- the fakes themselves ---------------------------------------------------------------------------
def test_the_fake_swarm_behaves_as_swarmkit_does(world: World) -> None:
    """Every service a stack file names gets an update (its Version.Index moves, the spec
    before becomes PreviousSpec, UpdateStatus is reset) though only a changed task template
    starts new tasks; a manual rollback swaps the two specs; a worker refuses the cluster's
    commands; the task containers of a node and its proxy are what `docker ps` and HTTP show."""
    assert (release := world.deploy(OLD)) is not None and release.status == "success"
    nginx = world.swarm.service("nginx")
    version, tasks = nginx.version, [t.id for t in world.swarm.running("nginx")]
    world.manager.run(["docker", "stack", "deploy", "--detach=false", "--quiet", "--with-registry-auth", "--resolve-image", "changed",
                       "--compose-file", f"{STATE}/stack-app.yml", "myapp"])
    assert nginx.version > version and nginx.update is None and nginx.previous == nginx.spec
    assert [t.id for t in world.swarm.running("nginx")] == tasks
    backend, tasks = world.swarm.service("backend"), [t.id for t in world.swarm.running("backend")]
    world.swarm.make_unhealthy(OLD)  # a replaced task of backend's would fail now; a rollback to the same spec starts none
    out = world.manager.run(["docker", "service", "rollback", "--detach=false", "myapp_backend"]).stdout
    assert "rollback: manually requested rollback" in out and backend.update == ("rollback_completed", "rollback completed")
    assert [t.id for t in world.swarm.running("backend")] == tasks
    world.swarm.unhealthy.clear()
    world.manager.run(["docker", "service", "scale", "--detach=false", "myapp_backend=1"])
    assert len(world.swarm.running("backend")) == 1 and backend.previous and backend.previous["deploy"]["replicas"] == 3
    refused = world.nodes["node2"].run(["docker", "service", "ls", "--quiet"], warn=True)
    assert refused.exited == 1 and "not a swarm manager" in refused.stderr
    listed = world.nodes["node3"].run(["docker", "ps", "--all", "--quiet", "--no-trunc", "--filter",
                                       "label=com.docker.stack.namespace=myapp"]).stdout.split()
    inspected = json.loads(world.nodes["node3"].run(["docker", "inspect", "--type", "container", *listed]).stdout)
    assert {c["Config"]["Labels"]["com.docker.swarm.service.name"] for c in inspected} >= {"myapp_postgres", "myapp_redis"}
    assert world.nodes["node3"].fetch(80, "/").status == 0 and world.nodes["node2"].fetch(80, "/").status == 200
    unknown = world.manager.run(["docker", "service", "frobnicate"], warn=True)
    assert unknown.exited == 127


@pytest.mark.skipif(not shutil.which("docker") or subprocess.run(["docker", "compose", "version"], capture_output=True).returncode != 0,
                    reason="needs the docker CLI with Compose v2 (no engine)")
def test_the_workstations_compose_config_renders_as_compose_makes_it(tmp_path: Path) -> None:
    """The merged configuration the fake gives renders to the same stack files as the one
    Compose itself makes of the repository's compose files."""
    env = {**FAKE_ENV, "APP_VERSION": NEW, "NGINX_UPSTREAMS_DIR": str(tmp_path / "upstreams")}
    env_file = tmp_path / "env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in env.items()))
    argv = ["docker", "compose", "-p", "myapp", *[a for f in COMPOSE_FILES for a in ("-f", str(ROOT / f))], "--env-file", str(env_file),
            "config", "--format", "json"]
    real = json.loads(subprocess.run(argv, capture_output=True, text=True, check=True, timeout=60,
                                     env={"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(tmp_path)}).stdout)
    roles = Roles({"backend": 3000, "web": 3000}, ["postgres", "redis"], "nginx")
    secrets = {k: env[k] for k in ("POSTGRES_PASSWORD", "REDIS_PASSWORD", "JWT_SECRET")}

    def render(config: dict[str, Any]) -> Any:
        return Renderer("myapp", config, roles, secrets, {}, lambda p: Path(p).read_bytes() if Path(p).is_file() else None).render()

    assert render(compose_config(ROOT, env)) == render(real)
