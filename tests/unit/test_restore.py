import json

import pytest
from invoke import Exit

from deploy.database.restore import _explain_restore_error, count_mismatches, scratch_name
from deploy.database.session import parse_counts, parse_rows
from deploy.engine.commands import postgres as pg


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
