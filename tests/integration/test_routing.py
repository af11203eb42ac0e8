"""Health-gated routing on the real engine, under 50 connections of mixed load plus 2 s
requests: scaling in the guide's big steps and the recovery deploy after a deploy was
killed mid-rollout fail no request, and nginx's log has no failed line."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.request

import pytest

from tests import load
from tests.integration.conftest import ROOT, make_stack, remove_stack, row


def running(engine, project: str, service: str) -> list:
    return engine.containers.list(filters={"label": [f"com.docker.compose.project={project}", f"com.docker.compose.service={service}"]})


def served_version(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/version", timeout=10) as resp:
        return json.loads(resp.read())["version"]


@pytest.fixture(scope="module")
def stack(tmp_path_factory, images, engine):
    """The production stack, deployed as 1.0.0 (tests skipped: the deploy tests run them)."""
    s = make_stack(tmp_path_factory.mktemp("routing"), images)
    try:
        s("deploy", "--version", "1.0.0", "--skip-tests", timeout=900)
        yield s
    finally:
        remove_stack(s, engine)


def test_scale_in_big_steps_fails_no_request(stack, engine):
    traffic = load.Traffic(stack.http_port)
    try:
        time.sleep(2)
        for count in (10, 3, 10, 1, 3):
            stack("scale", "--backend", str(count), timeout=600)
            assert len(running(engine, stack.project, "backend")) == count
        time.sleep(2)
    finally:
        results = traffic.results()
    load.assert_clean(traffic, results, f"{stack.project}-nginx-1")
    backend = row(stack("status").stdout, 0, "backend")
    assert backend[1:5] == ["3", "3", "3", "3"], backend  # desired, running, healthy, routed


def test_a_killed_deploy_then_a_new_one_fails_no_request(stack, engine):
    """SIGKILL while the new containers of 1.0.1 start: old and new run side by side, the
    lock is stale; lock.release and a new deploy end with only 1.0.2's containers."""
    traffic = load.Traffic(stack.http_port)
    try:
        first = subprocess.Popen(stack.argv("deploy", "--version", "1.0.1", "--skip-tests", "--skip-backup"), cwd=ROOT,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.time() + 300
        while time.time() < deadline and len(running(engine, stack.project, "backend")) <= 3:
            time.sleep(0.2)
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
        assert len(running(engine, stack.project, "backend")) > 3, "the deploy was killed before it started containers"
        assert "STALE" in stack("lock.status").stdout
        stack("lock.release")
        stack("deploy", "--version", "1.0.2", "--skip-tests", "--skip-backup", timeout=900)
        time.sleep(2)
    finally:
        results = traffic.results()
    load.assert_clean(traffic, results, f"{stack.project}-nginx-1")
    assert served_version(stack.http_port) == "1.0.2"
    for service, count in (("backend", 3), ("web", 4)):
        containers = running(engine, stack.project, service)
        images = [c.attrs["Config"]["Image"] for c in containers]  # what each was started from (an image has several tags)
        assert len(containers) == count and all(i.endswith(f"/{service}:1.0.2") for i in images), (service, images)


def test_nginx_restarted_by_hand_keeps_the_routing(stack, engine):
    """The routing file survives nginx's restart: it comes back serving the ready
    containers, and `inv health` says the routing matches them."""
    engine.containers.get(f"{stack.project}-nginx-1").restart(timeout=5)
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            assert served_version(stack.http_port) == "1.0.2"
            break
        except (OSError, AssertionError):
            time.sleep(0.5)
    assert served_version(stack.http_port) == "1.0.2"
    out = stack("health").stdout
    assert row(out, 1, "backend routing")[0] == "ok" and row(out, 1, "web routing")[0] == "ok"
