"""Entry point of `inv`: the root collection, built from the task modules in tasks/.

tasks/ has no __init__.py: this module stands in for the package (``__path__``), so
``tasks.deploy`` is tasks/deploy.py. Invoke then puts this folder (the repository root)
on sys.path, not tasks/, so a task module may share its name with the library's
packages (``deploy``) without hiding them.
"""
import os

from invoke import Collection

__path__ = [os.path.join(os.path.dirname(__file__), "tasks")]

from tasks import build, check, clean, db, deploy, hosts, init, loadtest, lock, logs, push, scale, shell, stack, status, swarm, tls

ns = Collection()
for task_ in (
    init.init,
    check.check,
    stack.up,
    stack.down,
    status.status,
    status.health,
    status.stats,
    shell.exec_,
    shell.shell,
    deploy.deploy,
    deploy.rollback,
    deploy.releases_,
    loadtest.loadtest_,
):
    ns.add_task(task_)
for namespace in (build.ns, push.ns, logs.ns, scale.ns, clean.ns, db.ns, lock.ns, tls.ns, hosts.ns, swarm.ns):
    ns.add_collection(namespace)
