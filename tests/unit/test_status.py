from datetime import datetime, timedelta, timezone

from deploy.engine.facts import Container
from deploy.stack.health import container_checks, replica_checks
from deploy.stack.status import human_duration, summarize

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=timezone.utc)


def ctr(service, n, state="running", health="healthy", version="1.0.0", started=60, ports=()):
    return Container(
        id=f"{service}{n}", name=f"p-{service}-{n}", service=service, number=n, state=state, health=health,
        image=f"ns/{service}:{version}", version=version,
        started_at=NOW - timedelta(seconds=started) if state == "running" else None,
        ports=ports, exit_code=0 if state == "running" else 1, health_log="boom" if health == "unhealthy" else "",
    )


def test_summarize_counts_replicas():
    cs = [ctr("backend", 1, started=300), ctr("backend", 2, health="starting", started=10), ctr("backend", 3, state="exited"),
          ctr("backend", 4, health="unhealthy", started=20), ctr("nginx", 1, health="", ports=("0.0.0.0:80->8080/tcp",))]
    by = {s.service: s for s in summarize(["backend", "nginx", "redis"], cs, {"backend": 3, "nginx": 1, "redis": 1}, now=NOW)}
    b = by["backend"]
    # starting (its first healthcheck to come) counts as healthy; unhealthy does not
    assert (b.desired, b.running, b.healthy, b.uptime, b.ok) == (3, 3, 2, timedelta(seconds=10), False)
    assert by["nginx"].ok and by["nginx"].ports == ("0.0.0.0:80->8080/tcp",)
    assert (by["redis"].running, by["redis"].uptime, by["redis"].ok) == (0, None, False)


def test_health_checks_name_the_sick():
    cs = [ctr("backend", 1), ctr("backend", 2, health="unhealthy"), ctr("web", 1, state="exited")]
    checks = {c.subject: c for c in container_checks(cs)}
    assert checks["p-backend-1"].ok
    assert not checks["p-backend-2"].ok and "boom" in checks["p-backend-2"].detail
    assert not checks["p-web-1"].ok and "exited" in checks["p-web-1"].detail
    statuses = summarize(["backend", "web"], cs, {"backend": 2, "web": 0}, now=NOW)
    assert [(c.subject, c.detail) for c in replica_checks(statuses)] == []
    statuses = summarize(["web"], cs, {"web": 2}, now=NOW)
    assert [(c.subject, c.detail) for c in replica_checks(statuses)] == [("web", "0 of 2 replicas running")]


def test_human_duration():
    assert human_duration(None) == "-"
    assert human_duration(timedelta(seconds=12)) == "12s"
    assert human_duration(timedelta(seconds=250)) == "4m10s"
    assert human_duration(timedelta(hours=2, minutes=5)) == "2h05m"
    assert human_duration(timedelta(days=3, hours=4)) == "3d04h"


def test_a_routed_service_is_ok_only_when_the_routing_lists_every_running_container():
    cs = [ctr("backend", 1), ctr("backend", 2), ctr("web", 1), ctr("nginx", 1, health="")]
    desired = {"backend": 2, "web": 1, "nginx": 1}
    by = {s.service: s for s in summarize(["backend", "web", "nginx"], cs, desired, now=NOW, routed={"backend": 1, "web": 1})}
    assert (by["backend"].routed, by["backend"].ok) == (1, False)
    assert (by["web"].routed, by["web"].ok) == (1, True)
    assert (by["nginx"].routed, by["nginx"].ok) == (None, True)  # not a routed service
    assert all(s.routed is None and s.ok for s in summarize(["web", "nginx"], cs, desired, now=NOW))


# --- routing_checks: the proxy's routing file against the containers (on the fake engine) ----------
def routed_stack(fake_settings):
    from deploy.engine.ops import Executor
    from deploy.engine.stack import Stack
    from deploy.stack import routing
    from tests.unit.fake_engine import FakeEngine

    engine = FakeEngine()
    stack = Stack(fake_settings, engine)
    engine.start(["backend", "web", "nginx", "postgres", "redis"], {**stack.command_env, "APP_VERSION": "1.0.0"})
    Executor(say=lambda _: None)(routing.route(stack))
    return engine, stack


def checks_of(stack):
    from deploy.stack.health import answering, routing_checks

    containers = stack.containers()
    return [(c.subject, c.ok, c.detail) for c in routing_checks(stack, containers, answering(stack, containers))]


def test_routing_checks_pass_when_the_routing_lists_the_ready_containers(fake_settings):
    engine, stack = routed_stack(fake_settings)
    assert checks_of(stack) == [("backend routing", True, "2 container(s) routed"), ("web routing", True, "1 container(s) routed")]


