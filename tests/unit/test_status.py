from datetime import UTC, datetime, timedelta

from deploy.engine.facts import Container
from deploy.stack.health import container_checks, replica_checks
from deploy.stack.status import human_duration, summarize

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def ctr(service, n, state="running", health="healthy", version="1.0.0", started=60, ports=()):
    return Container(
        id=f"{service}{n}", name=f"p-{service}-{n}", service=service, number=n, state=state, health=health,
        image=f"ns/{service}:{version}", version=version,
        started_at=NOW - timedelta(seconds=started) if state == "running" else None,
        ports=ports, exit_code=0 if state == "running" else 1, health_log="boom" if health == "unhealthy" else "",
    )


def test_summarize_counts_replicas():
    cs = [ctr("backend", 1, started=300), ctr("backend", 2, health="starting", started=10), ctr("backend", 3, state="exited"),
          ctr("nginx", 1, health="", ports=("0.0.0.0:80->8080/tcp",))]
    by = {s.service: s for s in summarize(["backend", "nginx", "redis"], cs, {"backend": 3, "nginx": 1, "redis": 1}, now=NOW)}
    b = by["backend"]
    assert (b.desired, b.running, b.healthy, b.uptime, b.ok) == (3, 2, 1, timedelta(seconds=10), False)
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
