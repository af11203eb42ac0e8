from invoke import Context, Exit, task

from deploy import pipeline, releases
from deploy.output import say, table
from deploy.target import LocalTarget
from deploy.versions import parse
from tasks._common import helps, open_stack, served_at, whole_number


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
    help=helps(
        version="the release's semantic version, e.g. 1.4.0",
        bump="instead of --version: major, minor or patch of the last release",
        dry_run="print every step and command (secrets masked) and change nothing",
        skip_tests="skip deploy.test_command",
        skip_backup="skip the database backup before migrating (not recommended)",
        restart_stateful="apply a changed image or configuration of postgres/redis (restarts them, after the backup)",
        timeout="seconds a new container may take to become healthy (default: deploy.up_timeout)",
    )
)
def deploy(
    c: Context,
    version: str | None = None,
    bump: str | None = None,
    dry_run: bool = False,
    skip_tests: bool = False,
    skip_backup: bool = False,
    restart_stateful: bool = False,
    timeout: str | None = None,
    stage: str | None = None,
    env_file: str | None = None,
) -> None:
    """Deploy a release: preflight, tests, backup, build, tag, push, migrate, zero-downtime rollout, verify, cleanup.

    A failed rollout or verification rolls back automatically; the release history
    records every deploy (inv releases).
    """
    if restart_stateful and skip_backup:
        raise Exit("error: --restart-stateful restarts the database: it needs the backup step\n  fix: drop --skip-backup", code=1)
    stack = open_stack(c, stage, env_file)
    ver = _version(stack, version, bump)
    seconds = whole_number("--timeout", timeout, minimum=1) if timeout else stack.settings.config.up_timeout
    options = pipeline.DeployOptions(skip_tests=skip_tests, skip_backup=skip_backup, restart_stateful=restart_stateful, timeout=seconds)
    d = pipeline.Deploy(stack, LocalTarget(c), ver, options, say)
    if dry_run:
        say(f"dry run: deploy {ver} to {stack.settings.stage.name} on {stack.target.name}; nothing is changed")
        for line in pipeline.describe(d.new, d.steps()):
            say(line)
        return
    release = pipeline.deploy(d)
    say(f"[green]deployed {release.version}[/green] in {release.duration_seconds:.1f} s{served_at(d.new)}")


@task(help=helps(version="the release whose images to push (default: the one now serving)"))
def push(c: Context, version: str | None = None, stage: str | None = None, env_file: str | None = None) -> None:
    """Push a release's images (every tag) to the registry, with retries."""
    stack = open_stack(c, stage, env_file)
    serving = releases.current(stack)
    if not version and not serving:
        raise Exit("error: no --version given and no release deployed\n  fix: inv push --version X.Y.Z", code=1)
    pipeline.push_release(stack, parse(version or serving.version), say)


@task(name="releases", help=helps())
def releases_(c: Context, stage: str | None = None, env_file: str | None = None) -> None:
    """The release history: version, outcome, when, who, how long, git commit."""
    stack = open_stack(c, stage, env_file)
    table(
        f"releases of {stack.settings.config.project} ({stack.settings.stage.name})",
        ["version", "status", "kind", "started", "by", "seconds", "git", "error"],
        ((r.version, r.status, r.kind, r.started_at, r.user, r.duration_seconds, r.git_sha[:12], r.error[:80]) for r in reversed(releases.history(stack))),
    )


@task(
    positional=["version"],
    help=helps(
        version="the release to return to, or `previous` (the successful release before the one serving)",
        timeout="seconds a container may take to become healthy (default: deploy.up_timeout)",
    ),
)
def rollback(c: Context, version: str, timeout: str | None = None, stage: str | None = None, env_file: str | None = None) -> None:
    """Return to an earlier release with the same zero-downtime rollout: `inv rollback 1.5.0`, `inv rollback previous`."""
    stack = open_stack(c, stage, env_file)
    wanted = None if version == "previous" else parse(version).tag
    target = pipeline.rollback_target(stack, wanted)
    seconds = whole_number("--timeout", timeout, minimum=1) if timeout else stack.settings.config.up_timeout
    release = pipeline.rollback(stack, target, seconds, say)
    say(f"[green]rolled back to {release.version}[/green] in {release.duration_seconds:.1f} s")
