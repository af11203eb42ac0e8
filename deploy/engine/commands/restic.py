"""restic command lines (offsite copies of the scheduled backups), run on the db host.

Nothing secret is ever an argument: restic reads its repository (whose URL may hold
credentials), the path of its password file and any other variables it needs from an
env file of ours (0600), sourced by ``with_env``.
"""
from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence

from deploy import validators
from deploy.retention import Policy

SOURCE = 'set -a; . "$1"; set +a; shift; exec "$@"'


def env_file(values: Mapping[str, str]) -> str:
    """An env file for ``sh``'s ``.``: one ``NAME='value'`` a line (pure); a name that is
    not a variable's, or a value not on one line, refused (values never shown: secrets)."""
    return "".join(f"{validators.env_name(name, 'the offsite env file')}={shlex.quote(validators.secret_line(value, name))}\n"
                   for name, value in values.items())


def with_env(path: str, argv: Sequence[str]) -> list[str]:
    """``argv`` run with the variables of the env file ``path``."""
    return ["sh", "-c", SOURCE, "sh", path, *argv]


def restic(sftp_command: str, *args: str) -> list[str]:
    return ["restic", *(["-o", f"sftp.command={sftp_command}"] if sftp_command else []), *args]


def init(sftp_command: str) -> list[str]:
    return restic(sftp_command, "init")


def snapshots(sftp_command: str, tag: str) -> list[str]:
    """The snapshots of ``tag`` as JSON."""
    return restic(sftp_command, "snapshots", "--json", "--tag", tag)


def restore(sftp_command: str, snapshot: str, target: str) -> list[str]:
    return restic(sftp_command, "restore", snapshot, "--target", target)


def backup(sftp_command: str, tag: str, paths: Sequence[str]) -> list[str]:
    return restic(sftp_command, "backup", "--quiet", "--tag", tag, *paths)


def forget(sftp_command: str, tag: str, p: Policy, *, report: bool = False, dry_run: bool = False) -> list[str]:
    """The snapshots of ``tag`` that ``p`` does not keep forgotten, their data pruned: the
    one builder of the scheduled job's retention and ``inv db.offsite.prune``'s. ``report``:
    what it keeps (with restic's reasons) and removes printed as JSON, nothing else;
    ``dry_run``: nothing removed. Grouped by the tag: restic's default groups (host and
    paths) would hold one snapshot each, since every backup has paths of its own, and keep
    them all. restic measures ``--keep-within`` from the newest snapshot, in whole hours:
    the minimum age rounded up."""
    buckets = [arg for rule, n in p.counts() if n for arg in (f"--keep-{rule}", str(int(n)))]
    within = ["--keep-within", f"{-(-p.min_age // 3600)}h"] if p.min_age else []
    return restic(sftp_command, "forget", "--quiet", *(["--json"] if report else []), *(["--dry-run"] if dry_run else []),
                  "--tag", tag, "--group-by", "tags", "--keep-last", str(int(p.last)), *buckets, *within, "--prune")
