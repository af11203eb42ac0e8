"""The deploy's failure paths on the local engine (issue "Hardening", point 12): a release
that fails its HTTP checks through the proxy after the switch, a registry refusing
the push, and a rollback to a release whose images are gone. One stack for the module,
deployed as 1.0.0 first; the tests run in order and each leaves it serving a known version.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import bcrypt
import docker
import pytest

from deploy.state.history import JOURNAL
from tests.integration.conftest import ROOT, changed_backend, free_port, row

APPS = {"backend": 3, "web": 4}  # the production stack's replicas (compose/docker-compose.prod.yml)


def served_version(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/version", timeout=10) as resp:
        return json.loads(resp.read())["version"]


def ref(stack, service: str, version: str, registry: str = "127.0.0.1:5000") -> str:
    return f"{registry}/{stack.project}/{service}:{version}"


def app_containers(engine, project: str, all_: bool = False) -> list:
    return [c for c in engine.containers.list(all=all_, filters={"label": f"com.docker.compose.project={project}"})
            if c.labels.get("com.docker.compose.service") in APPS and c.labels.get("com.docker.compose.oneoff") != "True"]


def images_by_service(engine, project: str) -> dict[str, list[str]]:
    """The image each running app container was created from, per service."""
    out: dict[str, list[str]] = {s: [] for s in APPS}
    for c in app_containers(engine, project):
        out[c.labels["com.docker.compose.service"]].append(c.attrs["Config"]["Image"])
    return {s: sorted(v) for s, v in out.items()}


def running_ids(engine, project: str) -> set[str]:
    return {c.id for c in engine.containers.list(filters={"label": f"com.docker.compose.project={project}"})}


def all_healthy(engine, project: str, settle: float = 30) -> list[str]:
    """Names of running containers of the project that are not healthy (empty = all are).
    The tasks route a container on their own probe, before Docker's first healthcheck:
    containers still ``starting`` get up to ``settle`` seconds to pass it."""
    deadline = time.time() + settle
    while True:
        bad = []
        for c in engine.containers.list(filters={"label": f"com.docker.compose.project={project}"}):
            health = c.attrs["State"].get("Health", {}).get("Status", "")
            if health not in ("healthy", ""):
                bad.append(f"{c.name}: {health}")
        if not any(b.endswith(": starting") for b in bad) or time.time() > deadline:
            return bad
        time.sleep(1)


def run_inv(stack, *args: str, env: dict[str, str] | None = None, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run(stack.argv(*args), cwd=ROOT, env={**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1"},
                          capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def history_file(stack) -> Path:
    return stack.runtime_config.parent / "state" / stack.project / "production" / JOURNAL


@pytest.fixture(scope="module")
def released(prod_stack):
    """The production stack, deployed as release 1.0.0."""
    prod_stack("deploy", "--version", "1.0.0", "--skip-tests", "--skip-backup", timeout=900)
    assert served_version(prod_stack.http_port) == "1.0.0"
    return prod_stack


@pytest.fixture(scope="module")
def auth_registry(tmp_path_factory):
    """A second docker-registry (the test bed's) on a free loopback port, with htpasswd
    auth: every anonymous request gets 401. The engine treats 127.0.0.0/8 as insecure."""
    tmp = tmp_path_factory.mktemp("auth-registry")
    addr = f"127.0.0.1:{free_port()}"
    (tmp / "htpasswd").write_text(f"deployer:{bcrypt.hashpw(b'not-given-to-docker', bcrypt.gensalt(rounds=5)).decode()}\n")
    (tmp / "registry.yml").write_text(
        f"version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {tmp / 'data'}\n"
        f"http:\n  addr: {addr}\nauth:\n  htpasswd:\n    realm: deploy-tests\n    path: {tmp / 'htpasswd'}\n")
    log = (tmp / "registry.log").open("w")
    proc = subprocess.Popen(["docker-registry", "serve", str(tmp / "registry.yml")], stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                urllib.request.urlopen(f"http://{addr}/v2/", timeout=2)
                pytest.fail(f"the registry on {addr} answered without auth")
            except urllib.error.HTTPError as err:
                assert err.code == 401, err
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    pytest.fail(f"docker-registry on {addr} did not come up: {(tmp / 'registry.log').read_text()[-2000:]}")
                time.sleep(0.2)
        yield addr
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        log.close()


def test_verify_failing_after_the_switch_rolls_back_to_the_images_that_ran(released, engine, tmp_path):
    """1.0.2's containers are healthy (/health answers 200, so the rollout switches), but
    its /api/health, one of the proxy checks, answers 500: the deploy fails after the
    switch and both switched services return to 1.0.0's images."""
    stack = released
    broken = changed_backend(tmp_path, "apiHealth(@Res({ passthrough: true }) res: Response): Promise<Health> {\n    return this.report(res, false);",
                             "apiHealth(@Res({ passthrough: true }) res: Response): Promise<Health> {\n    res.status(500);\n"
                             "    return Promise.resolve({ status: 'degraded', version: VERSION, checks: { postgres: 'broken', redis: 'ok' } });")
    assert images_by_service(engine, stack.project) == {s: [ref(stack, s, "1.0.0")] * n for s, n in APPS.items()}
    latest_before = engine.images.get(ref(stack, "backend", "latest")).id

    result = run_inv(stack, "deploy", "--version", "1.0.2", "--skip-tests", "--skip-backup", "--timeout", "90",
                     env=broken)

    out = result.stdout
    assert result.returncode == 1, out + result.stderr
    # The switch happened (every old container drained and removed) before the checks failed ...
    assert re.search(rf"drained and removed {sum(APPS.values())} old", out), out
    assert "GET /api/health via nginx" in result.stderr and "HTTP 500" in result.stderr, result.stderr
    assert "fix:" in result.stderr
    # ... and was undone: the services run the images they ran, all replicas, all healthy.
    assert "rolling back" in out, out
    assert images_by_service(engine, stack.project) == {s: [ref(stack, s, "1.0.0")] * n for s, n in APPS.items()}
    assert not [c.name for c in app_containers(engine, stack.project, all_=True) if c.attrs["Config"]["Image"].endswith(":1.0.2")]
    assert all_healthy(engine, stack.project) == []
    assert served_version(stack.http_port) == "1.0.0"
    with urllib.request.urlopen(f"http://127.0.0.1:{stack.http_port}/api/health", timeout=10) as resp:
        assert resp.status == 200
    history = stack("releases").stdout
    assert row(history, 0, "1.0.2")[1] == "failed"
    assert row(history, 0, "1.0.0")[1] == "success"
    assert stack("lock.status").stdout.strip() == "not locked"
    assert engine.images.get(ref(stack, "backend", "latest")).id == latest_before  # never promoted
    stack("health")


def test_a_registry_refusing_auth_fails_the_push_at_once(released, engine, auth_registry):
    stack = released
    before = running_ids(engine, stack.project)
    try:
        start = time.monotonic()
        result = run_inv(stack, "deploy", "--version", "1.0.3", "--skip-tests", "--skip-backup", env={"DOCKER_REGISTRY": auth_registry})
        took = time.monotonic() - start
        out = result.stdout
        assert result.returncode == 1, out + result.stderr
        assert f"the registry refused {ref(stack, 'backend', '1.0.3', auth_registry)}" in result.stderr, result.stderr
        assert "fix: docker login" in result.stderr, result.stderr
        # One attempt, no retry (transient errors are retried 3 times, auth errors are not).
        pushes = [line for line in out.splitlines() if line.strip().startswith("pushing ")]
        assert len(pushes) == 1, out
        assert "retrying" not in out and "failed 3 times" not in result.stderr
        # Nothing after the push ran: nothing uploaded, migrated, switched.
        assert "] push ..." in out and "] migrate" not in out and "] rollout" not in out, out
        assert running_ids(engine, stack.project) == before
        assert images_by_service(engine, stack.project) == {s: [ref(stack, s, "1.0.0")] * n for s, n in APPS.items()}
        assert served_version(stack.http_port) == "1.0.0"
        history = stack("releases").stdout
        assert row(history, 0, "1.0.3")[1] == "failed"
        assert "refused" in row(history, 0, "1.0.3")[8]
        assert stack("lock.status").stdout.strip() == "not locked"
        # The registry holds nothing of the release (ask it with the credentials).
        request = urllib.request.Request(f"http://{auth_registry}/v2/{stack.project}/backend/tags/list")
        request.add_header("Authorization", "Basic ZGVwbG95ZXI6bm90LWdpdmVuLXRvLWRvY2tlcg==")  # deployer:not-given-to-docker
        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(request, timeout=5)
        assert missing.value.code == 404
        assert took < 120, f"the deploy took {took:.0f} s to give up on a refused push"
    finally:
        for image in engine.images.list(name=f"{auth_registry}/{stack.project}/*"):
            with contextlib.suppress(docker.errors.APIError):
                engine.images.remove(image.id, force=True)


def test_rollback_to_a_release_whose_images_were_removed_is_refused(released, engine):
    stack = released
    stack("deploy", "--version", "1.0.1", "--skip-tests", "--skip-backup", timeout=900)
    assert served_version(stack.http_port) == "1.0.1"
    for service in APPS:
        engine.images.remove(ref(stack, service, "1.0.0"))
        with pytest.raises(docker.errors.ImageNotFound):
            engine.images.get(ref(stack, service, "1.0.0"))
    before = running_ids(engine, stack.project)
    history_before = history_file(stack).read_text()

    for wanted in ("1.0.0", "previous"):
        refused = stack("rollback", wanted, check=False)
        assert refused.returncode == 1, refused.stdout + refused.stderr
        assert "the images of 1.0.0 are gone from this engine" in refused.stderr, refused.stderr
        assert "fix: roll back to one of: 1.0.1" in refused.stderr, refused.stderr
    never = stack("rollback", "1.0.2", check=False)  # the failed release is no rollback target either
    assert never.returncode == 1 and "1.0.2 is not a successful release" in never.stderr and "one of: 1.0.1" in never.stderr

    assert running_ids(engine, stack.project) == before
    assert served_version(stack.http_port) == "1.0.1"
    assert history_file(stack).read_text() == history_before  # refused before anything was recorded
    assert stack("lock.status").stdout.strip() == "not locked"
