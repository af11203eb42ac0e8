"""The hosts' firewall (docs/firewall.md): nftables, one table of our own per host.

What a host lets in follows from its roles and from what the stage publishes (the merged
compose configuration, as a deploy uploads it): SSH always; on an app host the ports the
app services publish (nginx's HTTP and HTTPS), from anywhere; on the db host the ports
the stateful services publish (PostgreSQL, Redis), from the app hosts' addresses only.

Applying can never lock the operator out: before the new rules are loaded (one atomic
``nft -f``), a job detached from the SSH session is armed to load the rules of before
after ``revert_after`` seconds; only a NEW SSH connection made after the load disarms
it. The files live in the host's deploy directory, ``firewall/``: ``rules.nft`` (the
confirmed rules, what to load at boot) and ``active.nft`` (nft's own listing of them
right after the confirmation, which ``state`` compares with what is active).
"""
from __future__ import annotations

import ipaddress
import secrets
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from invoke.exceptions import Exit

from deploy.config.inventory import Host
from deploy.defaults import MIN_REVERT_AFTER
from deploy.engine.commands import files, nft
from deploy.engine.ops import Call, Note, Ops, Put, run
from deploy.engine.stack import Stack
from deploy.engine.target import Target
from deploy.errors import fail
from deploy.fleet import Fleet, Member, first_line, on_each

FOLDER = "firewall"  # in the host's deploy directory (the firewall is the host's, not a stage's)
CANDIDATE, RULES, ACTIVE, LOG = "rules.nft.new", "rules.nft", "active.nft", "revert.log"
LOOPBACK = ("127.0.0.1", "::1", "localhost")
NFT_FIX = "install nftables on the host (apt-get install nftables) and run the tasks as root there"

# A new connection to a member's host, not the one the rules were applied over.
Reconnect = Callable[[Member], Target]


@dataclass(frozen=True)
class Exposure:
    """What a stage's hosts publish, as (port, protocol): ``public`` by the app role's
    services (open to all), ``private`` by the db role's (open to ``app_sources``, the
    app hosts' addresses as the db host sees them)."""

    public: tuple[tuple[int, str], ...]
    private: tuple[tuple[int, str], ...]
    app_sources: tuple[str, ...]


class PutRules(Put):
    """Writing a ruleset: a dry run shows the rules themselves."""

    def describe(self) -> str:
        return super().describe() + ":\n" + "".join(f"        {line}\n" for line in self.data.decode().splitlines()).rstrip("\n")


def folder(host: Host) -> str:
    return f"{host.deploy_dir}/{FOLDER}"


def published(config: Mapping[str, Any], services: Iterable[str]) -> tuple[tuple[int, str], ...]:
    """The host ports ``services`` publish in a ``docker compose config`` (pure); ports
    bound to loopback only are left out (nothing outside reaches them)."""
    found = set()
    for service in services:
        for port in (config.get("services", {}).get(service) or {}).get("ports") or []:
            number = str(port.get("published") or "")
            if number.isdigit() and port.get("host_ip") not in LOOPBACK:
                found.add((int(number), str(port.get("protocol") or "tcp")))
    return tuple(sorted(found))


def exposure(fleet: Fleet) -> Exposure:
    """The stage's ``Exposure``: the compose configuration merged on this machine, and
    the addresses of every app host of the stage (chosen or not)."""
    hosts_only(fleet)
    cfg = fleet.settings.config
    config = fleet.here.config()
    hosts = fleet.settings.stage.hosts or tuple(m.host for m in fleet.members)
    return Exposure(published(config, [*cfg.stateless, cfg.proxy.service]), published(config, cfg.stateful),
                    tuple(h.reach for h in hosts if h.has("app")))


def hosts_only(fleet: Fleet) -> None:
    if not fleet.remote:
        fail(f"the firewall is for stages with hosts, and {fleet.settings.stage.name} has none (this machine's firewall is yours)",
             "give a stage with hosts (--stage NAME) or a host (--hosts ADDRESS)")


