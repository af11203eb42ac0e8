"""``inv deploy``: the guide's deploy script as one pipeline of named, timed steps.

preflight -> tests -> backup -> build -> tag -> push -> migrate -> rollout (each
stateless service, zero downtime) -> verify through the proxy -> promote (``latest``)
-> cleanup. A failure in migrate stops with the old version serving; a failure in the
rollout or the verification rolls the switched services back to the images they ran.
The whole deploy holds the deploy lock and is recorded in the release history.
"""
from __future__ import annotations

import shlex
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone

from invoke.exceptions import Exit

from deploy.engine import images
from deploy.state import lock
from deploy.state import history as releases
from deploy.database.dump import backup
from deploy.stack.checks import preflight
from deploy.engine.commands import compose, docker
from deploy.engine.commands import postgres as pg
from deploy.database.session import Database
from deploy.errors import fail
from deploy.engine.facts import parse_hashes
from deploy.stack.health import http_checks
from deploy.engine.images import ImageName
from deploy.stack.rollout import old_containers, plan_scale, rollout
from deploy.engine.stack import Stack, last_lines
from deploy.engine.target import LocalTarget
from deploy.versions import Version

PUSH_ATTEMPTS = 3
AUTH_ERRORS = ("unauthorized", "denied", "authentication required", "no basic auth credentials")


@dataclass(frozen=True)
class DeployOptions:
    skip_tests: bool = False
    skip_backup: bool = False
    restart_stateful: bool = False
    timeout: float = 180.0


@dataclass
class Step:
    name: str
    commands: Callable[[], list[list[str]]]  # for the printed plan only (may ask the engine)
    action: Callable[[], None]
    skipped: str = ""
    where: str = ""  # for the plan: the hosts it acts on, when not this machine


def with_version(stack: Stack, version: str) -> Stack:
    """The same stack, with the compose files naming the images of ``version``."""
    return stack.with_env(APP_VERSION=version)


def image_names(stack: Stack) -> list[ImageName]:
    env = stack.settings.env
    return [ImageName(env.get("DOCKER_REGISTRY", ""), env.get("DOCKER_NAMESPACE", ""), s) for s in stack.settings.config.stateless]


def git_sha(local: LocalTarget, root: str) -> str:
    result = local.run(["git", "-C", root, "rev-parse", "HEAD"], warn=True)
    return result.stdout.strip() if result.ok else ""


def push_ref(stack: Stack, ref: str, say: Callable[[str], None]) -> None:
    """docker push with retries for transient errors; auth errors fail at once."""
    for attempt in range(1, PUSH_ATTEMPTS + 1):
        say(f"  pushing {ref}")
        result = stack.target.run(images.push(ref), warn=True)
        if result.ok:
            return
        err = (result.stderr or result.stdout).lower()
        if any(word in err for word in AUTH_ERRORS):
            fail(f"the registry refused {ref}: {last_lines(result.stderr, 2)}", "docker login to the registry (DOCKER_REGISTRY) and deploy again")
        if attempt == PUSH_ATTEMPTS:
            fail(f"pushing {ref} failed {PUSH_ATTEMPTS} times: {last_lines(result.stderr, 2)}", "check that the registry answers, then inv push")
        say(f"  push of {ref} failed (attempt {attempt}), retrying")
        time.sleep(2 * attempt)


def push_release(stack: Stack, version: Version, say: Callable[[str], None]) -> None:
    """Push every tag the release got (its version alone when it is not in the history)."""
    names = image_names(stack)
    if not any(n.pushable for n in names):
        fail("this stage has no registry (DOCKER_REGISTRY)", "set DOCKER_REGISTRY in the env file")
    recorded = [r.tags for r in releases.history(stack) if r.version == version.tag]
    tags = recorded[-1] if recorded else [version.tag]
    for n in names:
        if not stack.target.run(images.exists(n.ref(version.tag)), warn=True).ok:
            fail(f"{n.ref(version.tag)} is not on this engine", f"build it with inv deploy --version {version}")
        for tag in tags:
            push_ref(stack, n.ref(tag), say)


