"""The hosts' firewall: the ruleset and command lines (exact), the ports read from the
compose configuration, and the workflow on fake hosts: applied under a timed revert,
confirmed over a new connection, reverted when that fails; its dry run; `state`."""
from __future__ import annotations

import dataclasses
import json
import shlex
from collections.abc import Sequence

import pytest
from invoke.exceptions import Exit
from invoke.runners import Result

from deploy.config.inventory import Host
from deploy.engine.commands import files, nft
from deploy.engine.ops import Executor
from deploy.engine.stack import Stack
from deploy.errors import fail
from deploy.fleet import Fleet, HostsFailed, Member, local_fleet
from deploy.stack import firewall
from tests.unit.fake_engine import FakeEngine

APPS = ("10.0.0.1", "10.0.0.2")
EXPOSED = firewall.Exposure(public=((80, "tcp"), (443, "tcp")), private=((5432, "tcp"), (6379, "tcp")), app_sources=APPS)
# `docker compose config --format json` of a stage with hosts, as far as the firewall reads it
CONFIG = {"services": {
    "nginx": {"ports": [{"mode": "ingress", "host_ip": "0.0.0.0", "target": 8080, "published": "80", "protocol": "tcp"},
                        {"mode": "ingress", "host_ip": "0.0.0.0", "target": 8443, "published": "443", "protocol": "tcp"}]},
    "postgres": {"ports": [{"mode": "ingress", "host_ip": "10.1.0.9", "target": 5432, "published": "5432", "protocol": "tcp"}]},
    "redis": {"ports": [{"mode": "ingress", "host_ip": "10.1.0.9", "target": 6379, "published": "6379", "protocol": "tcp"}]},
    "backend": {}, "web": {"ports": None},
}}
TOKEN = "t0k3n"
DIR = "/srv/myapp/firewall"

APP_RULES = """\
# The host firewall of inv hosts.firewall: replaces the table inet deploy_firewall at once.
table inet deploy_firewall
delete table inet deploy_firewall
table inet deploy_firewall {
	chain input {
		type filter hook input priority filter; policy drop;
		iif "lo" accept
		ct state established,related accept
		ct state invalid drop
		meta l4proto { icmp, ipv6-icmp } accept
		tcp dport 22 accept
		tcp dport { 80, 443 } accept
	}

	chain forward {
		type filter hook forward priority filter; policy accept;
		ct status dnat meta l4proto tcp ct original proto-dst 80 accept
		ct status dnat meta l4proto tcp ct original proto-dst 443 accept
		ct status dnat meta l4proto tcp reject with tcp reset
		ct status dnat reject
	}
}
"""

DB_RULES = """\
# The host firewall of inv hosts.firewall: replaces the table inet deploy_firewall at once.
table inet deploy_firewall
delete table inet deploy_firewall
table inet deploy_firewall {
	chain input {
		type filter hook input priority filter; policy drop;
		iif "lo" accept
		ct state established,related accept
		ct state invalid drop
		meta l4proto { icmp, ipv6-icmp } accept
		tcp dport { 22, 2222 } accept
		ip saddr { 10.0.0.1, 10.0.0.2 } tcp dport { 5432, 6379 } accept
		ip6 saddr fd00::1 tcp dport { 5432, 6379 } accept
	}

	chain forward {
		type filter hook forward priority filter; policy accept;
		ct status dnat meta l4proto tcp ct original ip saddr { 10.0.0.1, 10.0.0.2 } ct original proto-dst 5432 accept
		ct status dnat meta l4proto tcp ct original ip6 saddr fd00::1 ct original proto-dst 5432 accept
		ct status dnat meta l4proto tcp ct original ip saddr { 10.0.0.1, 10.0.0.2 } ct original proto-dst 6379 accept
		ct status dnat meta l4proto tcp ct original ip6 saddr fd00::1 ct original proto-dst 6379 accept
		ct status dnat meta l4proto tcp reject with tcp reset
		ct status dnat reject
	}
}
"""


def host(name: str, roles: Sequence[str], address: str, port: int | None = None) -> Host:
    return Host(name, address, tuple(roles), "/srv/myapp", port=port)


def test_an_app_host_opens_ssh_and_the_published_http_ports_to_all():
    rules = firewall.policy(host("app1", ["app"], "10.0.0.1"), [22], EXPOSED, "production")
    assert nft.ruleset(rules) == APP_RULES
    assert firewall.summary(rules) == "SSH 22; open 80, 443"


