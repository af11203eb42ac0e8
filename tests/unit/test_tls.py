"""The proxy's certificate: openssl on this machine (no engine), the install as ops on the
fake engine, and the expiry rule of `inv health`."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from invoke import Context
from invoke.exceptions import Exit

from deploy import validators
from deploy.engine.local import LocalTarget
from deploy.engine.ops import Executor, Put
from deploy.engine.stack import Stack
from deploy.stack import tls
from tests.unit.fake_engine import FakeEngine

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=timezone.utc)


@pytest.fixture
def here() -> LocalTarget:
    return LocalTarget(Context())


def test_a_self_signed_certificate_holds_its_key_and_names_its_domain(here):
    pem, cert = tls.self_signed(here, "App.Example.test", 30)
    assert pem.startswith(b"-----BEGIN PRIVATE KEY-----") and b"-----BEGIN CERTIFICATE-----" in pem
    assert cert.names == ("app.example.test",) and "CN=app.example.test" in cert.issuer
    assert 29 < cert.days_left(datetime.now(timezone.utc)) <= 30 and len(cert.fingerprint.split(":")) == 32


@pytest.mark.parametrize("domain", ["", "-x.test", "a..b", "a/CN=evil", "a b", "x" * 64 + ".test", "app.example.test;id"])
def test_a_domain_must_be_a_host_name(domain):
    with pytest.raises(Exit, match="is not a domain name"):
        validators.domain(domain)


def test_days_out_of_range_are_refused(here):
    with pytest.raises(Exit, match="1 to 825"):
        tls.self_signed(here, "app.example.test", 0)


def test_your_files_are_checked_key_against_certificate_and_expiry(here, tmp_path: Path):
    pem, _ = tls.self_signed(here, "a.example.test", 10)
    key, chain = pem.split(b"-----BEGIN CERTIFICATE-----")
    (tmp_path / "key.pem").write_bytes(key)
    (tmp_path / "chain.pem").write_bytes(b"-----BEGIN CERTIFICATE-----" + chain)
    combined, cert = tls.from_files(here, tmp_path / "chain.pem", tmp_path / "key.pem", datetime.now(timezone.utc))
    assert cert.names == ("a.example.test",) and combined.count(b"-----BEGIN") == 2
    other, _ = tls.self_signed(here, "b.example.test", 10)
    (tmp_path / "other.pem").write_bytes(other.split(b"-----BEGIN CERTIFICATE-----")[0])
    with pytest.raises(Exit, match="is not the private key of the certificate"):
        tls.from_files(here, tmp_path / "chain.pem", tmp_path / "other.pem", datetime.now(timezone.utc))
    with pytest.raises(Exit, match="expired on"):
        tls.from_files(here, tmp_path / "chain.pem", tmp_path / "key.pem", datetime.now(timezone.utc) + timedelta(days=11))
    with pytest.raises(Exit, match="is not a file"):
        tls.from_files(here, tmp_path / "missing.pem", tmp_path / "key.pem", NOW)
    (tmp_path / "junk.pem").write_text("not a certificate\n")
    with pytest.raises(Exit, match="reading the certificate"):
        tls.from_files(here, tmp_path / "junk.pem", tmp_path / "key.pem", NOW)


def test_the_install_is_one_rename_of_a_file_nginx_owns_and_status_reads_that_file(fake_settings, here):
    engine = FakeEngine("local")
    stack = Stack(fake_settings, engine)
    assert tls.installed(stack) is None  # none yet: HTTP only
    pem, cert = tls.self_signed(here, "a.example.test", 30)
    ops = []
    executor = Executor()
    gen = tls.install(stack, pem)
    result = None
    while True:  # record the ops while applying them
        try:
            op = gen.send(result)
        except StopIteration:
            break
        ops.append(op)
        result = op.apply(executor)
    staged, path = stack.state_file(tls.STAGED_FILE), stack.state_file(tls.PEM_FILE)
    puts = [op for op in ops if isinstance(op, Put)]
    assert [(p.path, p.mode) for p in puts] == [(staged, 0o600)]  # written aside, private from its first byte
    lines = [" ".join(c.argv) for c in engine.journal if c.argv[0] != "docker"]
    assert lines.index(f"chown 101:101 {staged}") < lines.index(f"mv -f -T {staged} {path}")  # nginx's before it is in place
    assert engine.files[path] == pem and staged not in engine.files
    assert tls.installed(stack) == cert  # openssl on the target reads the certificate after the key


def test_expiry_fails_under_14_days_and_says_when():
    cert = tls.Certificate(("a.example.test",), "CN=x", NOW + timedelta(days=30), "")
    assert tls.expiry(cert, NOW) == (True, "a.example.test: expires 2026-12-29 12:00 UTC (30 days)")
    ok, detail = tls.expiry(cert, NOW + timedelta(days=20))
    assert not ok and "in 10 days (under 14): renew it" in detail
    assert tls.expiry(cert, NOW + timedelta(days=31))[1].endswith("EXPIRED")
    assert tls.expiry(None, NOW)[0] is True  # HTTP only is no failure


def test_openssl_dates_are_read_whatever_the_locale():
    text = "subject=CN=a.test\nissuer=CN=a.test\nnotAfter=Mar  3 07:05:09 2027 GMT\nsha256 Fingerprint=AB\n"
    assert tls.parse_description(text).not_after == datetime(2027, 3, 3, 7, 5, 9, tzinfo=timezone.utc)
    with pytest.raises(Exit, match="cannot read"):
        tls.parse_description("notAfter=3 March 2027\n")
