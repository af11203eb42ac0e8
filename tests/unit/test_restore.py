import json
import re
from pathlib import Path

import pytest
from invoke.exceptions import Exit

from deploy.database import files as backups
from deploy.database.dump import backup
from deploy.database.restore import _explain_restore_error, count_mismatches, locate, restore, scratch_name
from deploy.database.session import parse_counts, parse_rows
from deploy.engine.commands import postgres as pg
from deploy.engine.stack import Stack
from tests.unit.fake_engine import FakeEngine


def test_psql_builders():
    assert pg.psql("app", "db", "SELECT 1") == ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-U", "app", "-d", "db",
                                                "-A", "-t", "-F", "\t", "-c", "SELECT 1"]
    assert pg.psql("app", "db", tuples=False) == ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-U", "app", "-d", "db"]
    assert pg.pg_dump("app", "db") == ["pg_dump", "--format=custom", "-U", "app", "-d", "db"]
    assert pg.pg_dump("app", "db", "00000004-1") == ["pg_dump", "--format=custom", "-U", "app", "-d", "db", "--snapshot=00000004-1"]
    assert pg.pg_restore_read() == ["pg_restore", "--file=/dev/null"]
    assert pg.pg_restore_into("app", "x") == ["pg_restore", "-U", "app", "-d", "x", "--no-owner", "--exit-on-error"]


def test_quoting():
    assert pg.ident('my"db') == '"my""db"'
    assert pg.literal("it's") == "'it''s'"


def test_parse_psql_output():
    assert parse_rows("a\t1\nb\t2\n\n") == [["a", "1"], ["b", "2"]]
    assert parse_counts('{"public.items": 39, "public.x": 0}\n') == {"public.items": 39, "public.x": 0}


def test_row_counts_hold_names_with_tabs_newlines_and_sql():
    """The counts come back as JSON built on the server: a hostile table name is one key,
    and no client ever puts a name into SQL (ROW_COUNTS_SQL is one fixed statement)."""
    hostile = 'public."a\tb"', 'public."x\ny"', "public.\"t UNION SELECT 'pwned', 1 --\""
    assert parse_counts(json.dumps(dict.fromkeys(hostile, 7))) == dict.fromkeys(hostile, 7)


@pytest.mark.parametrize("answer", ["public.items\t39", "[1, 2]", '{"public.items": "39"}', ""])
def test_row_counts_that_are_not_a_json_object_of_numbers_fail_clearly(answer):
    with pytest.raises(Exit, match="row counts are not a JSON object"):
        parse_counts(answer)


def test_count_mismatches():
    assert count_mismatches({"a": 1, "b": 2}, {"a": 1, "b": 2}) == []
    assert count_mismatches({"a": 1, "b": 2}, {"a": 0, "c": 5}) == [
        "a: manifest 1, restored 0", "b: manifest 2, restored absent", "c: manifest absent, restored 5",
    ]


def test_scratch_names_fit_postgres_identifiers():
    name = scratch_name("x" * 80, "restore")
    assert len(name) <= 63 and "_restore_" in name


def test_restore_errors_are_explained():
    newer = _explain_restore_error("pg_restore: error: unsupported version (1.99) in file header", {"server_version": "17.2"})
    assert "newer pg_dump" in newer[0] and "17.2" in newer[1]
    assert "not a pg_dump" in _explain_restore_error("pg_restore: error: input file does not appear to be a valid archive", None)[0]
    assert "truncated" in _explain_restore_error("pg_restore: error: could not read input file: end of file", None)[0]
    assert "pg_restore failed" in _explain_restore_error("something else", None)[0]