def test_the_db_host_opens_its_published_ports_to_the_app_hosts_only():
    exposed = dataclasses.replace(EXPOSED, app_sources=(*APPS, "fd00::1", "10.0.0.1"))
    rules = firewall.policy(host("db1", ["db"], "10.0.0.9"), [2222, 22], exposed, "production")
    assert nft.ruleset(rules) == DB_RULES
    assert firewall.summary(rules) == "SSH 22, 2222; 5432, 6379 from 10.0.0.1, 10.0.0.2, fd00::1"
    both = firewall.policy(host("one", ["app", "db"], "10.0.0.9"), [22], EXPOSED, "production")
    assert firewall.summary(both) == "SSH 22; open 80, 443; 5432, 6379 from 10.0.0.1, 10.0.0.2"


def test_app_hosts_named_by_a_name_not_an_address_are_refused_for_the_db_rules():
    exposed = dataclasses.replace(EXPOSED, app_sources=("10.0.0.1", "app2.internal"))
    with pytest.raises(Exit, match="'app2.internal' is not one") as err:
        firewall.policy(host("db1", ["db"], "10.0.0.9"), [22], exposed, "production")
    assert "private_address of that app host under deploy.stages.production.hosts" in str(err.value.message)
    firewall.policy(host("app1", ["app"], "10.0.0.1"), [22], exposed, "production")  # an app host needs no addresses


def test_published_ports_come_from_the_compose_configuration_loopback_left_out():
    assert firewall.published(CONFIG, ["backend", "web", "nginx"]) == ((80, "tcp"), (443, "tcp"))
    assert firewall.published(CONFIG, ["postgres", "redis"]) == ((5432, "tcp"), (6379, "tcp"))
    development = {"services": {"postgres": {"ports": [{"host_ip": "127.0.0.1", "published": "5432", "protocol": "tcp"}]},
                                "nginx": {"ports": [{"host_ip": "", "published": "8080"}, {"target": 9, "published": ""}]}}}
    assert firewall.published(development, ["postgres", "nginx"]) == ((8080, "tcp"),)


def test_the_command_lines():
    assert nft.list_table() == ["nft", "list", "table", "inet", "deploy_firewall"]
    assert nft.load("/srv/a/firewall/rules.nft.new") == ["nft", "-f", "/srv/a/firewall/rules.nft.new"]
    assert nft.remove() == ["nft", "table inet deploy_firewall; delete table inet deploy_firewall"]
    assert nft.confirm("/d/unconfirmed-x") == ["rm", "--", "/d/unconfirmed-x"]
    assert files.remove_files("/d/a", "/d/b") == ["rm", "-f", "--", "/d/a", "/d/b"]
    assert nft.arm_revert(60, "/d/unconfirmed-x", "/d/revert-x.nft", "/d/revert.log") == [
        "setsid", "-f", "sh", "-c", nft.REVERT_JOB, "sh", "60", "/d/unconfirmed-x", "/d/revert-x.nft", "/d/revert.log"]
    assert nft.replacement(None) == "table inet deploy_firewall\ndelete table inet deploy_firewall\n"
    assert nft.replacement("table inet deploy_firewall {\n}\n").endswith("delete table inet deploy_firewall\ntable inet deploy_firewall {\n}\n")
    assert nft.parse_ssh_port("192.0.2.1 50022 192.0.2.2 2222\n") == 2222
    assert nft.parse_ssh_port("") is None


# --- the workflow on fake hosts -------------------------------------------------------------
class Here(FakeEngine):
    """This machine: its compose configuration publishes what ``CONFIG`` says."""

    def run(self, argv, **kwargs) -> Result:
        if "config" in argv and "json" in argv:
            return Result(stdout=json.dumps(CONFIG), command="docker compose config", exited=0)
        return super().run(argv, **kwargs)


@dataclasses.dataclass
class World:
    fleet: Fleet
    engines: dict[str, FakeEngine]
    reconnects: list[str] = dataclasses.field(default_factory=list)
    unreachable: set[str] = dataclasses.field(default_factory=set)  # hosts a new connection cannot reach

    def reconnect(self, member: Member) -> FakeEngine:
        """A new connection: the same fake host (its files), counted; or none at all."""
        self.reconnects.append(member.name)
        if member.name in self.unreachable:
            fail(f"cannot reach {member.name} ({member.host.address}): timed out", "check that the host is up")
        return self.engines[member.name]


@pytest.fixture
def world(fake_settings) -> World:
    hosts = (host("app1", ["app"], APPS[0]), host("app2", ["app"], APPS[1]), host("db1", ["db"], "10.0.0.9"))
    settings = dataclasses.replace(fake_settings, stage=dataclasses.replace(fake_settings.stage, name="production", hosts=hosts))
    engines = {h.name: FakeEngine(h.name, local=False, workdir=h.deploy_dir) for h in hosts}
    members = tuple(Member(h, Stack(settings, engines[h.name])) for h in hosts)
    return World(Fleet(settings, members, members[2], 4, Stack(settings, Here("here"))), engines)


