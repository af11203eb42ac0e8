"""cron files: a job that a host runs by itself on a schedule (cron's /etc/cron.d).

A file of /etc/cron.d names the user of each line; cron skips files whose names hold a
dot, so a file being written (``NAME.xxxx.tmp``) is never read half-written.
"""
from __future__ import annotations

import re
import shlex
from collections.abc import Sequence

CRON_DIR = "/etc/cron.d"
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


DAEMONS = ("cron", "crond")  # Debian's; cronie's, busybox's


def daemon_running() -> list[str]:
    """Succeeds when a cron daemon runs (a process named as one of ``DAEMONS``), read from
    /proc, so that it needs nothing but sh."""
    names = "|".join(DAEMONS)
    return ["sh", "-c", f'for f in /proc/[0-9]*/comm; do read -r n <"$f" && case $n in {names}) exit 0;; esac; done 2>/dev/null; exit 1']


def file_name(*parts: str) -> str:
    """A cron.d file name (letters, digits, ``-``, ``_`` only) made of ``parts``."""
    return re.sub(r"[^A-Za-z0-9_-]", "-", "-".join(parts))


def spread(key: str, modulo: int) -> int:
    """A stable number below ``modulo`` for ``key`` (minutes and hours that differ between
    stacks, so that many hosts do not all ask a CA at the same minute)."""
    return sum((i + 1) * ord(ch) for i, ch in enumerate(key)) % modulo


def crontab(when: str, argv: Sequence[str], log: str, comment: str) -> str:
    """The file: ``argv`` run as root at ``when`` (cron's five time fields), its output
    appended to ``log``. ``%`` is a newline to cron and is escaped."""
    command = f"{shlex.join(argv)} >>{shlex.quote(log)} 2>&1".replace("%", "\\%")
    return f"# {comment}\nSHELL=/bin/sh\nPATH={PATH}\n{when} root {command}\n"


def command_of(text: str) -> str | None:
    """The command of the job line of a file ``crontab`` wrote (as cron gives it to
    /bin/sh), or None when there is none."""
    for line in text.splitlines():
        fields = line.split(None, 6)
        if len(fields) == 7 and not line.startswith("#") and "=" not in fields[0]:
            return fields[6].replace("\\%", "%")
    return None