def test_routing_checks_name_a_routed_container_that_stopped_or_does_not_answer(fake_settings):
    engine, stack = routed_stack(fake_settings)
    engine.run(["docker", "stop", "myapp-backend-2"])  # Docker frees its address: to the facts it is gone
    next(c for c in engine.containers if c.service == "web").health = "unhealthy"  # its app does not answer
    assert checks_of(stack) == [
        ("backend routing", False, "routed but not serving: 172.18.0.3:3000 (gone); inv up re-routes"),
        ("web routing", False, "routed but not serving: 172.18.0.4:3000 (myapp-web-1: not answering its health path); inv up re-routes")]
    assert [v.kind for v in engine.violations] == ["stopped-while-routed", "routed-gone", "routed-unready"]  # the fake saw it too


def test_routing_checks_name_ready_containers_left_out(fake_settings):
    engine, stack = routed_stack(fake_settings)
    engine.run(["docker", "compose", "-p", "myapp", "up", "-d", "--no-recreate", "--scale", "web=2", "web"], env=stack.command_env)
    assert checks_of(stack)[1] == ("web routing", False, "1 answering container(s) not routed (myapp-web-2); inv up re-routes")


def test_health_calls_a_container_whose_docker_check_timed_out_ok_while_it_answers(fake_settings):
    """On a busy host Docker's healthcheck times out and passes again; the router serves
    the container all along, and `inv health` says so instead of failing."""
    from deploy.stack.health import answering, container_checks

    engine, stack = routed_stack(fake_settings)
    next(c for c in engine.containers if c.service == "web").timing_out = True
    containers = stack.containers()
    answers = answering(stack, containers)
    web = next(c for c in container_checks(containers, answers) if c.subject == "myapp-web-1")
    assert web.ok and "answers its health path" in web.detail
    assert checks_of(stack)[1] == ("web routing", True, "1 container(s) routed")
    assert not next(c for c in container_checks(containers) if c.subject == "myapp-web-1").ok  # without the probe: Docker's word


def test_routing_checks_say_nothing_without_a_routing_file(fake_settings):
    from deploy.engine.stack import Stack
    from tests.unit.fake_engine import FakeEngine

    engine = FakeEngine()
    engine.start(["backend", "web", "nginx"], dict(fake_settings.env))
    assert checks_of(Stack(fake_settings, engine)) == []


# --- servers: each app container and routed address as the router has it (pure) -------------
NET = "p_front"
PORTS = {"backend": 3000, "web": 3000}


def app(service, n, address, health="healthy", state="running", log=""):
    import dataclasses

    c = ctr(service, n, state=state, health=health)
    return dataclasses.replace(c, addresses=((NET, address),) if address else (), health_log=log or c.health_log)


def rows_of(containers, routed, answering):
    from deploy.stack.status import servers

    return [(s.container, s.service, s.address, s.routing, s.health, s.why, s.level)
            for s in servers(PORTS, containers, [NET], routed, answering)]


def test_a_routed_container_that_answers_is_fine_whatever_its_docker_check_says():
    cs = [app("backend", 1, "10.0.0.2"), app("backend", 2, "10.0.0.3", health="unhealthy", log="Health check exceeded timeout (5s)"),
          app("web", 1, "10.0.0.4", health="")]
    routed = {"backend": ["10.0.0.2:3000", "10.0.0.3:3000"], "web": ["10.0.0.4:3000"]}
    assert rows_of(cs, routed, {"p-backend-1", "p-backend-2", "p-web-1"}) == [
        ("p-backend-1", "backend", "10.0.0.2:3000", "routed", "healthy", "", "ok"),
        ("p-backend-2", "backend", "10.0.0.3:3000", "routed", "unhealthy: Health check exceeded timeout (5s)",
         "Docker says unhealthy but it answers its health path: a busy host, still served", "warn"),
        ("p-web-1", "web", "10.0.0.4:3000", "routed", "none", "", "ok")]


def test_a_routed_address_whose_container_is_gone_gets_a_row_of_its_own():
    cs = [app("backend", 1, "10.0.0.2"), app("backend", 2, None, state="exited"), app("web", 1, "10.0.0.3")]
    routed = {"backend": ["10.0.0.2:3000", "10.0.0.9:3000", "10.0.0.3:3000"], "web": ["10.0.0.3:3000"]}
    rows = rows_of(cs, routed, {"p-backend-1", "p-web-1"})
    assert rows[1] == ("p-backend-2", "backend", "-", "not routed", "exited (exit 1)",
                       "exited, not served: inv logs backend says why, inv up starts it again", "bad")
    assert rows[2:4] == [
        ("-", "backend", "10.0.0.3:3000", "routed but gone", "-", "routed, but p-web-1 (web) has this address now: inv up re-routes", "bad"),
        ("-", "backend", "10.0.0.9:3000", "routed but gone", "-", "routed, but the container is gone: inv up re-routes", "bad")]
    assert [r[0] for r in rows] == ["p-backend-1", "p-backend-2", "-", "-", "p-web-1"]  # never a service's name alone