class Deploy:
    """One deploy of ``version``: its steps, its rollback, its release record."""

    def __init__(self, stack: Stack, local: LocalTarget, version: Version, options: DeployOptions, say: Callable[[str], None]):
        self.old = stack
        self.new = with_version(stack, version.tag)
        self.local = local
        self.version = version
        self.options = options
        self.say = say
        self.when = datetime.now(timezone.utc)
        self.sha = git_sha(local, str(stack.settings.config.root))
        self.tags = images.release_tags(version, self.when, self.sha)[:-1]  # `latest` moves last
        self.names = image_names(stack)
        self.switched: list[str] = []
        self.previous_tag: dict[str, str] = {}

    # --- the steps -------------------------------------------------------------------
    def steps(self) -> list[Step]:
        cfg = self.new.settings.config
        p = self.new.project
        test_cmd = list(cfg.test_command)
        db = cfg.database
        proxy = cfg.proxy.service
        pushable = [r for n in self.names if n.pushable for r in (n.ref(t) for t in self.tags)]
        steps = [
            Step("preflight", lambda: [docker.version_json(), docker.compose_version(), compose.config_check(p)], self.preflight),
            Step("tests", lambda: [test_cmd] if test_cmd else [], self.tests,
                 "--skip-tests" if self.options.skip_tests else ("" if test_cmd else "no deploy.test_command configured")),
            Step("backup", lambda: [self.backup_command()], self.backup, "--skip-backup" if self.options.skip_backup else ""),
            Step("stateful", lambda: [compose.config_hashes(p, cfg.stateful)], self.stateful),
            Step("build", lambda: [compose.build(p)], self.build),
            Step("tag", lambda: [images.tag(n.ref(self.version.tag), n.ref(t)) for n in self.names for t in self.tags[1:]], self.tag),
            Step("push", lambda: [images.push(r) for r in pushable], self.push, "" if pushable else "no registry: local images"),
            Step("migrate", lambda: [compose.run_once(p, db.migrate_service, db.migrate_command)], self.migrate),
            Step("rollout", self.rollout_commands, self.rollout),
            Step("proxy", lambda: [compose.up(p, [proxy], no_recreate=True, no_deps=True, wait_timeout=int(self.options.timeout))], self.proxy),
            Step("verify", lambda: [["GET", f"http://127.0.0.1:{self.old.proxy_port() or proxy + ' port'}{path}"] for path in cfg.proxy.checks],
                 self.verify),
            Step("promote", lambda: [images.tag(n.ref(self.version.tag), n.ref("latest")) for n in self.names]
                 + [images.push(n.ref("latest")) for n in self.names if n.pushable], self.promote),
            Step("cleanup", lambda: [docker.prune_dangling_images(cfg.project)], self.cleanup),
        ]
        return steps

    def rollout_commands(self) -> list[list[str]]:
        services = list(self.old.settings.config.stateless)
        old = old_containers(self.old, services)
        old_names = [n for names in old.values() for n in names]
        start = compose.up(self.old.project, services, scale=plan_scale(self.old, services, old), no_recreate=True, no_deps=True)
        return [start, docker.stop(old_names), docker.remove(old_names)]

    def backup_command(self) -> list[str]:
        """For the plan: pg_dump in the database container (named the way Compose names it)."""
        database = Database(self.old)
        container = f"{self.old.settings.config.project}-{database.service}-1"
        return docker.exec_(container, pg.pg_dump(database.user, database.name))

    def preflight(self) -> None:
        failed = [f for f in preflight(self.new, self.local) if not f.ok]
        if failed:
            fail("preflight: " + "; ".join(f"{f.subject}: {f.detail}" for f in failed), f"run inv check --stage {self.new.settings.stage.name}")

    def tests(self) -> None:
        cmd = list(self.new.settings.config.test_command)
        result = self.local.run(cmd, hide=False, warn=True)
        if not result.ok:
            fail(f"the tests failed (exit {result.exited}): {shlex.join(cmd)}", "fix them, or deploy with --skip-tests")

    def backup(self) -> None:
        backup_before(self.old, self.version.tag, self.say)

    def stateful(self) -> None:
        apply_stateful(self.old, self.new, self.options, self.say)

    def build(self) -> None:
        self.new.run(compose.build(self.new.project), what="building images", fix="read the build output above", hide=False)

    def tag(self) -> None:
        for n in self.names:
            for t in self.tags[1:]:
                self.new.run(images.tag(n.ref(self.version.tag), n.ref(t)), what=f"tagging {n.ref(t)}")

    def push(self) -> None:
        for n in self.names:
            if n.pushable:
                for t in self.tags:
                    push_ref(self.new, n.ref(t), self.say)

    def migrate(self) -> None:
        migrate(self.new)

    def rollout(self) -> None:
        services = list(self.new.settings.config.stateless)
        self.previous_tag = previous_tags(self.old, services)
        # A failed rollout removes its new containers itself (the old ones never stopped);
        # once it succeeded, a later failure (verify) must return the services.
        rollout(self.new, services, self.options.timeout, self.say)
        self.switched = services

    def proxy(self) -> None:
        start_proxy(self.new, self.options.timeout)

    def verify(self) -> None:
        verify_proxy(self.new)

    def promote(self) -> None:
        for n in self.names:
            self.new.run(images.tag(n.ref(self.version.tag), n.ref("latest")), what="tagging latest")
            if n.pushable:
                push_ref(self.new, n.ref("latest"), self.say)

    def cleanup(self) -> None:
        remove_old_images(self.new, releases.successful_versions(self.home), self.version.tag, self.names)

    def digest(self, name: ImageName) -> str:
        result = self.new.target.run(images.identity(name.ref(self.version.tag)), warn=True)
        return images.parse_identity(result.stdout, name.repository) if result.ok else ""

    @property
    def home(self) -> Stack:
        """Where the lock and the release history live."""
        return self.new

    @property
    def hosts(self) -> list[str]:
        return []

    # --- rollback ----------------------------------------------------------------------
    def roll_back(self) -> None:
        """Return the switched services to the images their old containers ran."""
        roll_back_services(self.old, self.switched, self.previous_tag, self.options.timeout, self.say)


