"""Moving a swarm to a version: the Swarm engine's side of a deploy and a rollback.

The same steps as on Compose hosts (``deploy.release.switch``), done by Swarm: the
stack file is rendered on this machine from the compose files (``stackfile``), the
secrets and configs it names are created on the manager, the stateful services are
deployed when they are missing, migrations run once as a one-off task of the new image,
then ``docker stack deploy`` updates the app services (``start-first``: a new task
takes traffic once healthy; a failing one makes Swarm roll the service back), and the
proxy of every edge node is checked. If a later step fails, the services this deploy
updated are rolled back (``docker service rollback``).
"""
from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from invoke.exceptions import Exit

from deploy.config import masking
from deploy.engine.commands import swarm as cmd
from deploy.engine.facts import desired_replicas
from deploy.engine.images import Pinned
from deploy.engine.ops import Call, Note, Ops, Put, run
from deploy.engine.stack import Stack
from deploy.engine.steps import Step
from deploy.errors import fail
from deploy.fleet import Fleet, Member, on_each
from deploy.output import say, styled
from deploy.stack.health import verify
from deploy.state import history
from deploy.swarm.facts import Service, parse_services, parse_tasks, running_tasks
from deploy.swarm.stackfile import Renderer, Roles, StackFiles, unescaped

INIT_FIX = "form the swarm first: inv swarm.init --stage STAGE"
FINAL = ("complete", "failed", "rejected", "shutdown", "orphaned", "remove")


def nothing() -> Ops[None]:
    """The ops of a step Swarm does itself."""
    yield from ()


def read_source(path: str) -> bytes | None:
    """A bind mount's source on this machine: a file's bytes; None for a directory, or
    for nothing there (Compose would create a directory)."""
    source = Path(path)
    return source.read_bytes() if source.is_file() else None


def render(here: Stack, manager: Stack, pins: Mapping[str, Pinned]) -> StackFiles:
    """The stack files of ``here``'s settings (its APP_VERSION names the release), with
    the replicas of the compose files or of ``inv scale`` (kept on the ``manager``), the
    app images by the digests the release was pushed as (``pins``)."""
    s = here.settings
    cfg = s.config
    config = here.config()
    roles = Roles({name: svc.port for name, svc in cfg.stateless.items()}, list(cfg.stateful), cfg.proxy.service)
    secrets = {name: s.env.get(name, "") for name in cfg.secret_env}
    replicas = desired_replicas(config, manager.saved_scale())
    images = {service: pin.exact for service, pin in pins.items()}
    named = masking.secrets(s.env, s.secret_names)  # also the offsite password's, and those named like a secret
    return Renderer(s.stage.project, config, roles, secrets, replicas, read_source, s.stage.encrypt_overlay, images, named).render()


def dump(stack_file: dict[str, Any]) -> bytes:
    """The stack file as JSON (which is YAML, what ``docker stack deploy`` reads)."""
    return (json.dumps(stack_file, indent=2) + "\n").encode()


def services(manager: Stack) -> dict[str, Service]:
    """The stack's services by their name in the compose files (backend, not myapp_backend)."""
    project = manager.settings.stage.project
    ids = manager.run(cmd.services(project), what="listing the stack's services", fix=INIT_FIX).stdout.split()
    if not ids:
        return {}
    found = parse_services(manager.run(cmd.inspect_services(ids), what="inspecting the stack's services").stdout)
    return {s.name.removeprefix(f"{project}_"): s for s in found}


def create_objects(manager: Stack, files: StackFiles) -> Ops[None]:
    """The secrets and configs the stack files name, created on the manager when missing
    (their content on stdin, never on a command line)."""
    project = manager.settings.stage.project
    for kind, wanted in (("secret", files.secrets), ("config", files.configs)):
        have = set(manager.run(cmd.objects(kind, project), what=f"listing the stack's {kind}s", fix=INIT_FIX).stdout.split())
        for name, content in sorted(wanted.items()):
            if name not in have:
                yield run(manager, cmd.create_object(kind, name, {cmd.STACK_LABEL: project}), what=f"creating the {kind} {name}",
                          stdin=content)