def policy(host: Host, ssh_ports: Sequence[int], exposed: Exposure, stage: str) -> nft.Policy:
    """What ``host`` lets in (pure): SSH; the public ports on an app host; the private
    ones, from the app hosts only, on the db host."""
    openings = [nft.Opening(port, proto) for port, proto in exposed.public] if host.has("app") else []
    if host.has("db") and exposed.private:
        for address in exposed.app_sources:
            try:
                ipaddress.ip_address(address)
            except ValueError:
                fail(f"the firewall lets the app hosts reach the db host by IP address, and {address!r} is not one",
                     f"set private_address of that app host under deploy.stages.{stage}.hosts to the address the db host sees it come from")
        openings += [nft.Opening(port, proto, tuple(sorted(set(exposed.app_sources)))) for port, proto in exposed.private]
    return nft.Policy(tuple(sorted(set(ssh_ports))), tuple(openings))


def summary(rules: nft.Policy) -> str:
    """'SSH 22; open 80, 443; 5432, 6379 from 10.0.0.1, 10.0.0.2' (for people)."""
    parts = [f"SSH {', '.join(map(str, rules.ssh_ports))}"]
    public = [o.port for o in rules.openings if not o.sources]
    if public:
        parts.append(f"open {', '.join(map(str, public))}")
    private: dict[tuple[str, ...], list[int]] = {}
    for o in rules.openings:
        if o.sources:
            private.setdefault(o.sources, []).append(o.port)
    parts += [f"{', '.join(map(str, ports))} from {', '.join(sources)}" for sources, ports in private.items()]
    return "; ".join(parts)


def ssh_ports(member: Member) -> tuple[int, ...]:
    """The SSH ports to keep open: the configured one (or 22), and the one sshd sees this
    very connection on (an alias's Port, a NAT in between)."""
    seen = nft.parse_ssh_port(member.stack.target.run(nft.ssh_connection(), warn=True).stdout)
    return tuple(sorted({member.host.port or 22, *([seen] if seen else [])}))


def active(stack: Stack) -> str | None:
    """Our table as nft lists it now on the stack's target, or None when there is none."""
    result = stack.target.run(nft.list_table(), warn=True)
    if result.ok:
        return result.stdout
    if "No such file or directory" in result.stderr:
        return None
    fail(f"reading the firewall on {stack.target.name} failed (exit {result.exited}): {first_line(result.stderr or result.stdout)}", NFT_FIX)


def enable(member: Member, exposed: Exposure, revert_after: int, reconnect: Reconnect, token: str) -> Ops[None]:
    """The host's rules, applied atomically under a timed revert, then confirmed over a
    new SSH connection (docs/firewall.md). Unconfirmed, the host loads its rules of
    before by itself after ``revert_after`` seconds, and this fails saying so."""
    stack, where = member.stack, folder(member.host)
    rules = policy(member.host, ssh_ports(member), exposed, stack.settings.stage.name)
    before = active(stack)
    candidate, marker, revert = f"{where}/{CANDIDATE}", f"{where}/unconfirmed-{token}", f"{where}/revert-{token}.nft"
    yield run(stack, files.install_dir(where, 0o700), what="creating the firewall's folder")
    yield PutRules(stack, candidate, nft.ruleset(rules).encode())
    yield Put(stack, revert, nft.replacement(before).encode())
    yield Put(stack, marker, f"remove me within {revert_after} s, or {revert} is loaded\n".encode())
    yield run(stack, nft.arm_revert(revert_after, marker, revert, f"{where}/{LOG}"), what="arming the timed revert",
              fix="the revert job needs setsid (util-linux) and sh on the host")
    try:
        yield run(stack, nft.load(candidate), what="applying the firewall rules", fix=NFT_FIX)
    except Exit:
        yield run(stack, files.remove_files(marker, revert, candidate), what="disarming the timed revert")
        raise
    yield Call(stack, f"confirm over a new SSH connection: {' '.join(nft.confirm(marker))} (else the rules of before "
                      f"come back in {revert_after} s)", lambda: confirm(member, reconnect, marker, revert_after))
    yield run(stack, files.rename(candidate, f"{where}/{RULES}"), what="keeping the confirmed rules")
    yield Call(stack, f"record nft's listing of the rules in {where}/{ACTIVE}", lambda: record(stack, f"{where}/{ACTIVE}"))
    yield Note(f"firewall on, confirmed over a new SSH connection: {summary(rules)}")


