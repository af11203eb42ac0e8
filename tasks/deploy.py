"""`inv deploy`, `inv rollback`, `inv releases`: releases, on the local engine or a stage's hosts alike."""
from __future__ import annotations

from typing import TYPE_CHECKING

from invoke import Context

from tasks._input import optional_number
from tasks._open import MAX_SURGE_HELP, load_config, open_fleet
from tasks._show import served_at
from tasks._where import Where, on_hosts

if TYPE_CHECKING:
    from deploy.fleet import Fleet
    from deploy.release.deploy import DeployOptions

TIMEOUT_HELP = "seconds a new container may take to become healthy (default: deploy.up_timeout)"
PARALLEL_HELP = "on hosts: app hosts switched at once (default 1: the others keep serving at full capacity)"
DRY_RUN_HELP = "print every step and command (secrets masked) and change nothing"


def _options(c: Context, timeout: str | None, parallel: str | None, **flags: bool) -> DeployOptions:
    """The options of a deploy or rollback; bad numbers are refused before any host is asked."""
    from deploy.release.deploy import DeployOptions

    return DeployOptions(
        timeout=optional_number("--timeout", timeout, default=load_config(c).up_timeout, minimum=1),
        parallel=optional_number("--parallel", parallel, default=1, minimum=1),
        **flags,
    )


def _members(fleet: Fleet) -> str:
    return ", ".join(m.name for m in fleet.members)


@on_hosts(
    locks=True,
    help={
        "version": "the release's semantic version, e.g. 1.4.0 or v1.4.0 (a git tag: the v is dropped; one never pushed before)",
        "bump": "instead of --version: major, minor or patch of the highest version in the history (skipping every version used)",
        "dry_run": DRY_RUN_HELP,
        "skip_tests": "skip deploy.test_command",
        "skip_backup": "skip the database backup before migrating (not recommended)",
        "restart_stateful": "apply a changed image or configuration of postgres/redis (restarts them, after the backup)",
        "timeout": TIMEOUT_HELP,
        "parallel": PARALLEL_HELP,
        "max_surge": MAX_SURGE_HELP,
    }
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
    parallel: str | None = None,
    max_surge: str | None = None,
    *,
    where: Where,
) -> None:
    """Deploy a release: preflight, tests, build, tag, push, (upload, pull), backup, migrate, zero-downtime rollout, verify, cleanup.

    A failed rollout or verification rolls back automatically; the release history
    records every deploy (inv releases). On a stage with hosts: build and push here,
    pull on every host, then switch the app hosts in batches; a failed host rolls back
    every host already switched (all or nothing).
    """
    from deploy.engine.ops import Executor
    from deploy.errors import fail
    from deploy.output import say, styled
    from deploy.release.deploy import choose_version
    from deploy.release.deploy import deploy as deploy_release
    from deploy.stack.owner import refuse_other_stage
    from deploy.state import lock

    if restart_stateful and skip_backup:
        fail("--restart-stateful restarts the database: it needs the backup step", "drop --skip-backup")
    options = _options(c, timeout, parallel, skip_tests=skip_tests, skip_backup=skip_backup, restart_stateful=restart_stateful)
    fleet = open_fleet(c, where, max_surge)
    refuse_other_stage(fleet)
    home = fleet.primary.stack
    chosen = choose_version(home, version, bump, fleet.here)
    if dry_run:
        say(f"dry run: deploy {chosen} to {fleet.settings.stage.name} on {_members(fleet)}; nothing is changed")
        deploy_release(fleet, chosen, options, Executor(dry_run=True, hosts=fleet.remote))
        return
    with lock.held(home, f"deploy {chosen}", wait=where.lock_wait, audited=False):
        chosen = choose_version(home, version, bump, fleet.here)  # again under the lock: another deploy may have just taken it
        release = deploy_release(fleet, chosen, options, Executor(hosts=fleet.remote))
    if release:
        say(styled(f"deployed {release.version}", "green") + f" to {_members(fleet)} in {release.duration_seconds:.1f} s{served_at(fleet)}")


@on_hosts(name="releases")
def releases_(c: Context, *, where: Where) -> None:
    """The release history: version, outcome, when, who, how long, git commit (on hosts: kept on the db host)."""
    from deploy.output import table
    from deploy.state import history as releases

    fleet = open_fleet(c, where)
    table(
        f"releases of {fleet.settings.stage.project} ({fleet.settings.stage.name})",
        ["version", "status", "kind", "started", "by", "seconds", "git", "hosts", "error"],
        ((r.version, r.status, r.kind, r.started_at, r.user, r.duration_seconds, r.git_sha[:12], ",".join(r.hosts) or "local", r.error[:80])
         for r in reversed(releases.history(fleet.primary.stack))),
    )


@on_hosts(
    locks=True,
    positional=["version"],
    help={
        "version": "the release to return to, or `previous` (the successful release before the one serving)",
        "dry_run": DRY_RUN_HELP,
        "timeout": TIMEOUT_HELP,
        "parallel": PARALLEL_HELP,
        "max_surge": MAX_SURGE_HELP,
    },
)
def rollback(c: Context, version: str, dry_run: bool = False, timeout: str | None = None, parallel: str | None = None,
             max_surge: str | None = None, *, where: Where) -> None:
    """Return to an earlier release with the same zero-downtime rollout: `inv rollback 1.5.0`, `inv rollback previous`."""
    from deploy.engine.ops import Executor
    from deploy.output import say, styled
    from deploy.release.rollback import rollback as rollback_release
    from deploy.stack.owner import refuse_other_stage
    from deploy.state import lock
    from deploy.versions import given

    wanted = None if version == "previous" else given(version).tag
    options = _options(c, timeout, parallel)
    fleet = open_fleet(c, where, max_surge)
    refuse_other_stage(fleet)
    if dry_run:
        say(f"dry run: rollback to {version} on {_members(fleet)}; nothing is changed")
        rollback_release(fleet, wanted, options, Executor(dry_run=True, hosts=fleet.remote))
        return
    with lock.held(fleet.primary.stack, f"rollback {version}", wait=where.lock_wait, audited=False):
        release = rollback_release(fleet, wanted, options, Executor(hosts=fleet.remote))
    if release:
        say(styled(f"rolled back to {release.version}", "green") + f" in {release.duration_seconds:.1f} s")
