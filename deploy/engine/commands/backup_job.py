"""The scheduled backup: a POSIX sh script that cron runs on the db host, needing only
what a deploy put there (Docker, the database's container) and the base system (sh,
coreutils, flock). It follows every rule of ``inv db.backup`` (deploy.database):

- pg_dump and the manifest's row counts share one exported snapshot (a psql session
  holds a REPEATABLE READ transaction while pg_dump reads its snapshot);
- the dump is written as ``NAME.dump.partial`` (0600, flock held) and fsynced, then
  renamed; then the ``.sha256`` sidecar, then the ``.json`` manifest, written last
  (until it exists the backup is not complete);
- a run killed at any moment leaves no complete-looking file; the next run removes the
  partials no one holds;
- one run at a time (flock on ``.schedule.lock``: a run that finds it taken is skipped);
- then retention, by the rule of ``deploy.retention`` (its sh twin, ``retention_section``),
  counting a backup complete by the rule of ``deploy.database.files.scan`` (its sidecar
  records a sha256 for it, its manifest the same one: ``COMPLETE_SH``); an incomplete one
  counts for no rule, so it never takes the place of a good one (the bytes are checked
  by a restore and the weekly drill, not on each run: that would read every backup kept);
- its outcome, as JSON, in ``last-run.json`` (what ``inv db.schedule`` and ``inv
  health`` read), its output appended to ``schedule.log`` (kept under 1 MiB: one old
  file, ``schedule.log.1``).
psql serves as the JSON writer: every value reaches it as a psql variable (quoted by
``:'name'``), never spliced into SQL.
"""
from __future__ import annotations

import shlex
from dataclasses import astuple, dataclass, replace

from deploy import validators
from deploy.engine.commands import postgres as pg
from deploy.engine.commands import restic
from deploy.retention import BUCKETS, Policy

LABEL = "scheduled"
STATUS_FILE = "last-run.json"
OFFSITE_FILE = "offsite-last.json"  # the last backup copied offsite, and when
DRILL_FILE = "drill.json"  # the last restore drill's outcome
LOG_FILE = "schedule.log"
LOCK_FILE = ".schedule.lock"
LOG_LIMIT = 1 << 20
SCRATCH = "\0scratch"  # stands for the drill's scratch database in an argv (no real word holds a NUL)

MANIFEST_SQL = (
    "SELECT json_build_object('format', 1, 'file', :'file', 'project', :'project', 'stage', :'stage', 'database', :'db', "
    "'server_version', :'server_version', 'created_at', :'created_at', 'size', (:'size')::bigint, 'sha256', :'sha256', "
    "'duration_seconds', (:'seconds')::numeric, 'app_version', :'app_version', 'label', :'label', "
    "'row_counts', (:'counts')::json);"
)


# The rule of deploy.database.files.scan in sh (awk): ``recorded_sha256 DUMP`` prints the
# sha256 DUMP.sha256 records for DUMP (parse_sidecar: one line, 64 hex digits, a space, a
# space or a star, DUMP's name, surrounding white space ignored), or nothing;
# ``complete DUMP`` is true when there is one and the manifest DUMP.json, a JSON object
# (a text from { to }), records the same one as its only "sha256" string; ``$sha`` is
# then that sha256.
COMPLETE_SH = r"""recorded_sha256() {
    [ -f "$1.sha256" ] || return 0
    awk -v name="$1" '{ t = t (NR > 1 ? "\n" : "") $0 }
        END { sub(/^[ \t\r\n]+/, "", t); sub(/[ \t\r\n]+$/, "", t); h = substr(t, 1, 64); m = substr(t, 66, 1)
              if (length(h) == 64 && h ~ /^[0-9a-f]+$/ && substr(t, 65, 1) == " " && (m == " " || m == "*") && substr(t, 67) == name)
                  print h }' "$1.sha256"
}
manifest_records() {
    [ -f "$1.json" ] || return 1
    awk -v sha="$2" '{ t = t $0 "\n" }
        END { sub(/^[ \t\r\n]+/, "", t); sub(/[ \t\r\n]+$/, "", t)
              if (substr(t, 1, 1) != "{" || substr(t, length(t), 1) != "}") exit 1
              n = 0
              while (match(t, /"sha256"[ \t\r\n]*:[ \t\r\n]*"[^"]*"/)) {
                  v = substr(t, RSTART, RLENGTH); t = substr(t, RSTART + RLENGTH); n++
                  sub(/^"sha256"[ \t\r\n]*:[ \t\r\n]*"/, "", v); sub(/"$/, "", v)
              }
              exit !(n == 1 && v == sha) }' "$1.json"
}
complete() {
    sha=$(recorded_sha256 "$1") || sha=""
    [ -n "$sha" ] && [ -f "$1" ] && manifest_records "$1" "$sha"
}"""