def quiet(dry_run: bool = False) -> tuple[Executor, list[str]]:
    said: list[str] = []
    return Executor(dry_run=dry_run, hosts=True, say=said.append), said


def enable(world: World, revert_after: int = 60) -> list[str]:
    executor, said = quiet()
    executor(firewall.enable_fleet(world.fleet, revert_after, world.reconnect, token=TOKEN))
    return said


def play_revert_job(engine: FakeEngine) -> None:
    """What the job armed by `setsid -f` does once its time is up (nft.REVERT_JOB)."""
    argv = next(c.argv for c in engine.journal if c.argv[:2] == ("setsid", "-f"))
    _seconds, marker, rules_before, _log = argv[-4:]
    if engine.run(["rm", "--", marker], warn=True).ok:
        engine.run(["nft", "-f", rules_before])
    engine.run(["rm", "-f", "--", rules_before])


def test_rules_applied_under_a_timed_revert_then_confirmed_over_a_new_connection(world):
    said = enable(world)
    db = world.engines["db1"]
    lines = [c.line for c in db.journal]
    marker, revert = f"{DIR}/unconfirmed-{TOKEN}", f"{DIR}/revert-{TOKEN}.nft"
    assert lines == [
        "printenv SSH_CONNECTION",
        "nft list table inet deploy_firewall",
        f"install -d -m 0700 {DIR}",
        f"write {DIR}/rules.nft.new",
        f"write {revert}",
        f"write {marker}",
        shlex.join(nft.arm_revert(60, marker, revert, f"{DIR}/revert.log")),
        f"nft -f {DIR}/rules.nft.new",
        f"rm -- {marker}",  # over the new connection
        f"mv -f -T {DIR}/rules.nft.new {DIR}/rules.nft",
        "nft list table inet deploy_firewall",
        f"write {DIR}/active.nft",
    ]
    assert sorted(world.reconnects) == ["app1", "app2", "db1"]
    assert db.nft is not None and "ct original ip saddr { 10.0.0.1, 10.0.0.2 } ct original proto-dst 5432" in db.nft
    assert db.files[f"{DIR}/rules.nft"].decode() == nft.ruleset(firewall.policy(world.fleet.members[2].host, [22], EXPOSED, "production"))
    assert db.files[f"{DIR}/active.nft"].decode() == db.nft
    assert marker not in db.files
    assert db.files[revert].decode() == nft.replacement(None)  # the job, when its time is up, finds no marker and just goes
    play_revert_job(db)
    assert db.nft is not None and revert not in db.files
    assert "firewall on, confirmed over a new SSH connection: SSH 22; 5432, 6379 from 10.0.0.1, 10.0.0.2" in said
    assert "firewall on, confirmed over a new SSH connection: SSH 22; open 80, 443" in said


def test_a_failed_confirmation_leaves_the_revert_armed_and_fails_saying_so(world):
    before = "table inet deploy_firewall {\n\tchain input {\n\t}\n}\n"
    world.engines["app2"].nft = before
    world.unreachable.add("app2")
    with pytest.raises(HostsFailed) as err:
        enable(world, revert_after=30)
    assert [o.host for o in err.value.outcomes] == ["app2"]
    detail = err.value.outcomes[0].detail
    assert detail.startswith("error: not confirmed: the host loads its rules of before by itself within 30 s, as a new SSH connection "
                             "failed after they were applied (cannot reach app2 (10.0.0.2): timed out)")
    app2 = world.engines["app2"]
    assert app2.nft != before and f"{DIR}/unconfirmed-{TOKEN}" in app2.files  # applied, not confirmed: armed
    assert f"{DIR}/rules.nft" not in app2.files  # never kept for boot
    play_revert_job(app2)
    assert app2.nft == before
    assert world.engines["app1"].files[f"{DIR}/rules.nft"]  # the other hosts are confirmed


def test_a_revert_that_went_off_first_fails_the_confirmation(world):
    app1 = world.engines["app1"]
    app1.fail_when(f"rm -- {DIR}/unconfirmed-{TOKEN}", stderr="rm: cannot remove: No such file or directory")
    with pytest.raises(HostsFailed) as err:
        enable(world, revert_after=10)
    assert "the timed revert went off before the confirmation" in err.value.outcomes[0].detail
    assert "fix: run again with a longer --revert-after (it was 10 s)" in err.value.outcomes[0].detail


