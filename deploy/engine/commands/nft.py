"""nftables command lines and the ruleset of a host's firewall (docs/firewall.md).

The firewall is one table of our own, ``TABLE``, always replaced whole in one ``nft -f``
transaction (create it, delete it, define it: never a moment without rules, never
``flush ruleset``, which would take Docker's own rules with it). Its input chain drops
what it does not allow; its forward chain only judges connections Docker DNAT'ed to a
published container port (``ct status dnat``), by their original destination port and
source, and leaves every other forwarded packet (the containers' own traffic) alone.
"""
from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

TABLE = "inet deploy_firewall"

# The revert job, detached from the SSH session: after "$1" seconds, unless the marker "$2"
# was removed (the confirmation), it removes the marker itself and loads "$3" (the rules of
# before); it logs to "$4". `rm` decides the race with the confirmation: one of them wins.
REVERT_JOB = ('exec </dev/null >>"$4" 2>&1; sleep "$1"; '
              'if rm -- "$2" 2>/dev/null; then echo "$(date -u +%FT%TZ) not confirmed: loading the rules of before"; nft -f "$3"; fi; '
              'rm -f -- "$3"')


@dataclass(frozen=True)
class Opening:
    """A port open on a host: to every address, or only to ``sources`` (IP addresses)."""

    port: int
    protocol: str = "tcp"
    sources: tuple[str, ...] = ()


@dataclass(frozen=True)
class Policy:
    """What one host lets in: SSH on ``ssh_ports`` always, then ``openings``."""

    ssh_ports: tuple[int, ...]
    openings: tuple[Opening, ...]


def _elements(items: Sequence[object]) -> str:
    return str(items[0]) if len(items) == 1 else "{ " + ", ".join(map(str, items)) + " }"


def _by_family(sources: Sequence[str]) -> list[tuple[str, list[str]]]:
    """('ip', IPv4 sources), ('ip6', IPv6 sources), those that have any."""
    v4 = [s for s in sources if ipaddress.ip_address(s).version == 4]
    v6 = [s for s in sources if ipaddress.ip_address(s).version == 6]
    return [(family, found) for family, found in (("ip", v4), ("ip6", v6)) if found]


def _input_rules(policy: Policy) -> list[str]:
    rules = ['iif "lo" accept', "ct state established,related accept", "ct state invalid drop",
             "meta l4proto { icmp, ipv6-icmp } accept", f"tcp dport {_elements(sorted(set(policy.ssh_ports)))} accept"]
    groups: dict[tuple[tuple[str, ...], str], list[int]] = {}
    for o in policy.openings:
        groups.setdefault((o.sources, o.protocol), []).append(o.port)
    for (sources, protocol), ports in sorted(groups.items()):
        match = f"{protocol} dport {_elements(sorted(set(ports)))} accept"
        if not sources:
            rules.append(match)
        rules += [f"{family} saddr {_elements(found)} {match}" for family, found in _by_family(sources)]
    return rules


def _forward_rules(policy: Policy) -> list[str]:
    # One rule per port: nft 1.0.6 lists a set of `ct original proto-dst` values as
    # "0x50 [invalid type]", which it cannot read back (the revert loads such a listing).
    rules = []
    for o in sorted(set(policy.openings), key=lambda o: (o.sources, o.protocol, o.port)):
        match = f"ct status dnat meta l4proto {o.protocol}"
        if not o.sources:
            rules.append(f"{match} ct original proto-dst {o.port} accept")
        rules += [f"{match} ct original {family} saddr {_elements(found)} ct original proto-dst {o.port} accept"
                  for family, found in _by_family(o.sources)]
    # Refused, not dropped: a client turned away (an app host with a wrong address) fails at once.
    return [*rules, "ct status dnat meta l4proto tcp reject with tcp reset", "ct status dnat reject"]


def ruleset(policy: Policy) -> str:
    """The ``nft -f`` file that replaces our table with ``policy``'s, in one transaction."""
    chains = [("input", "type filter hook input priority filter; policy drop;", _input_rules(policy)),
              ("forward", "type filter hook forward priority filter; policy accept;", _forward_rules(policy))]
    body = "\n\n".join(f"\tchain {name} {{\n\t\t{hook}\n" + "".join(f"\t\t{r}\n" for r in rules) + "\t}" for name, hook, rules in chains)
    return (f"# The host firewall of inv hosts.firewall: replaces the table {TABLE} at once.\n"
            f"table {TABLE}\ndelete table {TABLE}\ntable {TABLE} {{\n{body}\n}}\n")


def replacement(listing: str | None) -> str:
    """The ``nft -f`` file that puts back ``listing`` (``nft list table`` of our table),
    or with None removes our table."""
    return f"table {TABLE}\ndelete table {TABLE}\n" + (listing or "")


def list_table() -> list[str]:
    """Our table as nft prints it; exits 1 saying "No such file or directory" without one."""
    return ["nft", "list", "table", *TABLE.split()]


def load(path: str) -> list[str]:
    """Apply the ``nft -f`` file ``path``: all of it, or (on any error) none of it."""
    return ["nft", "-f", path]


def remove() -> list[str]:
    """Our table gone, whether there was one or not (one transaction)."""
    return ["nft", f"table {TABLE}; delete table {TABLE}"]


def arm_revert(seconds: int, marker: str, rules_before: str, log: str) -> list[str]:
    """Start the revert job (``REVERT_JOB``) in a session of its own: it outlives this
    SSH connection, and returns at once."""
    return ["setsid", "-f", "sh", "-c", REVERT_JOB, "sh", str(int(seconds)), marker, rules_before, log]


def confirm(marker: str) -> list[str]:
    """Disarm the revert job: fails when it already went off (the marker is gone)."""
    return ["rm", "--", marker]


def ssh_connection() -> list[str]:
    """'CLIENT_IP CLIENT_PORT SERVER_IP SERVER_PORT' of the SSH session running it."""
    return ["printenv", "SSH_CONNECTION"]


def parse_ssh_port(text: str) -> int | None:
    """The server's port from ``SSH_CONNECTION`` (the port sshd sees, whatever NAT is in between)."""
    words = text.split()
    return int(words[3]) if len(words) == 4 and words[3].isdigit() else None
