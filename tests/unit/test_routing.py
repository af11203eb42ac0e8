"""Health-gated routing (deploy.stack.routing): the routing file, pure; then the guarantee
it gives, on the recording fake engine, through deploys, rollbacks, scaling and ``up``.

The guarantee, checked by the fake after every command (``FakeEngine.violations``):
nginx never routes (per its last load of the routing file) an address whose container is
gone, another one, or not running and ready; no container is stopped while it is routed
or while nginx's workers of an earlier routing still send it requests; a reload routes a
container only once a probe from the proxy reached it. The fake's new app containers
take a few inspections to answer (``warmup``) and nginx's old workers a few polls to
finish (``drain_polls``), so a workflow that routed too early or stopped too soon is seen.
"""
from __future__ import annotations

import re
import shlex
from collections.abc import Sequence

import pytest
from invoke.exceptions import Exit

from deploy.engine.commands import docker, nginx
from deploy.engine.facts import Container
from deploy.engine.ops import Executor
from deploy.engine.stack import UPSTREAMS_DIR, Stack
from deploy.fleet import local_fleet
from deploy.release.deploy import DeployOptions, deploy
from deploy.release.rollback import rollback
from deploy.stack import lifecycle, routing, scale
from deploy.stack import rollout as rollout_module
from deploy.state import history
from deploy.state.history import Release
from deploy.versions import parse
from tests.unit.fake_engine import STATELESS, Clock, FakeEngine, compose_sub, nginx_check

OLD, NEW = "1.0.0", "2.0.0"
APP = ["backend", "web", "nginx"]
DB = ["postgres", "redis"]
NETS = ("myapp_front",)


# --- the routing file (pure) ----------------------------------------------------------------
def test_render_and_parse_round_trip():
    pools = [routing.Pool("backend", 3000, ("172.18.0.3", "172.18.0.4")), routing.Pool("web", 8000, ("172.18.0.5",))]
    text = routing.render(pools)
    assert routing.parse(text) == {"backend": ["172.18.0.3:3000", "172.18.0.4:3000"], "web": ["172.18.0.5:8000"]}
    assert "upstream backend {" in text and f"keepalive {routing.KEEPALIVE};" in text
    assert "server 172.18.0.3:3000 max_fails=1 fail_timeout=2s;" in text.splitlines()[3]
    assert nginx_check(text) is None  # what nginx -t accepts (the fake's rules)


def test_an_empty_pool_renders_a_down_server_and_parses_as_empty():
    text = routing.render([routing.Pool("backend", 3000, ()), routing.Pool("web", 3000, ("172.18.0.2",))])
    block = text[text.index("upstream backend"):text.index("upstream web")]
    assert [line.strip() for line in block.splitlines() if line.strip().startswith("server")] == ["server 127.0.0.1:9 down;"]
    assert routing.parse(text) == {"backend": [], "web": ["172.18.0.2:3000"]}
    assert nginx_check(text) is None  # an upstream without a server would not be


def test_parse_reads_the_by_hand_file_and_nothing_of_comments():
    assert routing.parse("# upstream x {\n#    server 1.2.3.4:5;\n") == {}
    assert routing.parse("upstream web {\n    server web:3000;\n}\n") == {"web": ["web:3000"]}


def ctr(service: str, n: int, state: str = "running", health: str = "healthy",
        addresses: tuple[tuple[str, str], ...] | None = None) -> Container:
    ip = {"backend": 10, "web": 20, "nginx": 30, "postgres": 40}[service] + n
    nets = addresses if addresses is not None else (("myapp_back", f"172.19.0.{ip}"), ("myapp_front", f"172.18.0.{ip}"))
    return Container(id=f"{service}{n}", name=f"myapp-{service}-{n}", service=service, number=n, state=state, health=health,
                     image=f"ns/{service}:1", version="1", started_at=None, ports=(), exit_code=0, health_log="",
                     addresses=nets if state == "running" else tuple((net, "") for net, _ in nets))