# --- db.restore on the recording fake, with a PostgreSQL of a few databases --------------------------
class Postgres:
    """The databases of a fake PostgreSQL server (name -> whether it accepts connections),
    answering the statements the restore sends through ``psql -c``; each database holds
    the fake's one table (public.users, 3 rows, as the fake's pg_dump counts it)."""

    def __init__(self, *names: str) -> None:
        self.databases = dict.fromkeys(names, True)
        self.log: list[str] = []

    def __call__(self, db: str, sql: str) -> tuple[str, str, int]:
        if not self.databases.get(db):
            why = "is not currently accepting connections" if db in self.databases else "does not exist"
            return "", f'psql: error: FATAL:  database "{db}" {why}', 2
        self.log.append(sql)
        out = []
        for statement in (s.strip() for s in sql.split(";") if s.strip()):
            name = re.search(r'DATABASE (?:IF EXISTS )?"([^"]+)"', statement)
            if statement.startswith("CREATE DATABASE") and name:
                self.databases[name.group(1)] = True
            elif statement.startswith("DROP DATABASE") and name:
                self.databases.pop(name.group(1), None)
            elif m := re.fullmatch(r'ALTER DATABASE "([^"]+)" WITH ALLOW_CONNECTIONS (true|false)', statement):
                self.databases[m.group(1)] = m.group(2) == "true"
            elif m := re.fullmatch(r'ALTER DATABASE "([^"]+)" RENAME TO "([^"]+)"', statement):
                self.databases[m.group(2)] = self.databases.pop(m.group(1))
            elif m := re.search(r"FROM pg_database WHERE datname = '([^']+)'", statement):
                out.append("t" if self.databases.get(m.group(1)) else "f")
            elif "json_object_agg" in statement:
                out.append('{"public.users": 3}')
        return "".join(line + "\n" for line in out), "", 0

    def replaced(self) -> list[str]:
        return [n for n in self.databases if n.startswith("app_replaced_")]


@pytest.fixture
def db_host(fake_settings):
    """A db host over SSH (fake) running postgres, whose server has the database app."""
    engine = FakeEngine("db1", local=False, workdir="/srv/myapp")
    engine.start(["postgres"], {})
    engine.psql = Postgres("postgres", "app")
    return Stack(fake_settings, engine)


def seed_backup(stack: Stack, **manifest) -> Path:
    """A complete backup of the stack's database (its manifest changed by ``manifest``)."""
    path = backup(stack, label="seed").path
    if manifest:
        data = json.loads(backups.manifest_path(path).read_text())
        backups.write_sidecars(path, data["sha256"], {**data, **manifest})
    return path


def restoring(stack: Stack, path: Path, said: list[str] | None = None, **options):
    asked: list[tuple[str, ...]] = []
    report = restore(stack, path, lambda *shown: asked.append(shown),
                     say=(said if said is not None else []).append, **options)
    return report, asked


def test_the_safety_backup_is_of_the_replaced_database_after_the_swap_then_it_is_dropped(db_host):
    """Every write up to the swap is in the safety backup: it dumps the database replaced
    (no app writes to it any more), not the current one before the restore."""
    engine, pg = db_host.target, db_host.target.psql
    path = seed_backup(db_host)
    engine.journal.clear()
    report, _ = restoring(db_host, path)
    dumps = [i for i, c in enumerate(engine.journal) if "pg_dump" in c.argv]
    swap = next(i for i, c in enumerate(engine.journal) if "RENAME TO" in c.line)
    assert len(dumps) == 1 and dumps[0] > swap
    dumped = engine.journal[dumps[0]].argv
    assert re.fullmatch(r"app_replaced_\d{14}", dumped[dumped.index("-d") + 1])
    assert json.loads(backups.manifest_path(report.safety.path).read_text())["database"] == dumped[dumped.index("-d") + 1]
    assert pg.databases == {"postgres": True, "app": True}  # dropped once its backup was complete
    drop = next(i for i, c in enumerate(engine.journal) if "DROP DATABASE" in c.line and "replaced" in c.line)
    assert drop > dumps[0]