def test_a_container_that_answers_but_is_not_routed_says_what_adds_it():
    cs = [app("backend", 1, "10.0.0.2"), app("backend", 2, "10.0.0.3")]
    assert rows_of(cs, {"backend": ["10.0.0.2:3000"], "web": []}, {"p-backend-1", "p-backend-2"})[1] == (
        "p-backend-2", "backend", "10.0.0.3:3000", "not routed", "healthy",
        "answers but not routed: the next change of backend or inv up adds it", "bad")
    assert rows_of(cs, {}, {"p-backend-1"})[0][3:] == (  # no pools.conf at all
        "not routed", "healthy", "the routing has no pool of backend (no pools.conf yet?): inv up writes it", "bad")


def test_a_container_that_neither_answers_nor_is_routed_is_named_with_where_to_look():
    cs = [app("backend", 1, "10.0.0.2", health="unhealthy", log="Error: connect ECONNREFUSED 10.0.0.7:5432\n"),
          app("backend", 2, "10.0.0.3", health="starting"), app("backend", 3, None), app("web", 1, "10.0.0.4")]
    rows = rows_of(cs, {"backend": [], "web": ["10.0.0.4:3000"]}, set())
    assert rows[0] == ("p-backend-1", "backend", "10.0.0.2:3000", "not routed", "unhealthy: Error: connect ECONNREFUSED 10.0.0.7:5432",
                       "does not answer its health path, not routed (nothing is sent to it): see inv logs backend", "bad")
    assert rows[1][3:] == ("not routed", "starting", "starting, not routed yet: inv up routes it once it answers", "warn")
    assert rows[2][2:] == ("-", "not routed", "healthy", "not on the proxy's network (p_front): nginx cannot reach it", "bad")
    assert rows[3][3:] == ("routed", "healthy", "routed, but it does not answer its health path: nginx retries its requests elsewhere; "
                                                "see inv logs web", "bad")


def test_docker_health_shortens_the_last_message():
    from deploy.stack.status import short

    assert short("a\n\n  last   line  \n") == "last line"
    assert short("x" * 100) == "x" * 57 + "..."
    assert short("") == ""


# --- inv status on the fake engine: the servers table below the services' ----------------------
def status_output(fleet, monkeypatch, capsys):
    from invoke import Context

    import tasks.status
    from tasks import ns as root

    monkeypatch.setattr(tasks.status, "open_fleet", lambda c, where: fleet)
    root["status"](Context())
    return capsys.readouterr().out


def test_inv_status_shows_each_server_as_the_router_has_it(fake_settings, monkeypatch, capsys):
    from deploy.fleet import local_fleet

    engine, stack = routed_stack(fake_settings)
    engine.run(["docker", "stop", "myapp-backend-2"])  # its address stays routed
    next(c for c in engine.containers if c.service == "web").timing_out = True  # Docker says unhealthy; it answers
    engine.violations.clear()  # the stop while routed is this test's doing
    out = status_output(local_fleet(fake_settings, engine), monkeypatch, capsys)
    services, servers = out.split("servers as the router on local has them")
    assert "backend" in services and "nginx" in services
    cells = [[c.strip() for c in line.strip("│").split("│")] for line in servers.splitlines() if line.startswith("│")]
    first = {r[0]: r for r in cells if r[0]}
    assert first["myapp-backend-1"][1:5] == ["backend", "172.18.0.2:3000", "routed", "healthy"]
    assert first["myapp-backend-2"][1:4] == ["backend", "-", "not routed"]
    gone = first["-"]
    assert gone[1:4] == ["backend", "172.18.0.3:3000", "routed but gone"] and gone[5].startswith("routed, but the container is gone")
    web = first["myapp-web-1"]
    assert web[3:5] == ["routed", "unhealthy: fake check: unhealthy"] and web[5].startswith("Docker says unhealthy but it answers")
    assert not {"backend", "web", "nginx"} & set(first)  # the services table's rows stay the only ones named so


def test_inv_status_says_when_no_proxy_runs(fake_settings, monkeypatch, capsys):
    from deploy.engine.stack import Stack
    from deploy.fleet import local_fleet
    from tests.unit.fake_engine import FakeEngine

    engine = FakeEngine()
    engine.start(["backend", "web"], dict(fake_settings.env))
    out = status_output(local_fleet(fake_settings, Stack(fake_settings, engine).target), monkeypatch, capsys)
    assert "nginx does not run: no router, nothing is served (inv up starts it)" in out and "servers as the router" not in out


def test_inv_status_on_hosts_shows_the_servers_of_each_app_host(fake_settings, monkeypatch, capsys):
    from tests.unit.test_orchestration import hosts_world

    world = hosts_world(fake_settings)
    out = status_output(world.fleet, monkeypatch, capsys)
    assert [line for line in out.splitlines() if line.startswith("servers as the router")] == [
        "servers as the router on app1 has them", "servers as the router on app2 has them"]  # none for the db host
    assert out.count("│ routed ") == 6  # 2 backends and a web on each app host
