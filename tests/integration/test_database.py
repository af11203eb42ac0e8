"""Backups and restores against the stack's real PostgreSQL: a round trip proven by
pg_dumpall, and every bad input and fault with the database left as it was."""
import os
import shlex
import signal
import subprocess
import time

import pytest

from deploy.database import files as backups
from deploy.engine.commands.postgres import ident
from tests.integration.conftest import ROOT, row

SEED_SQL = r"""
CREATE TABLE people (id serial PRIMARY KEY, name text NOT NULL, bio text, born date);
CREATE TABLE files (id bigserial PRIMARY KEY, owner int REFERENCES people(id), body bytea NOT NULL);
CREATE TABLE events (at timestamptz NOT NULL DEFAULT now(), kind text, payload jsonb);
CREATE INDEX events_kind ON events (kind);
INSERT INTO people (name, bio, born)
  SELECT 'person ' || g, 'ünïcødé ✓ 日本語 ' || g || E' line\nbreak \t tab', date '1970-01-01' + g
  FROM generate_series(1, 20000) g;
INSERT INTO files (owner, body)
  SELECT 1 + g % 20000, decode(md5(g::text) || md5((g * 7)::text), 'hex') || '\x00ff00'::bytea
  FROM generate_series(1, 30000) g;
INSERT INTO events (kind, payload)
  SELECT 'k' || (g % 13), jsonb_build_object('n', g, 'text', 'é' || g)
  FROM generate_series(1, 50000) g;
"""


@pytest.fixture(scope="module")
def db(prod_stack, engine):
    """The stack, with a seeded database and a first complete backup."""
    pg = engine.containers.get(f"{prod_stack.project}-postgres-1")
    result = pg.exec_run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-U", "app", "-d", "app", "-c", SEED_SQL])
    assert result.exit_code == 0, result.output.decode()
    prod_stack.pg = pg
    prod_stack("db.backup", "--label", "seeded")
    return prod_stack


def sql(stack, query: str, database: str = "app") -> str:
    result = stack.pg.exec_run(["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-U", "app", "-d", database, "-c", query])
    assert result.exit_code == 0, result.output.decode()
    return result.output.decode().strip()


def dumpall(stack) -> str:
    """The whole cluster as SQL, without the random \\restrict keys of recent pg_dump."""
    result = stack.pg.exec_run(["pg_dumpall", "-U", "app"])
    assert result.exit_code == 0
    lines = result.output.decode().splitlines()
    return "\n".join(line for line in lines if not line.startswith(("\\restrict ", "\\unrestrict ")))


def complete_backups(stack) -> list:
    return [b for b in backups.scan(stack.backups) if b.complete]


def seeded(stack):
    return next(b for b in complete_backups(stack) if b.label == "seeded")


def test_backup_is_complete_and_described(db):
    b = seeded(db)
    manifest = b.manifest
    assert manifest["row_counts"]["public.people"] == 20000
    assert manifest["row_counts"]["public.files"] == 30000
    assert manifest["row_counts"]["public.events"] == 50000
    assert manifest["database"] == "app" and manifest["stage"] == "production"
    assert manifest["server_version"].split()[0][:2] in ("15", "16")
    assert manifest["size"] == b.path.stat().st_size and manifest["app_version"] == "dev"
    assert subprocess.run(["sha256sum", "-c", b.path.name + ".sha256"], cwd=b.path.parent, capture_output=True).returncode == 0
    assert b.path.read_bytes()[:5] == b"PGDMP"
    out = db("db.list").stdout
    assert row(out, 0, b.path.name)[4] == "yes"


def test_round_trip_restores_exactly_what_was_backed_up(db, engine):
    before = dumpall(db)
    db("db.backup", "--label", "roundtrip")
    name = next(b for b in complete_backups(db) if b.label == "roundtrip").path.name
    sql(db, "DELETE FROM files WHERE id % 3 = 0; DROP TABLE events; UPDATE people SET name = 'changed'; "
            "CREATE TABLE intruder (x int); INSERT INTO intruder VALUES (1)")
    assert dumpall(db) != before

    refused = db("db.restore", name, "--yes", check=False)  # the backend holds connections
    assert refused.returncode == 1 and "session(s) are connected" in refused.stderr
    result = db("db.restore", name, "--yes", "--force")
    assert "safety backup" in result.stdout and "started backend, web again" in result.stdout
    assert dumpall(db) == before
    assert any(b.label == "pre-restore" for b in complete_backups(db))
    assert sql(db, "SELECT count(*) FROM pg_database WHERE datname LIKE 'app\\_%'") == "0"
    db("health")
    # The safety backup holds what the restore replaced: the changes made after the backup restored.
    safety = next(b for b in complete_backups(db) if b.label == "pre-restore")
    counts = safety.manifest["row_counts"]
    assert counts["public.intruder"] == 1 and "public.events" not in counts and counts["public.files"] == 20000, counts
    people = subprocess.run(["docker", "exec", "-i", db.pg.name, "pg_restore", "--data-only", "--table", "intruder", "--table", "people",
                             "--file", "-"], input=safety.path.read_bytes(), capture_output=True, timeout=300)
    assert people.returncode == 0, people.stderr.decode()
    data = people.stdout.decode()  # read by pg_restore itself, not by the tool's manifest
    assert "COPY public.intruder " in data and "\tchanged\t" in data and "person 1\t" not in data, data[-2000:]



