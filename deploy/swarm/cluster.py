"""Forming a stage's swarm and reading its state (``inv swarm.init``, ``inv swarm.status``).

The first manager initializes the swarm on its address (``private_address`` when the
hosts have one); every other host joins it as its role says, with a join token read
over SSH and rotated once every host joined (the token was on a command line). Node
labels place the services: ``edge=true`` (the proxy) and ``db=true`` (the stateful
services and their volumes). Running it again joins what is missing and fixes labels.
"""
from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from deploy.engine.commands import swarm as cmd
from deploy.engine.facts import Container
from deploy.engine.ops import Call, Note, Ops, run
from deploy.engine.stack import Stack
from deploy.errors import fail
from deploy.fleet import Fleet, Member
from deploy.stack.health import Check, container_checks, http_checks
from deploy.swarm.facts import Node, Service, Task, parse_nodes, parse_tasks, running_tasks, swarm_state
from deploy.swarm.switch import services

LABELS = ("edge", "db")


def state(stack: Stack) -> dict[str, object]:
    """The engine's swarm membership (``docker info``'s Swarm)."""
    return swarm_state(stack.run(cmd.state(), what="reading the swarm state").stdout)


def nodes(manager: Stack) -> list[Node]:
    """The swarm's nodes, as its manager sees them."""
    ids = manager.run(cmd.nodes(), what="listing the nodes", fix="form the swarm: inv swarm.init").stdout.split()
    return parse_nodes(manager.run(cmd.inspect_nodes(ids), what="inspecting the nodes").stdout) if ids else []


def node_of(member: Member, found: Sequence[Node]) -> Node | None:
    """The node a host is, by the address it advertises."""
    return next((n for n in found if n.address in (member.host.reach, member.host.address)), None)


def init(fleet: Fleet) -> Ops[None]:
    """The swarm of the stage's hosts: initialized on the first manager, joined by the
    others, labelled; what exists already is kept (a host in another swarm is refused)."""
    manager = fleet.primary
    yield from _initialized(manager)
    attempted: list[str] = []
    try:
        for member in fleet.members:
            if member.name != manager.name:
                yield from _joined(manager, member, attempted)
    finally:
        for role in sorted(set(attempted)):  # the token was on a command line: it admits no one any more
            yield run(manager.stack, cmd.rotate_token(role), what=f"rotating the {role} join token")
    yield Call(manager.stack, "label the nodes: edge=true, db=true as the hosts' roles say", lambda: _label(fleet))


def _initialized(manager: Member) -> Ops[None]:
    now = state(manager.stack)
    if now.get("LocalNodeState") == "active":
        if not now.get("ControlAvailable"):
            fail(f"{manager.name} is in a swarm but not a manager of it", "make it one, or list a manager first in the stage's hosts")
        yield Note(f"  {manager.name}: already the swarm's manager")
        return
    yield run(manager.stack, cmd.init(manager.host.reach), what=f"initializing the swarm on {manager.name}")


def _joined(manager: Member, member: Member, attempted: list[str]) -> Ops[None]:
    """``member`` in the manager's swarm, with its role: joined with a token read on the
    manager when the join runs (never printed: a dry run shows none)."""
    now = state(member.stack)
    role = "manager" if member.host.has("manager") else "worker"
    if now.get("LocalNodeState") == "active":
        ours = {n.id for n in nodes(manager.stack)}
        if str(now.get("NodeID", ""))[:12] not in ours:
            fail(f"{member.name} is in another swarm", f"take it out first (docker swarm leave on {member.name}), then run inv swarm.init again")
        yield Note(f"  {member.name}: already in the swarm")
        return

    def join() -> None:
        token = manager.stack.run(cmd.join_token(role), what=f"reading the {role} join token").stdout.strip()
        attempted.append(role)
        result = member.stack.target.run(cmd.join(token, manager.host.reach, member.host.reach), warn=True)
        if not result.ok:
            detail = (result.stderr or result.stdout).replace(token, "(token)").strip().splitlines()
            fail(f"joining {member.name} to the swarm failed: {detail[-1] if detail else 'no output'}",
                 f"{member.name} must reach {manager.host.reach} on TCP 2377 and 7946, UDP 7946 and 4789")

    yield Call(member.stack, f"docker swarm join --advertise-addr {member.host.reach} --token (the {role} token) {manager.host.reach}:2377",
               join)


