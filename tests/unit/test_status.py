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
