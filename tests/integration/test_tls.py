"""HTTPS at the edge on the real engine: a certificate installed by the tasks, served with
HTTP/2 and HSTS, HTTP redirected, a new certificate under load with no failed request,
and the expiry rule of `inv health`."""
import contextlib
import dataclasses
import re
import socket
import ssl
import subprocess
import threading
import time
from pathlib import Path

import pytest

from deploy import checklist
from deploy.engine.commands import cron
from tests import load
from tests.integration import pebble
from tests.integration.conftest import make_stack, remove_stack

DOMAIN = "app.example.test"


@pytest.fixture(scope="module")
def tls_stack(tmp_path_factory, images, engine):
    tmp = tmp_path_factory.mktemp("tls")
    insecure = {"env_file": str(tmp / "stack.env"), "production": True,  # the same stack, with tests/integration/insecure.yml
                "compose_files": ["compose/docker-compose.yml", "compose/docker-compose.prod.yml", "tests/integration/insecure.yml"]}
    stack = make_stack(tmp, images, stages={"insecure": insecure})
    try:
        stack("up", "--build", timeout=900)
        stack("exec", "backend", command=["node", "dist/migrate.js"])  # the load writes items
        yield stack
    finally:
        remove_stack(stack, engine)


def curl(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["curl", "-sS", "--max-time", "10", *args], capture_output=True, text=True, timeout=30)


def installed_pem(stack) -> str:
    return next(stack.runtime_config.parent.rglob("tls/current.pem")).read_text()


def leaf(pem: str) -> str:
    """The first certificate of a PEM text (the installed file has the key first)."""
    start = pem.index("-----BEGIN CERTIFICATE-----")
    end = pem.index("-----END CERTIFICATE-----", start) + len("-----END CERTIFICATE-----")
    return pem[start:end] + "\n"


