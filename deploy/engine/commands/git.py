"""``git`` command lines on a checkout (this machine's)."""
from __future__ import annotations


def is_work_tree(root: str) -> list[str]:
    """Succeeds inside a git work tree."""
    return ["git", "-C", root, "rev-parse", "--is-inside-work-tree"]


def head(root: str) -> list[str]:
    """The commit checked out (full sha)."""
    return ["git", "-C", root, "rev-parse", "HEAD"]


def is_tracked(root: str, path: str) -> list[str]:
    """Succeeds when ``path`` is tracked."""
    return ["git", "-C", root, "ls-files", "--error-unmatch", "--", path]


def is_ignored(root: str, path: str) -> list[str]:
    """Succeeds when ``path`` is ignored."""
    return ["git", "-C", root, "check-ignore", "--quiet", "--", path]
