"""An offsite repository the db host may only append to: real restic through a real
``rclone serve restic --append-only`` on 127.0.0.1 (a local folder as its storage). No
stack and no Docker: the local engine's stage, whose db host is this machine.

The db host (``inv db.offsite.init``, then the scheduled job's offsite part as the
script has it) appends through the URL; restic's ``forget`` through it is refused by the
server; ``inv db.offsite.prune`` with the operator's own credentials (the storage folder
itself) applies the retention.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from deploy.engine.commands import backup_job, restic
from deploy.retention import Policy
from tests.integration.conftest import ROOT, free_port

PASSWORD = "append-only-offsite-password-4711"
TAG = "myapp-development"
INV = [sys.executable, "-m", "invoke"]


@pytest.fixture
def server(tmp_path):
    """``rclone serve restic --append-only`` on a free port of 127.0.0.1, serving a local
    folder; stopped (its whole process group) whatever the test does."""
    for tool in ("restic", "rclone"):
        if not shutil.which(tool):
            pytest.fail(f"{tool} is not installed; run: bash scripts/testbed/setup.sh (apt-get install {tool})")
    storage = tmp_path / "storage"
    storage.mkdir()
    port = free_port()
    log = (tmp_path / "rclone.log").open("wb")
    proc = subprocess.Popen(["rclone", "serve", "restic", "--append-only", "--addr", f"127.0.0.1:{port}", str(storage)],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                            env={**os.environ, "RCLONE_CONFIG": str(tmp_path / "rclone.conf")})
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"rclone serve restic did not listen on {port}: {(tmp_path / 'rclone.log').read_text()}")
                time.sleep(0.1)
        yield f"rest:http://127.0.0.1:{port}/", storage
    finally:
        with_group = proc.poll() is None
        if with_group:
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        log.close()


def inv(runtime: Path, env_file: Path, *args: str) -> subprocess.CompletedProcess:
    result = subprocess.run([*INV, "-f", str(runtime), *args, "--env-file", str(env_file)], cwd=ROOT, capture_output=True, text=True,
                            timeout=120, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, f"inv {' '.join(args)} exited {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result


def as_db_host(env_file: Path, argv: list[str], **run) -> subprocess.CompletedProcess:
    """restic as the scheduled job runs it on the db host (its env file: the URL, its password file), in UTC."""
    return subprocess.run(restic.with_env(str(env_file), argv), capture_output=True, text=True, timeout=60,
                          env={**os.environ, "TZ": "UTC"}, **run)


def snapshots(env_file: Path) -> list[str]:
    listed = as_db_host(env_file, restic.snapshots("", TAG), check=True)
    return sorted(s["time"][:16] for s in json.loads(listed.stdout))


def test_the_db_host_appends_cannot_delete_and_the_operator_prunes(server, tmp_path):
    url, storage = server
    state, backups = tmp_path / "state", tmp_path / "backups"
    admin = tmp_path / "admin.env"
    (tmp_path / "admin-password").write_text(PASSWORD)
    admin.write_text(f"RESTIC_REPOSITORY={storage}\nRESTIC_PASSWORD_FILE={tmp_path / 'admin-password'}\n")
    admin.chmod(0o600)
    runtime = tmp_path / "invoke.json"
    runtime.write_text(json.dumps({"deploy": {
        "state_dir": str(state), "database": {"backups_dir": str(backups)},
        "retention": {"backups": 7, "keep_daily": 2, "keep_weekly": 0, "keep_monthly": 0, "min_age": "0"},
        "stages": {"development": {"offsite": {"repository": url, "append_only": True, "keep": 1, "admin_env_file": str(admin)}}}}}))
    env_file = tmp_path / "stage.env"
    env_file.write_text((ROOT / ".env.example").read_text() + f"\nRESTIC_PASSWORD={PASSWORD}\n")

    # the db host (here: this machine) creates the repository through the append-only URL
    assert "created offsite repository" in inv(runtime, env_file, "db.offsite.init").stdout
    host_env = state / "myapp" / "development" / "offsite" / "restic.env"
    assert host_env.is_file() and str(storage) not in host_env.read_text()
    now = datetime.now(timezone.utc).replace(microsecond=0)
    data = tmp_path / "dump"
    data.mkdir()
    for i, when in enumerate([now - timedelta(days=d) for d in (4, 3, 2)] + [now - timedelta(days=2, hours=1), now - timedelta(days=1)]):
        (data / "db.dump").write_text(f"backup {i}")
        as_db_host(host_env, [*restic.backup("", TAG, [str(data)]), "--time", f"{when:%Y-%m-%d %H:%M:%S}"], check=True)

    # the scheduled job's offsite part, as the script has it (given what it needs of the rest)
    job_dir = tmp_path / "host-backups"
    job_dir.mkdir()
    name = f"app-{now:%Y%m%dT%H%M%SZ}-scheduled.dump"
    for suffix in ("", ".sha256", ".json"):
        (job_dir / f"{name}{suffix}").write_text(f"{name}{suffix}")
    section = backup_job.offsite_section(backup_job.OffsiteCopy(str(host_env), "", TAG, None))
    harness = (f"set -eu\nDIR={job_dir}\nname={name}\njson_text() {{ printf '\"%s\"' \"$1\"; }}\noffsite_error=''\n{section}\n"
               "printf '%s' \"$offsite_error\" >offsite-error\n")
    ran = subprocess.run(["sh", "-c", harness], cwd=job_dir, capture_output=True, text=True, timeout=60, env={**os.environ, "TZ": "UTC"})
    assert ran.returncode == 0 and "retention is inv db.offsite.prune's, run elsewhere" in ran.stdout, ran.stdout + ran.stderr
    assert (job_dir / "offsite-error").read_text() == ""
    assert json.loads((job_dir / backup_job.OFFSITE_FILE).read_text())["file"] == name
    assert len(snapshots(host_env)) == 6

    # what the job used to run after each copy: refused by the server (restic retries a 403
    # for a minute: interrupted once refused, restic then releases its lock)
    forget = subprocess.Popen(restic.with_env(str(host_env), restic.forget("", TAG, Policy(1))), stderr=subprocess.PIPE, text=True,
                              env={**os.environ, "TZ": "UTC"}, start_new_session=True)
    try:
        said = ""
        assert forget.stderr is not None
        for line in forget.stderr:
            said += line
            if "403 Forbidden" in line:
                break
        assert "403 Forbidden" in said, said
    finally:
        if forget.poll() is None:
            os.killpg(forget.pid, signal.SIGINT)
        forget.wait(30)
    assert len(snapshots(host_env)) == 6 and not list((storage / "locks").iterdir())

    # the operator prunes with the storage itself: the newest 1, the newest of the 2 newest days
    dry = inv(runtime, env_file, "db.offsite.prune", "--dry-run").stdout
    assert "retention: the newest 1, 2 daily; keeps 2 of 6 complete:" in dry, dry
    assert f"{now:%Y-%m-%d %H:%M} UTC  newest 1, daily {now:%Y-%m-%d}" in dry
    assert f"UTC  daily {now - timedelta(days=1):%Y-%m-%d}" in dry
    assert dry.count("would forget") == 4 and len(snapshots(host_env)) == 6
    real = inv(runtime, env_file, "db.offsite.prune").stdout
    assert "4 snapshot(s) of myapp-development forgotten, their data pruned" in real, real
    assert snapshots(host_env) == [f"{now - timedelta(days=1):%Y-%m-%dT%H:%M}", f"{now:%Y-%m-%dT%H:%M}"]
    checked = subprocess.run(["restic", "check"], capture_output=True, text=True, timeout=60,
                             env={**os.environ, "RESTIC_REPOSITORY": str(storage), "RESTIC_PASSWORD_FILE": str(tmp_path / "admin-password")})
    assert checked.returncode == 0, checked.stderr