@dataclass(frozen=True)
class OffsiteCopy:
    """After each backup: its files into a restic repository, then restic's own retention
    (none for a repository the host may only append to: ``inv db.offsite.prune`` applies
    it from elsewhere)."""

    env_file: str  # on the host, 0600: RESTIC_REPOSITORY, RESTIC_PASSWORD_FILE, ...
    sftp_command: str
    tag: str  # the stage's snapshots
    retention: Policy | None  # None: the repository is append-only for the host


@dataclass(frozen=True)
class Job:
    """What one stage's scheduled backup needs to know (none of it secret)."""

    project: str
    stage: str
    service: str  # the PostgreSQL service
    app_service: str  # whose running version the manifest records
    user: str
    database: str
    directory: str  # where the backups go on the host
    retention: Policy
    offsite: OffsiteCopy | None = None


def shell_words(argv: list[str], variables: dict[str, str]) -> str:
    """``argv`` as sh words, each quoted, except the words in ``variables``, which become
    the (quoted) shell expansion given for them."""
    return " ".join(variables.get(word) or shlex.quote(word) for word in argv)


def _header(job: Job, what: str) -> str:
    """The first lines of both scripts: strict sh, private files, the job's facts (the
    project and the stage also in a comment: names; no text of the job on two lines)."""
    validators.project(job.project, "the scheduled backup's project")
    validators.stage(job.stage, "the scheduled backup's stage")
    for value in (*astuple(replace(job, offsite=None)), *(astuple(job.offsite) if job.offsite else ())):
        if isinstance(value, str):
            validators.one_line(value, "a setting of the scheduled backup")
    q = shlex.quote
    return f"""#!/bin/sh
# Written by `inv db.schedule` for {job.project}/{job.stage}: {what}
# (deploy/engine/commands/backup_job.py says how).
set -eu
umask 077
export LC_ALL=C
export TZ=UTC  # restic's snapshot times, hence its daily, weekly and monthly buckets, in UTC like ours
DIR={q(job.directory)}
PROJECT={q(job.project)}
STAGE={q(job.stage)}
SERVICE={q(job.service)}
APP_SERVICE={q(job.app_service)}
DB={q(job.database)}"""


def _find_container() -> str:
    """Sets ``pg``: the database's running container (cron's Docker is the default socket)."""
    return """ids=$(docker ps -q --filter "label=com.docker.compose.project=$PROJECT" --filter "label=com.docker.compose.service=$SERVICE" 2>&1) \\
    || die "Docker is not reachable (cron uses its default socket): $ids"
pg=$(printf '%s\\n' "$ids" | head -n 1)
[ -n "$pg" ] || die "the $SERVICE container of $PROJECT is not running\""""


