"""The hosts one task acts on, and working them in parallel.

A fleet is the local engine (one member, no SSH) or the chosen hosts of a stage, each
with its own Stack on a RemoteTarget. ``each`` runs a function per host in a bounded
pool; every line a host's work prints is prefixed with the host; a per-host summary
table closes the run and a failure on any host fails the task, naming the hosts.
``open_fleet`` chooses the hosts from a stage and the task's flags; ``on_each`` is the
op that runs a workflow per host (a dry run lists each host's ops).
"""
from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Generic, TypeVar

from invoke.exceptions import Exit

from deploy.config.inventory import ROLES, SWARM_ROLES, Host, ad_hoc_hosts, is_split, role_services, select
from deploy.config.settings import Settings
from deploy.engine.ops import Executor, Ops
from deploy.engine.stack import Stack
from deploy.engine.target import Target
from deploy.errors import fail
from deploy.output import say, set_host, styled, table
from deploy.state import history as releases

T = TypeVar("T")
SPLIT_FILE = "compose/docker-compose.hosts.yml"  # layered when app hosts reach the db host over the network
LOCAL = Host(name="local", address="", roles=("app", "db"), deploy_dir="")


@dataclass(frozen=True)
class Member:
    host: Host
    stack: Stack

    @property
    def name(self) -> str:
        return self.host.name

    def services(self) -> list[str]:
        """The services this host runs, by its roles."""
        cfg = self.stack.settings.config
        return role_services(self.host, list(cfg.stateless), cfg.proxy.service, cfg.stateful)


@dataclass(frozen=True)
class Outcome:
    host: str
    ok: bool
    seconds: float
    detail: str


class HostsFailed(Exit):
    """Some hosts failed; ``outcomes`` says which and why."""

    def __init__(self, message: str, outcomes: Sequence[Outcome]) -> None:
        super().__init__(message, code=1)
        self.outcomes = list(outcomes)


@dataclass(frozen=True)
class Fleet:
    settings: Settings
    members: tuple[Member, ...]  # the chosen hosts
    primary: Member  # keeps the stage's lock and release history (the db host; on a swarm its manager)
    parallel: int
    here: Stack  # this machine's engine with the stage's settings: tests, build, tag, push

    @property
    def remote(self) -> bool:
        return not self.primary.stack.target.local

    @property
    def swarm(self) -> bool:
        """The stage is one Docker Swarm: stack-wide work runs on its manager (``primary``)."""
        return self.settings.stage.swarm

    def host_names(self) -> list[str]:
        """The chosen hosts' names (none for the local engine)."""
        return [m.name for m in self.members] if self.remote else []

    def where(self, members: Sequence[Member], detail: str = "") -> str:
        """'h1, h2 DETAIL' for a plan's step on hosts; '' on the local engine."""
        if not self.remote:
            return ""
        return ", ".join(m.name for m in members) + (f" {detail}" if detail else "")

    def with_role(self, role: str) -> list[Member]:
        return [m for m in self.members if m.host.has(role)]

    def one(self, role: str | None = None) -> Member:
        """The single host a task like exec works on: the only chosen one (with ``role``)."""
        chosen = self.with_role(role) if role else list(self.members)
        if len(chosen) != 1:
            names = ", ".join(m.name for m in chosen) or "none"
            fail(f"this works on one host, and {len(chosen)} match ({names})", "choose one host: --host NAME (or --hosts NAME)")
        return chosen[0]

    def pick(self, service: str) -> Member:
        """The host to run ``service``'s command on: the chosen host running its role
        (the first one when several do)."""
        role = "db" if service in self.settings.config.stateful else "app"
        chosen = self.with_role(role)
        if not chosen:
            fail(f"no chosen host runs {service} (role {role})", f"choose a host with the {role} role, or none")
        if len(chosen) > 1:
            say(f"{service} runs on {', '.join(m.name for m in chosen)}: using {chosen[0].name} (choose with --host)")
        return chosen[0]

    def app_stacks(self) -> list[Stack]:
        """The stacks of the chosen hosts that run the app services (the db host too when
        it has the app role; the local engine is one)."""
        return [m.stack for m in self.with_role("app")]

    def ordered(self) -> tuple[list[Member], list[Member]]:
        """The chosen db host first (what the apps need), then the other hosts."""
        db = self.with_role("db")
        return db, [m for m in self.members if not m.host.has("db")]

    def with_env(self, **values: str) -> Fleet:
        members = tuple(dataclasses.replace(m, stack=m.stack.with_env(**values)) for m in self.members)
        primary = dataclasses.replace(self.primary, stack=self.primary.stack.with_env(**values))
        return dataclasses.replace(self, members=members, primary=primary, here=self.here.with_env(**values))

    def member(self, name: str) -> Member:
        """The chosen member called ``name``."""
        return next(m for m in self.members if m.name == name)

    def each(
        self,
        work: Callable[[Member], T],
        what: str,
        members: Sequence[Member] | None = None,
        parallel: int | None = None,
        summary: bool = True,
    ) -> dict[str, T]:
        """``work`` on every member, at most ``parallel`` at once. Locally it just runs."""
        chosen = list(self.members if members is None else members)
        if not self.remote:
            return {m.name: work(m) for m in chosen}
        results: dict[str, T] = {}
        outcomes: dict[str, Outcome] = {}

        def one(m: Member) -> None:
            set_host(m.name)
            start = time.monotonic()
            try:
                results[m.name] = work(m)
                outcomes[m.name] = Outcome(m.name, True, time.monotonic() - start, "")
            except (Exit, Exception) as err:  # noqa: BLE001 (every host's failure is reported)
                detail = str(getattr(err, "message", "") or err or type(err).__name__)
                outcomes[m.name] = Outcome(m.name, False, time.monotonic() - start, detail)
            finally:
                set_host(None)

        with ThreadPoolExecutor(max_workers=max(1, min(parallel or self.parallel, len(chosen)))) as pool:
            try:
                list(pool.map(one, chosen))
            except KeyboardInterrupt:  # Ctrl-C (inv logs -f): end every host's command, then stop
                for m in chosen:
                    m.stack.target.close()
                raise
        ordered = [outcomes[m.name] for m in chosen]
        failed = [o for o in ordered if not o.ok]
        if summary and (len(chosen) > 1 or failed):
            table(f"{what}: {len(chosen) - len(failed)} of {len(chosen)} hosts ok", ["host", "result", "seconds", "detail"],
                  ((o.host, styled("ok", "green") if o.ok else styled("FAILED", "red"), f"{o.seconds:.1f}", first_line(o.detail))
                   for o in ordered))
        if failed:
            fixes = {line.strip() for o in failed for line in o.detail.splitlines() if line.strip().startswith("fix:")}
            fix = fixes.pop() if len(fixes) == 1 else "fix: read the lines prefixed with each failed host above"
            raise HostsFailed(
                f"error: {what} failed on {', '.join(o.host for o in failed)}: " + "; ".join(f"{o.host}: {first_line(o.detail)}" for o in failed)
                + f"\n  {fix}", failed)
        return results


