"""known_hosts with OpenSSH's markers: ``@cert-authority`` lines are skipped with a
warning (paramiko checks no host certificates), ``@revoked`` keys are never accepted.
The end-to-end cases run against an SSH server in this process (paramiko's)."""
import contextlib
import socket
import threading
from pathlib import Path

import paramiko
import pytest
from invoke.exceptions import Exit

from deploy.config.inventory import SshOptions, parse_hosts
from deploy.engine import host_keys
from deploy.engine.host_keys import AcceptNew, RejectUnknown, RevokedHostKey, UnknownHostKey, load_known_hosts
from deploy.engine.remote import RemoteTarget

GOOD, REVOKED, CA = (paramiko.ECDSAKey.generate() for _ in range(3))


def line(hosts: str, key: paramiko.PKey) -> str:
    return f"{hosts} {key.get_name()} {key.get_base64()}"


def known_hosts(tmp_path: Path, *lines: str) -> Path:
    path = tmp_path / "known_hosts"
    path.write_text("\n".join(["# comment", "", *lines]) + "\n")
    return path


@pytest.fixture(autouse=True)
def fresh_warnings(monkeypatch):
    monkeypatch.setattr(host_keys, "_warned", set())


def test_marker_lines_are_read_not_a_traceback(tmp_path, capsys):
    hashed = paramiko.HostKeys.hash_host("10.0.0.9")
    path = known_hosts(tmp_path, line("good.example,10.0.0.1", GOOD), line("@cert-authority *.example.com", CA),
                       line("@revoked *", REVOKED), line("also-revoked.example", REVOKED), line(hashed, GOOD), "garbage line here")
    known = load_known_hosts(path)
    assert [e.hostnames for e in known.entries] == [["good.example", "10.0.0.1"], [hashed]]  # the revoked key is not trusted
    assert known.revoked == {REVOKED.get_base64()}
    load_known_hosts(path)  # warned once per line and run
    err = capsys.readouterr().err
    assert err.count("@cert-authority line skipped: host certificates are not supported") == 1
    assert f"{path}:4:" in err and f"{path}:8: line skipped" in err


def test_an_unreadable_revoked_line_is_refused_not_skipped(tmp_path):
    with pytest.raises(Exit, match=r"known_hosts:3: cannot read the @revoked line"):
        load_known_hosts(known_hosts(tmp_path, "@revoked *"))


def test_policies_refuse_a_revoked_key_and_accept_new_does_not_record_it(tmp_path):
    revoked = frozenset({REVOKED.get_base64()})
    with pytest.raises(RevokedHostKey):
        RejectUnknown(revoked).missing_host_key(paramiko.SSHClient(), "h1", REVOKED)
    with pytest.raises(UnknownHostKey):
        RejectUnknown(revoked).missing_host_key(paramiko.SSHClient(), "h1", GOOD)
    path = tmp_path / "known_hosts"
    with pytest.raises(RevokedHostKey):
        AcceptNew(path, revoked).missing_host_key(paramiko.SSHClient(), "h1", REVOKED)
    assert not path.exists()
    client = paramiko.SSHClient()
    AcceptNew(path, revoked).missing_host_key(client, "h1", GOOD)
    assert path.read_text() == line("h1", GOOD) + "\n" and client.get_host_keys().lookup("h1")


class Server(paramiko.ServerInterface):
    pass


@pytest.fixture
def sshd():
    """An SSH server on 127.0.0.1 offering ``sshd.key`` (set before connecting); it never
    gets as far as authentication when the client refuses its key."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.settimeout(10)
    state = {"key": GOOD}

    def serve():
        try:
            sock, _ = listener.accept()
        except OSError:
            return
        transport = paramiko.Transport(sock)
        transport.add_server_key(state["key"])
        with contextlib.suppress(paramiko.SSHException, EOFError, OSError):
            transport.start_server(server=Server())
        transport.join(5)
        transport.close()

    thread = threading.Thread(target=serve, daemon=True)
    yield state, listener.getsockname()[1], thread
    listener.close()
    thread.join(10)


def target_for(port: int, known: Path, accept_new: bool = False) -> RemoteTarget:
    key = known.with_name("client_key")
    if not key.exists():
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        pem = Ed25519PrivateKey.generate().private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                                         serialization.NoEncryption())
        key.write_bytes(pem)
    host = parse_hosts({"h1": {"address": "127.0.0.1", "port": port, "user": "nobody", "key": str(key)}}, "s", "p")[0]
    return RemoteTarget(host, SshOptions(known_hosts=str(known), ssh_config="/nonexistent", connect_timeout=5), accept_new)


@pytest.mark.parametrize("accept_new", [False, True])
@pytest.mark.parametrize("also_listed", [False, True])
def test_a_host_offering_a_revoked_key_is_refused(sshd, tmp_path, accept_new, also_listed):
    state, port, thread = sshd
    state["key"] = REVOKED
    thread.start()
    listed = [line(f"[127.0.0.1]:{port}", REVOKED)] if also_listed else []
    path = known_hosts(tmp_path, line("@revoked *", REVOKED), *listed)
    before = path.read_text()
    with pytest.raises(Exit, match=r"REVOKED host key for h1 \(\[127.0.0.1\]:\d+\).*marks @revoked") as err:
        target_for(port, path, accept_new).connection()
    assert "fix:" in str(err.value)
    assert path.read_text() == before  # --accept-new-host-keys recorded nothing


def test_a_revoked_key_is_refused_when_the_host_has_another_key_listed(sshd, tmp_path):
    state, port, thread = sshd
    state["key"] = REVOKED
    thread.start()
    path = known_hosts(tmp_path, line(f"[127.0.0.1]:{port}", GOOD), line("@revoked *", REVOKED))
    with pytest.raises(Exit, match="REVOKED host key for h1"):
        target_for(port, path).connection()


def test_a_known_key_beside_a_cert_authority_line_connects_up_to_authentication(sshd, tmp_path, capsys):
    state, port, thread = sshd
    thread.start()
    path = known_hosts(tmp_path, line("@cert-authority *", CA), line(f"[127.0.0.1]:{port}", GOOD))
    with pytest.raises(Exit, match="SSH authentication failed"):  # the host key was accepted
        target_for(port, path).connection()
    assert "@cert-authority line skipped" in capsys.readouterr().err
