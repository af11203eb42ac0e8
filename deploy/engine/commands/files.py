"""File-system command lines on a target (state directories, the deploy lock, uploads)."""
from __future__ import annotations


def make_dirs(path: str) -> list[str]:
    """``path`` and its missing parents; fine when it exists."""
    return ["mkdir", "-p", path]


def make_dir(path: str) -> list[str]:
    """Fails when ``path`` exists: an atomic test-and-set (the deploy lock)."""
    return ["mkdir", path]


def install_dir(path: str, mode: int = 0o750) -> list[str]:
    """``path`` and its missing parents, ``path`` itself with ``mode``."""
    return ["install", "-d", "-m", f"{mode:04o}", path]


def is_dir(path: str) -> list[str]:
    return ["test", "-d", path]


def is_file(path: str) -> list[str]:
    return ["test", "-f", path]


def remove_tree(path: str) -> list[str]:
    return ["rm", "-rf", path]


def remove_files(*paths: str) -> list[str]:
    """``paths`` gone, whether they were there or not."""
    return ["rm", "-f", "--", *paths]


def read(path: str) -> list[str]:
    """``path``'s bytes on stdout."""
    return ["cat", "--", path]


def list_dir(path: str) -> list[str]:
    """The names in ``path``, one a line (``.`` files too, not ``.`` and ``..``)."""
    return ["ls", "-1A", "--", path]


def untar(directory: str) -> list[str]:
    """Unpack a tar read from stdin into ``directory``, files owned by the one running it."""
    return ["tar", "-x", "--no-same-owner", "-C", directory, "-f", "-"]


def chown(owner: str, path: str) -> list[str]:
    """``owner`` is ``uid:gid`` (numbers: the user of a container may not exist here)."""
    return ["chown", owner, path]


def rename(source: str, destination: str) -> list[str]:
    """Within one folder: rename(2), so readers see the old file or the new one, never a mix."""
    return ["mv", "-f", "-T", source, destination]


def move_new(source: str, destination: str) -> list[str]:
    """``source`` (a file or a folder) renamed to ``destination`` unless that exists:
    rename(2), atomic on one file system (who reads the old name finds it, or not)."""
    return ["mv", "-n", "-T", source, destination]


# the age of the first of its arguments that exists, in whole seconds of the target's own clock
AGE_SCRIPT = 'now=$(date +%s); for f; do [ -e "$f" ] && { echo $((now - $(date -r "$f" +%s))); exit 0; }; done; exit 1'


def age_seconds(*paths: str) -> list[str]:
    """Seconds since the first of ``paths`` that exists was last written, by the target's
    clock (its mtime against its own ``date``: no other machine's clock is compared);
    exits 1 when none exists."""
    return ["sh", "-c", AGE_SCRIPT, "sh", *paths]