def handshake(port: int, highest: ssl.TLSVersion) -> str:
    """The protocol a TLS handshake settles on when this client offers TLS 1.0 up to
    ``highest``, with every cipher allowed (the server alone decides what it refuses)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    ctx.set_ciphers("ALL:@SECLEVEL=0")
    ctx.minimum_version, ctx.maximum_version = ssl.TLSVersion.TLSv1, highest
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, ctx.wrap_socket(raw) as conn:
        return str(conn.version())


def local_tls11_server(chain: Path, pem: str, tmp: Path) -> int:
    """A one-connection TLS server in this process that accepts TLS 1.0 and 1.1 (the
    control of the refusal test); returns its port."""
    key = tmp / "key.pem"
    key.write_text(pem[:pem.index("-----BEGIN CERTIFICATE-----")])
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(chain), str(key))
    ctx.set_ciphers("ALL:@SECLEVEL=0")
    ctx.minimum_version = ssl.TLSVersion.TLSv1
    server = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        conn, _ = server.accept()
        with contextlib.suppress(OSError), ctx.wrap_socket(conn, server_side=True):
            pass
        server.close()

    threading.Thread(target=serve, daemon=True).start()
    return server.getsockname()[1]


def public_key(pem: str) -> str:
    return subprocess.run(["openssl", "x509", "-noout", "-pubkey"], input=pem, capture_output=True, text=True, check=True).stdout


def served_leaf(port: int) -> str:
    return ssl.get_server_certificate(("127.0.0.1", port))


def test_without_a_certificate_http_serves_the_site_and_health_says_so(tls_stack):
    assert curl("-o", "/dev/null", "-w", "%{http_code}", f"http://127.0.0.1:{tls_stack.http_port}/api/health").stdout == "200"
    out = tls_stack("health").stdout
    assert "none installed: HTTP only" in out
    refused = curl("-k", f"https://127.0.0.1:{tls_stack.https_port}/")
    assert refused.returncode != 0  # no certificate: no handshake


def test_a_certificate_serves_https_with_http2_and_hsts_and_http_redirects(tls_stack, tmp_path):
    out = tls_stack("tls.selfsigned", "--domain", DOMAIN, "--days", "90").stdout
    assert "installed" in out and DOMAIN in out
    ca = tmp_path / "ca.pem"
    ca.write_text(leaf(installed_pem(tls_stack)))
    https = f"https://{DOMAIN}:{tls_stack.https_port}"
    resolve = ["--resolve", f"{DOMAIN}:{tls_stack.https_port}:127.0.0.1", "--cacert", str(ca)]
    r = curl("--http2", *resolve, "-D", "-", "-o", "/dev/null", "-w", "%{http_version} %{http_code}", f"{https}/api/health")
    assert r.returncode == 0, r.stderr
    assert r.stdout.endswith("2 200"), r.stdout  # HTTP/2, verified against the installed certificate
    headers = r.stdout.lower()
    assert "strict-transport-security: max-age=63072000" in headers and "x-frame-options: sameorigin" in headers
    assert handshake(tls_stack.https_port, ssl.TLSVersion.TLSv1_2) == "TLSv1.2"
    assert handshake(local_tls11_server(ca, installed_pem(tls_stack), tmp_path), ssl.TLSVersion.TLSv1_1) == "TLSv1.1"
    with pytest.raises(ssl.SSLError):  # this client can offer TLS 1.1 (above): the refusal is nginx's
        handshake(tls_stack.https_port, ssl.TLSVersion.TLSv1_1)
    assert handshake(tls_stack.https_port, ssl.TLSVersion.TLSv1_3) == "TLSv1.3"
    # HTTP: a permanent redirect to the same path over HTTPS, without HSTS (meaningless over HTTP)
    r = curl("-D", "-", "-o", "/dev/null", f"http://127.0.0.1:{tls_stack.http_port}/api/items?x=1")
    assert r.stdout.startswith("HTTP/1.1 301")
    assert f"location: https://127.0.0.1:{tls_stack.https_port}/api/items?x=1" in r.stdout.lower()
    assert "strict-transport-security" not in r.stdout.lower()
    # ... except the ACME challenges (certbot's webroot) and nginx's own health
    acme = next(tls_stack.runtime_config.parent.rglob("state/*/*/acme"))
    (acme / ".well-known/acme-challenge").mkdir(parents=True)
    (acme / ".well-known/acme-challenge/token-1").write_text("token-1.thumbprint")
    (acme / ".well-known/acme-challenge/token-1").chmod(0o644)
    r = curl("-w", " %{http_code}", f"http://127.0.0.1:{tls_stack.http_port}/.well-known/acme-challenge/token-1")
    assert r.stdout == "token-1.thumbprint 200", r.stdout
    assert curl("-o", "/dev/null", "-w", "%{http_code}", f"http://127.0.0.1:{tls_stack.http_port}/nginx-health").stdout == "200"
    status = tls_stack("status").stdout
    assert f"certificate: {DOMAIN}: expires" in status
    tls_stack("health")  # 90 days left: healthy (the HTTP checks follow no redirect: 301 is fine)


def under_load(stack, action) -> None:
    """``action`` while wrk sends HTTPS over kept connections and curl makes a new TLS
    handshake every 50 ms: no request fails, no handshake fails."""
    traffic = load.Traffic(stack.https_port, scheme="https")
    handshakes: list[str] = []
    stop = threading.Event()

    def new_connections() -> None:
        while not stop.is_set():
            r = curl("-k", "-o", "/dev/null", "-w", "%{http_code}", f"https://127.0.0.1:{stack.https_port}/api/version")
            handshakes.append(r.stdout if r.returncode == 0 else f"error: {r.stderr.strip()}")
            time.sleep(0.05)

    thread = threading.Thread(target=new_connections)
    thread.start()
    try:
        time.sleep(3)
        action()
        time.sleep(3)
    finally:
        stop.set()
        thread.join()
        results = traffic.results()
    load.assert_clean(traffic, results, f"{stack.project}-nginx-1")
    assert len(handshakes) > 20 and set(handshakes) == {"200"}, [h for h in handshakes if h != "200"][:5]


def test_a_new_certificate_under_load_fails_no_request_and_serves_new_connections(tls_stack):
    before = served_leaf(tls_stack.https_port)
    under_load(tls_stack, lambda: tls_stack("tls.selfsigned", "--domain", DOMAIN, "--days", "60"))
    after = served_leaf(tls_stack.https_port)
    assert after != before and after == leaf(installed_pem(tls_stack))


def test_a_certificate_about_to_expire_fails_health(tls_stack, tmp_path):
    tls_stack("tls.selfsigned", "--domain", DOMAIN, "--days", "5")
    result = tls_stack("health", check=False)
    assert result.returncode == 1
    assert "under 14): renew it" in result.stdout and "certificate" in result.stderr
    refused = tls_stack("tls.install", "--cert", str(tmp_path / "none.pem"), "--key", str(tmp_path / "none.key"), check=False)
    assert refused.returncode == 1 and "is not a file" in refused.stderr
    tls_stack("tls.selfsigned", "--domain", DOMAIN, "--days", "90")
    tls_stack("health")


def verified(stack, root: Path) -> subprocess.CompletedProcess:
    """GET over HTTP/2 for DOMAIN, verified against ``root`` only."""
    return curl("--http2", "--resolve", f"{DOMAIN}:{stack.https_port}:127.0.0.1", "--cacert", str(root), "-o", "/dev/null",
                "-w", "%{http_version} %{http_code}", f"https://{DOMAIN}:{stack.https_port}/api/health")


def test_an_acme_certificate_is_issued_through_http01_and_renewed_under_load(tls_stack, tmp_path):
    """pebble validates through the stack's nginx on its HTTP port; its certificates last 20
    days, so they are due for renewal (certbot renews 30 days before the end)."""
    with pebble.running(tmp_path / "pebble", tls_stack.http_port, validity_days=20) as ca:
        cron_file = Path(f"/etc/cron.d/deploy-{tls_stack.project}-production-tls-renew")
        try:
            bad = tls_stack("tls.issue", "--domain", DOMAIN, "--email", "not-an-address", "--server", ca.directory, check=False)
            assert bad.returncode == 1 and "is not an e-mail address" in bad.stderr
            out = tls_stack("tls.issue", "--domain", DOMAIN, "--email", "ops@example.test", "--server", ca.directory,
                            "--ca-bundle", str(ca.ca_bundle)).stdout
            assert "installed" in out and "renewed by cron" in out
            root = ca.root(tmp_path)
            r = verified(tls_stack, root)
            assert r.returncode == 0 and r.stdout == "2 200", (r.stdout, r.stderr)
            first = served_leaf(tls_stack.https_port)
            assert re.search(rf"certificate: {DOMAIN}: expires .* \((19|20) days\)", tls_stack("status").stdout)
            # the schedule: cron runs this line as root with /bin/sh; here it runs the same way, under load
            command = cron.command_of(cron_file.read_text())
            assert command is not None and "renew" in command and cron_file.stat().st_mode & 0o777 == 0o644
            under_load(tls_stack, lambda: subprocess.run(["/bin/sh", "-c", command], check=True, timeout=120))
            second = served_leaf(tls_stack.https_port)
            assert second != first and second == leaf(installed_pem(tls_stack))
            assert public_key(second) == public_key(first)  # renewals keep the key (certbot --reuse-key)
            under_load(tls_stack, lambda: tls_stack("tls.renew"))  # due again: renewed now, by the task
            assert served_leaf(tls_stack.https_port) not in (first, second)
            assert verified(tls_stack, root).stdout == "2 200"
            tls_stack("health")  # 20 days left: no failure
        finally:
            cron_file.unlink(missing_ok=True)


def test_the_production_checklist_passes_on_a_correct_stage_and_names_each_failure(tls_stack, tmp_path):
    tls_stack("tls.selfsigned", "--domain", DOMAIN, "--days", "90")
    cron_file = Path(f"/etc/cron.d/deploy-{tls_stack.project}-production-db-backup")
    try:
        tls_stack("db.schedule", "--every", "1d", "--at", "03:00")  # on this machine: into the local backups folder
        subprocess.run(["/bin/sh", "-c", cron.command_of(cron_file.read_text()) or "false"], check=True, timeout=120)
        assert [b.name for b in tls_stack.backups.glob("*-scheduled.dump")]
        out = tls_stack("check", "--production").stdout
    finally:
        tls_stack("db.schedule", "--off")
    assert not cron_file.exists()
    for number, name in checklist.ITEMS.items():
        assert f"{number}. {name}" in out, (number, out)
    assert "GET / over HTTPS (200): strict-transport-security" in out and "api 20000r/s burst 20000" in out
    # The same project: its own state folder (no certificate); one stage's stack at a time runs on an engine, so
    # production's goes down first (its volumes stay) and comes back at the end.
    insecure = dataclasses.replace(tls_stack, stage="insecure")
    tls_stack("down")
    try:
        insecure("up")
        insecure("tls.selfsigned", "--domain", DOMAIN, "--days", "5")
        weak = tmp_path / "weak.env"
        weak.write_text(re.sub(r"(?m)^JWT_SECRET=.*$", "JWT_SECRET=short", re.sub(r"(?m)^POSTGRES_PASSWORD=.*$", "POSTGRES_PASSWORD=postgres",
                                                                                     tls_stack.env_file.read_text())))
        weak.chmod(0o600)
        result = dataclasses.replace(insecure, env_file=weak)("check", "--production", check=False)
        assert result.returncode == 1
        failed = result.stderr.split("check(s) failed: ", 1)[1].splitlines()[0].split(", ")
        assert failed == ["1. default passwords", "10. logs", "2. JWT secret", "3. TLS", "5. non-root users", "6. read-only file systems",
                          "9. automatic backups"], \
            result.stdout
        assert "running as root: " in result.stdout and "writable root file system: " in result.stdout
        assert "POSTGRES_PASSWORD is empty" in result.stdout and "(under 14)" in result.stdout
    finally:
        insecure("down", check=False)
        tls_stack("up")  # back to the production files
