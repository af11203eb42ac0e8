"""The production checklist's rules (pure functions of facts)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from deploy import checklist
from deploy.engine.facts import Container
from deploy.engine.target import HttpResponse
from deploy.stack import tls

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=timezone.utc)
APPS = ("backend", "web", "nginx")
ROTATED = (("max-file", "3"), ("max-size", "10m"))


def box(name: str, service: str, user: str = "node", read_only: bool = True, driver: str = "json-file", options=ROTATED) -> Container:
    return Container(id=name, name=name, service=service, number=1, state="running", health="healthy", image="i", version="1.0.0",
                     started_at=None, ports=(), exit_code=0, health_log="", user=user, read_only=read_only, log_driver=driver,
                     log_options=options)


def test_tls_needs_a_certificate_with_14_days_left():
    assert not checklist.tls_item(None, NOW, "production").ok
    assert "inv tls.issue --stage production" in checklist.tls_item(None, NOW, "production").fix
    cert = tls.Certificate(("a.test",), "CN=CA", NOW + timedelta(days=10), "")
    assert not checklist.tls_item(cert, NOW, "production").ok
    assert checklist.tls_item(cert, NOW - timedelta(days=30), "production").ok


def test_users_and_file_systems_of_the_app_services_and_the_proxy():
    good = [box("b1", "backend"), box("w1", "web", user="nextjs"), box("n1", "nginx", user="101:101"), box("p1", "postgres", user="")]
    assert checklist.users_item(good, APPS).ok  # postgres starts as root and drops: not judged
    bad = checklist.users_item([*good, box("b2", "backend", user="0:0"), box("w2", "web", user="")], APPS)
    assert not bad.ok and bad.detail == "running as root: b2, w2" and bad.subject == "5. non-root users"
    assert checklist.read_only_item(good, APPS).ok
    writable = checklist.read_only_item([*good, box("n2", "nginx", read_only=False), box("p2", "postgres", read_only=False)], APPS)
    assert not writable.ok and writable.detail == "writable root file system: n2"
    assert not checklist.users_item([], APPS).ok  # nothing running proves nothing


def test_security_headers_are_read_over_https():
    headers = tuple((h, "x") for h in checklist.HEADERS)
    assert checklist.headers_item(HttpResponse(200, b"", headers=headers)).ok
    missing = checklist.headers_item(HttpResponse(200, b"", headers=headers[1:]))
    assert not missing.ok and "lacks strict-transport-security" in missing.detail
    assert "no HTTPS answer" in checklist.headers_item(HttpResponse(0, b"", "ConnectionRefusedError: refused")).detail
    assert not checklist.headers_item(None).ok


def test_rate_limits_are_zones_with_a_rate_that_locations_use():
    config = ("http {\n    limit_req_zone $binary_remote_addr zone=api:10m rate=10r/s;\n"
              "    limit_req_zone $binary_remote_addr zone=web:10m rate=30r/s;\n"
              "    location /api/ {\n        limit_req zone=api burst=20 nodelay;\n    }\n"
              "    location / {\n        limit_req zone=web burst=50 nodelay;\n    }\n}\n")
    found = checklist.rate_limits_item(config)
    assert found.ok and found.detail == "api 10r/s burst 20; web 30r/s burst 50"
    assert not checklist.rate_limits_item(config.replace("limit_req zone", "# limit_req zone").replace("    # ", "    #")).ok
    assert not checklist.rate_limits_item("limit_req zone=api burst=2;\n").ok  # a zone nobody defined
    assert not checklist.rate_limits_item(None).ok


def test_logs_are_rotated_or_collected():
    assert checklist.logs_item([box("b1", "backend"), box("p1", "postgres", driver="local", options=())]).ok
    collected = checklist.logs_item([box("b1", "backend", driver="journald", options=())])
    assert collected.ok and collected.detail == "collected: journald"
    bad = checklist.logs_item([box("b1", "backend", options=(("max-file", "3"),)), box("p1", "postgres", driver="none", options=())])
    assert not bad.ok and "without max-size (grows without end): b1" in bad.detail and "(driver none): p1" in bad.detail
    assert not checklist.logs_item([]).ok