def test_rules_nft_refuses_change_nothing_and_disarm_the_revert(world):
    db = world.engines["db1"]
    db.fail_when(lambda argv: argv[:2] == ("nft", "-f"), stderr="Error: syntax error")
    with pytest.raises(HostsFailed, match="applying the firewall rules failed on db1"):
        enable(world)
    assert not [f for f in db.files if "unconfirmed" in f or "revert-" in f or f.endswith(".new")]
    assert db.nft is None and "db1" not in world.reconnects


def test_the_dry_run_prints_each_hosts_rules_and_commands_and_changes_nothing(world):
    executor, said = quiet(dry_run=True)
    executor(firewall.enable_fleet(world.fleet, 60, world.reconnect, token=TOKEN))
    text = "\n".join(said)
    assert f"    app1: write {DIR}/rules.nft.new (" in text
    assert "        \t\tct status dnat meta l4proto tcp ct original proto-dst 443 accept" in text
    assert f"    db1: nft -f {DIR}/rules.nft.new" in text
    assert "    db1: setsid -f sh -c " in text and f"sh 60 {DIR}/unconfirmed-{TOKEN} {DIR}/revert-{TOKEN}.nft {DIR}/revert.log" in text
    assert f"    app2: confirm over a new SSH connection: rm -- {DIR}/unconfirmed-{TOKEN}" in text
    for engine in world.engines.values():  # only facts were read
        assert {c.argv[0] for c in engine.journal} == {"printenv", "nft"} and engine.nft is None and not engine.files
    assert world.reconnects == []


def test_off_removes_our_table_and_its_files(world):
    enable(world)
    executor, said = quiet()
    executor(firewall.disable_fleet(world.fleet))
    for engine in world.engines.values():
        assert engine.nft is None and engine.journal[-2].argv == tuple(nft.remove())
        assert f"{DIR}/rules.nft" not in engine.files and f"{DIR}/active.nft" not in engine.files


def test_stages_without_hosts_and_short_windows_are_refused(fake_settings, world):
    here = local_fleet(fake_settings, FakeEngine())
    with pytest.raises(Exit, match="the firewall is for stages with hosts, and development has none"):
        quiet()[0](firewall.enable_fleet(here, 60, world.reconnect))
    with pytest.raises(Exit, match="the firewall is for stages with hosts"):
        quiet()[0](firewall.disable_fleet(here))
    with pytest.raises(Exit, match="--revert-after 5 leaves no time to confirm"):
        quiet()[0](firewall.enable_fleet(world.fleet, 5, world.reconnect))
    assert firewall.state(here, here.members[0]) == (True, "not managed on a stage without hosts (this machine's firewall is yours)")


def test_state_says_whether_each_host_runs_the_rules_rendered_now(world):
    db_member = world.fleet.members[2]
    fix = "run inv hosts.firewall --stage production"
    assert firewall.state(world.fleet, db_member) == (False, f"off (no table inet deploy_firewall): {fix}")
    enable(world)
    assert firewall.state(world.fleet, db_member) == (True, "on: SSH 22; 5432, 6379 from 10.0.0.1, 10.0.0.2")
    db = world.engines["db1"]
    db.nft = (db.nft or "").replace("tcp dport 22 accept", "tcp dport 22 accept\n\t\ttcp dport 8080 accept")
    assert firewall.state(world.fleet, db_member) == (False, f"the active rules are not the ones confirmed (changed by hand, or reverted): {fix}")
    enable(world)
    assert firewall.state(world.fleet, db_member)[0]
    moved = dataclasses.replace(world.fleet.members[0].host, address="10.0.0.7")
    stage = dataclasses.replace(world.fleet.settings.stage, hosts=(moved, *world.fleet.settings.stage.hosts[1:]))
    changed = dataclasses.replace(world.fleet, settings=dataclasses.replace(world.fleet.settings, stage=stage))
    assert firewall.state(changed, db_member) == (False, f"the rules are out of date (the stage's ports or hosts changed): {fix}")
    db.fail_when("nft list", stderr="Error: Operation not permitted", exited=1)
    reason = "cannot tell: reading the firewall on db1 failed (exit 1): Error: Operation not permitted"
    assert firewall.state(world.fleet, db_member) == (False, reason)


def test_ssh_stays_open_on_the_configured_port_and_the_one_sshd_sees(world):
    member = dataclasses.replace(world.fleet.members[0], host=host("app1", ["app"], APPS[0], port=2200))
    assert firewall.ssh_ports(member) == (22, 2200)  # the fake's sshd sees port 22
    assert firewall.ssh_ports(world.fleet.members[0]) == (22,)