def backup_before(stack: Stack, version: str, say: Callable[[str], None]) -> None:
    """A backup named for the release about to be deployed (none on a first deploy)."""
    db = stack.settings.config.database.service
    if not any(c.service == db and c.state == "running" for c in stack.containers()):
        say(f"  {db} is not running yet (a first deploy): nothing to back up")
        return
    result = backup(stack, label=f"pre-{version}")
    say(f"  {result.path}")


def apply_stateful(old: Stack, new: Stack, options: DeployOptions, say: Callable[[str], None]) -> None:
    """Stateful services are left alone unless their image or configuration changed;
    then they are restarted only with --restart-stateful (after the backup step)."""
    cfg = new.settings.config
    wanted = parse_hashes(new.run(compose.config_hashes(new.project, cfg.stateful), what="hashing the stateful services").stdout)
    running = {c.service: c.config_hash for c in old.containers() if c.state == "running"}
    absent = [s for s in cfg.stateful if s not in running]
    if absent:
        say(f"  starting {', '.join(absent)} (not running)")
        new.run(compose.up(new.project, absent, no_deps=True, wait_timeout=int(options.timeout)),
                what=f"starting {', '.join(absent)}", fix="see inv logs SERVICE")
    changed = [s for s in cfg.stateful if s in running and wanted.get(s) != running[s]]
    if not changed:
        say("  unchanged: " + ", ".join(cfg.stateful))
        return
    if not options.restart_stateful:
        say(f"  [yellow]warning:[/yellow] {', '.join(changed)} changed (image or configuration) and are left as they run; "
            "deploy with --restart-stateful to apply (restarts them: a short outage of what depends on them)")
        return
    say(f"  [yellow]restarting {', '.join(changed)}[/yellow] to apply their new image or configuration")
    new.run(compose.up(new.project, changed, no_deps=True, wait_timeout=int(options.timeout)),
            what=f"restarting {', '.join(changed)}", fix="see inv logs SERVICE; the backup taken before is in inv db.list")


