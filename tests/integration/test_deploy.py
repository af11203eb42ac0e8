"""`inv deploy` on the real engine and registry, under continuous load through nginx."""
import json
import os
import re
import signal
import subprocess
import time
import urllib.request
from dataclasses import replace

import pytest

from tests import load
from tests.integration.conftest import ROOT, changed_backend, row, table_rows


def served_version(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/version", timeout=10) as resp:
        return json.loads(resp.read())["version"]


def engine_state(engine, project):
    """What a dry run must not change: containers (id, image, state) and image tags."""
    containers = sorted((c.id, c.attrs["Config"]["Image"], c.status) for c in engine.containers.list(
        all=True, filters={"label": f"com.docker.compose.project={project}"}))
    tags = sorted(t for i in engine.images.list() for t in i.tags if f"/{project}/" in t)
    return containers, tags


def test_bad_versions_are_refused(prod_stack):
    for bad in ["1.0", "1.0.0;touch /tmp/x", "../x", "vv1.0.0", "v1.0"]:
        result = prod_stack("deploy", "--version", bad, "--skip-tests", check=False)
        assert result.returncode == 1 and "MAJOR.MINOR.PATCH" in result.stderr, bad
    assert not os.path.exists("/tmp/x")


def test_dry_run_changes_nothing(prod_stack, engine):
    before = engine_state(engine, prod_stack.project)
    out = prod_stack("deploy", "--version", "1.0.0", "--dry-run").stdout
    steps = ("preflight", "tests", "build", "tag", "push", "upload", "pull", "backup", "stateful", "migrate", "rollout", "verify",
             "promote", "cleanup")
    for step in steps:
        assert f"] {step}" in out, step
    secret = dict(line.split("=", 1) for line in prod_stack.env_file.read_text().splitlines() if line.startswith("POSTGRES_PASSWORD="))
    assert secret["POSTGRES_PASSWORD"] not in out
    assert engine_state(engine, prod_stack.project) == before
    assert "not locked" in prod_stack("lock.status").stdout


def test_deploy_then_upgrade_under_load_fails_no_request(prod_stack, engine):
    traffic = load.Traffic(prod_stack.http_port)
    try:
        prod_stack("deploy", "--version", "1.0.0", timeout=900)
        assert served_version(prod_stack.http_port) == "1.0.0"
        prod_stack("deploy", "--version", "1.0.1", "--skip-backup", timeout=900)
        assert served_version(prod_stack.http_port) == "1.0.1"
    finally:
        results = traffic.results()
    load.assert_clean(traffic, results, f"{prod_stack.project}-nginx-1")
    out = prod_stack("status").stdout
    assert row(out, 0, "backend")[1:4] == ["3", "3", "3"] and row(out, 0, "backend")[6] == "1.0.1"
    history = prod_stack("releases").stdout
    assert row(history, 0, "1.0.1")[1] == "success" and row(history, 0, "1.0.0")[1] == "success"
    tags = {t for i in engine.images.list() for t in i.tags}
    assert f"127.0.0.1:5000/{prod_stack.project}/backend:1.0.1" in tags
    assert f"127.0.0.1:5000/{prod_stack.project}/backend:latest" in tags
    # `up` afterwards keeps the deployed version instead of recreating with `latest`.
    ids = {c.id for c in engine.containers.list(filters={"label": f"com.docker.compose.project={prod_stack.project}"})}
    prod_stack("up")
    assert ids == {c.id for c in engine.containers.list(filters={"label": f"com.docker.compose.project={prod_stack.project}"})}


def test_unhealthy_release_is_rolled_back_without_errors(prod_stack, tmp_path):
    env = {**os.environ, **changed_backend(tmp_path, "@Get('health')", "@Get('never')")}
    traffic = load.Traffic(prod_stack.http_port)
    try:
        argv = prod_stack.argv("deploy", "--version", "1.0.2", "--skip-backup", "--timeout", "20")
        result = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    finally:
        results = traffic.results()
    assert result.returncode == 1
    assert "not ready after 20 s" in result.stderr and "last log lines" in result.stderr
    assert served_version(prod_stack.http_port) == "1.0.1"
    load.assert_clean(traffic, results, f"{prod_stack.project}-nginx-1")
    assert row(prod_stack("releases").stdout, 0, "1.0.2")[1] == "failed"
    assert "not locked" in prod_stack("lock.status").stdout


def test_rollback_to_a_kept_release_under_load(prod_stack):
    refused = prod_stack("rollback", "7.7.7", check=False)
    assert refused.returncode == 1 and "roll back to one of: 1.0.0, 1.0.1" in refused.stderr
    traffic = load.Traffic(prod_stack.http_port)
    try:
        out = prod_stack("rollback", "1.0.0", timeout=600).stdout
    finally:
        results = traffic.results()
    assert "rolled back to 1.0.0" in out
    assert served_version(prod_stack.http_port) == "1.0.0"
    load.assert_clean(traffic, results, f"{prod_stack.project}-nginx-1")
    history = prod_stack("releases").stdout
    assert row(history, 0, "1.0.0")[2] == "rollback"


def test_concurrent_deploy_is_refused_and_a_killed_deploy_leaves_a_breakable_lock(prod_stack):
    first = subprocess.Popen(prod_stack.argv("deploy", "--version", "1.0.3", "--skip-backup"), cwd=ROOT,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lock_dir = prod_stack.runtime_config.parent / "state" / prod_stack.project / "production" / "deploy.lock"
    deadline = time.time() + 60
    while not (lock_dir / "holder.json").exists() and time.time() < deadline:
        time.sleep(0.1)
    second = prod_stack("deploy", "--version", "1.0.4", "--skip-backup", check=False)
    assert second.returncode == 1 and "another deploy holds the lock: deploy 1.0.3" in second.stderr
    # Kill the first one in the middle of its rollout: the stack keeps serving, the lock is stale.
    assert first.stdout is not None  # stdout=PIPE
    for line in first.stdout:
        if "new container(s)" in line:  # the rollout started them (deploy/stack/rollout.py start_batches)
            break
    first.send_signal(signal.SIGKILL)
    first.wait()
    assert "STALE" in prod_stack("lock.status").stdout
    refused = prod_stack("deploy", "--version", "1.0.4", "--skip-backup", check=False)
    assert refused.returncode == 1 and "inv lock.release" in refused.stderr
    prod_stack("lock.release")
    assert served_version(prod_stack.http_port) in ("1.0.0", "1.0.3")
    prod_stack("deploy", "--version", "1.0.4", "--skip-backup", timeout=900)
    assert served_version(prod_stack.http_port) == "1.0.4"
    out = prod_stack("status").stdout
    assert row(out, 0, "backend")[1:4] == ["3", "3", "3"]
    prod_stack("health")


def test_another_stage_of_the_project_is_refused_where_productions_stack_runs(prod_stack, engine):
    """Review point 4 on the real engine: development shares production's project here (the
    stages' default); production's containers carry its stage label, so a development task
    that changes the stack is refused before it acts, naming production, and changes
    nothing; reading tasks warn."""
    dev = replace(prod_stack, stage="development")
    before = sorted(c.id for c in engine.containers.list(filters={"label": f"com.docker.compose.project={prod_stack.project}"}))
    for task in (("scale", "--backend", "2"), ("up",), ("db.migrate",)):
        refused = dev(*task, check=False)
        assert refused.returncode == 1, (task, refused.stdout, refused.stderr)
        assert "is stage production's, not development's" in refused.stderr and "fix:" in refused.stderr, (task, refused.stderr)
    after = sorted(c.id for c in engine.containers.list(filters={"label": f"com.docker.compose.project={prod_stack.project}"}))
    assert after == before
    assert "is stage production's" in dev("status").stdout


@pytest.mark.parametrize("args,message", [(("--bump", "minor", "--version", "1.0.0"), "one of them"), (("--bump", "huge"), "major, minor or patch")])
def test_version_flags(prod_stack, args, message):
    result = prod_stack("deploy", *args, "--dry-run", check=False)
    assert result.returncode == 1 and message in result.stderr


def test_changed_stateful_service_is_left_alone_unless_asked(prod_stack, engine, images):
    image = images["REDIS_IMAGE"]
    engine.images.get(image).tag(f"{prod_stack.project}-redis", "changed")
    env = {**os.environ, "REDIS_IMAGE": f"{prod_stack.project}-redis:changed"}
    redis_id = engine.containers.get(f"{prod_stack.project}-redis-1").id

    def deploy(*args):
        return subprocess.run(prod_stack.argv("deploy", *args, "--skip-tests"), cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)

    refused = deploy("--version", "1.1.0", "--skip-backup", "--restart-stateful")
    assert refused.returncode == 1 and "needs the backup step" in refused.stderr
    left = deploy("--version", "1.1.0", "--skip-backup")
    assert left.returncode == 0, left.stderr
    assert "redis changed (image or configuration) and are left as they run" in left.stdout
    assert engine.containers.get(f"{prod_stack.project}-redis-1").id == redis_id
    applied = deploy("--version", "1.1.1", "--restart-stateful")
    assert applied.returncode == 0, applied.stderr
    assert "restarting redis" in applied.stdout
    redis = engine.containers.get(f"{prod_stack.project}-redis-1")
    assert redis.id != redis_id and redis.attrs["Config"]["Image"].endswith("-redis:changed")
    engine.images.remove(f"{prod_stack.project}-redis:changed", force=True)


def test_the_guides_deploy_sh_commands_work_as_written(prod_stack):
    """scripts/deploy.sh as the guide and its CI job write it: options before or after the
    command, a bare `deploy` bumps the patch, VERSION from the environment with a git
    tag's v. The stack is the test's (INVOKE_RUNTIME_CONFIG names its config and env file)."""
    runtime = prod_stack.runtime_config.with_name("deploy-sh.json")
    config = json.loads(prod_stack.runtime_config.read_text())
    config["deploy"]["stages"] = {"production": {"env_file": str(prod_stack.env_file)}}
    runtime.write_text(json.dumps(config))
    env = {k: v for k, v in os.environ.items() if k != "VERSION"}
    env["INVOKE_RUNTIME_CONFIG"] = str(runtime)

    def deploy_sh(*args: str, **extra: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(ROOT / "scripts/deploy.sh"), *args], cwd="/", env={**env, **extra}, capture_output=True,
                              text=True, timeout=900, stdin=subprocess.DEVNULL)

    versions = [tuple(map(int, cells[0].split("."))) for cells in table_rows(prod_stack("releases").stdout)
                if re.fullmatch(r"\d+\.\d+\.\d+", cells[0])]
    major, minor, patch = max(versions)  # the highest version in the history (--bump goes from it)
    next_patch, next_minor = f"{major}.{minor}.{patch + 1}", f"{major}.{minor + 1}.0"
    for args, version in [(("-v", "3.0.0", "--dry-run", "deploy"), "3.0.0"), (("deploy", "-v", "v3.0.0", "--dry-run"), "3.0.0"),
                          (("-t", "minor", "--dry-run", "deploy"), next_minor), (("--dry-run", "deploy"), next_patch),
                          (("--skip-tests", "--dry-run", "deploy"), next_patch), (("--dry-run",), next_patch)]:
        result = deploy_sh(*args)
        assert result.returncode == 0, (args, result.stderr)
        assert f"dry run: deploy {version}" in result.stdout, (args, result.stdout[-2000:])
    assert "] tests: skipped" in deploy_sh("--skip-tests", "--dry-run", "deploy").stdout
    for args, message in [(("-v",), "-v needs a value"), (("-v", ""), "-v needs a value"), (("deploy", "deploy"), "two commands"),
                          (("backup", "-v", "1.0.0"), "options of deploy"), (("-v", "1.0.0", "-t", "minor"), "not both"),
                          (("--force",), "unknown option")]:
        result = deploy_sh(*args)
        assert result.returncode == 2 and message in result.stderr, (args, result.stderr)
    bare = deploy_sh("deploy")
    assert bare.returncode == 0, bare.stderr
    assert served_version(prod_stack.http_port) == next_patch
    tagged = deploy_sh("deploy", VERSION="v2.0.0")  # the guide's CI job: VERSION=${{ github.ref_name }}
    assert tagged.returncode == 0, tagged.stderr
    assert served_version(prod_stack.http_port) == "2.0.0"