def confirm(member: Member, reconnect: Reconnect, marker: str, revert_after: int) -> None:
    """Disarm the revert job over a new connection: the proof that a new SSH session
    still gets in. Fails, leaving the job armed, when it does not."""
    target = None
    try:
        target = reconnect(member)
        result = target.run(nft.confirm(marker), warn=True)
    except (Exit, OSError) as err:
        fail(f"not confirmed: the host loads its rules of before by itself within {revert_after} s, as a new SSH connection failed "
             f"after they were applied ({first_line(str(getattr(err, 'message', '') or err))})",
             "check the rules (inv hosts.firewall --dry-run) and how you reach the host (its address and port in invoke.yaml), then run again")
    finally:
        if target is not None:
            target.close()
    if not result.ok:
        fail(f"the timed revert went off before the confirmation ({first_line(result.stderr)}): the rules of before are back",
             f"run again with a longer --revert-after (it was {revert_after} s)")


def record(stack: Stack, path: str) -> None:
    listing = active(stack)
    stack.target.write_bytes(path, (listing or "").encode(), 0o600)


def disable(member: Member) -> Ops[None]:
    """Our table removed (nothing else of the ruleset), and its files with it, so that
    nothing loads it at boot."""
    stack, where = member.stack, folder(member.host)
    yield run(stack, nft.remove(), what="removing the firewall", fix=NFT_FIX)
    yield run(stack, files.remove_files(f"{where}/{RULES}", f"{where}/{ACTIVE}"), what="removing the firewall's files")
    yield Note("firewall off: every port a service listens on is reachable again")


def enable_fleet(fleet: Fleet, revert_after: int, reconnect: Reconnect, token: str | None = None) -> Ops[None]:
    """``enable`` on every chosen host, in parallel."""
    if revert_after < MIN_REVERT_AFTER:
        fail(f"--revert-after {revert_after} leaves no time to confirm", f"give at least {MIN_REVERT_AFTER} seconds")
    exposed = exposure(fleet)
    chosen = token or secrets.token_hex(4)
    yield on_each(fleet, fleet.members, lambda m: enable(m, exposed, revert_after, reconnect, chosen), "firewall")


def disable_fleet(fleet: Fleet) -> Ops[None]:
    hosts_only(fleet)
    yield on_each(fleet, fleet.members, disable, "firewall off")


def new_connection(fleet: Fleet) -> Reconnect:
    """Opens a fresh SSH connection to a member's host, with the stage's SSH options (its
    key is known by then: strict checking)."""
    from deploy.engine.remote import RemoteTarget  # paramiko only when there are hosts (CLI start time)

    return lambda member: RemoteTarget(member.host, fleet.settings.stage.ssh)


def state(fleet: Fleet, member: Member, exposed: Exposure | None = None) -> tuple[bool, str]:
    """For ``inv check``: (True, what it lets in) when ``member``'s host runs the firewall
    this tool renders now for it, unchanged since it was confirmed; else (False, what is
    wrong and the fix). A stage without hosts: (True, not managed here). ``exposed``: the
    stage's ``exposure``, when the caller read it once for all its hosts."""
    if not fleet.remote:
        return True, "not managed on a stage without hosts (this machine's firewall is yours)"
    fix = f"run inv hosts.firewall --stage {fleet.settings.stage.name}"
    try:
        rules = policy(member.host, ssh_ports(member), exposed or exposure(fleet), fleet.settings.stage.name)
        now = active(member.stack)
    except Exit as err:
        return False, f"cannot tell: {first_line(str(err.message))}"
    where = folder(member.host)
    if now is None:
        return False, f"off (no table {nft.TABLE}): {fix}"
    if now != member.stack.target.read_text(f"{where}/{ACTIVE}"):
        return False, f"the active rules are not the ones confirmed (changed by hand, or reverted): {fix}"
    if member.stack.target.read_text(f"{where}/{RULES}") != nft.ruleset(rules):
        return False, f"the rules are out of date (the stage's ports or hosts changed): {fix}"
    return True, f"on: {summary(rules)}"

