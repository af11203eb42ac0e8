"""The scheduled backup's sh (deploy.engine.commands.backup_job.script), run for real with
/bin/sh in a temporary folder, a stub ``docker`` first on PATH (pg_dump's bytes, the psql
snapshot session, the manifest psql writes): what one run leaves, and that it follows the
Python rules (deploy.database.files.scan for what is complete, deploy.retention.decide
for what is kept) on the same files."""
from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path

from deploy.database import files
from deploy.engine.commands import backup_job
from deploy.retention import Listed, Policy, decide

DUMP = b"PGDMP\x01\x0e\x00 the archive's bytes\n"
COUNTS = '{"items" : 3, "users" : 2}'

# docker as the script calls it: ps (the containers), inspect (the app's version), exec of
# pg_dump (DUMP, or a failure), of psql as the snapshot session (answers one a line, as
# psql -q -A -t) and of psql writing the manifest from its -v variables (as
# json_build_object prints it). Each call is logged.
DOCKER = r"""#!/bin/sh
printf '%s\n' "$*" >>"$STUB_LOG"
case "$1" in
ps)
    for a in "$@"; do case "$a" in label=com.docker.compose.service=*) svc=${a#label=com.docker.compose.service=} ;; esac; done
    [ "$svc" = postgres ] && [ -z "${STUB_NO_DB:-}" ] && echo pg0
    [ "$svc" = backend ] && echo app0
    exit 0 ;;
inspect) echo 1.4.2; exit 0 ;;
exec) ;;
*) echo "stub docker: $1?" >&2; exit 2 ;;
esac
shift
[ "$1" = -i ] && shift
shift  # the container
case "$1" in
pg_dump)
    case "$*" in *--snapshot=00000003-0000001B-1*) ;; *) echo "pg_dump without the snapshot: $*" >&2; exit 1 ;; esac
    if [ -n "${STUB_DUMP_FAILS:-}" ]; then printf 'PGDMP half an arch'; echo 'pg_dump: error: connection lost' >&2; exit 1; fi
    cat "$STUB_DUMP"; exit 0 ;;
psql) ;;
*) echo "stub docker exec: $1?" >&2; exit 2 ;;
esac
manifest=""
for a in "$@"; do case "$a" in file=*) manifest=yes ;; esac; done
if [ -z "$manifest" ]; then  # the snapshot session
    while IFS= read -r line; do
        case "$line" in
        *pg_export_snapshot*) echo 00000003-0000001B-1 ;;
        'SHOW server_version;') echo 16.4 ;;
        *json_object_agg*) echo "$STUB_COUNTS" ;;
        esac
    done
    exit 0
fi
cat >/dev/null
out='{'
sep=''
while [ $# -gt 0 ]; do
    if [ "$1" = -v ]; then
        key=${2%%=*} value=${2#*=}
        case "$key" in
        ON_ERROR_STOP) ;;
        size|seconds) out="$out$sep\"$key\" : $value"; sep=', ' ;;
        counts) out="$out$sep\"row_counts\" : $value"; sep=', ' ;;
        *) out="$out$sep\"$key\" : \"$value\""; sep=', ' ;;
        esac
        shift
    fi
    shift
done
printf '%s}\n' "$out"
"""

JOB = backup_job.Job("myapp", "production", "postgres", "backend", "app", "app", "", Policy(2, daily=3, weekly=2, monthly=2, min_age=3600))


