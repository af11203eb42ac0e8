import json
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from invoke.exceptions import Exit

from deploy.database import files as backups
from deploy.database.files import PartialWriter, new_name, read_sidecar, scan, sweep_partials, write_sidecars

T0 = datetime(2026, 11, 28, 12, 0, 0, tzinfo=timezone.utc)


def make_backup(directory: Path, when: datetime, data: bytes = b"PGDMP...", label=None, complete=True) -> Path:
    path = directory / new_name("app", when, label)
    with PartialWriter(path) as out:
        out.write(data)
        sha = out.commit()
    if complete:
        write_sidecars(path, sha, {"sha256": sha, "row_counts": {"public.t": 1}})
    return path


def test_names():
    assert new_name("app", T0) == "app-20261128T120000Z.dump"
    assert new_name("app", T0, "pre-restore") == "app-20261128T120000Z-pre-restore.dump"
    for bad in ["a b", "x;y", "../x", "-x", "$(id)", "x" * 65, ""]:
        with pytest.raises(Exit, match="not a valid label"):
            new_name("app", T0, bad)


def test_writer_commits_atomically_with_the_hash(tmp_path):
    path = make_backup(tmp_path, T0, b"PGDMP" + b"x" * 5000)
    assert path.read_bytes().startswith(b"PGDMP")
    assert not backups.partial_path(path).exists()
    sha = read_sidecar(path)
    assert sha == backups.sha256_file(path)
    assert backups.sidecar_path(path).read_text() == f"{sha}  {path.name}\n"
    assert subprocess.run(["sha256sum", "-c", backups.sidecar_path(path).name], cwd=tmp_path, capture_output=True).returncode == 0
    assert oct(os.stat(path).st_mode & 0o777) == "0o600"
    assert oct(os.stat(backups.manifest_path(path)).st_mode & 0o777) == "0o644"
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name, backups.manifest_path(path).name, backups.sidecar_path(path).name]


def test_writer_leaves_nothing_when_interrupted(tmp_path):
    final = tmp_path / new_name("app", T0)
    with pytest.raises(RuntimeError), PartialWriter(final) as out:
        out.write(b"PGDMP half")
        raise RuntimeError("pg_dump died")
    assert list(tmp_path.iterdir()) == []


def test_writer_refuses_to_overwrite(tmp_path):
    path = make_backup(tmp_path, T0)
    with pytest.raises(Exit, match="already exists"), PartialWriter(path):
        pass


def test_sweep_removes_only_partials_nobody_holds(tmp_path):
    dead = tmp_path / "app-20261128T110000Z.dump.partial"
    dead.write_bytes(b"PGDMP half")
    with PartialWriter(tmp_path / new_name("app", T0)) as live:
        live.write(b"PGDMP")
        assert sweep_partials(tmp_path) == [dead]
        assert live.partial.exists()
    assert sweep_partials(tmp_path / "missing") == []


def test_sweep_takes_the_partial_of_a_killed_writer(tmp_path):
    code = (
        "import sys, time; from pathlib import Path; from deploy.database.files import PartialWriter;"
        f"w = PartialWriter(Path({str(tmp_path / 'app-20261128T100000Z.dump')!r})).__enter__(); w.write(b'PGDMP');"
        "print('ready', flush=True); time.sleep(60)"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, cwd=Path(__file__).parents[2])
    assert proc.stdout is not None  # stdout=PIPE
    assert proc.stdout.readline().strip() == "ready"
    assert sweep_partials(tmp_path) == []  # still held
    proc.kill()
    proc.wait()
    assert [p.name for p in sweep_partials(tmp_path)] == ["app-20261128T100000Z.dump.partial"]


def test_scan_tells_complete_from_incomplete(tmp_path):
    good = make_backup(tmp_path, T0)
    no_manifest = make_backup(tmp_path, T0 - timedelta(hours=1), complete=False)
    backups.sidecar_path(no_manifest).write_text(f"{backups.sha256_file(no_manifest)}  {no_manifest.name}\n")
    tampered = make_backup(tmp_path, T0 - timedelta(hours=2))
    backups.manifest_path(tampered).write_text(json.dumps({"sha256": "0" * 64}))
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "app-20261128T090000Z.dump.partial").write_bytes(b"x")
    found = scan(tmp_path)
    assert [b.path for b in found] == [good, no_manifest, tampered]
    assert [b.complete for b in found] == [True, False, False]
    assert not found[0].verified
    backups.verified_path(good).write_text(json.dumps({"ok": True, "sha256": read_sidecar(good)}))
    assert scan(tmp_path)[0].verified


def test_sidecar_must_name_the_file(tmp_path):
    path = make_backup(tmp_path, T0)
    backups.sidecar_path(path).write_text(f"{'a' * 64}  other.dump\n")
    assert read_sidecar(path) is None
    backups.sidecar_path(path).write_text("garbage")
    assert read_sidecar(path) is None


def test_delete_removes_the_manifest_first(tmp_path):
    make_backup(tmp_path, T0)
    backups.delete(scan(tmp_path)[0])
    assert list(tmp_path.iterdir()) == []