def migrate(stack: Stack) -> None:
    db = stack.settings.config.database
    stack.run(compose.run_once(stack.project, db.migrate_service, db.migrate_command),
              what="the migration", fix="fix the migration; the previous version still serves", hide=False)


def previous_tags(stack: Stack, services: Sequence[str]) -> dict[str, str]:
    """The image tag each service's running containers have (what a rollback returns to)."""
    tags: dict[str, str] = {}
    for c in stack.containers():
        if c.service in services and c.state == "running":
            tags.setdefault(c.service, c.image.rsplit(":", 1)[-1])
    return tags


def start_proxy(stack: Stack, timeout: float) -> None:
    """Start the proxy if it is not running (a first deploy); a running one is left as it is."""
    proxy = stack.settings.config.proxy.service
    stack.run(compose.up(stack.project, [proxy], no_recreate=True, no_deps=True, wait_timeout=int(timeout)),
              what=f"starting {proxy}", fix=f"see inv logs {proxy}")


def verify_proxy(stack: Stack) -> None:
    bad = [f"{c.subject}: {c.detail}" for c in http_checks(stack) if not c.ok]
    if bad:
        fail(f"through the proxy on {stack.target.name}: " + "; ".join(bad), "see inv health and inv logs SERVICE")


def remove_old_images(stack: Stack, done: Sequence[str], version: str, names: Sequence[ImageName]) -> None:
    """Remove the images of releases beyond the newest ``retention.releases`` (``version``
    included); images a container still uses stay (docker refuses)."""
    keep = stack.settings.config.retention.releases
    kept = set(done[-(keep - 1):] if keep > 1 else []) | {version}
    for old in done:
        if old not in kept:
            for n in names:
                stack.target.run(images.remove(n.ref(old)), warn=True)
    stack.target.run(docker.prune_dangling_images(stack.settings.config.project), warn=True)


def roll_back_services(stack: Stack, services: Sequence[str], tags: dict[str, str], timeout: float, say: Callable[[str], None]) -> None:
    """Return ``services`` to the image tags they ran (``tags``), with the rollout."""
    by_tag: dict[str, list[str]] = {}
    for service in services:
        tag = tags.get(service)
        if tag:
            by_tag.setdefault(tag, []).append(service)
        else:
            say(f"  {service}: no previous containers to return to")
    for tag, group in by_tag.items():
        say(f"rolling {', '.join(group)} back to {tag}")
        rollout(with_version(stack, tag), group, timeout, say)


def run_steps(steps: Sequence[Step], say: Callable[[str], None]) -> list[tuple[str, float]]:
    timings = []
    for i, step in enumerate(steps, 1):
        if step.skipped:
            say(f"[{i}/{len(steps)}] {step.name}: skipped ({step.skipped})")
            continue
        say(f"[{i}/{len(steps)}] {step.name} ...")
        start = time.monotonic()
        step.action()
        timings.append((step.name, time.monotonic() - start))
        say(f"[{i}/{len(steps)}] {step.name}: done in {timings[-1][1]:.1f} s")
    return timings


def describe(stack: Stack, steps: Sequence[Step]) -> list[str]:
    """The plan as text: every step and its commands, secrets masked."""
    lines = []
    for i, step in enumerate(steps, 1):
        lines.append(f"[{i}/{len(steps)}] {step.name}" + (f" on {step.where}" if step.where else "")
                     + (f" (skipped: {step.skipped})" if step.skipped else ""))
        lines += [f"    {stack.settings.masked(shlex.join(cmd))}" for cmd in step.commands()]
    return lines