def offsite_section(copy: OffsiteCopy | None) -> str:
    """The script's last part: the new backup's three files copied offsite (nothing without ``copy``)."""
    if copy is None:
        return ""
    save = shlex.join(restic.with_env(copy.env_file, restic.backup(copy.sftp_command, copy.tag, [])))
    if copy.retention is None:
        forget, said = "", "copied $name offsite (append-only here: its retention is inv db.offsite.prune's, run elsewhere)"
    else:
        forget = " && " + shlex.join(restic.with_env(copy.env_file, restic.forget(copy.sftp_command, copy.tag, copy.retention))) + " 2>&1"
        said = "copied $name offsite, its retention applied"
    return f"""
# offsite: the new backup's files into the restic repository, then its retention (unless append-only)
if copied=$({save} "$DIR/$name" "$DIR/$name.sha256" "$DIR/$name.json" 2>&1{forget}); then
    printf '{{"at": %s, "file": %s}}\\n' "$(json_text "$(date -u +%Y-%m-%dT%H:%M:%S+00:00)")" "$(json_text "$name")" >{OFFSITE_FILE}.tmp
    chmod 0644 {OFFSITE_FILE}.tmp
    mv -f {OFFSITE_FILE}.tmp {OFFSITE_FILE}
    echo "$(date -u +%FT%TZ) {said}"
else
    offsite_error="offsite copy failed: $(printf '%s' "$copied" | tail -n 3 | tr '\\n' ' ')"
    echo "$(date -u +%FT%TZ) $offsite_error"
fi
"""


def retention_section(p: Policy) -> str:
    """The rule of ``deploy.retention.decide`` in sh, over this job's backups in the
    current folder, ``$started`` (epoch seconds) being now: the same order (newest
    first), the same buckets (date(1) given decide's strftime formats, in UTC), the same
    minimum age."""
    buckets = "".join(f"""
        if [ "$left_{rule}" -gt 0 ]; then
            key=$(date -u -d "$ymd" +{shlex.quote(fmt)})
            if [ "$key" != "$last_{rule}" ]; then keep=yes; last_{rule}=$key; left_{rule}=$((left_{rule} - 1)); fi
        fi""" for rule, fmt in BUCKETS)
    counts = " ".join(f"left_{rule}={int(n)} last_{rule}=''" for rule, n in p.counts())
    return f"""# retention (deploy/retention.py): {p.summary}; of this job's backups only (the folder
# may hold those of db.backup too; a name's first stamp is its stamp, as files.NAME reads
# it); complete ones (files.scan's rule) counted, newest first
young=$(date -u -d "@$((started - {int(p.min_age)}))" +%Y%m%dT%H%M%SZ)  # a backup stamped after this is under the minimum age
ls -1 | sed -nE '/^[A-Za-z0-9_.-]+-[0-9]{{8}}T[0-9]{{6}}Z-([A-Za-z0-9_.-]*-)?[0-9]{{8}}T[0-9]{{6}}Z-'"$LABEL"'\\.dump$/d
    s/^([A-Za-z0-9_.-]+-([0-9]{{8}}T[0-9]{{6}}Z)-'"$LABEL"'\\.dump)$/\\2 \\1/p' | sort -r >"$work/list"
n=0 newest='' {counts}
while read -r stamp dump; do
    keep=""
    if complete "$dump"; then
        n=$((n + 1))
        [ -n "$newest" ] || newest=$stamp
        if [ "$n" -le {int(p.last)} ]; then keep=yes; fi
        day=${{stamp%%T*}}; md=${{day#????}}; ymd="${{day%????}}-${{md%??}}-${{md#??}}"{buckets}
    elif [ -z "$newest" ] || ! [ "$stamp" \\< "$newest" ]; then
        keep=yes  # incomplete, but not older than the newest complete backup
    fi
    if [ "$young" \\< "$stamp" ]; then keep=yes; fi
    if [ -z "$keep" ]; then
        rm -f "$dump.json" "$dump.verified.json" "$dump.sha256" "$dump"
        echo "$(date -u +%FT%TZ) retention: deleted $dump"
    fi
done <"$work/list"
"""


