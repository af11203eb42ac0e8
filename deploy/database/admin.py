"""Everyday database work: migrations, seeds, statistics, and the troubleshooting
tools (terminate a session, reindex, re-open a database a dead restore left closed)."""
from __future__ import annotations

import shlex
from dataclasses import dataclass, field

from deploy.database.session import Database
from deploy.engine.commands import compose
from deploy.engine.commands import postgres as pg
from deploy.engine.ops import Call, Ops, run
from deploy.engine.stack import Stack
from deploy.engine.upload import upload
from deploy.errors import fail

STATS_SQL = {
    "connections": "SELECT count(*) || ' of ' || current_setting('max_connections') FROM pg_stat_activity",
    "size": "SELECT pg_size_pretty(pg_database_size(current_database()))",
    "cache_hit": (
        "SELECT coalesce(round(100.0 * sum(blks_hit) / nullif(sum(blks_hit) + sum(blks_read), 0), 2)::text || '%', 'n/a') "
        "FROM pg_stat_database"
    ),
    "has_statements": "SELECT count(*) FROM pg_extension WHERE extname = 'pg_stat_statements'",
}
SLOWEST_SQL = (
    "SELECT round(mean_exec_time::numeric, 2), calls, round(total_exec_time::numeric, 0), "
    "left(regexp_replace(query, '\\s+', ' ', 'g'), 120) "
    "FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) "
    "ORDER BY mean_exec_time DESC LIMIT {limit}"
)


@dataclass
class DbStats:
    connections: str
    size: str
    cache_hit: str
    slowest: list[list[str]] = field(default_factory=list)  # mean ms, calls, total ms, query
    statements_missing: bool = False


def stats(stack: Stack, limit: int = 10) -> DbStats:
    db = Database(stack)
    db.require_running()
    values = {key: db.value(sql) for key, sql in STATS_SQL.items()}
    result = DbStats(values["connections"], values["size"], values["cache_hit"])
    if values["has_statements"] == "0":
        result.statements_missing = True
    else:
        result.slowest = db.query(SLOWEST_SQL.format(limit=int(limit)))
    return result


def app_command(stack: Stack, command: tuple[str, ...], what: str, fix: str, upload_files: bool = True) -> Ops[None]:
    """A command in a one-off container of the app image. On the local engine the
    database must be running; a host gets the stage's files first unless they were just
    uploaded (``upload_files`` False; the database may run on another host)."""
    if stack.target.local:
        yield Call(stack, f"check that {stack.settings.config.database.service} runs", Database(stack).require_running)
    elif upload_files:
        yield from upload(stack)
    service = stack.settings.config.database.migrate_service
    yield run(stack, compose.run_once(stack.project, service, command), what=what, fix=fix, show=True)


def migrate(stack: Stack, fix: str = "read the output above; the command is deploy.database.migrate_command",
            upload_files: bool = True) -> Ops[None]:
    """The migrations (``inv db.migrate`` and the deploy's migrate step)."""
    yield from app_command(stack, stack.settings.config.database.migrate_command, "the migration", fix, upload_files)


def seed(stack: Stack) -> Ops[None]:
    yield from app_command(stack, stack.settings.config.database.seed_command, "the seed",
                           "read the output above; the command is deploy.database.seed_command")


def parse_pid(raw: object) -> int:
    text = str(raw).strip()
    if not text.isdigit() or int(text) == 0:
        fail(f"{raw!r} is not a process id", "give the pid column of `inv db.stats` or pg_stat_activity")
    return int(text)


def session_summary(stack: Stack, pid: int) -> str:
    """'user@db state: query' of a backend, or fail when there is none."""
    rows = Database(stack).query(
        "SELECT usename, datname, coalesce(state, ''), left(coalesce(query, ''), 80) FROM pg_stat_activity "
        f"WHERE pid = {pid}",
        "postgres",
    )
    if not rows:
        fail(f"no PostgreSQL session has pid {pid}", "list them: inv db.stats, or SELECT * FROM pg_stat_activity in inv db.shell")
    user, dbname, state, query = (rows[0] + ["", "", "", ""])[:4]
    return f"{user}@{dbname} {state}: {query}"


def kill(stack: Stack, pid: int) -> bool:
    return Database(stack).value(f"SELECT pg_terminate_backend({pid})", "postgres") == "t"


def reindex(stack: Stack) -> None:
    """REINDEX DATABASE CONCURRENTLY: rebuilds indexes without blocking writes."""
    db = Database(stack)
    db.require_running()
    db.query(f"REINDEX DATABASE CONCURRENTLY {pg.ident(db.name)}")


def refuses_connections(db: Database) -> bool:
    """Whether the database refuses every connection (``datallowconn`` false: a restore
    closes it for its swap, and one that died there leaves it so)."""
    return db.value(f"SELECT datallowconn FROM pg_database WHERE datname = {pg.literal(db.name)}", "postgres") == "f"


def reopen_sql(db: Database) -> str:
    return f"ALTER DATABASE {pg.ident(db.name)} WITH ALLOW_CONNECTIONS true"


def reopen(db: Database) -> None:
    """Allow connections to the database again, over a new connection to its host: the
    one in use may be the one that failed."""
    db.stack.target.close()
    db.query(reopen_sql(db), "postgres")


def reopen_by_hand(db: Database) -> str:
    """The command line that re-opens the database, for a message (on a host: where)."""
    line = shlex.join(db.in_container(pg.psql(db.user, "postgres", reopen_sql(db))))
    return f"`{line}`" + ("" if db.stack.target.local else f" on {db.stack.target.name}")
