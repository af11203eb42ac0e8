from invoke import Context, Exit, task

from deploy.release import pipeline
from deploy.state import history as releases
from deploy.release.hosts_deploy import HostsDeploy, rollback_hosts
from deploy.output import say, table
from deploy.engine.stack import Stack
from deploy.engine.target import LocalTarget
from deploy.versions import parse
from tasks._common import Where, helps, host_helps, on_hosts, open_fleet, open_stack, served_at, whole_number


def _version(stack, version: str | None, bump: str | None):
    if bool(version) == bool(bump):
        raise Exit("error: give --version X.Y.Z or --bump major|minor|patch (one of them)\n  fix: e.g. inv deploy --version 1.0.0", code=1)
    if version:
        return parse(version)
    serving = releases.current(stack)
    if serving is None:
        raise Exit("error: --bump needs a previous release, and there is none\n  fix: deploy a first --version X.Y.Z", code=1)
    return parse(serving.version).bump(bump)


@task(
    help=host_helps(
        version="the release's semantic version, e.g. 1.4.0",
        bump="instead of --version: major, minor or patch of the last release",
        dry_run="print every step and command (secrets masked) and change nothing",
        skip_tests="skip deploy.test_command",
        skip_backup="skip the database backup before migrating (not recommended)",
        restart_stateful="apply a changed image or configuration of postgres/redis (restarts them, after the backup)",
        timeout="seconds a new container may take to become healthy (default: deploy.up_timeout)",
        parallel="on hosts: app hosts switched at once (default 1: the others keep serving at full capacity)",
    )
)
@on_hosts
def deploy(
    c: Context,
    version: str | None = None,
    bump: str | None = None,
    dry_run: bool = False,
    skip_tests: bool = False,
    skip_backup: bool = False,
    restart_stateful: bool = False,
    timeout: str | None = None,
    parallel: str | None = None,
    *,
    where: Where,
) -> None:
    """Deploy a release: preflight, tests, backup, build, tag, push, migrate, zero-downtime rollout, verify, cleanup.

    A failed rollout or verification rolls back automatically; the release history
    records every deploy (inv releases). On a stage with hosts: build and push here,
    pull on every host, then switch the app hosts in batches; a failed host rolls back
    every host already switched (all or nothing).
    """
    if restart_stateful and skip_backup:
        raise Exit("error: --restart-stateful restarts the database: it needs the backup step\n  fix: drop --skip-backup", code=1)
    fleet = open_fleet(c, where)
    home = fleet.primary.stack
    ver = _version(home, version, bump)
    seconds = whole_number("--timeout", timeout, minimum=1) if timeout else fleet.settings.config.up_timeout
    options = pipeline.DeployOptions(skip_tests=skip_tests, skip_backup=skip_backup, restart_stateful=restart_stateful, timeout=seconds)
    if fleet.remote:
        batch = whole_number("--parallel", parallel, minimum=1) if parallel else 1
        d: pipeline.Deploy = HostsDeploy(fleet, Stack(fleet.settings, LocalTarget(c)), LocalTarget(c), ver, options, say, batch)
    else:
        d = pipeline.Deploy(home, LocalTarget(c), ver, options, say)
    where_to = ", ".join(m.name for m in fleet.members)
    if dry_run:
        say(f"dry run: deploy {ver} to {fleet.settings.stage.name} on {where_to}; nothing is changed")
        for line in pipeline.describe(d.new, d.steps()):
            say(line)
        return
    release = pipeline.deploy(d)
    say(f"[green]deployed {release.version}[/green] to {where_to} in {release.duration_seconds:.1f} s{'' if fleet.remote else served_at(d.new)}")


@task(help=helps(version="the release whose images to push (default: the one now serving)"))
def push(c: Context, version: str | None = None, stage: str | None = None, env_file: str | None = None) -> None:
    """Push a release's images (every tag) from this machine's engine to the registry, with retries."""
    stack = open_stack(c, stage, env_file)
    serving = releases.current(stack)
    if not version and not serving:
        raise Exit("error: no --version given and no release deployed\n  fix: inv push --version X.Y.Z", code=1)
    pipeline.push_release(stack, parse(version or serving.version), say)


@task(name="releases", help=host_helps())
@on_hosts
def releases_(c: Context, *, where: Where) -> None:
    """The release history: version, outcome, when, who, how long, git commit (on hosts: kept on the db host)."""
    fleet = open_fleet(c, where)
    table(
        f"releases of {fleet.settings.config.project} ({fleet.settings.stage.name})",
        ["version", "status", "kind", "started", "by", "seconds", "git", "hosts", "error"],
        ((r.version, r.status, r.kind, r.started_at, r.user, r.duration_seconds, r.git_sha[:12], ",".join(r.hosts) or "local", r.error[:80])
         for r in reversed(releases.history(fleet.primary.stack))),
    )


@task(
    positional=["version"],
    help=host_helps(
        version="the release to return to, or `previous` (the successful release before the one serving)",
        timeout="seconds a container may take to become healthy (default: deploy.up_timeout)",
        parallel="on hosts: app hosts switched at once (default 1)",
    ),
)
@on_hosts
def rollback(c: Context, version: str, timeout: str | None = None, parallel: str | None = None, *, where: Where) -> None:
    """Return to an earlier release with the same zero-downtime rollout: `inv rollback 1.5.0`, `inv rollback previous`."""
    fleet = open_fleet(c, where)
    home = fleet.primary.stack
    wanted = None if version == "previous" else parse(version).tag
    target = pipeline.rollback_target(home, wanted, images_here=not fleet.remote)
    seconds = whole_number("--timeout", timeout, minimum=1) if timeout else fleet.settings.config.up_timeout
    if fleet.remote:
        batch = whole_number("--parallel", parallel, minimum=1) if parallel else 1
        release = rollback_hosts(fleet, target, seconds, batch, say)
    else:
        release = pipeline.rollback(home, target, seconds, say)
    say(f"[green]rolled back to {release.version}[/green] in {release.duration_seconds:.1f} s")
