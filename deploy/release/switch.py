"""Moving a fleet's app hosts to a version: the part a deploy and a rollback share.

Upload the stage's files to every host (hosts only), pull the version's images on every
host before any switches (hosts only: the local engine has what it built), then switch
the app hosts in batches (``parallel`` at a time; each host: the zero-downtime rollout,
its proxy started if needed and checked), then verify every app host. What each
switched host ran before is kept, so that a failure anywhere returns them all.
"""
from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence

from invoke.exceptions import Exit

from deploy.database import admin
from deploy.engine.commands import compose
from deploy.engine.facts import desired_replicas, parse_hashes
from deploy.engine.images import Pinned
from deploy.engine.ops import Note, Ops, run
from deploy.engine.steps import Step
from deploy.engine.upload import upload
from deploy.errors import fail
from deploy.fleet import Fleet, Member, on_each
from deploy.output import styled
from deploy.stack import lifecycle
from deploy.stack.health import verify
from deploy.stack.rollout import previous_tags, roll_back, rollout
from deploy.swarm.switch import SwarmSwitch

MIGRATE_FIX = "fix the migration; the previous version still serves"
LOCAL_FILES = "the local engine reads this checkout's files"
LOCAL_IMAGES = "the local engine has the images it built"


def batches(members: Sequence[Member], size: int) -> list[list[Member]]:
    return [list(members[i:i + size]) for i in range(0, len(members), size)]


