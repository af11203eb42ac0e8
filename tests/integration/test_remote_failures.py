"""Failure paths on the SSH test hosts (issue "Hardening", point 12): a deploy whose
second batch fails (--parallel 2, three app hosts), and the tasks that act on a stage's
hosts besides deploy (db.*, clean, down), each of which works or fails clearly.

The stage: h1 and h2 run the apps, h3 the apps and the database (so the rollout has two
batches with --parallel 2: h1+h2, then h3). One stack for the module, deployed as 1.0.0
first; the tests run in order, `down` last.
"""
from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import time
from pathlib import Path

import pytest

from tests.integration.conftest import ROOT, make_stack, row, table_rows
from tests.integration.hosts import releases_on, remote_env, remove_from_hosts, ssh, ssh_bytes, stage_config, version_at

ROLES = {"h1": ["app"], "h2": ["app"], "h3": ["app", "db"]}
APPS = {"backend": 1, "web": 2}  # replicas on every app host (`inv scale` in the fixture: 3 app hosts share 2 cores)
observed: dict = {}  # what one test saw, for the next (the module's tests share one stack and run in order)


@pytest.fixture(scope="module")
def stage3(tmp_path_factory, images, testbed, engine):
    """The example stack deployed as 1.0.0 to h1, h2 (app) and h3 (app and db), then
    scaled down to APPS on each app host (the counts persist across deploys)."""
    tmp = tmp_path_factory.mktemp("remote-failures")
    stack = make_stack(tmp, images, stages=stage_config(testbed, roles=ROLES), **remote_env(testbed))
    stack = dataclasses.replace(stack, stage="remote", backups=stack.backups.parent / "remote")
    try:
        stack("deploy", "--version", "1.0.0", "--skip-tests", "--skip-backup", timeout=900)
        stack("scale", "--backend", str(APPS["backend"]), "--web", str(APPS["web"]), timeout=600)
        yield stack
    finally:
        remove_from_hosts(stack, testbed, engine)


def containers_on(testbed: dict, host: str, project: str, all_: bool = False) -> list[dict]:
    """The project's service containers on a host: name, service, image, state, health, started."""
    ids = ssh(testbed, host, f"docker ps -q{'a' if all_ else ''} --filter label=com.docker.compose.project={project} "
                             "--filter label=com.docker.compose.oneoff=False").stdout.split()
    if not ids:
        return []
    return [{"name": c["Name"].lstrip("/"), "service": c["Config"]["Labels"]["com.docker.compose.service"], "image": c["Config"]["Image"],
             "state": c["State"]["Status"], "health": c["State"].get("Health", {}).get("Status", ""), "started": c["State"]["StartedAt"]}
            for c in json.loads(ssh(testbed, host, f"docker inspect {' '.join(ids)}").stdout)]


def app_images_on(testbed: dict, host: str, project: str) -> dict[str, list[str]]:
    """The image of each running app container on a host, per service."""
    out: dict[str, list[str]] = {s: [] for s in APPS}
    for c in containers_on(testbed, host, project):
        if c["service"] in APPS and c["state"] == "running":
            out[c["service"]].append(c["image"])
    return {s: sorted(v) for s, v in out.items()}


def release_images(testbed: dict, project: str, version: str) -> dict[str, list[str]]:
    return {s: [f"{testbed['TESTBED_HOST_REGISTRY']}/{project}/{s}:{version}"] * n for s, n in APPS.items()}


def history(testbed: dict, project: str) -> list[dict]:
    return releases_on(testbed, project)


def psql(testbed: dict, project: str, sql: str) -> str:
    return ssh(testbed, "h3", f"docker exec {project}-postgres-1 psql -U app -d app -tAc \"{sql}\"").stdout.strip()


