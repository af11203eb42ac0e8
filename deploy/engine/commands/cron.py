"""cron files: a job that a host runs by itself on a schedule (cron's /etc/cron.d).

A file of /etc/cron.d names the user of each line; cron skips files whose names hold a
dot, so a file being written (``NAME.xxxx.tmp``) is never read half-written. cron reads a
file line by line and knows no quoting: a newline in a word (which ``shlex.quote`` keeps)
would end the job's line and start one of its own, so no field of a job may hold a line
break or any other control character (``deploy.validators.one_line``).
"""
from __future__ import annotations

import re
import shlex
from collections.abc import Sequence

from deploy import validators

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
    appended to ``log``. A field with a control character is refused."""
    validators.cron_when(when)
    for what, value in (("the log file", log), ("the comment", comment), *(("a word of the command", w) for w in argv)):
        validators.one_line(value, f"cron job: {what}")
    command = f"{' '.join(map(_word, argv))} >>{_word(log)} 2>&1"
    return f"# {comment}\nSHELL=/bin/sh\nPATH={PATH}\n{when} root {command}\n"


def _word(word: str) -> str:
    """``word`` quoted for sh, every ``%`` (a newline to cron) outside the quotes and
    escaped: ``\\%``, which cron gives sh as ``%``, needs a character before it that is not
    a backslash (cron would read ``\\\\%`` as a backslash, then a ``%`` that ends the command)."""
    if "%" not in word:
        return shlex.quote(word)
    return "\\%".join(shlex.quote(part) if part else "" for part in word.split("%"))


def command_of(text: str) -> str | None:
    """The command of the job line of a file ``crontab`` wrote, as cron gives it to
    /bin/sh (``\\%`` is ``%``; a ``%`` not escaped ends it), or None when there is none."""
    for line in text.split("\n"):
        fields = line.split(" ", 6)
        if len(fields) == 7 and not line.startswith("#") and "=" not in fields[0]:
            command: list[str] = []
            escaped = False
            for ch in fields[6]:
                if escaped:
                    if ch == "%":
                        command[-1] = ch
                    else:
                        command.append(ch)
                    escaped = False
                    continue
                if ch == "%":
                    break
                command.append(ch)
                escaped = ch == "\\"
            return "".join(command)
    return None
