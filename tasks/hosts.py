"""The `hosts` namespace: the hosts themselves, beyond the stack (docs/firewall.md)."""
from invoke import Collection, Context

from deploy.defaults import MIN_REVERT_AFTER
from tasks._input import optional_number
from tasks._open import compose_only, open_fleet
from tasks._where import Where, on_hosts

DEFAULT_REVERT_AFTER = 60


@on_hosts(held="hosts.firewall", help={
    "revert_after": f"seconds after which a host loads its rules of before unless a new SSH connection confirmed the new ones "
                    f"(default {DEFAULT_REVERT_AFTER}, at least {MIN_REVERT_AFTER})",
    "off": "remove the firewall (our nftables table) instead",
    "dry_run": "print each host's rules and every command, and change nothing",
})
def firewall(c: Context, revert_after: str | None = None, off: bool = False, dry_run: bool = False, *, where: Where) -> None:
    """Firewall the hosts (nftables): SSH always; app hosts their published HTTP(S) ports; the db host its ports to the app hosts only.

    The rules replace our own table (inet deploy_firewall) in one transaction; Docker's
    rules are left alone. A job on each host loads its rules of before after
    --revert-after seconds unless a NEW SSH connection, made after the rules are in,
    confirms them: a mistake cannot lock you out. The confirmed rules stay in the deploy
    directory (firewall/rules.nft); loading them at boot is yours (docs/firewall.md).
    """
    from deploy.engine.ops import Executor
    from deploy.output import say
    from deploy.stack import firewall as fw

    seconds = optional_number("--revert-after", revert_after, DEFAULT_REVERT_AFTER, minimum=MIN_REVERT_AFTER)
    fleet = compose_only(open_fleet(c, where), "hosts.firewall", "open TCP 2377 (managers), TCP/UDP 7946 and UDP 4789 between the nodes, "
                               "and the edges' HTTP(S) ports, with your own rules (docs/swarm.md)")
    fw.hosts_only(fleet)
    if dry_run:
        say(f"dry run: the firewall {'removed from' if off else 'on'} {', '.join(fleet.host_names())}; nothing is changed")
    plan = fw.disable_fleet(fleet) if off else fw.enable_fleet(fleet, seconds, fw.new_connection(fleet))
    Executor(dry_run=dry_run, hosts=True)(plan)


ns = Collection("hosts")
ns.add_task(firewall)