def test_pools_picks_running_not_unhealthy_not_leaving_containers_on_the_proxys_networks(config):
    containers = [
        ctr("backend", 1), ctr("backend", 2, health="starting"), ctr("backend", 3, health="unhealthy"),
        ctr("backend", 4, state="exited"), ctr("backend", 5), ctr("backend", 6, addresses=(("myapp_back", "172.19.0.99"),)),
        ctr("backend", 7, health=""), ctr("web", 1), ctr("web", 2), ctr("nginx", 1), ctr("postgres", 1),
    ]
    # no routing yet (a wiped state directory): every running, not unhealthy container counts
    pools = routing.pools(config, containers, NETS, None, leaving={"myapp-backend-5", "myapp-web-2"})
    assert pools == [routing.Pool("backend", 3000, ("172.18.0.11", "172.18.0.12", "172.18.0.17")),
                     routing.Pool("web", 3000, ("172.18.0.21",))]
    # the address on the first of the proxy's networks the container is on
    assert routing.pools(config, [ctr("backend", 1)], ("myapp_back", "myapp_front"), None)[0].addresses == ("172.19.0.11",)
    assert [p.addresses for p in routing.pools(config, [], NETS, None)] == [(), ()]
    # with a routing: only those routed now stay, and only those joining are added
    now = {"backend": ["172.18.0.11:3000", "172.18.0.15:3000"], "web": ["172.18.0.21:3000"]}
    kept = routing.pools(config, containers, NETS, now, leaving={"myapp-backend-5"}, joining={"myapp-backend-7"})
    assert kept == [routing.Pool("backend", 3000, ("172.18.0.11", "172.18.0.17")), routing.Pool("web", 3000, ("172.18.0.21",))]


def test_victims_are_the_highest_numbered_running_containers():
    containers = [ctr("backend", n) for n in range(1, 11)] + [ctr("backend", 11, state="exited"), ctr("web", 1), ctr("web", 2)]
    assert scale.victims(containers, {"backend": 3, "web": 2}) == [f"myapp-backend-{n}" for n in range(4, 11)]
    assert scale.victims(containers, {"backend": 9}) == ["myapp-backend-10"]  # by number, not by name
    assert scale.victims(containers, {"backend": 12, "web": 0}) == ["myapp-web-1", "myapp-web-2"]