def script(job: Job) -> str:
    q = shlex.quote
    psql = shlex.join(pg.psql(job.user, job.database))
    dump = shlex.join(pg.pg_dump(job.user, job.database))
    return f"""{_header(job, "one backup by the rules of `inv db.backup`, then retention")}
LABEL={LABEL}

mkdir -p "$DIR"
cd "$DIR"
if [ -f {LOG_FILE} ] && [ "$(stat -c %s {LOG_FILE})" -gt {LOG_LIMIT} ]; then mv -f {LOG_FILE} {LOG_FILE}.1; fi
exec 9>>{LOCK_FILE}
if ! flock -n 9; then echo "$(date -u +%FT%TZ) skipped: the run of before still holds {LOCK_FILE}"; exit 0; fi

started=$(date -u +%s)
started_at=$(date -u -d "@$started" +%Y-%m-%dT%H:%M:%S+00:00)
name="$DB-$(date -u -d "@$started" +%Y%m%dT%H%M%SZ)-$LABEL.dump"
work=$(mktemp -d)
psql_pid=""

json_text() {{  # a JSON string of $1 (quotes, backslashes; control characters dropped)
    printf '"%s"' "$(printf '%s' "$1" | tr -d '\\000-\\037' | sed 's/\\\\/\\\\\\\\/g; s/"/\\\\"/g')"
}}
status() {{  # $1: ok (true/false), $2: the backup's file or "", $3: the error or "", $4: the offsite copy's error or ""
    finished=$(date -u +%s)
    printf '{{"ok": %s, "started_at": %s, "seconds": %s, "file": %s, "error": %s, "offsite_error": %s}}\\n' "$1" \\
        "$(json_text "$started_at")" "$((finished - started))" "$(json_text "$2")" "$(json_text "$3")" "$(json_text "${{4:-}}")" \\
        >{STATUS_FILE}.tmp
    chmod 0644 {STATUS_FILE}.tmp
    mv -f {STATUS_FILE}.tmp {STATUS_FILE}
}}
finish() {{
    code=$?
    [ -z "$psql_pid" ] || kill "$psql_pid" 2>/dev/null || true
    rm -rf "$work"
    [ -z "${{partial:-}}" ] || rm -f "$partial"
    rm -f "$name.sha256.tmp" "$name.json.tmp"  # a sidecar not yet in place (as atomic.write_atomic removes its temp file)
    if [ "$code" != 0 ]; then
        status false "" "${{error:-exit $code}}"
        echo "$(date -u +%FT%TZ) failed: ${{error:-exit $code}}"
    fi
}}
trap finish EXIT
trap 'error="stopped by a signal"; exit 1' HUP INT TERM
die() {{ error=$1; exit 1; }}
{COMPLETE_SH}

# what runs that died left: partials (a writer holds its partial's lock while it writes)
# and this job's own temporary sidecars
for old in *.dump.partial; do
    [ -e "$old" ] || continue
    flock -n "$old" rm -f "$old" || true
done
rm -f -- *-"$LABEL".dump.sha256.tmp *-"$LABEL".dump.json.tmp

{_find_container()}
app_version=$(docker ps -q --filter "label=com.docker.compose.project=$PROJECT" --filter "label=com.docker.compose.service=$APP_SERVICE" \\
    | xargs -r docker inspect -f '{{{{index .Config.Labels "org.opencontainers.image.version"}}}}' | sort -u | paste -sd, -)

# the session that holds the snapshot; its answers, one a line, in $work/out
mkfifo "$work/in"
: >"$work/out"  # before psql's redirection makes it: wait_lines must never read a missing file (its test fails, the wait ends early)
docker exec -i "$pg" {psql} <"$work/in" >"$work/out" 2>"$work/err" &
psql_pid=$!
exec 7>"$work/in"
printf '%s\\n' 'BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;' 'SELECT pg_export_snapshot();' \\
    'SET max_parallel_workers_per_gather = 0;' 'SHOW server_version;' >&7  # SET answers nothing (psql -q), as in db.backup
lines() {{ wc -l <"$work/out"; }}
wait_lines() {{  # $1 lines of answers, within $2 seconds
    i=0
    while [ "$(lines)" -lt "$1" ]; do
        kill -0 "$psql_pid" 2>/dev/null || die "psql ended: $(tail -n 3 "$work/err")"
        i=$((i + 1)); [ "$i" -lt "$(($2 * 10))" ] || die "psql did not answer within $2 s"
        sleep 0.1
    done
}}
wait_lines 2 60
snapshot=$(sed -n 1p "$work/out")
server_version=$(sed -n 2p "$work/out")
[ -n "$snapshot" ] || die "could not export a snapshot: $(tail -n 3 "$work/err")"  # as db.backup's SnapshotSession
printf '%s\\n' {q(pg.ROW_COUNTS_SQL)} >&7  # counted in the snapshot while pg_dump reads it

[ ! -e "$name" ] || die "$name already exists (two runs in one second)"
partial="$name.partial"
exec 8>"$partial"
flock -n 8 || die "$partial is held by another writer"
docker exec "$pg" {dump} --snapshot="$snapshot" >&8 2>"$work/dump.err" || die "pg_dump failed: $(tail -n 3 "$work/dump.err")"
[ "$(head -c 5 "$partial")" = PGDMP ] || die "pg_dump produced no archive"
wait_lines 3 86400  # exact counts of big tables may take longer than the dump
counts=$(sed -n 3p "$work/out")
printf 'COMMIT;\\n' >&7
exec 7>&-
wait "$psql_pid" || die "the snapshot session failed: $(tail -n 3 "$work/err")"
psql_pid=""

sha256=$(sha256sum "$partial" | cut -d ' ' -f 1)
size=$(stat -c %s "$partial")
sync "$partial"
mv -f "$partial" "$name"  # still locked (fd 8) until it has its name: no sweep can take it
partial=""
exec 8>&-
printf '%s  %s\\n' "$sha256" "$name" >"$name.sha256.tmp"
chmod 0644 "$name.sha256.tmp"
mv -f "$name.sha256.tmp" "$name.sha256"
seconds=$(( $(date -u +%s) - started ))
printf '%s\\n' {q(MANIFEST_SQL)} | docker exec -i "$pg" {psql} -v file="$name" -v project="$PROJECT" -v stage="$STAGE" \\
    -v db="$DB" -v server_version="$server_version" -v created_at="$started_at" -v size="$size" -v sha256="$sha256" \\
    -v seconds="$seconds" -v app_version="${{app_version:-not running}}" -v label="$LABEL" -v counts="$counts" \\
    >"$name.json.tmp" 2>"$work/err" || die "writing the manifest failed: $(tail -n 3 "$work/err")"
sync "$name" "$name.sha256" "$name.json.tmp"
chmod 0644 "$name.json.tmp"
mv -f "$name.json.tmp" "$name.json"  # the last file: the backup is complete
sync .
echo "$(date -u +%FT%TZ) backed up $name ($size bytes, ${{seconds}} s)"

{retention_section(job.retention)}
offsite_error=""
{offsite_section(job.offsite)}
status true "$name" "" "$offsite_error"
"""


