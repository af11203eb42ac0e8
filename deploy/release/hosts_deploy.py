"""``inv deploy`` and ``inv rollback`` on a stage with hosts.

Build and push once, here; upload the compose files and the env file to every host;
pull the release's images on every host before any host switches; back up on the db
host, streamed home; migrate once, from an app host; then roll the app hosts out in
batches (``--parallel N``, default one host at a time: the others keep serving at full
capacity), each host with the zero-downtime rollout and its proxy checked.

All or nothing: on the first failed host the deploy stops and every host already
switched is rolled back to the images it ran. The lock and the release history live on
the stage's db host, so two people deploying from two machines are refused.
"""
from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

from invoke.exceptions import Exit

from deploy.stack import lifecycle
from deploy.state import history as releases
from deploy.stack.checks import engine_findings
from deploy.engine.commands import compose
from deploy.errors import fail
from deploy.fleet import Fleet, HostsFailed, Member
from deploy.release.pipeline import (
    Deploy, DeployOptions, Step, apply_stateful, backup_before, image_names, migrate, previous_tags, recorded,
    remove_old_images, roll_back_services, start_proxy, verify_proxy,
)
from deploy.stack.rollout import rollout
from deploy.engine.stack import Stack
from deploy.engine.target import LocalTarget
from deploy.engine.upload import upload
from deploy.versions import Version


def batches(members: Sequence[Member], size: int) -> list[list[Member]]:
    return [list(members[i:i + size]) for i in range(0, len(members), size)]


def pull_images(m: Member) -> None:
    """The host's role images of the release its stack names (APP_VERSION)."""
    lifecycle.pull(m.stack, m.services())


class HostsDeploy(Deploy):
    """A deploy of ``version`` to the app and db hosts of ``fleet``; building, tagging
    and pushing happen on this machine's engine (``build``)."""

    def __init__(self, fleet: Fleet, build: Stack, local: LocalTarget, version: Version, options: DeployOptions,
                 say: Callable[[str], None], parallel: int = 1) -> None:
        super().__init__(build, local, version, options, say)
        self.fleet = fleet
        self.target_fleet = fleet.with_env(APP_VERSION=version.tag)
        self.parallel = parallel
        self.switched: list[Member] = []  # type: ignore[assignment]  # hosts switched (base: services)
        self.ran: dict[str, dict[str, str]] = {}  # host -> the tag each service ran before
        self._switched_lock = threading.Lock()
        if not any(n.pushable for n in self.names):
            fail("a deploy to hosts needs a registry: the hosts pull the images from it",
                 "set DOCKER_REGISTRY in the stage's env file (hosts must reach it)")

    @property
    def home(self) -> Stack:
        return self.fleet.primary.stack

    @property
    def hosts(self) -> list[str]:
        return [m.name for m in self.fleet.members]

    def steps(self) -> list[Step]:
        base = {s.name: s for s in super().steps()}
        hosts = ", ".join(m.name for m in self.fleet.members)
        apps = self.target_fleet.with_role("app")
        app_names = ", ".join(m.name for m in apps)
        cfg = self.new.settings.config
        db = cfg.database
        return [
            Step("preflight", lambda: [], self.preflight, where=f"this machine and {hosts}"),
            base["tests"],
            base["build"],
            base["tag"],
            base["push"],
            Step("upload", lambda: [], self.upload, where=f"{hosts} (compose files, and the env file with mode 0600, by SFTP)"),
            Step("pull", lambda: [compose.pull(m.stack.project, m.services()) for m in self.target_fleet.members], self.pull, where=hosts),
            Step("backup", base["backup"].commands, self.backup, base["backup"].skipped, where=f"{self.fleet.primary.name}, streamed home"),
            Step("stateful", lambda: [compose.config_hashes(self.target_fleet.primary.stack.project, cfg.stateful)], self.stateful,
                 where=self.fleet.primary.name),
            Step("migrate", lambda: [compose.run_once(apps[0].stack.project, db.migrate_service, db.migrate_command)], self.migrate,
                 where=apps[0].name),
            Step("rollout", lambda: [], self.rollout, where=f"{app_names}, {self.parallel} at a time, each with its proxy checked"),
            Step("verify", lambda: [], self.verify, where=f"{app_names}, through each one's proxy"),
            base["promote"],
            Step("cleanup", base["cleanup"].commands, self.cleanup, where=f"this machine and {hosts}"),
        ]

    def preflight(self) -> None:
        super().preflight()
        found = self.fleet.each(lambda m: [f for f in engine_findings(m.stack.target) if not f.ok], what="preflight", summary=False)
        failed = [f"{host}: {f.subject}: {f.detail}" for host, findings in found.items() for f in findings]
        if failed:
            fail("preflight: " + "; ".join(failed), f"run inv check --stage {self.new.settings.stage.name}")

    def upload(self) -> None:
        self.fleet.each(lambda m: upload(m.stack), what="upload")

    def pull(self) -> None:
        """Every host has the release's images before any host switches."""
        self.target_fleet.each(pull_images, what="pull")

    def backup(self) -> None:
        backup_before(self.fleet.primary.stack, self.version.tag, self.say)

    def stateful(self) -> None:
        apply_stateful(self.fleet.primary.stack, self.target_fleet.primary.stack, self.options, self.say)

    def migrate(self) -> None:
        m = self.target_fleet.with_role("app")[0]
        self.say(f"  on {m.name}")
        migrate(m.stack)

    def _roll_host(self, new: Member) -> None:
        old = next(m for m in self.fleet.members if m.name == new.name)
        services = list(self.new.settings.config.stateless)
        tags = previous_tags(old.stack, services)
        rollout(new.stack, services, self.options.timeout, self.say)
        with self._switched_lock:
            self.ran[old.name] = tags
            self.switched.append(old)
        start_proxy(new.stack, self.options.timeout)
        verify_proxy(new.stack)
        self.say(f"switched to {self.version.tag}")

    def rollout(self) -> None:
        apps = self.target_fleet.with_role("app")
        for i, batch in enumerate(batches(apps, self.parallel), 1):
            self.say(f"  batch {i}: {', '.join(m.name for m in batch)}")
            self.target_fleet.each(self._roll_host, what=f"rollout of {', '.join(m.name for m in batch)}", members=batch,
                                   parallel=len(batch), summary=False)

    def verify(self) -> None:
        self.target_fleet.each(lambda m: verify_proxy(m.stack), what="verify", members=self.target_fleet.with_role("app"))

    def cleanup(self) -> None:
        super().cleanup()
        done = releases.successful_versions(self.home)
        self.fleet.each(lambda m: remove_old_images(m.stack, done, self.version.tag, self.names if m.host.has("app") else []),
                        what="cleanup", summary=False)

    def roll_back(self) -> None:
        """Every switched host back to the images it ran (in parallel: each is zero-downtime)."""
        self.say(f"rolling back {', '.join(m.name for m in self.switched)}")
        return_hosts(self.fleet, self.switched, self.ran, self.options.timeout, self.say)


