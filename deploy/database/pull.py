"""``db.pull``: the db host's complete scheduled backups copied home, into the stage's
local backups folder (the layout of ``db.backup --stage S``), each checked on arrival.

A file is streamed into ``.partial`` (the rules of deploy.database.files), its sha256
compared with the host's sidecar before it gets its name, then the sidecar and the
host's manifest are written beside it: a copy that does not match is not kept.
"""
from __future__ import annotations

import json
import posixpath
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path

from deploy.database.files import CHUNK, PartialWriter, parse_sidecar, scan, write_sidecars
from deploy.engine.commands import files
from deploy.engine.stack import Stack, last_lines
from deploy.errors import fail


def missing(complete: Sequence[tuple[str, datetime]], local_dir: Path) -> list[str]:
    """Of the host's ``complete`` backups (newest first), those this machine has no
    complete copy of, oldest first."""
    here = {b.path.name for b in scan(local_dir) if b.complete}
    return [name for name, _ in reversed(complete) if name not in here]


def pull(stack: Stack, remote: str, local_dir: Path, progress: Callable[[int], None] = lambda n: None) -> Path:
    """The backup ``remote`` (a path on the db host, beside its sidecar and manifest)
    copied home, complete or absent."""
    name = posixpath.basename(remote)
    sidecar, manifest = stack.target.read_text(f"{remote}.sha256"), stack.target.read_text(f"{remote}.json")
    expected = parse_sidecar(sidecar or "", name)
    if expected is None or manifest is None:
        fail(f"{name} on {stack.target.name} is not complete any more (retention removed it?)", "run inv db.pull again")
    final = local_dir / name
    with PartialWriter(final) as out:
        proc = stack.target.spawn(files.read(remote))
        try:
            for chunk in iter(lambda: proc.stdout.read(CHUNK), b""):
                out.write(chunk)
                progress(out.size)
            code = proc.wait()
        finally:
            proc.kill()
        if code != 0:
            fail(f"reading {remote} on {stack.target.name} failed: {last_lines(proc.stderr_text(), 2)}; nothing was kept",
                 "run inv db.pull again")
        if out.sha256.hexdigest() != expected:
            fail(f"{name} arrived with sha256 {out.sha256.hexdigest()}, the host's sidecar says {expected}; nothing was kept",
                 "run inv db.pull again; if it repeats, run inv db.verify on the host's copy")
        sha256 = out.commit()
    write_sidecars(final, sha256, json.loads(manifest))
    return final
