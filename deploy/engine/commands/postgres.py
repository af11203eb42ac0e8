"""PostgreSQL client command lines, run inside the database container.

They connect over the container's Unix socket as the database user, so no password
is ever on a command line. SQL identifiers and literals are quoted here, once (a NUL,
which no PostgreSQL text holds and which would end the C string psql sends, is refused).
"""
from __future__ import annotations

from deploy.errors import fail

# Every user table, schema-qualified and quoted, ready to put into a query.
TABLES_SQL = """
SELECT format('%I.%I', n.nspname, c.relname)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'
ORDER BY 1
""".strip()

# Exact row counts of every user table as one JSON object on one line, keyed as TABLES_SQL
# names them. The statements are built on the server (``format('%s', t)`` of names that
# ``%I`` quoted), so no table name ever passes through a client: a name holding a tab, a
# newline or a quote is one key of the JSON object, never SQL of its own.
ROW_COUNTS_SQL = (
    "SELECT coalesce(json_object_agg(t, (xpath('/row/c/text()', query_to_xml(format('SELECT count(*) AS c FROM %s', t), "
    "false, true, '')))[1]::text::bigint ORDER BY t), '{}') FROM (" + " ".join(TABLES_SQL.split()) + ") AS tables(t);"
)


def _text(value: str) -> str:
    if "\0" in value:
        fail(f"{value!r} holds a NUL character, which no SQL name or text can hold", "give it without the NUL")
    return value


def ident(name: str) -> str:
    """A SQL identifier, double-quoted."""
    return '"' + _text(name).replace('"', '""') + '"'


def literal(value: str) -> str:
    """A SQL string literal (standard_conforming_strings: a backslash is a backslash)."""
    return "'" + _text(value).replace("'", "''") + "'"


def psql(user: str, db: str, sql: str | None = None, *, tuples: bool = True) -> list[str]:
    """psql without ~/.psqlrc, stopping at the first error; ``sql`` with -c, else stdin."""
    argv = ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-U", user, "-d", db]
    if tuples:
        argv += ["-A", "-t", "-F", "\t"]
    if sql is not None:
        argv += ["-c", sql]
    return argv


def psql_interactive(user: str, db: str) -> list[str]:
    return ["psql", "-U", user, "-d", db]


def pg_dump(user: str, db: str, snapshot: str | None = None) -> list[str]:
    """Custom format (compressed), to stdout; from an exported snapshot when given."""
    argv = ["pg_dump", "--format=custom", "-U", user, "-d", db]
    if snapshot:
        argv.append(f"--snapshot={snapshot}")
    return argv


def pg_restore_read() -> list[str]:
    """Read a whole archive from stdin and throw the SQL away: detects truncation."""
    return ["pg_restore", "--file=/dev/null"]


def pg_restore_into(user: str, db: str) -> list[str]:
    """Restore an archive from stdin into ``db``, stopping at the first error."""
    return ["pg_restore", "-U", user, "-d", db, "--no-owner", "--exit-on-error"]
