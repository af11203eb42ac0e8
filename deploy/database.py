"""The stack's PostgreSQL: queries through psql in its container, and facts parsed from them."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from deploy.commands import compose
from deploy.commands import postgres as pg
from deploy.errors import fail
from deploy.stack import Stack, last_lines
from deploy.target import Process

# Exact row counts of every user table, in one statement (runs inside a snapshot).
ROW_COUNTS_SQL = """
SELECT format('%I.%I', n.nspname, c.relname),
       (xpath('/row/c/text()', query_to_xml(format('SELECT count(*) AS c FROM %I.%I', n.nspname, c.relname),
                                            false, true, '')))[1]::text::bigint
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'
ORDER BY 1
""".strip()

OTHER_SESSIONS_SQL = (
    "SELECT pid, usename, coalesce(application_name, ''), coalesce(client_addr::text, 'local'), coalesce(state, '') "
    "FROM pg_stat_activity WHERE datname = {db} AND pid <> pg_backend_pid() ORDER BY pid"
)


def parse_rows(text: str) -> list[list[str]]:
    """psql -A -t -F TAB output as rows of cells."""
    return [line.split("\t") for line in text.splitlines() if line]


def parse_counts(text: str) -> dict[str, int]:
    return {table: int(count) for table, count in parse_rows(text)}


@dataclass(frozen=True)
class Session:
    pid: int
    user: str
    application: str
    client: str
    state: str


@dataclass
class Database:
    stack: Stack

    @property
    def service(self) -> str:
        return self.stack.settings.config.database.service

    @property
    def user(self) -> str:
        return self.stack.settings.env.get(self.stack.settings.config.database.user_env, "postgres")

    @property
    def name(self) -> str:
        return self.stack.settings.env.get(self.stack.settings.config.database.name_env, self.user)

    def in_container(self, argv: Sequence[str], tty: bool = False) -> list[str]:
        return compose.exec_(self.stack.project, self.service, argv, tty=tty)

    def require_running(self) -> None:
        states = [c for c in self.stack.containers() if c.service == self.service]
        if not any(c.state == "running" for c in states):
            fail(
                f"the {self.service} container is not running ({', '.join(c.state for c in states) or 'no container'})",
                f"start it: inv up --stage {self.stack.settings.stage.name}",
            )

    def query_text(self, sql: str, db: str | None = None) -> str:
        result = self.stack.target.run(
            self.in_container(pg.psql(self.user, db or self.name, sql)), env=self.stack.settings.env, warn=True
        )
        if not result.ok:
            fail(f"query failed on {self.service}: {last_lines(result.stderr, 3)}", "see `inv logs postgres`")
        return result.stdout

    def query(self, sql: str, db: str | None = None) -> list[list[str]]:
        return parse_rows(self.query_text(sql, db))

    def value(self, sql: str, db: str | None = None) -> str:
        rows = self.query(sql, db)
        return rows[0][0] if rows and rows[0] else ""

    def row_counts(self, db: str | None = None) -> dict[str, int]:
        return parse_counts(self.query_text(ROW_COUNTS_SQL, db))

    def other_sessions(self, db: str | None = None) -> list[Session]:
        sql = OTHER_SESSIONS_SQL.format(db=pg.literal(db or self.name))
        return [Session(int(r[0]), r[1], r[2], r[3], r[4]) for r in self.query(sql, "postgres")]

    def spawn(self, argv: Sequence[str], stdin: bool = False) -> Process:
        return self.stack.target.spawn(self.in_container(argv), env=self.stack.settings.env, stdin=stdin)


class SnapshotSession:
    """A psql session holding a REPEATABLE READ transaction; its exported snapshot lets
    pg_dump and our row counts see exactly the same data."""

    SENTINEL = "__deploy_end_of_answer__"

    def __init__(self, db: Database) -> None:
        self.proc = db.spawn(pg.psql(db.user, db.name), stdin=True)
        self.snapshot = self.ask("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SELECT pg_export_snapshot();").strip()
        if not self.snapshot:
            self.close()
            fail(f"could not export a snapshot: {last_lines(self.proc.stderr_text(), 3)}", "see `inv logs postgres`")

    def ask(self, sql: str) -> str:
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"{sql}\n\\echo {self.SENTINEL}\n".encode())
        self.proc.stdin.flush()
        lines = []
        for raw in iter(self.proc.stdout.readline, b""):
            line = raw.decode().rstrip("\n")
            if line == self.SENTINEL:
                return "\n".join(lines)
            lines.append(line)
        self.close()
        fail(f"the snapshot session ended: {last_lines(self.proc.stderr_text(), 3)}", "see `inv logs postgres`")

    def close(self) -> None:
        try:
            if self.proc.stdin and not self.proc.stdin.closed:
                self.proc.stdin.write(b"COMMIT;\n")
                self.proc.stdin.close()
            self.proc.wait(timeout=30)
        except (BrokenPipeError, OSError):
            self.proc.kill()