def return_hosts(fleet: Fleet, hosts: Sequence[Member], ran: dict[str, dict[str, str]], timeout: float,
                 say: Callable[[str], None]) -> None:
    """Switched ``hosts`` back to the tags their services ran (``ran``), in parallel (each
    is zero-downtime). A host that fails is reported, not raised: the failure that made
    us return them is the one to raise."""
    services = list(fleet.settings.config.stateless)
    try:
        fleet.each(lambda m: roll_back_services(m.stack, services, ran[m.name], timeout, say), what="rollback", members=hosts)
    except HostsFailed as err:
        say(f"[red]the rollback failed on {', '.join(o.host for o in err.outcomes)}[/red]: see inv status --stage "
            f"{fleet.settings.stage.name}, then inv rollback VERSION there")


def rollback_hosts(fleet: Fleet, version: str, timeout: float, parallel: int, say: Callable[[str], None]) -> releases.Release:
    """Return every app host to ``version``: upload, pull it everywhere, then roll the
    hosts in batches; a failed host stops it and the hosts already switched go back."""
    home = fleet.primary.stack
    release = releases.Release(version=version, status="running", kind="rollback", hosts=[m.name for m in fleet.members],
                               compose_files=list(fleet.settings.stage.compose_files), env_file=str(fleet.settings.env_file))
    target = fleet.with_env(APP_VERSION=version)
    apps = target.with_role("app")
    services = list(fleet.settings.config.stateless)
    ran: dict[str, dict[str, str]] = {}  # switched host -> the tags it ran
    with recorded(home, release, f"rollback to {version}"):
        fleet.each(lambda m: upload(m.stack), what="upload", members=fleet.with_role("app"))
        target.each(pull_images, what="pull", members=apps)

        def roll(m: Member) -> None:
            old = next(o for o in fleet.members if o.name == m.name)
            tags = previous_tags(old.stack, services)
            rollout(m.stack, services, timeout, say)
            ran[m.name] = tags
            verify_proxy(m.stack)

        try:
            for batch in batches(apps, parallel):
                target.each(roll, what="rollback", members=batch, parallel=len(batch), summary=False)
        except (Exit, Exception):
            say(f"rollback failed: returning {', '.join(ran) or 'no host'} to what they ran")
            return_hosts(fleet, [m for m in fleet.members if m.name in ran], ran, timeout, say)
            raise
        release.status = "success"
        release.images = {n.service: n.ref(version) for n in image_names(home)}
    return release