def remove_unused_objects(manager: Stack) -> Ops[None]:
    """The stack's secrets and configs that no service's spec names any more: a deploy's
    cleanup. (A manual ``docker service rollback`` to a spec that named one then fails:
    roll back with ``inv rollback``, which creates them again.)"""
    project = manager.settings.stage.project
    used = {name for svc in services(manager).values() for name in svc.objects}
    for kind in ("secret", "config"):
        names = manager.run(cmd.objects(kind, project), what=f"listing the stack's {kind}s").stdout.split()
        unused = [n for n in names if n not in used]
        if unused:
            yield run(manager, cmd.remove_objects(kind, unused), what=f"removing unused {kind}s")


def stack_path(manager: Stack, part: str) -> str:
    """Where the manager keeps a stack file (app, stateful) of the last deploy."""
    return manager.state_file(f"stack-{part}.yml")


def deploy_part(manager: Stack, content: dict[str, Any], part: str, timeout: float) -> Ops[None]:
    """Write one stack file on the manager (mode 0600) and deploy it; Swarm's wait for
    convergence may take ``timeout`` (the tasks' own health checks and update monitors)."""
    path = stack_path(manager, part)
    yield Put(manager, path, dump(content))
    yield run(manager, cmd.deploy(manager.settings.stage.project, path), what=f"docker stack deploy ({part})",
              fix="inv swarm.status shows the tasks and their errors; inv logs SERVICE their output", show=True, timeout=timeout)


def converged(manager: Stack, names: Sequence[str], timeout: float) -> None:
    """Wait until every task of ``names`` that should run does (Swarm's own progress
    ends when the update does; a task rescheduled meanwhile may still be starting)."""
    project = manager.settings.stage.project
    deadline = time.monotonic() + timeout
    said = ""
    while True:
        current = services(manager)
        tasks = parse_tasks(manager.run(cmd.tasks([f"{project}_{n}" for n in names]), what="listing the tasks").stdout)
        waiting = []
        for name in names:
            svc = current.get(name)
            running, want = running_tasks(f"{project}_{name}", svc, tasks)
            draining = [t for t in tasks if t.service == f"{project}_{name}" and t.state in ("running", "starting")]
            if svc is None or len(running) < want or (want == 0 and draining):  # none: every task has ended
                waiting.append(f"{name} {len(running)}/{want}")
        if not waiting:
            return
        if ", ".join(waiting) != said:
            said = ", ".join(waiting)
            say(f"  waiting: {said} running")
        if time.monotonic() > deadline:
            errors = sorted({f"{t.service}: {t.error}" for t in tasks if t.error and t.desired == "Running"})
            fail(f"the swarm did not converge in {timeout:.0f} s: " + ", ".join(waiting) + ("; " + "; ".join(errors) if errors else ""),
                 "see inv swarm.status and inv logs SERVICE")
        time.sleep(1)