def drill_script(job: Job) -> str:
    """The weekly restore drill (``inv db.verify latest --restore-test`` on the host): the
    newest complete backup's checksum, a full read, a restore into a scratch database
    whose row counts must equal the manifest's; recorded beside the backup (as db.verify
    does) and in ``drill.json``. It waits for a backup run that holds the lock."""
    q = shlex.quote
    admin = shlex.join(pg.psql(job.user, "postgres"))
    restore_into = shell_words(pg.pg_restore_into(job.user, SCRATCH), {SCRATCH: '"$scratch"'})
    return f"""{_header(job, "the weekly restore drill")}
cd "$DIR"
exec 9>>{LOCK_FILE}
flock -w 3600 9 || {{ echo "$(date -u +%FT%TZ) drill skipped: a backup run held {LOCK_FILE} for an hour"; exit 0; }}
started_at=$(date -u +%Y-%m-%dT%H:%M:%S+00:00)
scratch=""
newest=""
json_text() {{ printf '"%s"' "$(printf '%s' "$1" | tr -d '\\000-\\037' | sed 's/\\\\/\\\\\\\\/g; s/"/\\\\"/g')"; }}
record() {{  # $1 ok, $2 error
    printf '{{"ok": %s, "at": %s, "file": %s, "error": %s}}\\n' "$1" "$(json_text "$started_at")" "$(json_text "$newest")" \\
        "$(json_text "$2")" >{DRILL_FILE}.tmp
    chmod 0644 {DRILL_FILE}.tmp
    mv -f {DRILL_FILE}.tmp {DRILL_FILE}
}}
finish() {{
    code=$?
    if [ -n "$scratch" ]; then
        printf '%s\\n' 'DROP DATABASE IF EXISTS :"scratch" WITH (FORCE);' | docker exec -i "$pg" {admin} -v scratch="$scratch" >/dev/null 2>&1 || true
    fi
    if [ "$code" != 0 ]; then
        record false "${{error:-exit $code}}"
        echo "$(date -u +%FT%TZ) restore drill failed: ${{error:-exit $code}}"
    fi
}}
trap finish EXIT
trap 'error="stopped by a signal"; exit 1' HUP INT TERM
die() {{ error=$1; exit 1; }}
{COMPLETE_SH}

# the newest complete backup by files.scan's rule (as `inv db.verify latest`), then its bytes checked
newest=$(ls -1 | sed -nE 's/^([A-Za-z0-9_.-]+-([0-9]{{8}}T[0-9]{{6}}Z)(-[A-Za-z0-9._-]+)?\\.dump)$/\\2 \\1/p' | sort -r \\
    | while read -r stamp dump; do if complete "$dump"; then echo "$dump"; break; fi; done)
[ -n "$newest" ] || die "no complete backup in $DIR"
sha256sum -c --status "$newest.sha256" || die "$newest does not match its checksum"
{_find_container()}
docker exec -i "$pg" {shlex.join(pg.pg_restore_read())} <"$newest" 2>/dev/null || die "$newest cannot be read to its end"
scratch=$(printf '%s' "$DB" | cut -c 1-40)_drill_$(date -u +%Y%m%d%H%M%S)
printf '%s\\n' 'CREATE DATABASE :"scratch" OWNER :"owner";' | docker exec -i "$pg" {admin} -v scratch="$scratch" -v owner={q(job.user)} >/dev/null \\
    || die "creating the scratch database failed"
docker exec -i "$pg" {restore_into} <"$newest" 2>/dev/null || die "restoring $newest into a scratch database failed"
counts=$(printf '%s\\n' '\\connect :"scratch"' {q(pg.ROW_COUNTS_SQL)} | docker exec -i "$pg" {admin} -v scratch="$scratch")
same=$(printf '%s\\n' "SELECT (:'counts')::jsonb = ((:'manifest')::json -> 'row_counts')::jsonb;" \\
    | docker exec -i "$pg" {admin} -v counts="$counts" -v manifest="$(cat "$newest.json")")
[ "$same" = t ] || die "the row counts restored from $newest differ from its manifest"
sha256=$(cut -d ' ' -f 1 "$newest.sha256")
printf '{{"ok": true, "sha256": "%s", "checks": ["checksum", "full read", "restore test"], "verified_at": "%s"}}\\n' "$sha256" "$started_at" \\
    >"$newest.verified.json.tmp"
chmod 0644 "$newest.verified.json.tmp"
mv -f "$newest.verified.json.tmp" "$newest.verified.json"
record true ""
echo "$(date -u +%FT%TZ) restore drill of $newest: checksum, full read, restore test ok"
"""