def failed(release: releases.Release, err: BaseException) -> None:
    release.status, release.error = "failed", str(getattr(err, "message", err) or err)


@contextmanager
def recorded(home: Stack, release: releases.Release, purpose: str) -> Iterator[None]:
    """Hold the deploy lock on ``home`` while ``release`` runs; it is in the history as
    running, then with its outcome and duration, and its end is in the audit log."""
    started = time.monotonic()
    lock.acquire(home, purpose)
    try:
        releases.record(home, release)
        try:
            yield
        except (Exit, Exception) as err:
            if release.status == "running":
                failed(release, err)
            raise
    finally:
        release.duration_seconds = round(time.monotonic() - started, 1)
        releases.record(home, release)
        releases.audit(home, f"{release.kind} {release.status}", version=release.version, error=release.error[:500])
        lock.release(home, force=True)


def deploy(d: Deploy) -> releases.Release:
    release = releases.Release(
        version=d.version.tag, status="running", tags=[*d.tags, "latest"], git_sha=d.sha, hosts=d.hosts,
        compose_files=list(d.new.settings.stage.compose_files), env_file=str(d.new.settings.env_file),
    )
    home = d.home
    with recorded(home, release, f"deploy {d.version.tag}"):
        releases.audit(home, "deploy started", version=release.version)
        try:
            for name, seconds in run_steps(d.steps(), d.say):
                releases.audit(home, f"step {name}", version=release.version, seconds=round(seconds, 2))
        except (Exit, Exception) as err:
            failed(release, err)  # the step's error, also if the rollback fails too
            if d.switched:
                d.say("deploy failed: rolling back")
                d.roll_back()
            raise
        release.status = "success"
        release.images = {n.service: n.ref(d.version.tag) for n in d.names}
        release.digests = {n.service: d.digest(n) for n in d.names}
    return release


def rollback_target(stack: Stack, version: str | None, images_here: bool = True) -> str:
    """The release to return to: ``version`` (a successful release whose images are still
    here, unless hosts pull them: ``images_here`` False), or the successful release
    before the one now serving."""
    done = releases.successful_versions(stack)
    serving = releases.current(stack)
    names = image_names(stack)
    available = [v for v in done if not images_here or all(stack.target.run(images.exists(n.ref(v)), warn=True).ok for n in names)]
    listing = ", ".join(available) or "none"
    if version is None:
        earlier = [v for v in done if not serving or v != serving.version]
        if not earlier:
            fail("there is no earlier successful release to roll back to", f"releases with images here: {listing}")
        version = earlier[-1]
    if version not in done:
        fail(f"{version} is not a successful release in the history", f"roll back to one of: {listing}")
    if version not in available:
        fail(f"the images of {version} are gone from this engine", f"roll back to one of: {listing}")
    return version


def rollback(stack: Stack, version: str, timeout: float, say: Callable[[str], None]) -> releases.Release:
    """Return every stateless service to ``version`` with the zero-downtime rollout."""
    release = releases.Release(version=version, status="running", kind="rollback",
                               compose_files=list(stack.settings.stage.compose_files), env_file=str(stack.settings.env_file))
    target = with_version(stack, version)
    with recorded(stack, release, f"rollback to {version}"):
        say(f"rollout of {', '.join(stack.settings.config.stateless)} -> {version}")
        rollout(target, list(stack.settings.config.stateless), timeout, say)
        bad = [f"{c.subject}: {c.detail}" for c in http_checks(target) if not c.ok]
        if bad:
            fail("after the rollback, through the proxy: " + "; ".join(bad), "see inv health")
        release.status = "success"
        release.images = {n.service: n.ref(version) for n in image_names(stack)}
    return release