def test_a_failed_second_batch_returns_the_first_and_the_failed_host_keeps_the_old_version(stage3, testbed):
    """--parallel 2 over three app hosts: batch 1 (h1, h2) switches to 1.0.1, then h3's
    rollout fails: its 1.0.1 images are gone from its engine (removed after the pull
    step) and it cannot reach the registry to pull them again. h1 and h2 go back to
    1.0.0, h3 never runs 1.0.1, the release is failed, the lock is free."""
    project, port = stage3.project, stage3.http_port
    for host in ROLES:
        assert app_images_on(testbed, host, project) == release_images(testbed, project, "1.0.0"), host
    registry = testbed["TESTBED_HOST_REGISTRY"]
    gateway, registry_port = registry.rsplit(":", 1)
    block = f"OUTPUT -p tcp -d {gateway} --dport {registry_port} -j REJECT --reject-with tcp-reset"
    new_images = " ".join(f"{registry}/{project}/{s}:1.0.1" for s in APPS)
    argv = stage3.argv("deploy", "--version", "1.0.1", "--skip-tests", "--skip-backup", "--parallel", "2", "--timeout", "120")
    proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, stdin=subprocess.DEVNULL,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    lines: list[str] = []
    broken = False
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if not broken and "batch 1: h1, h2" in line:
                # The pull step is over (every host has 1.0.1); h3 loses its copy and the registry.
                ssh(testbed, "h3", f"docker image inspect {new_images} >/dev/null && docker rmi {new_images} >/dev/null && iptables -I {block}")
                broken = True
        proc.wait(timeout=600)
    finally:
        proc.kill()
        ssh(testbed, "h3", f"while iptables -D {block} 2>/dev/null; do :; done", check=False)
    output = "".join(lines)
    assert broken, output
    assert proc.returncode == 1, output
    assert "batch 2: h3" in output, output
    # Batch 1 really switched (its proxies were checked) before batch 2 failed ...
    for host in ("h1", "h2"):
        assert re.search(rf"^\[{host}\] .*switched to 1\.0\.1", output, re.M), output
    assert re.search(r"rollout of h3 failed on h3", output), output
    assert "rolling back h1, h2" in output, output
    # ... and was returned: every app host runs 1.0.0's images, all replicas, and serves 1.0.0.
    for host in ROLES:
        assert app_images_on(testbed, host, project) == release_images(testbed, project, "1.0.0"), host
        assert version_at(testbed, host, port) == "1.0.0", host
        deadline = time.time() + 30  # routed on the tasks' probe, before Docker's first healthcheck
        while (unhealthy := [f"{c['name']}: {c['health']}" for c in containers_on(testbed, host, project)
                             if c["health"] not in ("healthy", "")]) and time.time() < deadline:
            time.sleep(1)
        assert unhealthy == [], host
    h3_all = containers_on(testbed, "h3", project, all_=True)
    assert not [c["name"] for c in h3_all if c["image"].endswith(":1.0.1")]  # h3 never ran the new version
    last = history(testbed, project)[-1]
    assert (last["version"], last["status"]) == ("1.0.1", "failed")
    assert "h3" in last["error"]
    assert stage3("lock.status").stdout.strip() == "not locked"
    assert row(stage3("releases").stdout, 0, "1.0.1")[1] == "failed"


def test_db_tasks_on_the_hosts(stage3, testbed):
    project = stage3.project
    migrated = stage3("db.migrate")
    assert "backend runs on h1, h2, h3: using h1" in migrated.stdout
    before_seed = int(psql(testbed, project, "SELECT count(*) FROM items"))
    stage3("db.seed")
    seeded = int(psql(testbed, project, "SELECT count(*) FROM items"))
    assert seeded > before_seed

    backup = stage3("db.backup", "--label", "failures")
    reported = re.search(r"backup: (\S+\.dump)", backup.stdout)
    assert reported, backup.stdout
    dump = Path(reported.group(1))
    assert dump.parent == stage3.backups and dump.is_file()
    assert Path(f"{dump}.sha256").is_file() and json.loads(Path(f"{dump}.json").read_text())["row_counts"]["public.items"] == seeded
    listed = row(stage3("db.list").stdout, 0, dump.name)
    assert listed[1:2] == ["here"] and listed[4] == "yes"  # complete
    verified = stage3("db.verify", "latest")
    assert f"verified {dump.name}" in verified.stdout
    assert row(stage3("db.list").stdout, 0, dump.name)[5] == "yes"

    stats = stage3("db.stats")
    assert [c for c in table_rows(stats.stdout) if re.fullmatch(r"\d+ of 500", c[0])], stats.stdout  # connections of max_connections

    for bogus, message in (("999999", "no PostgreSQL session has pid 999999"), ("12x", "'12x' is not a process id"), ("0", "is not a process id")):
        refused = stage3("db.kill", bogus, "--yes", check=False)
        assert refused.returncode == 1, (bogus, refused.stdout, refused.stderr)
        assert message in refused.stderr and "fix:" in refused.stderr, (bogus, refused.stderr)
        assert "Traceback" not in refused.stderr

    # A row written after the backup; the restore returns to the backup's rows exactly.
    post = subprocess.run(["curl", "-s", "-m", "5", "-XPOST", "-H", "content-type: application/json", "-d", '{"name": "after-backup"}',
                           f"http://{testbed['addrs']['h2']}:{stage3.http_port}/api/items"], capture_output=True, text=True)
    assert '"after-backup"' in post.stdout
    assert int(psql(testbed, project, "SELECT count(*) FROM items")) == seeded + 1
    no_force = stage3("db.restore", dump.name, "--yes", check=False)
    assert no_force.returncode == 1 and "--force" in no_force.stderr, no_force.stdout + no_force.stderr
    assert int(psql(testbed, project, "SELECT count(*) FROM items")) == seeded + 1
    started = {h: {c["name"]: c["started"] for c in containers_on(testbed, h, project) if c["service"] in APPS} for h in ROLES}
    restored = stage3("db.restore", dump.name, "--yes", "--force", timeout=600)
    after = {h: {c["name"]: c["started"] for c in containers_on(testbed, h, project) if c["service"] in APPS} for h in ROLES}
    observed["restarted"] = {h for h in ROLES if started[h] and all(after[h].get(n) not in (None, t) for n, t in started[h].items())}
    observed["restore output"] = restored.stdout
    assert f"restored {dump.name}" in restored.stdout
    assert {"h1", "h2"} <= observed["restarted"], restored.stdout  # --force stopped the apps for the swap, and started them again
    assert int(psql(testbed, project, "SELECT count(*) FROM items")) == seeded
    assert psql(testbed, project, "SELECT count(*) FROM items WHERE name = 'after-backup'") == "0"
    for host in ROLES:  # the app services are back on every app host, serving
        assert app_images_on(testbed, host, project) == release_images(testbed, project, "1.0.0"), host
        assert version_at(testbed, host, stage3.http_port) == "1.0.0", host
    assert list(stage3.backups.glob("*pre-restore*.dump")), "no safety backup"
    # The safety backup (brought home) holds what the restore replaced: the row written after the backup restored.
    safety = sorted(stage3.backups.glob("*pre-restore*.dump"))[-1]
    assert json.loads(Path(f"{safety}.json").read_text())["row_counts"]["public.items"] == seeded + 1
    items = ssh_bytes(testbed, "h3", f"docker exec -i {project}-postgres-1 pg_restore --data-only --table items --file -",
                      safety.read_bytes()).decode()  # read by pg_restore itself, not by the tool's manifest
    assert "COPY public.items " in items and "after-backup" in items, items[-2000:]