def run_job(tmp_path: Path, directory: Path, job: backup_job.Job = JOB, dump: bytes = DUMP, **env: str) -> subprocess.CompletedProcess[str]:
    """One run of the job's script (``job`` with ``directory``) under the stub docker; pg_dump writes ``dump``."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "docker").write_text(DOCKER)
    (bin_dir / "docker").chmod(0o755)
    (tmp_path / "dump").write_bytes(dump)
    script = tmp_path / "backup-schedule.sh"
    script.write_text(backup_job.script(job.__class__(**{**job.__dict__, "directory": str(directory)})))
    (tmp_path / "tmp").mkdir(exist_ok=True)
    return subprocess.run(["/bin/sh", str(script)], capture_output=True, text=True, timeout=30,
                          env={"PATH": f"{bin_dir}:/usr/bin:/bin", "TMPDIR": str(tmp_path / "tmp"), "STUB_LOG": str(tmp_path / "docker.log"),
                               "STUB_DUMP": str(tmp_path / "dump"), "STUB_COUNTS": COUNTS, **env})


def last_run(directory: Path) -> dict:
    return json.loads((directory / backup_job.STATUS_FILE).read_text())


def test_a_run_writes_the_dump_its_sidecar_and_its_manifest(tmp_path):
    directory = tmp_path / "backups"
    result = run_job(tmp_path, directory)
    assert result.returncode == 0, result.stdout + result.stderr
    status = last_run(directory)
    name = status["file"]
    assert status["ok"] is True and status["error"] == "" and name.startswith("app-") and name.endswith("-scheduled.dump")
    dump = directory / name
    assert dump.read_bytes() == DUMP
    sha256 = hashlib.sha256(DUMP).hexdigest()
    assert (directory / f"{name}.sha256").read_text() == f"{sha256}  {name}\n"
    manifest = json.loads((directory / f"{name}.json").read_text())
    assert manifest == {"file": name, "project": "myapp", "stage": "production", "db": "app", "server_version": "16.4",
                        "created_at": status["started_at"], "size": len(DUMP), "sha256": sha256, "seconds": manifest["seconds"],
                        "app_version": "1.4.2", "label": "scheduled", "row_counts": {"items": 3, "users": 2}}
    modes = {p.name: p.stat().st_mode & 0o777 for p in directory.iterdir()}
    assert modes[name] == 0o600 and modes[f"{name}.sha256"] == 0o644 and modes[f"{name}.json"] == 0o644
    assert not [p for p in directory.iterdir() if p.name.endswith((".partial", ".tmp"))]
    [backup] = files.scan(directory)  # Python reads it as complete, stamped when the run started
    assert backup.complete and backup.label == "scheduled" and backup.created == datetime.fromisoformat(status["started_at"])
    assert f"backed up {name} ({len(DUMP)} bytes" in result.stdout
    calls = (tmp_path / "docker.log").read_text()
    assert "pg_dump --format=custom -U app -d app --snapshot=00000003-0000001B-1" in calls


def write_backup(directory: Path, when: datetime, kind: str = "complete", label: str | None = "scheduled") -> str:
    """A backup as a run leaves it (``complete``), or damaged: ``no-json`` (the run died
    before its manifest), ``bad-sidecar`` (the sidecar's sha256 is not the manifest's)."""
    name = files.new_name("app", when, label)
    data = b"PGDMP" + name.encode()
    sha256 = hashlib.sha256(data).hexdigest()
    (directory / name).write_bytes(data)
    (directory / f"{name}.sha256").write_text(f"{'0' * 64 if kind == 'bad-sidecar' else sha256}  {name}\n")
    if kind != "no-json":
        (directory / f"{name}.json").write_text(json.dumps({"file": name, "sha256": sha256, "size": len(data)}, indent=2) + "\n")
    return name


def python_verdicts(directory: Path, now: datetime, p: Policy) -> set[str]:
    """What Python keeps of this job's backups in ``directory``: complete by files.scan,
    kept by retention.decide."""
    mine = [Listed(b.path.name, b.created, b.complete)
            for b in files.scan(directory) if b.label == backup_job.LABEL]
    return {b.name for b, why in decide(mine, p, now) if why}


def test_damaged_backups_count_for_nothing_and_never_push_a_good_one_out(tmp_path):
    """Keep the newest 2: the two damaged backups between the good ones are no good
    ones, so the older good one stays; the damaged ones older than the newest good one go."""
    directory = tmp_path / "backups"
    directory.mkdir()
    now = datetime.now(timezone.utc)
    good = write_backup(directory, now - timedelta(days=5))
    damaged = [write_backup(directory, now - timedelta(days=d), kind) for d, kind in ((3, "bad-sidecar"), (2, "no-json"))]
    older_good = write_backup(directory, now - timedelta(days=6))
    oldest = write_backup(directory, now - timedelta(days=7))
    before = tmp_path / "before"
    shutil.copytree(directory, before)
    job = backup_job.Job(**{**JOB.__dict__, "retention": Policy(2)})
    result = run_job(tmp_path, directory, job)
    assert result.returncode == 0, result.stdout + result.stderr
    new = last_run(directory)["file"]
    left = {p.name for p in directory.iterdir() if p.name.endswith(".dump")}
    assert left == {new, good}, result.stdout
    assert older_good not in left and oldest not in left and not set(damaged) & left
    for suffix in (".sha256", ".json"):  # a deleted backup's sidecars go with it
        assert {p.name for p in directory.iterdir() if p.name.endswith(".dump" + suffix)} <= {f"{n}{suffix}" for n in left}
    for name in (new, good):
        shutil.copy(directory / name, before / name)
        for suffix in (".sha256", ".json"):
            shutil.copy(directory / f"{name}{suffix}", before / f"{name}{suffix}")
    assert python_verdicts(before, datetime.fromisoformat(last_run(directory)["started_at"]), Policy(2)) == left


def test_retention_by_age_keeps_what_the_python_rule_keeps(tmp_path):
    """Backups of the last 100 days, some damaged, some db.backup's: one run leaves exactly
    the files Python's rules keep at the run's start (its own new backup among them)."""
    directory = tmp_path / "backups"
    directory.mkdir()
    now = datetime.now(timezone.utc).replace(microsecond=0)
    kinds = ("complete", "complete", "complete", "no-json", "complete", "complete", "bad-sidecar")
    for i in range(60):
        write_backup(directory, now - timedelta(hours=7 * i * i / 10 + 0.25), kinds[i % len(kinds)])
    others = {write_backup(directory, now - timedelta(days=d), label=label) for d, label in ((30, "before-migrate"), (40, None))}
    others.add(write_backup(directory, now - timedelta(days=50), label="20200101T000000Z-scheduled"))  # files.NAME: not this job's
    before = tmp_path / "before"
    shutil.copytree(directory, before)
    p = Policy(3, daily=4, weekly=3, monthly=2, min_age=86400)
    result = run_job(tmp_path, directory, backup_job.Job(**{**JOB.__dict__, "retention": p}))
    assert result.returncode == 0, result.stdout + result.stderr
    new = last_run(directory)["file"]
    for suffix in ("", ".sha256", ".json"):
        shutil.copy(directory / f"{new}{suffix}", before / f"{new}{suffix}")
    started = datetime.fromisoformat(last_run(directory)["started_at"])
    expected = python_verdicts(before, started, p)
    left = {f.name for f in directory.iterdir() if f.name.endswith(".dump")}
    assert left == expected | others, result.stdout
    assert 8 < len(expected) < 50  # the case keeps some and deletes some


def test_a_failing_dump_leaves_nothing_that_looks_whole_and_fails(tmp_path):
    directory = tmp_path / "backups"
    directory.mkdir()
    earlier = write_backup(directory, datetime.now(timezone.utc) - timedelta(days=1))
    result = run_job(tmp_path, directory, STUB_DUMP_FAILS="1")
    assert result.returncode != 0
    status = last_run(directory)
    assert status["ok"] is False and status["file"] == "" and "pg_dump failed: pg_dump: error: connection lost" in status["error"]
    assert sorted(p.name for p in directory.iterdir() if not p.name.startswith(("last-run", ".schedule", "schedule"))) == sorted(
        [earlier, f"{earlier}.sha256", f"{earlier}.json"])  # no dump, partial, sidecar or manifest of the failed run
    assert [b.path.name for b in files.scan(directory) if b.complete] == [earlier]
    assert not list((tmp_path / "tmp").iterdir())  # its work folder removed


def test_no_database_or_no_archive_fails_too(tmp_path):
    directory = tmp_path / "backups"
    result = run_job(tmp_path, directory, STUB_NO_DB="1")
    assert result.returncode != 0 and "the postgres container of myapp is not running" in last_run(directory)["error"]
    result = run_job(tmp_path, directory, dump=b"not an archive")
    assert result.returncode != 0 and last_run(directory)["error"] == "pg_dump produced no archive"
    assert not [p.name for p in directory.iterdir() if ".dump" in p.name]