class Switch:
    """``old`` (the fleet as it serves) moved to ``new`` (the same fleet naming the
    version's images), ``parallel`` app hosts at a time."""

    def __init__(self, old: Fleet, new: Fleet, version: str, timeout: float, parallel: int,
                 pins: Mapping[str, Pinned] | None = None) -> None:
        self.old, self.new = old, new
        self.version = version
        self.pins = dict(pins or {})  # service -> the image the hosts pull (by digest); a deploy's push sets them
        self.timeout = timeout
        self.parallel = parallel
        self.services = list(old.settings.config.stateless)
        self.ran: dict[str, dict[str, str]] = {}  # switched host -> the tag each service ran before
        self.left: dict[str, list[tuple[str, str]]] = {}  # switched host -> the app containers it left there (serving)
        self._lock = threading.Lock()
        if not old.with_role("app"):
            fail("none of the chosen hosts has the app role: there is nothing to switch", "choose app hosts, or none (all of the stage)")

    def desired(self, m: Member) -> dict[str, int]:
        """The host's replica counts: its compose files (just uploaded) and its own `inv
        scale` counts. A host with no files yet (a dry run before the first upload) is
        planned with the files here, which the upload would put there."""
        try:
            return m.stack.desired()
        except Exit:
            return desired_replicas(self.new.here.config(), m.stack.saved_scale())

    def upload_step(self, members: Sequence[Member]) -> Step:
        return Step("upload", lambda: self._each(members, lambda m: upload(m.stack), "upload"),
                    "" if self.new.remote else LOCAL_FILES,
                    self.new.where(members, "(compose files, and the env file with mode 0600, by SFTP)"))

    def pull_step(self, members: Sequence[Member]) -> Step:
        return Step("pull", lambda: self._each(members, lambda m: lifecycle.pull(m.stack, m.services(), self.pins), "pull"),
                    "" if self.new.remote else LOCAL_IMAGES, self.new.where(members))

    def pin(self, pins: Mapping[str, Pinned]) -> None:
        """The images the hosts are moved to, as the push recorded them."""
        self.pins = dict(pins)

    def stateful_step(self, restart: bool) -> Step:
        return Step("stateful", lambda: self.stateful(restart), where=self.new.where([self.new.primary]))

    def stateful(self, restart: bool) -> Ops[None]:
        """Stateful services are left alone unless their image or configuration changed;
        then they are restarted only with ``restart`` (--restart-stateful, after the backup step)."""
        old, new = self.old.primary.stack, self.new.primary.stack
        cfg = new.settings.config
        timeout = int(self.timeout)
        running = {c.service: c.config_hash for c in old.containers() if c.state == "running" and c.service in cfg.stateful}
        wanted = parse_hashes(new.run(compose.config_hashes(new.project, list(running)), what="hashing the stateful services").stdout
                              ) if running else {}
        absent = [s for s in cfg.stateful if s not in running]
        if absent:
            yield Note(f"  starting {', '.join(absent)} (not running)")
            yield run(new, compose.up(new.project, absent, no_deps=True, wait_timeout=timeout),
                      what=f"starting {', '.join(absent)}", fix="see inv logs SERVICE")
        changed = [s for s in cfg.stateful if s in running and wanted.get(s) != running[s]]
        if not changed:
            if not absent:
                yield Note("  unchanged: " + ", ".join(cfg.stateful))
            return
        if not restart:
            yield Note("  " + styled("warning:", "yellow") + f" {', '.join(changed)} changed (image or configuration) and are left as they run; "
                       "deploy with --restart-stateful to apply (restarts them: a short outage of what depends on them)")
            return
        yield Note("  " + styled(f"restarting {', '.join(changed)}", "yellow") + " to apply their new image or configuration")
        yield run(new, compose.up(new.project, changed, no_deps=True, wait_timeout=timeout), what=f"restarting {', '.join(changed)}",
                  fix="see inv logs SERVICE; the backup taken before is in inv db.list")

    def migrate_step(self) -> Step:
        apps = self.new.with_role("app")
        return Step("migrate", lambda: admin.migrate(apps[0].stack, MIGRATE_FIX, upload_files=False), where=self.new.where(apps[:1]))

    def roll_step(self) -> Step:
        apps = self.new.with_role("app")
        how = f"{self.parallel} at a time, each with its proxy checked" if self.new.remote else ""
        return Step("rollout", lambda: self._roll(apps), where=self.new.where(apps, how))

    def verify_step(self) -> Step:
        apps = self.new.with_role("app")
        return Step("verify", lambda: self._each(apps, lambda m: verify(m.stack), "verify"),
                    where=self.new.where(apps, "through each one's proxy"))

    def _each(self, members: Sequence[Member], work: Callable[[Member], Ops[None]], what: str) -> Ops[None]:
        yield on_each(self.new, members, work, what)

    def _roll(self, apps: Sequence[Member]) -> Ops[None]:
        for i, batch in enumerate(batches(apps, self.parallel), 1):
            if self.new.remote:
                yield Note(f"  batch {i}: {', '.join(m.name for m in batch)}")
            yield on_each(self.new, batch, self._roll_host, f"rollout of {', '.join(m.name for m in batch)}",
                          parallel=len(batch), summary=False)

    def _roll_host(self, m: Member) -> Ops[None]:
        tags = previous_tags(self.old.member(m.name).stack, self.services)
        desired = self.desired(m)
        yield Note(f"rollout of {', '.join(self.services)} -> {self.version}")
        yield from rollout(m.stack, self.services, self.timeout, desired)
        left = self.serving(m)
        with self._lock:
            self.ran[m.name], self.left[m.name] = tags, left
        yield from lifecycle.start_proxy(m.stack, self.timeout)
        yield from verify(m.stack)
        yield Note(f"switched to {self.version}")

    def serving(self, m: Member) -> list[tuple[str, str]]:
        """The app containers running on ``m``: (name, image) each."""
        return sorted((c.name, c.image) for c in m.stack.containers() if c.service in self.services and c.state == "running")

    def return_hosts(self, only_as_left: bool = False) -> Ops[None]:
        """Every switched host back to the images it ran, in parallel (each is
        zero-downtime); with ``only_as_left``, only those whose app containers are still
        the ones this switch left (another task changed the others: they are its). A host
        that fails is reported, not raised: the failure that made us return them is the
        one to raise."""
        switched = [m for m in self.old.members if m.name in self.ran]
        if only_as_left:
            changed = [m for m in switched if self.serving(m) != self.left[m.name]]
            for m in changed:
                yield Note(f"  {m.name} is left as it is: its containers changed since this deploy switched it")
            switched = [m for m in switched if m not in changed]
        if not switched:
            return
        yield Note(f"rolling back {', '.join(m.name for m in switched)}" if self.old.remote else "rolling back")
        try:
            yield on_each(self.old, switched, lambda m: roll_back(m.stack, self.services, self.ran[m.name], self.timeout),
                          "rollback")
        except (Exit, Exception) as err:  # noqa: BLE001 (any failure of the undo is reported, not raised)
            where = f" on {self.old.settings.stage.name}" if self.old.remote else ""
            yield Note(styled(f"the rollback failed{where}", "red") + f": {str(getattr(err, 'message', err)).splitlines()[0]}; "
                       f"see inv status --stage {self.old.settings.stage.name}, then inv rollback VERSION")


Mover = Switch | SwarmSwitch


def switch_for(old: Fleet, new: Fleet, version: str, timeout: float, parallel: int,
               pins: Mapping[str, Pinned] | None = None) -> Mover:
    """What moves ``old`` to ``new`` (its app images: ``pins``, by digest): the Compose
    hosts' rollout, or Swarm's."""
    mover = SwarmSwitch if old.swarm else Switch
    return mover(old, new, version, timeout, parallel, pins)
