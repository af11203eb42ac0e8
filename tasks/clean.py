"""The `clean` namespace: `inv clean` frees what the project no longer uses."""
from __future__ import annotations

from typing import TYPE_CHECKING

from invoke import Collection, Context

from tasks._open import compose_only, open_fleet
from tasks._where import Where, on_hosts

if TYPE_CHECKING:
    from deploy.fleet import Member


@on_hosts(
    locks=True,
    help={
        "volumes": "also remove the project's unused volumes (needs --yes)",
        "include_database": "with --volumes: the database volumes too",
        "yes": "confirm --volumes",
    }
)
def clean(c: Context, volumes: bool = False, include_database: bool = False, yes: bool = False, *, where: Where) -> None:
    """Remove stopped containers, dangling images and build cache; print what was freed.

    Images in use are kept. Volumes only with --volumes --yes; database volumes only
    with --include-database as well.
    """
    from deploy.output import say
    from deploy.stack import clean as cleanmod
    from deploy.stack.owner import refuse_other_stage
    from deploy.state import lock

    cleanmod.check_flags(volumes, include_database, yes)

    def clean_one(m: Member) -> None:
        report = cleanmod.clean(m.stack, volumes=volumes, include_database=include_database, yes=yes)
        say(f"stopped containers removed: {', '.join(report.containers) or 'none'}")
        say(f"dangling images removed: {len(report.images)} ({report.images_freed} freed)")
        say(f"build cache freed: {report.cache_freed}")
        if volumes:
            say(f"volumes removed: {', '.join(report.volumes) or 'none'}")
            for kept in report.kept_volumes:
                say(f"volume kept: {kept}")

    fleet = compose_only(open_fleet(c, where), "clean", "on a manager: docker stack rm PROJECT, then docker volume rm on the db node")
    refuse_other_stage(fleet)
    with lock.held(fleet.primary.stack, "clean", wait=where.lock_wait, volumes=volumes, include_database=include_database):
        fleet.each(clean_one, what="clean")


ns = Collection("clean")
ns.add_task(clean, default=True)
