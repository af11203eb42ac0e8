"""``inv deploy``: the guide's deploy script as one pipeline of named, timed steps, for
any fleet (the local engine is a fleet of one; a stage's hosts are a fleet of several).

preflight -> tests -> build -> tag -> push (this machine) -> upload -> pull (hosts) ->
backup (the db host, streamed home) -> stateful -> migrate (once) -> rollout (app hosts
in batches, zero downtime, each proxy checked) -> verify -> promote (``latest``) ->
cleanup. A failure before the rollout leaves the old version serving untouched; a
failure in or after it returns every switched host to the images it ran (all or
nothing). The deploy holds the lock and is recorded in the release history.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from deploy.database.dump import backup, backups_dir
from deploy.database.session import Database
from deploy.engine.commands import docker, git
from deploy.engine.commands import images as image_cmds
from deploy.engine.facts import parse_identity
from deploy.engine.images import ImageName, app_images, release_tags
from deploy.engine.ops import Call, Executor, Ops, run
from deploy.engine.stack import Stack
from deploy.engine.steps import Step, perform
from deploy.errors import fail
from deploy.fleet import Fleet, Member, on_each
from deploy.output import say
from deploy.release.push import next_free, planned_pins, push_tags, pushed_pins, refuse_pushed
from deploy.release.record import new_release, run_recorded
from deploy.release.switch import switch_for
from deploy.stack import lifecycle
from deploy.stack.checks import fleet_findings
from deploy.state import history
from deploy.state.history import Release
from deploy.swarm.switch import remove_unused_objects
from deploy.versions import Version, given


@dataclass(frozen=True)
class DeployOptions:
    skip_tests: bool = False
    skip_backup: bool = False
    restart_stateful: bool = False
    timeout: float = 180.0  # seconds a new container may take to become healthy
    parallel: int = 1  # app hosts switched at once


def choose_version(home: Stack, version: str | None, bump: str | None, here: Stack | None = None) -> Version:
    """The version a deploy gets: ``version`` as given, or ``bump`` (major, minor, patch)
    of the highest version in ``home``'s history (not the one serving: after a rollback
    that is lower), skipping every version the history has, whatever became of it, and
    every one the registry already has (asked through ``here``, this machine's engine,
    when it can be). Exactly one of the two. A version once pushed is refused: its tag
    is never pushed again with another image."""
    if bool(version) == bool(bump):
        fail("give --version X.Y.Z or --bump major|minor|patch (one of them)", "e.g. inv deploy --version 1.0.0")
    entries = history.history(home)
    names = [n for n in app_images(here) if n.pushable] if here is not None else []
    if version:
        chosen = given(version)
        refuse_pushed(chosen, entries, here, names, lambda: next_free(entries, here, names, "patch", chosen))
        return chosen
    if not any(history.known_version(r.version) for r in entries):
        fail("--bump needs a previous release, and there is none", "deploy a first --version X.Y.Z")
    return next_free(entries, here, names, str(bump))


def git_sha(stack: Stack) -> str:
    result = stack.target.run(git.head(str(stack.settings.config.root)), warn=True)
    return result.stdout.strip() if result.ok else ""


def remove_old_images(stack: Stack, done: list[str], version: str, names: list[ImageName]) -> Ops[None]:
    """Remove the images of releases beyond the newest ``retention.releases`` (``version``
    included); images a container still uses stay (docker refuses)."""
    keep = stack.settings.config.retention.releases
    kept = set(done[-(keep - 1):] if keep > 1 else []) | {version}
    for old in done:
        if old not in kept:
            for n in names:
                yield run(stack, image_cmds.remove(n.ref(old)), what=f"removing {n.ref(old)}", check=False)
    yield run(stack, docker.prune_dangling_images(stack.settings.stage.project), what="pruning dangling images", check=False)


class Deploy:
    """One deploy of ``version`` to ``fleet``: its steps and what it switched."""

    def __init__(self, fleet: Fleet, version: Version, options: DeployOptions) -> None:
        self.old = fleet
        self.new = fleet.with_env(APP_VERSION=version.tag)
        self.here = self.new.here
        self.version = version
        self.options = options
        self.sha = git_sha(self.here)
        self.tags = release_tags(version, datetime.now(timezone.utc), self.sha)[:-1]  # `latest` moves last
        self.names = app_images(self.here)
        # The hosts pull by digest; a plan shows the digests to come, the push records them.
        self.switch = switch_for(fleet, self.new, version.tag, options.timeout, options.parallel, planned_pins(self.names, version.tag))
        if fleet.remote and not any(n.pushable for n in self.names):
            fail("a deploy to hosts needs a registry: the hosts pull the images from it",
                 "set DOCKER_REGISTRY in the stage's env file (hosts must reach it)")

    def steps(self) -> list[Step]:
        o, new = self.options, self.new
        test_cmd = new.settings.config.test_command
        pushable = any(n.pushable for n in self.names)
        return [
            Step("preflight", self.preflight, where=new.where(new.members, "and this machine")),
            Step("tests", self.tests, "--skip-tests" if o.skip_tests else ("" if test_cmd else "no deploy.test_command configured")),
            Step("build", lambda: lifecycle.build(self.here)),
            Step("tag", self.tag),
            Step("push", self.push, "" if pushable else "no registry: local images"),
            self.switch.upload_step(new.members),
            self.switch.pull_step(new.members),
            Step("backup", self.backup, "--skip-backup" if o.skip_backup else "", new.where([self.db], "streamed home")),
            self.switch.stateful_step(o.restart_stateful),
            self.switch.migrate_step(),
            self.switch.roll_step(),
            self.switch.verify_step(),
            Step("promote", self.promote),
            Step("cleanup", self.cleanup, where=new.where(new.members, "and this machine")),
        ]

    def push(self) -> Ops[None]:
        """Every tag of the images, then the digests they were pushed as: what hosts pull."""
        yield from push_tags(self.here, self.names, self.tags, suggest=self.next_free)

        def record() -> None:
            self.switch.pin(pushed_pins(self.here, self.names, self.version.tag))

        yield Call(self.here, "record the digest each image was pushed as (the hosts pull that, not the tag)", record)

    def next_free(self) -> Version:
        """The next version no deploy used and the registry does not have (a refusal's fix)."""
        names = [n for n in self.names if n.pushable]
        return next_free(history.history(self.old.primary.stack), self.here, names, "patch", self.version)

    def preflight(self) -> Ops[None]:
        def check() -> None:
            failed = [f"{where}: {f.subject}: {f.detail}" for where, f in fleet_findings(self.new) if not f.ok]
            if failed:
                fail("preflight: " + "; ".join(failed), f"run inv check --stage {self.new.settings.stage.name}")

        yield Call(self.here, "inv check: the engine and Compose on every host, the stage's variables, secrets and compose files", check)

    def tests(self) -> Ops[None]:
        yield run(self.here, self.here.settings.config.test_command, what="the tests", fix="fix them, or deploy with --skip-tests",
                  show=True, stage_env=False)

    def tag(self) -> Ops[None]:
        for n in self.names:
            for t in self.tags[1:]:
                yield run(self.here, image_cmds.tag(n.ref(self.version.tag), n.ref(t)), what=f"tagging {n.ref(t)}")

    @property
    def db(self) -> Member:
        """The host of the database (on Compose hosts the primary; on a swarm its db node)."""
        return self.old.one("db") if self.old.swarm else self.old.primary

    def backup(self) -> Ops[None]:
        """A backup named for the release about to be deployed (none on a first deploy)."""
        stack = self.db.stack
        database = Database(stack)
        label = f"pre-{self.version.tag}"
        home = backups_dir(stack.settings)

        def take() -> None:
            if not any(c.service == database.service and c.state == "running" for c in stack.containers()):
                say(f"  {database.service} is not running yet (a first deploy): nothing to back up")
                return
            say(f"  {backup(stack, label=label).path}")

        yield Call(stack, f"inv db.backup --label {label}: pg_dump --format=custom of {database.name} in the {database.service} container, "
                          f"streamed to {home}/ (checksummed, with a manifest)", take)

    def promote(self) -> Ops[None]:
        for n in self.names:
            yield run(self.here, image_cmds.tag(n.ref(self.version.tag), n.ref("latest")), what="tagging latest")
        yield from push_tags(self.here, self.names, ["latest"])

    def cleanup(self) -> Ops[None]:
        done = history.successful_versions(self.old.primary.stack)
        yield from remove_old_images(self.here, done, self.version.tag, self.names)
        hosts = [m for m in self.new.members if not m.stack.target.local]
        if hosts:  # every swarm node may have run an app task
            yield on_each(self.new, hosts, lambda m: remove_old_images(m.stack, done, self.version.tag,
                                                                        self.names if m.host.has("app") or self.new.swarm else []),
                          "cleanup", summary=False)
        if self.new.swarm:
            yield from remove_unused_objects(self.new.primary.stack)

    def digest(self, name: ImageName) -> str:
        result = self.here.target.run(image_cmds.identity(name.ref(self.version.tag)), warn=True)
        return parse_identity(result.stdout, name.repository) if result.ok else ""


def deploy(fleet: Fleet, version: Version, options: DeployOptions, executor: Executor) -> Release | None:
    """Deploy ``version`` to ``fleet`` (a dry run prints every step's ops and returns None)."""
    d = Deploy(fleet, version, options)
    steps = d.steps()
    if executor.dry_run:
        perform(steps, executor)
        return None
    release = new_release(fleet, version.tag, "deploy", tags=[*d.tags, "latest"], git_sha=d.sha)

    def finish() -> None:
        pins = d.switch.pins
        release.images = {n.service: n.ref(version.tag) for n in d.names}
        release.digests = {n.service: pins[n.service].digest if n.service in pins else d.digest(n) for n in d.names}

    run_recorded(fleet, release, steps, d.switch, executor, finish)
    return release