def _label(fleet: Fleet) -> None:
    """The edge and db labels as the hosts' roles say. The db label is not moved while
    the stateful services run: they would start on the new node with an empty volume."""
    manager = fleet.primary.stack
    found = nodes(manager)
    stateful = [s for s in services(manager) if s in fleet.settings.config.stateful]
    for member in fleet.members:
        node = node_of(member, found)
        if node is None:
            fail(f"{member.name} ({member.host.reach}) is not a node of the swarm", "run inv swarm.init again")
        add = {label: "true" for label in LABELS if member.host.has(label) and node.label(label) != "true"}
        remove = [label for label in LABELS if not member.host.has(label) and node.label(label)]
        if stateful and "db" in remove + list(add):
            fail(f"the db role moves to another node while {', '.join(stateful)} run: they would start there with an empty volume",
                 "back up (inv db.backup), remove them (docker service rm), move the role, inv deploy, then inv db.restore")
        if add or remove:
            manager.run(cmd.label_node(node.id, add, remove), what=f"labelling {member.name}")





def service_tasks(fleet: Fleet) -> list[tuple[str, Service, list[Task], int]]:
    """Per service of the stack: its name, facts, running tasks and how many it wants."""
    manager = fleet.primary.stack
    current = services(manager)
    if not current:
        return []
    tasks = parse_tasks(manager.run(cmd.tasks([svc.name for svc in current.values()]), what="listing the tasks").stdout)
    return [(name, svc, *running_tasks(svc.name, svc, tasks)) for name, svc in sorted(current.items())]


def service_rows(fleet: Fleet) -> list[tuple[str, str, str, str, str]]:
    """Per service: running/desired tasks, its version, its last update, the nodes of its tasks."""
    return [(name, f"{len(running)}/{want}", svc.tag, f"{svc.update_state}: {svc.update_message}" if svc.update_state else "",
             ",".join(sorted({t.node for t in running}))) for name, svc, running, want in service_tasks(fleet)]


def checks(fleet: Fleet, member: Member) -> list[Check]:
    """``inv health`` of a node: its task containers' healthchecks, HTTP through its
    proxy (edge nodes), and on the manager every service's running tasks."""
    found = container_checks(c for c in member.stack.containers() if c.state == "running")  # Swarm keeps its old tasks' containers
    if member.host.has("edge"):
        found += http_checks(member.stack)
    if member.name == fleet.primary.name:
        for name, _, running, want in service_tasks(fleet):
            found.append(Check(f"service {name}", len(running) >= want, f"{len(running)}/{want} tasks running"))
    return found


def task_container(fleet: Fleet, service: str, slot: int | None) -> tuple[Member, Container]:
    """The node and the container of ``service``'s running task in ``slot`` (default:
    the lowest slot running on the chosen nodes)."""
    found = fleet.each(lambda m: [c for c in m.stack.containers() if c.service == service and c.state == "running"],
                       what="finding the task", summary=False)
    tasks = sorted(((c.number, name, c) for name, containers in found.items() for c in containers), key=lambda t: (t[0], t[1]))
    chosen = [t for t in tasks if slot is None or t[0] == slot]
    if not chosen:
        slots = ", ".join(str(t[0]) for t in tasks) or "none"
        fail(f"no running task of {service}{f' in slot {slot}' if slot else ''} on {', '.join(found)}",
             f"running slots: {slots} (inv swarm.status shows where the tasks run)")
    number, name, container = chosen[0]
    return fleet.member(name), container


def logs(fleet: Fleet, names: Sequence[str], tail: int, follow: bool, since: str | None) -> None:
    """``inv logs`` on a swarm: each service's lines from every task, gathered by the
    manager (all services when ``names`` is empty), streamed at once."""
    manager = fleet.primary.stack
    project = fleet.settings.stage.project
    cfg = fleet.settings.config
    chosen = list(names) or [*cfg.stateless, cfg.proxy.service, *cfg.stateful]
    with ThreadPoolExecutor(max_workers=len(chosen)) as pool:
        list(pool.map(lambda s: manager.run(cmd.logs(f"{project}_{s}", tail, follow, since), what="reading logs", hide=False), chosen))
