"""Entry point of `inv`: the root collection, built from the task modules beside it.

(Invoke loads ``tasks.py`` or the package ``tasks/``; a package cannot sit beside a
module of the same name, so this file is the entry point.)
"""
from invoke import Collection

from tasks import build, check, clean, db, init, lifecycle, logs, scale, shell, status

ns = Collection()
for task_ in (
    init.init,
    check.check,
    build.build,
    lifecycle.up,
    lifecycle.down,
    status.status,
    status.health,
    status.stats,
    logs.logs,
    scale.scale,
    shell.exec_,
    shell.shell,
    clean.clean,
):
    ns.add_task(task_)
ns.add_collection(db.ns)