class SwarmSwitch:
    """``old`` (the swarm as it serves) moved to ``new`` (naming the version's images)."""

    def __init__(self, old: Fleet, new: Fleet, version: str, timeout: float, parallel: int,
                 pins: Mapping[str, Pinned] | None = None) -> None:
        self.old, self.new = old, new
        self.version = version
        self.pins = dict(pins or {})  # service -> its image by digest, in the stack file; a deploy's push sets them
        self.timeout = timeout
        self.manager = new.primary.stack
        self.services = list(new.settings.config.stateless)
        self.ran: dict[str, dict[str, str]] = {}  # the manager -> each service this deploy updated: its image before
        self.left: dict[str, str] = {}  # each service this deploy updated -> the image it set
        self._files: StackFiles | None = None
        if len(old.members) != len(old.settings.stage.hosts):
            fail("a swarm is deployed as a whole: --hosts and --roles do not apply", "run it without --hosts and --roles")

    @property
    def files(self) -> StackFiles:
        """The rendered stack files (rendered once, when first needed)."""
        if self._files is None:
            self._files = render(self.new.here, self.manager, self.pins)
        return self._files

    def pin(self, pins: Mapping[str, Pinned]) -> None:
        """The images the services are moved to, as the push recorded them."""
        self.pins, self._files = dict(pins), None

    def where(self, detail: str = "") -> str:
        return f"{self.new.primary.name} (the manager){' ' + detail if detail else ''}"

    def upload_step(self, members: Sequence[Member]) -> Step:
        return Step("upload", lambda: create_objects(self.manager, self.files),
                    where=self.where("the secrets and configs of the stack file, from stdin"))

    def pull_step(self, members: Sequence[Member]) -> Step:
        return Step("pull", nothing, "each node pulls the images when Swarm starts its tasks")

    def stateful_step(self, restart: bool) -> Step:
        return Step("stateful", lambda: self.stateful(restart), where=self.where())

    def stateful(self, restart: bool) -> Ops[None]:
        stateful = list(self.new.settings.config.stateful)
        running = services(self.manager)
        absent = [s for s in stateful if s not in running]
        if not absent and not restart:
            yield Note("  running: " + ", ".join(stateful) + " (their stack file is deployed when one is missing, or with --restart-stateful)")
            return
        chosen = stateful if restart else absent  # the others are left as they run
        yield Note(f"  deploying {', '.join(chosen)}")
        part = {**self.files.stateful, "services": {n: self.files.stateful["services"][n] for n in chosen}}
        yield from deploy_part(self.manager, part, "stateful", self.timeout)
        yield Call(self.manager, f"wait until {', '.join(chosen)} run", lambda: converged(self.manager, chosen, self.timeout))

    def migrate_step(self) -> Step:
        fix = "fix the migration; the previous version still serves"
        command = self.manager.settings.config.database.migrate_command
        return Step("migrate", lambda: one_off(self.manager, self.files, command, "the migration", fix), where=self.where("a one-off task"))

    def roll_step(self) -> Step:
        return Step("rollout", self._roll, where=self.where("docker stack deploy, start-first"))

    def verify_step(self) -> Step:
        edges = self.new.with_role("edge")
        return Step("verify", lambda: self._verify(edges), where=", ".join(m.name for m in edges) + " through each one's proxy")

    def _verify(self, edges: Sequence[Member]) -> Ops[None]:
        yield on_each(self.new, edges, lambda m: verify(m.stack), "verify")

    def _roll(self) -> Ops[None]:
        app = [*self.services, self.new.settings.config.proxy.service]
        before: dict[str, Service] = {}

        def read_before() -> None:
            before.update(services(self.manager))

        yield Call(self.manager, "read the services' specs", read_before)
        try:
            yield from deploy_part(self.manager, self.files.app, "app", self.timeout * 2)
        finally:
            yield Call(self.manager, "read what Swarm did", lambda: self._judge(app, before))
        yield Call(self.manager, f"wait until every task of {', '.join(app)} runs", lambda: converged(self.manager, app, self.timeout))
        yield Note(f"switched to {self.version}")

    def _judge(self, app: Sequence[str], before: dict[str, Service]) -> None:
        """Which services this deploy updated (kept to undo them), and fail when Swarm
        rolled one back."""
        after = services(self.manager)
        undone, paused = [], []
        for name in app:
            old, new = before.get(name), after.get(name)
            if new is None or old is None or old.version == new.version:
                continue
            if new.rolled_back:
                undone.append(f"{name} ({new.update_state}: {new.update_message})")
            elif new.update_state:  # updating (cut short), completed or paused; an unchanged spec is written with no update
                self.ran.setdefault(self.new.primary.name, {})[name] = old.image
                self.left[name] = new.image
                if new.update_state == "paused":
                    paused.append(f"{name} ({new.update_message})")
        if undone:
            fail(f"Swarm rolled back {', '.join(undone)}: the new tasks did not become healthy; the previous version serves",
                 "see inv logs SERVICE and the task errors in inv swarm.status")
        if paused:
            fail(f"Swarm paused the update of {', '.join(paused)}", "see the task errors in inv swarm.status; the deploy rolls them back")

    def return_hosts(self, only_as_left: bool = False) -> Ops[None]:
        """The services this deploy updated back to their previous spec (Swarm's rollback);
        with ``only_as_left``, only those whose image is still the one it set (another task
        updated the others: they are its)."""
        updated = list(self.ran.get(self.new.primary.name, {}))
        if only_as_left:
            now = services(self.manager)
            changed = [n for n in updated if n not in now or now[n].image != self.left.get(n)]
            for name in changed:
                yield Note(f"  {name} is left as it is: it was updated since this deploy updated it")
            updated = [n for n in updated if n not in changed]
        if not updated:
            return
        project = self.manager.settings.stage.project
        yield Note(f"rolling back {', '.join(updated)}")
        for name in updated:
            try:
                yield run(self.manager, cmd.rollback(f"{project}_{name}"), what=f"rolling back {name}", show=True)
            except (Exit, Exception) as err:  # noqa: BLE001 (the failure that made us roll back is the one raised)
                yield Note(styled(f"the rollback of {name} failed", "red") + f": {str(getattr(err, 'message', err)).splitlines()[0]}; "
                           f"see inv swarm.status --stage {self.new.settings.stage.name}")


