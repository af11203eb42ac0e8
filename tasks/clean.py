from invoke import Context, task

from deploy import clean as cleanmod
from deploy.output import say
from tasks._common import helps, open_stack


@task(
    help=helps(
        volumes="also remove the project's unused volumes (needs --yes)",
        include_database="with --volumes: the database volumes too",
        yes="confirm --volumes",
    )
)
def clean(
    c: Context,
    volumes: bool = False,
    include_database: bool = False,
    yes: bool = False,
    stage: str | None = None,
    env_file: str | None = None,
) -> None:
    """Remove stopped containers, dangling images and build cache; print what was freed.

    Images in use are kept. Volumes only with --volumes --yes; database volumes only
    with --include-database as well.
    """
    cleanmod.check_flags(volumes, include_database, yes)
    report = cleanmod.clean(open_stack(c, stage, env_file), volumes=volumes, include_database=include_database, yes=yes)
    say(f"stopped containers removed: {', '.join(report.containers) or 'none'}")
    say(f"dangling images removed: {len(report.images)} ({report.images_freed} freed)")
    say(f"build cache freed: {report.cache_freed}")
    if volumes:
        say(f"volumes removed: {', '.join(report.volumes) or 'none'}")
        for kept in report.kept_volumes:
            say(f"volume kept: {kept}")