HOSTILE_TABLES = ['tab\there', 'new\nline', 'quote"d', "x\tpublic.people UNION SELECT 'pwned', 1 --"]


def test_tables_with_hostile_names_are_counted_backed_up_and_restored(db):
    """Table names holding a tab, a newline, a quote or a piece of SQL are one name each:
    the counts are built on the server, so db.backup, its manifest and the restore's check
    of the counts work, and no name reaches the server as SQL of its own."""
    create = "; ".join(f"CREATE TABLE {ident(t)} (n int); INSERT INTO {ident(t)} SELECT generate_series(1, {i + 2})"
                       for i, t in enumerate(HOSTILE_TABLES))
    sql(db, create)
    try:
        before = dumpall(db)
        db("db.backup", "--label", "hostile")
        counts = next(b for b in complete_backups(db) if b.label == "hostile").manifest["row_counts"]
        for i, t in enumerate(HOSTILE_TABLES):
            assert counts[f"public.{ident(t)}"] == i + 2, counts
        assert "'pwned'" not in counts and counts["public.people"] == 20000
        sql(db, f"DROP TABLE {ident(HOSTILE_TABLES[0])}")
        db("db.restore", next(b for b in complete_backups(db) if b.label == "hostile").path.name, "--yes", "--force")
        assert dumpall(db) == before
    finally:
        sql(db, "; ".join(f"DROP TABLE IF EXISTS {ident(t)}" for t in HOSTILE_TABLES))

def test_verify_with_restore_test_marks_the_backup_verified(db):
    out = db("db.verify", "latest", "--restore-test").stdout
    assert "checksum, full read, restore test ok" in out
    assert sql(db, "SELECT count(*) FROM pg_database WHERE datname LIKE 'app\\_verify%'") == "0"
    newest = complete_backups(db)[0]
    assert row(db("db.list").stdout, 0, newest.path.name)[5] == "yes"


def corrupt_copy(db, name: str, change, resigned: bool = False):
    """A copy of the seeded backup with its bytes changed by ``change``, and sidecars:
    the original checksum, or with ``resigned`` a checksum of the changed bytes (so that
    only the deeper checks can catch it)."""
    src = seeded(db)
    dst = src.path.with_name(src.path.name.replace("-seeded", f"-{name}"))
    dst.write_bytes(change(src.path.read_bytes()))
    sha = backups.sha256_file(dst) if resigned else src.sha256
    backups.write_sidecars(dst, sha, {**src.manifest, "sha256": sha, "file": dst.name})
    return dst


def pre_restore_count(db) -> int:
    return sum(1 for b in complete_backups(db) if b.label == "pre-restore")


