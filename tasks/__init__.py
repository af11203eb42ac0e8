"""Entry point of `inv`: the root collection, built from the task modules beside it.

(Invoke loads ``tasks.py`` or the package ``tasks/``; a package cannot sit beside a
module of the same name, so this file is the entry point. Invoke also puts this folder
on sys.path: no module here may share a name with a package we import, e.g. ``deploy``.)
"""
from invoke import Collection

from tasks import build, check, clean, db, init, lifecycle, lock, logs, release, scale, shell, status

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
    release.deploy,
    release.push,
    release.releases_,
    release.rollback,
):
    ns.add_task(task_)
ns.add_collection(db.ns)
ns.add_collection(lock.ns)