def one_off(manager: Stack, files: StackFiles, command: Sequence[str], what: str, fix: str) -> Ops[None]:
    """``command`` once (the migrations, the seed), as a one-off task of the migrate
    service's image in ``files`` on the database's networks, with its secrets; its exit
    status is the result. It may take the stage's ``ssh.command_timeout``; one still
    running then is left to finish (never killed half-way) and the deploy stops."""
    cfg = manager.settings.config
    project, service = manager.settings.stage.project, cfg.database.migrate_service
    spec = files.app["services"][service]
    db_networks = set(files.stateful.get("networks") or {})
    networks = [f"{project}_{n}" for n in spec.get("networks", []) if n in db_networks]
    secrets = [(s["source"], s["target"]) for s in spec.get("secrets", [])]
    env = {key: unescaped(value) for key, value in (spec.get("environment") or {}).items()}  # no interpolation here
    name = f"{project}_{service}_once"
    timeout = manager.settings.stage.ssh.command_timeout
    yield run(manager, cmd.remove_services([name]), what="removing a leftover one-off task", check=False)
    yield run(manager, cmd.one_off(project, name, spec["image"], command, networks=networks, env=env, secrets=secrets),
              what=f"starting {what}")
    running: list[bool] = []
    try:
        yield Call(manager, f"wait for {name} to end; its exit status is {what}'s",
                   lambda: one_off_result(manager, name, what, fix, timeout, running))
    finally:
        if not running:
            yield run(manager, cmd.remove_services([name]), what="removing the one-off task", check=False)


def run_once(fleet: Fleet, command: Sequence[str], what: str, fix: str) -> Ops[None]:
    """``inv db.migrate`` / ``db.seed`` on a swarm: the release now serving (``fleet.here``
    names it, its image by the digest it was pushed as), its secrets and configs created if missing."""
    manager = fleet.primary.stack
    files = render(fleet.here, manager, history.pins(history.history(manager), fleet.here.settings.env.get("APP_VERSION", "")))
    yield from create_objects(manager, files)
    yield from one_off(manager, files, command, what, fix)


def one_off_result(manager: Stack, name: str, what: str, fix: str, timeout: float, running: list[bool]) -> None:
    """Wait for the one-off task ``name`` to end, show its output, and fail unless it
    completed; one still running after ``timeout`` is marked in ``running`` (left alone)."""
    deadline = time.monotonic() + timeout
    while True:
        tasks = parse_tasks(manager.run(cmd.tasks([name]), what="reading the migration task").stdout)
        done = [t for t in tasks if t.state in FINAL]
        if done:
            log = manager.target.run(cmd.logs(name, 200), warn=True)
            for line in (log.stdout + log.stderr).splitlines():
                say(f"  {line.split(' ', 1)[-1].split('| ', 1)[-1]}")
            task = done[0]
            if task.state != "complete":
                fail(f"{what} failed: its task ended {task.current}: {task.error or 'see its output above'}", fix)
            return
        if time.monotonic() > deadline:
            running.append(True)
            fail(f"{what} did not end in {timeout:.0f} s ({tasks[0].current if tasks else 'no task'}); it is left to finish",
                 f"follow it: docker service logs -f {name} (on the manager), then remove it: docker service rm {name}")
        time.sleep(1)