@pytest.mark.parametrize(
    "name,change,resigned,message",
    [
        ("flipped", lambda d: d[:5000] + bytes([d[5000] ^ 0xFF]) + d[5001:], False, "is corrupt"),
        ("truncated", lambda d: d[: len(d) // 2], False, "is corrupt"),
        ("truncsigned", lambda d: d[: len(d) // 2], True, "the archive is truncated"),
        ("notadump", lambda d: os.urandom(4096), True, "not a pg_dump custom-format archive"),
        ("newer", lambda d: d[:6] + bytes([99]) + d[7:], True, "newer pg_dump"),
    ],
)
def test_bad_backups_are_refused_and_nothing_changes(db, name, change, resigned, message):
    path = corrupt_copy(db, name, change, resigned)
    before, safety = dumpall(db), pre_restore_count(db)
    verify = db("db.verify", path.name, check=False)
    assert verify.returncode == 1 and message in verify.stderr, verify.stderr
    restore = db("db.restore", path.name, "--yes", "--force", check=False)
    assert restore.returncode == 1 and message in restore.stderr, restore.stderr
    assert dumpall(db) == before
    assert pre_restore_count(db) == safety


def test_backup_without_sidecar_is_refused(db):
    src = seeded(db).path
    path = src.with_name(src.name.replace("-seeded", "-nosidecar"))
    path.write_bytes(src.read_bytes())
    result = db("db.restore", path.name, "--yes", "--force", check=False)
    assert result.returncode == 1 and "no valid checksum sidecar" in result.stderr


@pytest.mark.parametrize("arg,message", [
    ("missing-20260101T000000Z.dump", "not found"),
    ("../../etc/passwd", "'..' and shell characters"),
    ("x.dump; touch /tmp/pwned", "'..' and shell characters"),
    ("$(touch /tmp/pwned).dump", "'..' and shell characters"),
])
def test_bad_paths_are_refused(db, arg, message):
    result = db("db.restore", arg, "--yes", check=False)
    assert result.returncode == 1 and message in result.stderr
    assert not os.path.exists("/tmp/pwned")


def test_restore_without_confirmation_is_refused(db):
    before = dumpall(db)
    result = db("db.restore", seeded(db).path.name, "--force", check=False)
    assert result.returncode == 1 and "pass --yes" in result.stderr
    assert dumpall(db) == before


def test_restore_from_an_explicit_path_outside_the_directory(db, tmp_path):
    src = seeded(db).path
    outside = tmp_path / src.name
    outside.write_bytes(src.read_bytes())
    for sidecar in (backups.sidecar_path(src), backups.manifest_path(src)):
        (tmp_path / sidecar.name).write_bytes(sidecar.read_bytes())
    out = db("db.verify", str(outside)).stdout
    assert "checksum, full read ok" in out


def test_disk_full_leaves_nothing(db, tmp_path):
    small = tmp_path / "small"
    small.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(small)], check=True)
    try:
        result = db("db.backup", "--dir", str(small), check=False)
        assert result.returncode == 1
        assert "No space left on device" in result.stderr and "nothing was kept" in result.stderr
        assert os.listdir(small) == []
    finally:
        subprocess.run(["umount", str(small)], check=True)


def test_killed_backup_leaves_nothing_that_looks_complete(db):
    sql(db, "CREATE TABLE bulk AS SELECT g AS id, decode(string_agg(lpad(to_hex((random() * 4294967295)::bigint), 8, '0'), ''), 'hex') AS body "
            "FROM generate_series(1, 60000) g, generate_series(1, 256) h GROUP BY g")
    try:
        before = {p.name for p in db.backups.iterdir()}
        proc = subprocess.Popen(db.argv("db.backup", "--label", "killed"), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        partial = None
        deadline = time.time() + 60
        while time.time() < deadline and partial is None:
            partial = next((p for p in db.backups.glob("*-killed.dump.partial") if p.stat().st_size > 1_000_000), None)
            time.sleep(0.01)
        assert partial is not None, "the backup never got going"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        new = {p.name for p in db.backups.iterdir()} - before
        assert not [n for n in new if n.endswith((".dump", ".sha256", ".json"))], new
        assert not any(b.label == "killed" for b in backups.scan(db.backups))
        out = db("db.backup", "--label", "after-kill").stdout
        assert "swept a stale partial file" in out
        assert not list(db.backups.glob("*.partial"))
    finally:
        sql(db, "DROP TABLE bulk")


def test_backup_with_the_database_down_fails_clearly(db, engine):
    before = set(db.backups.iterdir())
    db.pg.stop(timeout=30)
    try:
        result = db("db.backup", check=False)
        assert result.returncode == 1
        assert "the postgres container is not running" in result.stderr and "inv up" in result.stderr
        assert set(db.backups.iterdir()) == before
    finally:
        db("up")
        db.pg = engine.containers.get(f"{db.project}-postgres-1")
    db("health")


def test_stats_migrate_seed_and_tools(db):
    out = db("db.stats").stdout
    assert " of 500 " in out and "%" in out and "slowest queries" in out
    assert "migrations up to date" in db("db.migrate").stdout
    db("db.seed")
    pid = sql(db, "SELECT pid FROM pg_stat_activity WHERE datname = 'app' AND backend_type = 'client backend' AND pid <> pg_backend_pid() LIMIT 1")
    refused = db("db.kill", pid, check=False)
    assert refused.returncode == 1 and "pass --yes" in refused.stderr
    assert f"terminated session {pid}" in db("db.kill", pid, "--yes").stdout
    assert db("db.kill", "424242", "--yes", check=False).returncode == 1
    assert "reindexed app" in db("db.reindex", "--yes").stdout
    db("health")


def test_restore_asks_for_the_database_name_on_a_terminal(db):
    """Typed confirmation, through a real pseudo-terminal (util-linux `script`)."""
    name = seeded(db).path.name
    before = dumpall(db)
    command = shlex.join(db.argv("db.restore", name, "--force"))

    def typed(answer: str) -> subprocess.CompletedProcess:
        return subprocess.run(["script", "-qec", command, "/dev/null"], input=answer + "\n", cwd=ROOT,
                              capture_output=True, text=True, timeout=300)

    wrong = typed("not-the-name")
    assert wrong.returncode == 1 and "did not match; nothing was changed" in wrong.stdout
    assert dumpall(db) == before
    right = typed("app")
    assert right.returncode == 0 and "Type 'app' to confirm" in right.stdout and "restored" in right.stdout