def test_a_failed_safety_backup_keeps_the_replaced_database_and_says_where(db_host):
    pg = db_host.target.psql
    path = seed_backup(db_host)
    db_host.target.fail_when("pg_dump", stderr="No space left on device")
    with pytest.raises(Exit, match=r"(?s)the safety backup of the replaced database failed.*kept, as app_replaced_\d+ on db1"
                                   r".*DROP DATABASE"):
        restoring(db_host, path)
    assert pg.databases["app"] and len(pg.replaced()) == 1


def test_a_connection_lost_while_the_database_refuses_connections_is_repaired_over_a_new_one(db_host):
    engine, pg = db_host.target, db_host.target.psql
    path = seed_backup(db_host)
    # The link to the db host dies right after the database was closed.
    engine.fail_when("pg_terminate_backend", drops=True, stderr="lost the connection to db1")
    with pytest.raises(Exit, match="lost the connection to db1"):
        restoring(db_host, path)
    assert pg.databases == {"postgres": True, "app": True}  # open again; the scratch database gone


def test_when_reopening_fails_too_the_error_says_how_to_do_it_by_hand(db_host):
    engine, pg = db_host.target, db_host.target.psql
    path = seed_backup(db_host)
    engine.fail_when("pg_terminate_backend", drops=True)
    engine.fail_when("ALLOW_CONNECTIONS true", stderr="host unreachable")
    with pytest.raises(Exit, match=r"(?s)app refused connections, and allowing them again failed.*"
                                   r"docker exec myapp-postgres-1 psql .*ALTER DATABASE \"app\" WITH ALLOW_CONNECTIONS true.* on db1"):
        restoring(db_host, path)
    assert pg.databases["app"] is False


def test_a_restore_first_reopens_a_database_a_dead_restore_left_closed(db_host):
    pg = db_host.target.psql
    path = seed_backup(db_host)
    pg.databases["app"] = False  # a restore was killed after closing it

    def refuse(*shown: str) -> None:
        raise Exit("the confirmation did not match; nothing was changed")

    said: list[str] = []
    with pytest.raises(Exit, match="did not match"):
        restore(db_host, path, refuse, say=said.append)
    assert pg.databases["app"] is True
    assert any("app refuses connections" in line for line in said)


def test_a_bare_name_is_a_backup_of_the_stage_never_a_file_here(db_host, tmp_path, monkeypatch):
    path = seed_backup(db_host)
    here = tmp_path / "cwd"
    here.mkdir()
    (here / path.name).write_bytes(b"PGDMP another file")
    monkeypatch.chdir(here)
    assert locate(db_host, path.name) == path
    assert locate(db_host, f"./{path.name}") == here / path.name  # a path must say so
    (here / "only-here.dump").write_bytes(b"PGDMP")
    with pytest.raises(Exit, match=r"(?s)'only-here.dump' not found in .*give.* as a path: \./only-here\.dump"):
        locate(db_host, "only-here.dump")


def test_the_confirmation_shows_the_full_path_time_size_version_and_origin(db_host):
    path = seed_backup(db_host)
    manifest = json.loads(backups.manifest_path(path).read_text())
    _, [(name, action)] = restoring(db_host, path)
    assert name == "app"
    for shown in (str(path.resolve()), manifest["created_at"], f"{manifest['size']:,} bytes",
                  f"app version {manifest['app_version']}", "of myapp/development"):
        assert shown in action


@pytest.mark.parametrize("other", [{"stage": "production"}, {"project": "another"}])
def test_a_backup_of_another_stage_or_project_needs_the_flag(db_host, other):
    pg = db_host.target.psql
    path = seed_backup(db_host, **other)
    with pytest.raises(Exit, match=r"(?s)is a backup of .*, not of myapp/development.*--from-other-stage"):
        restoring(db_host, path)
    assert not [sql for sql in pg.log if "CREATE DATABASE" in sql]  # nothing was done
    report, _ = restoring(db_host, path, other_stage=True)  # e.g. production's data into staging
    assert report.rows == 3
