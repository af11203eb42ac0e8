"""The stack's PostgreSQL: queries through psql in its container, and facts parsed from them."""
from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field

from deploy.engine.commands import docker
from deploy.engine.commands import postgres as pg
from deploy.engine.facts import Container
from deploy.engine.stack import Stack, last_lines
from deploy.engine.target import Process
from deploy.errors import fail

OTHER_SESSIONS_SQL = (
    "SELECT pid, usename, coalesce(application_name, ''), coalesce(client_addr::text, 'local'), coalesce(state, '') "
    "FROM pg_stat_activity WHERE datname = {db} AND backend_type = 'client backend' AND pid <> pg_backend_pid() "
    "ORDER BY pid"
)


def parse_rows(text: str) -> list[list[str]]:
    """psql -A -t -F TAB output as rows of cells."""
    return [line.split("\t") for line in text.splitlines() if line]


def parse_counts(text: str) -> dict[str, int]:
    """ROW_COUNTS_SQL's answer: one JSON object of table -> rows."""
    try:
        counts = json.loads(text)
    except ValueError:
        counts = None
    if not isinstance(counts, dict) or not all(isinstance(n, int) for n in counts.values()):
        fail(f"the row counts are not a JSON object of numbers: {text[:200]!r}", "see `inv logs postgres`")
    return counts


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
    _container: Container | None = field(default=None, init=False, repr=False)

    @property
    def service(self) -> str:
        return self.stack.settings.config.database.service

    @property
    def user(self) -> str:
        return self.stack.settings.env.get(self.stack.settings.config.database.user_env, "postgres")

    @property
    def name(self) -> str:
        return self.stack.settings.env.get(self.stack.settings.config.database.name_env, self.user)

    def require_running(self, containers: list[Container] | None = None) -> Container:
        """The running database container, or a clear failure (``containers``: facts
        already read, to save a round trip)."""
        if self._container is None:
            containers = self.stack.containers() if containers is None else containers
            states = [c for c in containers if c.service == self.service]
            running = [c for c in states if c.state == "running"]
            if not running:
                fail(
                    f"the {self.service} container is not running ({', '.join(c.state for c in states) or 'no container'})",
                    f"start it: inv up --stage {self.stack.settings.stage.name}",
                )
            self._container = running[0]
        return self._container

    def in_container(self, argv: Sequence[str], *, stdin: bool = False, tty: bool = False) -> list[str]:
        return docker.exec_(self.require_running().name, argv, interactive=stdin or tty, tty=tty)

    def query_text(self, sql: str, db: str | None = None) -> str:
        result = self.stack.target.run(
            self.in_container(pg.psql(self.user, db or self.name, sql)), env=self.stack.command_env, warn=True
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
        return parse_counts(self.query_text(pg.ROW_COUNTS_SQL, db))

    def other_sessions(self, db: str | None = None) -> list[Session]:
        sql = OTHER_SESSIONS_SQL.format(db=pg.literal(db or self.name))
        return [Session(int(r[0]), r[1], r[2], r[3], r[4]) for r in self.query(sql, "postgres")]

    def spawn(self, argv: Sequence[str], stdin: bool = False) -> Process:
        return self.stack.target.spawn(self.in_container(argv, stdin=stdin), env=self.stack.command_env, stdin=stdin)


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
        lines: list[str] = []
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