def first_line(text: str) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line.removeprefix("error: ")[:160]


def open_fleet(settings: Settings, names: Sequence[str], roles: Sequence[str], accept_new_host_keys: bool,
               local: Target) -> Fleet:
    """The hosts a task acts on: the local engine (``local``) when the stage has no hosts
    and none are named, else the stage's hosts narrowed by ``names`` and ``roles`` (or,
    without a stage's hosts, the hosts named, by address or ~/.ssh/config alias)."""
    stage = settings.stage
    hosts = stage.hosts or (ad_hoc_hosts(names, settings.stage.project) if names else ())
    if not hosts:
        if roles:
            fail(f"--roles needs a stage with hosts, and {stage.name} has none", "list them under deploy.stages.NAME.hosts")
        return local_fleet(settings, local)
    chosen = select(hosts, names if stage.hosts else [], roles, stage.name, SWARM_ROLES if stage.swarm else ROLES)
    return remote_fleet(settings, hosts, chosen, accept_new_host_keys, here=local)


def local_fleet(settings: Settings, target: Target) -> Fleet:
    member = Member(LOCAL, releases.pin_current(Stack(settings, target)))
    return Fleet(settings, (member,), member, parallel=1, here=member.stack)


def host_settings(settings: Settings, hosts: Sequence[Host]) -> Settings:
    """A stage's settings as its hosts use them: when app hosts do not hold the database,
    the hosts compose file is layered on and DB_HOST names the db host's address."""
    if not is_split(hosts):
        return settings
    db = next(h for h in hosts if h.has("db"))
    stage = dataclasses.replace(settings.stage, compose_files=(*settings.stage.compose_files, SPLIT_FILE))
    return dataclasses.replace(settings, stage=stage, env={**settings.env, "DB_HOST": db.reach})


def remote_fleet(settings: Settings, hosts: Sequence[Host], chosen: Sequence[Host], accept_new_host_keys: bool, here: Target) -> Fleet:
    """The chosen hosts of a stage; the stage's db host (on a swarm: its first manager)
    keeps the lock and the history (also when it is not chosen), and names the release
    now serving for every host."""
    from deploy.engine.remote import RemoteTarget  # paramiko only when there are hosts (CLI start time)

    settings = host_settings(settings, hosts)
    ssh = settings.stage.ssh
    targets = {h.name: RemoteTarget(h, ssh, accept_new_host_keys) for h in hosts}
    keeper = next(h for h in hosts if h.has("manager" if settings.stage.swarm else "db"))
    primary = Member(keeper, releases.pin_current(Stack(settings, targets[keeper.name])))
    pinned = primary.stack.settings.overrides
    members = tuple(Member(h, Stack(settings, targets[h.name]).with_env(**pinned)) for h in chosen)
    return Fleet(settings, members, primary, parallel=ssh.parallel, here=Stack(settings, here).with_env(**pinned))


@dataclass(frozen=True)
class Each(Generic[T]):
    """An op: ``work`` (a workflow per host) on ``members`` of ``fleet``, at most
    ``parallel`` at once (default: the fleet's pool); a dry run lists each host's ops."""

    fleet: Fleet
    members: tuple[Member, ...]
    work: Callable[[Member], Ops[T]]
    what: str
    parallel: int | None = None
    summary: bool = True

    def apply(self, executor: Executor) -> dict[str, T]:
        return self.fleet.each(lambda m: executor(self.work(m)), self.what, self.members, self.parallel, self.summary)

    def dry(self, executor: Executor) -> dict[str, T]:
        return {m.name: executor(self.work(m)) for m in self.members}


def on_each(fleet: Fleet, members: Sequence[Member], work: Callable[[Member], Ops[T]], what: str, *,
            parallel: int | None = None, summary: bool = True) -> Each:
    """The ``Each`` op of ``work`` on ``members``."""
    return Each(fleet, tuple(members), work, what, parallel, summary)
