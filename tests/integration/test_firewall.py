"""inv hosts.firewall on the real test hosts (h1, h2 app; h3 db): what each role lets in,
from where, through Docker's published ports (DNAT, the forward chain) and the host's
own (the input chain); SSH kept; a confirmation that cannot connect reverts by itself.

The listeners are plain containers publishing the ports the stage's compose files
publish (no deploy needed to prove the rules). Traffic goes only to the test hosts; this
machine (the bridge's gateway) is the address that is no app host. Whatever happens,
every host ends without our table (the other tests use these hosts)."""
from __future__ import annotations

import dataclasses
import subprocess
import sys
import time

import pytest

from deploy.engine.commands import nft
from tests.integration.conftest import free_port, make_stack
from tests.integration.hosts import remote_env, ssh, stage_config

CONTAINER = "fwtest-listener"
CONNECT = ("import socket, sys\n"
           "try:\n    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3).close(); print('open')\n"
           "except ConnectionRefusedError: print('refused')\n"
           "except OSError as err: print('silent', err)\n")
# In a host's own network: the second new SSH connection from an address is dropped (the
# first, which the task applies over, goes on): a confirmation that cannot connect.
ONE_SSH_CONNECTION = """table inet fwtest {
\tset seen { type ipv4_addr; flags dynamic; }
\tchain input {
\t\ttype filter hook input priority -10; policy accept;
\t\ttcp dport 22 ct state new ip saddr @seen drop
\t\ttcp dport 22 ct state new add @seen { ip saddr }
\t}
}
"""


def connect_from(netns: str | None, address: str, port: int) -> str:
    """'open', 'refused' or 'silent ...' for a TCP connection from this machine or from a host's network."""
    argv = [sys.executable, "-c", CONNECT, address, str(port)]
    out = subprocess.run(["ip", "netns", "exec", netns, *argv] if netns else argv, capture_output=True, text=True, timeout=30)
    return out.stdout.strip() or out.stderr.strip()


def in_netns(host: str, *argv: str, check: bool = False) -> subprocess.CompletedProcess:
    """A command in a host's network namespace only (its firewall; not its files, which need ssh)."""
    return subprocess.run(["ip", "netns", "exec", host, *argv], capture_output=True, text=True, timeout=30, check=check)


def our_table(host: str) -> str | None:
    listed = in_netns(host, *nft.list_table())
    return listed.stdout if listed.returncode == 0 else None


@dataclasses.dataclass
class Site:
    stack: object  # conftest.Inv on the stage "remote"
    addrs: dict[str, str]
    other_port: int  # published on h1, not by the stack: refused
    host_port: int  # a listener of h1 itself (the input chain): dropped


@pytest.fixture(scope="module")
def site(tmp_path_factory, images, testbed):
    stack = make_stack(tmp_path_factory.mktemp("firewall"), images, stages=stage_config(testbed), **remote_env(testbed))
    stack = dataclasses.replace(stack, stage="remote")
    addrs, image = testbed["addrs"], testbed["HOST_REDIS_IMAGE"]
    other, own = free_port(), free_port()
    h3 = addrs["h3"]
    listener = subprocess.Popen(["ip", "netns", "exec", "h1", sys.executable, "-c",
                                 "import socket, sys, time\ns = socket.create_server(('0.0.0.0', int(sys.argv[1])))\ntime.sleep(600)",
                                 str(own)])
    try:
        ssh(testbed, "h3", f"docker rm -f {CONTAINER} >/dev/null 2>&1; docker run -d --name {CONTAINER} "
                           f"-p {h3}:5432:6379 -p {h3}:6379:6379 {image} >/dev/null")
        ssh(testbed, "h1", f"docker rm -f {CONTAINER} >/dev/null 2>&1; docker run -d --name {CONTAINER} "
                           f"-p {stack.http_port}:6379 -p {other}:6379 {image} >/dev/null")
        yield Site(stack, addrs, other, own)
    finally:
        listener.kill()
        listener.wait()
        for host in addrs:  # the tests' own table first: it may stop ssh
            in_netns(host, "nft", "delete", "table", "inet", "fwtest")
        for host in addrs:  # a revert job still waiting finds no marker and does nothing; then no table of ours
            ssh(testbed, host, f"rm -rf /srv/{stack.project}; docker rm -f {CONTAINER} >/dev/null 2>&1", check=False)
            in_netns(host, *nft.remove())
        assert all(our_table(h) is None for h in addrs)