# --- the guarantee, on the fake engine ----------------------------------------------------------
@pytest.fixture(autouse=True)
def clock(monkeypatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(rollout_module, "time", clock)
    monkeypatch.setattr(routing, "time", clock)
    monkeypatch.setattr(rollout_module, "POLL_SECONDS", 2.0)
    monkeypatch.setattr(FakeEngine, "clock", clock)
    return clock


class Host:
    """The local engine serving OLD (routed by an earlier deploy), with apps that take
    ``warmup`` inspections to answer and nginx workers that take 2 polls to finish."""

    def __init__(self, settings, replicas: dict[str, int] | None = None, warmup: int = 3) -> None:
        self.engine = FakeEngine("local", replicas=replicas)
        self.stack = Stack(settings, self.engine).with_env(APP_VERSION=OLD)  # pinned to what serves, as the tasks do
        self.engine.start([*APP, *DB], {**settings.env, "APP_VERSION": OLD,
                                         "NGINX_UPSTREAMS_DIR": self.stack.state_file(UPSTREAMS_DIR)})
        self.engine.warmup, self.engine.drain_polls = warmup, 2
        history.record(self.stack, Release(version=OLD, status="success", started_at="2026-01-01T00:00:00+00:00"))
        self.said: list[str] = []
        self.engine.journal.clear()

    def run(self, ops):
        return Executor(say=self.said.append)(ops)

    def deploy(self, version: str = NEW) -> Release:
        release = deploy(local_fleet(self.stack.settings, self.engine), parse(version), DeployOptions(skip_tests=True),
                         Executor(say=self.said.append))
        assert release is not None, "a deploy that ran (not a dry run) returned no release"
        return release

    def rollback(self) -> Release:
        release = rollback(local_fleet(self.stack.settings, self.engine), None, DeployOptions(), Executor(say=self.said.append))
        assert release is not None, "a rollback that ran (not a dry run) returned no release"
        return release

    @property
    def pools_file(self) -> str | None:
        return self.engine.read_text(routing.pools_path(self.stack))

    def running(self, service: str | None = None) -> list[str]:
        return [c.name(self.engine.project) for c in sorted(self.engine.running(), key=lambda c: (c.service, c.number))
                if c.service in STATELESS and (service is None or c.service == service)]

    def lines(self) -> list[str]:
        return [c.line for c in self.engine.journal]


def guaranteed(host: Host) -> None:
    """The guarantee held throughout, and the proxy routes exactly the running app
    containers, as the routing file on disk says."""
    assert host.engine.violations == []
    assert host.engine.routed_names() == host.running()
    on_disk = sorted(a for pool in routing.parse(host.pools_file or "").values() for a in pool)
    assert on_disk == sorted(host.engine.routed or {})


def probed_before_routed(host: Host, names: Sequence[str]) -> None:
    """Each of ``names`` answered a probe from the proxy (a wget of its address) before the
    first reload that routed it."""
    by_name = {c.name(host.engine.project): c for c in host.engine.containers}
    for name in names:
        c = by_name[name]
        assert c.probed_at is not None and c.routed_at is not None and c.probed_at < c.routed_at, name


def stop_index(host: Host, name: str) -> int:
    return next(i for i, c in enumerate(host.engine.journal) if c.argv[:2] == ("docker", "stop") and name in c.argv)


def test_a_deploy_routes_new_containers_only_once_ready_and_stops_old_ones_only_once_drained(fake_settings):
    host = Host(fake_settings)
    old, workers_before = host.running(), [str(p) for p in host.engine.worker_pids()]
    assert host.deploy().status == "success"
    guaranteed(host)
    new = host.running()
    assert not set(new) & set(old) and host.engine.versions("backend") == [NEW, NEW]
    probed_before_routed(host, new)
    # the routing an earlier deploy left, then one reload from all old to all new: never a mix, never an empty pool
    assert host.engine.reloads == [{"backend": old[:2], "web": old[2:]}, {"backend": new[:2], "web": new[2:]}]
    lines = host.lines()
    check = next(i for i, line in enumerate(lines) if " nginx -t " in line)
    reloads = [i for i, line in enumerate(lines) if "-s reload" in line]
    assert len(reloads) == 1 and check < reloads[0]
    reload = reloads[0]
    assert "/tmp/router.pid" in lines[reload]  # the reload prints the router's workers of before it
    polls = [i for i, line in enumerate(lines) if "/proc/$p" in line]
    assert len(polls) == 3 and all(i > reload for i in polls)  # 2 polls saw the old workers, the third none
    assert all(list(host.engine.journal[i].argv[-len(workers_before):]) == workers_before for i in polls)  # those very pids
    assert all(stop_index(host, name) > polls[-1] for name in old)


def test_a_rollback_keeps_the_guarantee(fake_settings):
    host = Host(fake_settings)
    host.deploy()
    deployed = host.running()
    host.engine.journal.clear()
    release = host.rollback()
    assert (release.version, release.status) == (OLD, "success")
    guaranteed(host)
    assert host.engine.versions("backend") == [OLD, OLD] and not set(host.running()) & set(deployed)
    probed_before_routed(host, host.running())


@pytest.mark.parametrize("counts", [(3, 10, 3), (10, 1, 3)])
def test_scaling_up_and_down_keeps_the_guarantee(fake_settings, counts):
    first, *then = counts
    host = Host(fake_settings, replicas={"backend": first, "web": 1})
    for count in then:
        before = host.running("backend")
        host.run(scale.apply(host.stack, {"backend": count}))
        guaranteed(host)
        now = host.running("backend")
        assert len(now) == count and host.stack.saved_scale() == {"backend": count}
        if count < len(before):  # the highest numbers left the routing, were drained, then stopped
            assert now == before[:count]
            reload = max(i for i, line in enumerate(host.lines()) if "-s reload" in line)
            assert all(stop_index(host, name) > reload for name in before[count:])
        else:  # the others kept serving; the new ones were routed once ready
            assert now[:len(before)] == before
            probed_before_routed(host, now[len(before):])
        host.engine.journal.clear()
    assert host.engine.violations == []


def test_a_failed_nginx_check_puts_the_previous_routing_back_and_the_old_containers_keep_serving(fake_settings):
    host = Host(fake_settings)
    old, previous = host.running(), host.pools_file
    host.engine.fail_when(lambda argv: argv[:2] == ("docker", "exec") and "-t" in argv and "nginx" in argv,
                          stderr="nginx: [emerg] invalid number of arguments in \"server\" directive")
    with pytest.raises(Exit, match="checking the new routing"):
        host.deploy()
    assert host.pools_file == previous  # byte for byte
    guaranteed(host)
    assert host.running() == old and host.engine.versions("backend") == [OLD, OLD]
    assert not [line for line in host.lines() if "-s reload" in line]
    assert host.engine.fetch(8080, "/api/health").status == 200 and host.engine.fetch(8080, "/").status == 200
    assert any("the routing was not applied" in line for line in host.said)
    assert history.history(host.stack)[-1].status == "failed"


def test_nginx_refuses_an_invalid_routing_file(fake_settings):
    """The fake's nginx -t (what the test above injects) checks the file for real too."""
    host = Host(fake_settings)
    proxy = host.engine.proxy()
    assert proxy is not None
    path = routing.pools_path(host.stack)
    argv = ["docker", "exec", proxy.name("myapp"), "nginx", "-t", "-q", "-c", "/etc/nginx/router.conf"]
    assert host.engine.run(argv).ok
    for bad in ["upstream web {\n}\n", "upstream backend {\n    server 172.18.0.2:3000;\n}\n",  # no server; no web
                "upstream backend {\n    server :3000;\n}\nupstream web {\n    server 172.18.0.4:3000;\n}\n",
                "upstream backend {\n    server 172.18.0.2:3000;\n"]:
        host.engine.files[path] = bad.encode()
        assert not host.engine.run(argv, warn=True).ok, bad
    del host.engine.files[path]
    assert "No such file" in host.engine.run(argv, warn=True).stderr


@pytest.mark.parametrize("sickness", ["never ready", "unhealthy"])
def test_a_new_container_that_never_gets_ready_is_removed_and_never_routed(fake_settings, clock, sickness):
    host = Host(fake_settings)
    old, previous = host.running(), host.pools_file
    (host.engine.never_ready if sickness == "never ready" else host.engine.make_unhealthy)(NEW)
    with pytest.raises(Exit, match="not ready after 180 s"):
        host.deploy()
    assert clock.now >= 180
    guaranteed(host)
    assert host.running() == old and host.pools_file == previous
    assert not [c for c in host.engine.containers if c.version == NEW]  # the new ones were removed
    ever_routed = {name for r in host.engine.reloads for names in r.values() for name in names}
    assert ever_routed <= set(old)
    assert not [line for line in host.lines() if "-s reload" in line]


def test_up_with_a_changed_backend_config_rolls_it_out_instead_of_recreating_it(fake_settings):
    host = Host(fake_settings)
    web = host.running("web")
    old_backends = host.running("backend")
    host.engine.revision["backend"] = "a changed environment"
    host.run(lifecycle.up(host.stack))
    guaranteed(host)
    backends = host.running("backend")
    assert len(backends) == 2 and not set(backends) & set(old_backends)
    assert host.running("web") == web  # unchanged: left as it is
    assert all(c.config_hash == host.engine.config_hash("backend", {**fake_settings.env, "APP_VERSION": OLD})
               for c in host.engine.running("backend"))
    ups = [c for c in host.engine.journal if c.argv[:2] == ("docker", "compose") and compose_sub(c.argv)[0] == "up"]
    plain, roll = ups
    assert "backend" not in plain.argv and "--no-recreate" not in plain.argv  # compose never touches backend
    assert "--no-recreate" in roll.argv and "backend=4" in roll.argv and roll.argv[-1] == "backend"
    probed_before_routed(host, backends)
    assert any("backend changed: replacing their containers without downtime" in line for line in host.said)


def test_up_with_nothing_changed_leaves_the_routing_alone(fake_settings):
    host = Host(fake_settings)
    previous, routed = host.pools_file, host.engine.routed_names()
    host.run(lifecycle.up(host.stack))
    guaranteed(host)
    assert host.pools_file == previous and host.engine.routed_names() == routed
    assert not [line for line in host.lines() if "nginx" in line.split() and line.startswith("docker exec")]


def test_up_on_a_fresh_host_routes_each_app_container_only_once_probed(fake_settings):
    """No routing yet: the proxy starts with empty pools (nothing routed, 502 at once), and
    every app container joins once a probe from the proxy reached it."""
    engine = FakeEngine("local")
    engine.warmup, engine.drain_polls = 3, 2
    Executor(say=lambda line: None)(lifecycle.up(Stack(fake_settings, engine).with_env(APP_VERSION=OLD)))
    assert engine.violations == []
    apps = [c for c in engine.running() if c.service in STATELESS]
    assert engine.reloads == [{"backend": [], "web": []}, {"backend": ["myapp-backend-1", "myapp-backend-2"], "web": ["myapp-web-1"]}]
    assert all(c.probed_at is not None and c.routed_at is not None and c.probed_at < c.routed_at for c in apps)


def test_up_after_a_routed_container_crashed_routes_it_again_only_once_probed(fake_settings):
    host = Host(fake_settings)
    host.engine.crash("myapp-backend-2")
    host.run(lifecycle.up(host.stack))
    guaranteed(host)
    probed_before_routed(host, ["myapp-backend-2"])


def test_a_failed_up_leaves_the_routing_file_saying_what_nginx_routes(fake_settings):
    host = Host(fake_settings)
    host.engine.crash("myapp-backend-2")  # out of the routing first, then compose fails
    host.engine.fail_when(lambda argv: "compose" in argv and "up" in argv, stderr="no space left on device")
    with pytest.raises(Exit):
        host.run(lifecycle.up(host.stack))
    assert "myapp-backend-2" not in host.engine.routed_names()
    assert sorted(a for pool in routing.parse(host.pools_file or "").values() for a in pool) == sorted(host.engine.routed or {})


def test_the_fake_catches_a_workflow_that_routes_too_early_or_stops_too_soon(fake_settings):
    """The guarantee's checks can fail: a scale that routes its new containers before they
    answer, and a removal of routed containers without taking them out first."""
    host = Host(fake_settings)
    previous, routed = host.pools_file, host.engine.routed_names()
    host.engine.run(["docker", "compose", "-p", "myapp", "up", "-d", "--no-recreate", "--scale", "backend=3", "backend"],
                    env=host.stack.command_env)
    # a routing written now leaves the new container out: nobody probed it
    host.run(routing.route(host.stack))
    assert host.engine.violations == [] and host.pools_file == previous and host.engine.routed_names() == routed
    # routes it as soon as compose started it: not probed, not answering yet
    host.run(routing.route(host.stack, joining=["myapp-backend-3"]))
    kinds = {v.kind for v in host.engine.violations}
    assert {"unprobed", "routed-unready"} <= kinds
    host.engine.violations.clear()
    # stops a routed container
    host.run(rollout_module.remove(host.stack, ["myapp-web-1"]))
    assert "stopped-while-routed" in {v.kind for v in host.engine.violations}
    assert "routed-gone" in {v.kind for v in host.engine.violations}


def test_the_fake_catches_a_stop_before_nginx_drained(fake_settings):
    host = Host(fake_settings)
    workers = host.engine.worker_pids()
    pids = host.run(routing.route(host.stack, leaving=["myapp-web-1"]))
    assert pids == workers and host.engine.worker_pids() != workers  # the workers of before the reload
    assert host.engine.violations == []  # out of the routing: nothing routes to it now
    # a poll that still sees them is not enough: only one that sees them gone is
    alive = host.engine.run(docker.exec_("myapp-nginx-1", nginx.alive(pids)))
    assert alive.stdout.split() == [str(p) for p in pids]
    host.run(rollout_module.remove(host.stack, ["myapp-web-1"]))  # but old workers still send it requests
    assert [v.kind for v in host.engine.violations] == ["stopped-before-drained"]


def test_nginx_gets_the_leaving_containers_longest_stop_grace_period_to_finish(fake_settings, clock):
    """Old workers that never finish (a long request): the containers leaving wait as long
    as their stop_grace_period (their StopTimeout, Docker's 10 s when unset) would give
    them after SIGTERM, then get it; nginx's requests to them then end with their app."""
    host = Host(fake_settings, replicas={"backend": 3, "web": 1})
    host.engine.drain_polls = 10_000
    for c in host.engine.containers:
        c.stop_timeout = {"myapp-backend-1": 90, "myapp-backend-2": 25, "myapp-backend-3": 40}.get(c.name("myapp"))
    host.run(scale.apply(host.stack, {"backend": 1}))
    assert 40 <= clock.now < 40 + 2 * routing.DRAIN_POLL_SECONDS  # backend-3's: the longest of those leaving
    assert host.running("backend") == ["myapp-backend-1"]
    assert {v.kind for v in host.engine.violations} == {"stopped-before-drained"}  # as told: nginx had not finished
    clock.now = 0.0
    host.run(scale.apply(host.stack, {"web": 0}))  # no stop_grace_period: Docker's 10 s
    assert 10 <= clock.now < 10 + 2 * routing.DRAIN_POLL_SECONDS and host.running("web") == []


# --- the gaps found while these tests were written (fixed since) ---------------------------------
def test_a_failed_reload_puts_the_previous_routing_back(fake_settings):
    """nginx keeps its routing when a reload fails: the file on disk must say the same (its
    next start reads it), not list the new containers the rollout then removes."""
    host = Host(fake_settings)
    previous = host.pools_file
    host.engine.fail_when("-s reload", stderr="nginx: [error] kill(31, 1) failed")
    with pytest.raises(Exit, match="reloading nginx"):
        host.deploy()
    assert host.pools_file == previous
    guaranteed(host)
    assert host.engine.versions("backend") == [OLD, OLD] and not [c for c in host.engine.containers if c.version == NEW]


def test_up_after_an_interrupted_rollout_takes_the_extra_containers_out_of_the_routing_first(fake_settings):
    """More containers than wanted (a rollout killed after it routed its new ones leaves
    2N): ``up`` retires the extra ones through the routing; Compose would remove them while
    routed and without nginx draining them."""
    host = Host(fake_settings)
    host.engine.start(["backend", "web"], {**fake_settings.env, "APP_VERSION": OLD}, counts={"backend": 2, "web": 1})
    host.run(routing.route(host.stack))
    assert host.engine.violations == [] and len(host.engine.routed_names()) == 6
    host.run(lifecycle.up(host.stack))
    guaranteed(host)
    assert host.running() == ["myapp-backend-1", "myapp-backend-2", "myapp-web-1"]  # the highest numbers went


def test_a_stopped_old_container_is_not_started_again_by_a_rollout(fake_settings):
    """Compose counts a stopped container too and, with --no-recreate, would start it again
    with its old image: after the deploy, one container would serve the previous version."""
    host = Host(fake_settings, replicas={"backend": 3, "web": 1})
    pids = host.run(routing.route(host.stack, leaving=["myapp-backend-3"]))  # one an operator took out and stopped
    host.run(routing.drained(host.stack, pids, 10))
    host.engine.run(["docker", "stop", "myapp-backend-3"])
    assert host.engine.violations == [] and host.running("backend") == ["myapp-backend-1", "myapp-backend-2"]
    assert host.deploy().status == "success"
    guaranteed(host)
    assert host.engine.versions("backend") == [NEW, NEW, NEW]  # deploy.replicas
    assert not [c for c in host.engine.containers if c.state != "running"]


def test_scaling_up_beside_a_stopped_container_routes_it_only_once_ready(fake_settings):
    """Compose counts a stopped container and starts it again (``up --scale --no-recreate``):
    it is new to the routing, so it must pass the probe like the containers created."""
    host = Host(fake_settings, replicas={"backend": 3, "web": 1})
    pids = host.run(routing.route(host.stack, leaving=["myapp-backend-3"]))
    host.run(routing.drained(host.stack, pids, 10))
    host.engine.run(["docker", "stop", "myapp-backend-3"])
    host.run(scale.apply(host.stack, {"backend": 4}))
    guaranteed(host)
    assert len(host.running("backend")) == 4
    probed_before_routed(host, [n for n in host.running("backend") if n not in ("myapp-backend-1", "myapp-backend-2")])


def test_journal_lines_name_containers_by_address_in_probes(fake_settings):
    """The readiness probe reaches a container at its address on the proxy's network (the
    way nginx will), not by a name Docker's DNS resolves."""
    host = Host(fake_settings)
    host.run(scale.apply(host.stack, {"web": 2}))
    probes = [c.argv for c in host.engine.journal if "wget -q" in c.line]
    web2 = next(c for c in host.engine.containers if c.name("myapp") == "myapp-web-2")
    urls = [url for argv in probes for url in argv[argv.index("sh", 5) + 3:]]  # after sh -c SCRIPT sh TIMEOUT ROUNDS
    assert urls and all(re.fullmatch(r"http://172\.18\.0\.\d+:3000/health", u) for u in urls)
    assert f"http://{web2.ips['front']}:3000/health" in urls


def test_a_probe_that_fails_at_once_is_repeated_at_a_pace_not_in_a_busy_loop(fake_settings, clock):
    """`docker exec` of the probe failing at once (the proxy restarting) must not spin:
    the wait sleeps between tries and gives up at its deadline (180 s, one try per 2 s
    here). A busy loop would try 5,000 times, after which the probe works again and the
    deploy would succeed."""
    host = Host(fake_settings)
    host.engine.fail_when("wget -q", times=5000, stderr="Error response from daemon: container is restarting")
    with pytest.raises(Exit, match="not ready after"):
        host.deploy()
    probes = [c for c in host.engine.journal if "wget -q" in shlex.join(c.argv)]
    assert 10 < len(probes) <= 180 / 2 + 2


# --- routing that does not decay (issue: a scale-down left every pool empty) ------------------
def test_docker_calling_a_routed_container_unhealthy_does_not_take_it_out(config):
    containers = [ctr("backend", 1, health="unhealthy"), ctr("backend", 2), ctr("web", 1, health="unhealthy")]
    now = {"backend": ["172.18.0.11:3000", "172.18.0.12:3000"], "web": ["172.18.0.21:3000"]}
    assert routing.pools(config, containers, NETS, now) == [routing.Pool("backend", 3000, ("172.18.0.11", "172.18.0.12")),
                                                            routing.Pool("web", 3000, ("172.18.0.21",))]


def test_candidates_are_the_changing_services_unrouted_containers_and_those_of_an_empty_pool(config):
    containers = [ctr("backend", 1), ctr("backend", 2), ctr("backend", 3, state="exited"), ctr("web", 1), ctr("web", 2)]
    now = {"backend": ["172.18.0.11:3000"], "web": ["172.18.0.21:3000"]}
    new = routing.pools(config, containers, NETS, now)
    names = [c.name for c in routing.candidates(config, containers, NETS, new, {"backend"}, ())]
    assert names == ["myapp-backend-2"]  # web is not changing: its unrouted web-2 is left alone
    new = routing.pools(config, containers, NETS, {"backend": ["172.18.0.11:3000"]})  # web's pool would be empty
    assert [c.name for c in routing.candidates(config, containers, NETS, new, set(), ())] == ["myapp-web-1", "myapp-web-2"]
    new = routing.pools(config, containers, NETS, now, leaving={"myapp-backend-1"})
    assert [c.name for c in routing.candidates(config, containers, NETS, new, {"backend"}, {"myapp-backend-1"})] == ["myapp-backend-2"]


def test_a_scale_down_while_docker_calls_containers_unhealthy_keeps_them_and_never_touches_the_other_service(fake_settings):
    """Measured on busy hosts: healthchecks time out for a few seconds and pass again. A
    scale 10 -> 3 taken at that instant used to drop those containers (and web's) for good,
    down to empty pools: 502 for everyone, while the task printed ok."""
    host = Host(fake_settings, replicas={"backend": 10, "web": 2})
    web_before = host.engine.routed_names()
    for c in host.engine.containers:
        if c.service in STATELESS:
            c.timing_out = True
    host.run(scale.apply(host.stack, {"backend": 3}))
    assert host.engine.violations == []
    routed = host.engine.routed_names()
    assert [n for n in routed if "backend" in n] == host.running("backend") == [f"myapp-backend-{i}" for i in (1, 2, 3)]
    assert [n for n in routed if "web" in n] == [n for n in web_before if "web" in n] == host.running("web")


def test_a_change_brings_back_running_containers_the_routing_lost_once_they_answer(fake_settings):
    """A routing that lost containers (an older version's snapshot, a container restarted
    with a new address) heals at the next change of that service: those that answer a
    probe join; an empty pool is never written while a container of its service answers."""
    host = Host(fake_settings, replicas={"backend": 4, "web": 1})
    lost = ["myapp-backend-1", "myapp-backend-2", "myapp-backend-3"]
    host.engine.unroute(lost)
    host.run(scale.apply(host.stack, {"backend": 3}))  # backend-4, the only one routed, leaves
    guaranteed(host)
    assert host.engine.routed_names("backend") == lost == host.running("backend")
    probed_before_routed(host, lost)


@pytest.mark.parametrize("answers, passed", [
    ([200, 200, 200], True),
    ([502, 200, 0, 200, 200], True),  # a lost request and a timeout are not a verdict
    ([502, 502, 200, 502], False),  # 3 errors before 3 answers
    ([500, 500, 500], False),  # a broken release fails in 3 requests
])
def test_verification_judges_a_share_of_requests_not_one(answers, passed):
    from deploy.engine.target import HttpResponse
    from deploy.stack.health import judge

    queue = list(answers)
    ok, seen = judge(lambda: HttpResponse(queue.pop(0), b"", "timed out"), sleep=lambda s: None)
    assert ok is passed and not queue
    assert seen == [f"HTTP {a}" if a else "no response (timed out)" for a in answers]


def test_a_scale_that_leaves_the_proxy_serving_502_fails_with_the_fix(fake_settings):
    host = Host(fake_settings, replicas={"backend": 2, "web": 1})
    host.engine.fail_when("fetch 8080 /api/health", times=None, stderr="502 Bad Gateway")
    with pytest.raises(Exit, match=r"through the proxy on local: GET /api/health via nginx:8080: HTTP 502 \(3 of 3\)"):
        host.run(scale.apply_fleet(local_fleet(host.stack.settings, host.engine), {"backend": 1}))


def test_surge_steps_add_at_most_the_limit_a_batch_the_services_in_turn():
    assert rollout_module.surge_steps({"backend": 2, "web": 1}, {"backend": 4, "web": 2}, 4) == [{"backend": 4, "web": 2}]
    assert rollout_module.surge_steps({"backend": 2, "web": 1}, {"backend": 4, "web": 2}, 2) == [
        {"backend": 3, "web": 2}, {"backend": 4, "web": 2}]
    assert rollout_module.surge_steps({"backend": 3}, {"backend": 10}, 3) == [{"backend": 6}, {"backend": 9}, {"backend": 10}]
    assert rollout_module.surge_steps({"backend": 3}, {"backend": 3}, 3) == []


def test_a_rollout_on_a_small_host_starts_its_new_containers_in_batches_and_routes_them_together(fake_settings):
    host = Host(fake_settings, replicas={"backend": 4, "web": 2})
    host.engine.cpus = 1  # twice the CPUs: 2 at a time
    old = host.running()
    assert host.deploy().status == "success"
    guaranteed(host)
    ups = [c.argv for c in host.engine.journal if compose_sub(c.argv)[0] == "up" and "--scale" in c.argv]
    scales = [[a for a in argv if re.fullmatch(r"(backend|web)=\d+", a)] for argv in ups]
    assert scales == [["backend=5", "web=3"], ["backend=6", "web=4"], ["backend=8", "web=4"]]
    # the old ones served until all new ones were ready: one switch, never a mix
    assert host.engine.reloads[-1] == {"backend": host.running("backend"), "web": host.running("web")}
    assert len(host.engine.reloads) == 2 and not set(host.running()) & set(old)


def test_max_surge_from_the_configuration_wins_over_the_cpus(fake_settings):
    from dataclasses import replace
    settings = replace(fake_settings, config=replace(fake_settings.config, max_surge=1))
    host = Host(settings, replicas={"backend": 3, "web": 1})
    host.run(scale.apply(host.stack, {"backend": 6}))
    guaranteed(host)
    ups = [c.argv for c in host.engine.journal if compose_sub(c.argv)[0] == "up"]
    assert [[a for a in argv if a.startswith("backend=")] for argv in ups] == [["backend=4"], ["backend=5"], ["backend=6"]]
    assert not [c for c in host.engine.journal if c.argv[:2] == ("docker", "info")]