def test_restore_with_force_stopped_the_apps_on_every_app_host(stage3):
    """`--force` stops the app services on the app hosts for the swap (docs/remote-hosts.md), h3's too:
    every app container of h1, h2 and h3 was restarted by the restore of test_db_tasks_on_the_hosts."""
    if "restarted" not in observed:
        pytest.fail("test_db_tasks_on_the_hosts did not get to the restore")
    assert "h3" in observed["restarted"], observed["restore output"]


def test_clean_on_the_hosts(stage3, testbed):
    project = stage3.project
    refused = stage3("clean", "--volumes", check=False)
    assert refused.returncode == 1 and "--yes" in refused.stderr and "fix:" in refused.stderr
    # A stopped container of the project on h2: clean removes it, and only it.
    web = sorted(c["name"] for c in containers_on(testbed, "h2", project) if c["service"] == "web")[-1]
    ssh(testbed, "h2", f"docker stop {web} >/dev/null")
    running = {h: sorted(c["name"] for c in containers_on(testbed, h, project)) for h in ROLES}
    result = stage3("clean")
    for host in ROLES:
        assert re.search(rf"^\[{host}\] stopped containers removed: ", result.stdout, re.M), result.stdout
    assert re.search(rf"^\[h2\] stopped containers removed: {re.escape(web)}$", result.stdout, re.M), result.stdout
    assert web not in [c["name"] for c in containers_on(testbed, "h2", project, all_=True)]
    for host in ROLES:
        assert sorted(c["name"] for c in containers_on(testbed, host, project)) == running[host], host
        assert version_at(testbed, host, stage3.http_port) == "1.0.0", host
        # the images in use are kept
        assert ssh(testbed, host, f"docker image inspect {testbed['TESTBED_HOST_REGISTRY']}/{project}/backend:1.0.0", check=False).returncode == 0


def test_down_on_the_hosts(stage3, testbed):
    project = stage3.project
    refused = stage3("down", "--volumes", check=False)
    assert refused.returncode == 1 and "--yes" in refused.stderr and "fix:" in refused.stderr
    assert all(containers_on(testbed, h, project) for h in ROLES)  # refused: nothing stopped
    volumes = ssh(testbed, "h3", f"docker volume ls -q --filter label=com.docker.compose.project={project}").stdout.split()
    assert volumes
    stage3("down")
    for host in ROLES:
        assert containers_on(testbed, host, project, all_=True) == [], host
        assert version_at(testbed, host, stage3.http_port).startswith("no answer"), host
    assert ssh(testbed, "h3", f"docker volume ls -q --filter label=com.docker.compose.project={project}").stdout.split() == volumes
    assert stage3("lock.status").stdout.strip() == "not locked"
    assert row(stage3("releases").stdout, 0, "1.0.0")[1] == "success"  # the history on h3 survives