def test_a_confirmation_that_cannot_connect_fails_and_the_host_reverts_by_itself(site, testbed):
    assert our_table("h2") is None
    subprocess.run(["ip", "netns", "exec", "h2", "nft", "-f", "/dev/stdin"], input=ONE_SSH_CONNECTION, text=True, check=True)
    try:
        start = time.monotonic()
        failed = site.stack("hosts.firewall", "--hosts", "h2", "--revert-after", "12", check=False, timeout=120)
        assert failed.returncode == 1, failed.stdout + failed.stderr
        assert "firewall failed on h2: h2: not confirmed: the host loads its rules of before by itself within 12 s" in failed.stderr
        assert our_table("h2") is not None  # applied, unconfirmed
        while our_table("h2") is not None and time.monotonic() - start < 30:
            time.sleep(0.5)
        assert our_table("h2") is None, "not reverted"
        assert time.monotonic() - start >= 11  # by the timer, not by anything else
    finally:
        in_netns("h2", "nft", "delete", "table", "inet", "fwtest")
    kept = ssh(testbed, "h2", f"cat /srv/{site.stack.project}/firewall/revert.log; ls /srv/{site.stack.project}/firewall")
    assert "not confirmed: loading the rules of before" in kept.stdout
    assert "rules.nft\n" not in kept.stdout and "unconfirmed" not in kept.stdout  # nothing to load at boot


def test_each_role_lets_in_what_it_needs_and_refuses_the_rest(site, testbed):
    a = site.addrs
    http, pg, redis = site.stack.http_port, 5432, 6379
    assert [connect_from(None, a["h3"], pg), connect_from(None, a["h1"], site.host_port)] == ["open", "open"]  # before

    applied = site.stack("hosts.firewall", timeout=180)
    assert applied.stdout.count("firewall on, confirmed over a new SSH connection") == 3
    assert f"5432, 6379 from {a['h1']}, {a['h2']}" in applied.stdout and f"open {http}" in applied.stdout

    # The db host: its published ports from the app hosts only; refused at once to this machine.
    assert [connect_from(None, a["h3"], p) for p in (pg, redis)] == ["refused", "refused"]
    assert [connect_from(h, a["h3"], p) for h in ("h1", "h2") for p in (pg, redis)] == ["open"] * 4
    # An app host: its published HTTP port to all; another published port refused; its own listener silent.
    assert connect_from(None, a["h1"], http) == "open"
    assert connect_from(None, a["h1"], site.other_port) == "refused"
    assert connect_from(None, a["h1"], site.host_port).startswith("silent")
    for host in a:  # SSH as ever
        assert ssh(testbed, host, "true").returncode == 0

    # Again: the same rules; a dry run prints them and changes nothing.
    before = {h: our_table(h) for h in a}
    site.stack("hosts.firewall", timeout=180)
    planned = site.stack("hosts.firewall", "--dry-run")
    assert "h3: nft -f /srv/" in planned.stdout and "ct original proto-dst 5432 accept" in planned.stdout
    assert {h: our_table(h) for h in a} == before
    kept = ssh(testbed, "h3", f"cat /srv/{site.stack.project}/firewall/rules.nft").stdout
    assert kept.startswith("# The host firewall") and f"ip saddr {{ {a['h1']}, {a['h2']} }} tcp dport {{ 5432, 6379 }} accept" in kept

    site.stack("hosts.firewall", "--off")
    assert all(our_table(h) is None for h in a)
    assert connect_from(None, a["h3"], pg) == "open"
