"""The example's production stack on the real engine: up, status, health, logs, stats, exec."""
import gzip
import json
import math
import re
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

from docker.models.containers import Container

from tests import load
from tests.integration.conftest import make_stack, remove_stack, row, table_rows


def get(port, path, data=None):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data,
                                 headers={"Content-Type": "application/json", "Accept-Encoding": "gzip"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        body = resp.read()
        if resp.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        return resp.status, {k.title(): v for k, v in resp.headers.items()}, body


def test_production_stack_serves_through_nginx(prod_stack):
    status, headers, body = get(prod_stack.http_port, "/")
    assert status == 200 and b"Example app" in body
    assert headers["X-Frame-Options"] == "SAMEORIGIN"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert "Content-Security-Policy" in headers
    assert headers.get("Content-Encoding") == "gzip"
    asset = load.static_asset(f"http://127.0.0.1:{prod_stack.http_port}")
    status, headers, body = get(prod_stack.http_port, asset)
    assert status == 200 and body
    assert get(prod_stack.http_port, asset)[1]["X-Cache-Status"] == "HIT"  # nginx keeps the build's files
    assert "immutable" in headers["Cache-Control"] and headers["X-Frame-Options"] == "SAMEORIGIN"
    status, _, body = get(prod_stack.http_port, "/api/items", data=json.dumps({"name": "héllo ✓"}).encode())
    assert status == 201
    created = json.loads(body)
    _, _, body = get(prod_stack.http_port, "/api/items")
    assert created["id"] in [i["id"] for i in json.loads(body)["items"]]
    _, _, body = get(prod_stack.http_port, "/api/health")
    assert json.loads(body)["checks"] == {"postgres": "ok", "redis": "ok"}


def test_the_page_runs_in_a_browser_under_the_security_headers(prod_stack):
    """Chromium loads the page through nginx: the Next.js page hydrates under its
    Content-Security-Policy (one per page, with a nonce for its inline scripts, and no
    second policy from nginx) and its script calls the API (backend version, items)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{prod_stack.http_port}/", timeout=10) as resp:
        policies = resp.headers.get_all("Content-Security-Policy")
    assert len(policies) == 1 and re.search(r"script-src 'self' 'nonce-[A-Za-z0-9+/=]+' 'strict-dynamic'", policies[0]), policies
    with urllib.request.urlopen(f"http://127.0.0.1:{prod_stack.http_port}/api/version", timeout=10) as resp:
        assert "nonce" not in resp.headers["Content-Security-Policy"]  # nginx's own policy on the API
        version = json.loads(resp.read())["version"]
    status, _, body = get(prod_stack.http_port, "/api/items", data=json.dumps({"name": "seen in a browser"}).encode())
    assert status == 201
    item = json.loads(body)
    with tempfile.TemporaryDirectory() as profile:
        browser = subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={profile}",
                                  "--virtual-time-budget=20000", "--dump-dom", f"http://127.0.0.1:{prod_stack.http_port}/"],
                                 capture_output=True, text=True, timeout=180)
    dom = browser.stdout
    assert f'<strong id="api-version">{version}</strong>' in dom, dom[-3000:] + browser.stderr[-2000:]
    assert f"<li>#{item['id']} seen in a browser (" in dom, dom[-3000:]


def test_production_settings_are_applied(prod_stack, engine):
    project = prod_stack.project
    by_service: dict[str, list[Container]] = {}
    for c in engine.containers.list(filters={"label": f"com.docker.compose.project={project}"}):
        by_service.setdefault(c.labels["com.docker.compose.service"], []).append(c)
    assert len(by_service["backend"]) == 3 and len(by_service["web"]) == 4
    backend = by_service["backend"][0].attrs["HostConfig"]
    assert backend["NanoCpus"] == 2_000_000_000 and backend["Memory"] == 2 * 1024**3
    web = by_service["web"][0].attrs
    assert web["HostConfig"]["ReadonlyRootfs"] is True and web["HostConfig"]["Memory"] == 1024**3
    assert web["Config"]["Image"].endswith("/web:latest")
    for name in ("postgres", "redis"):
        c = by_service[name][0]
        assert not any(c.attrs["NetworkSettings"]["Ports"].values()), f"{name} is published"
        assert c.attrs["HostConfig"]["RestartPolicy"]["Name"] == "always"
    back = engine.networks.get(f"{project}_back")
    assert back.attrs["Internal"] is True
    nginx = by_service["nginx"][0]
    assert nginx.attrs["Config"]["User"] == "101:101"
    for c in [c for cs in by_service.values() for c in cs]:
        status = c.exec_run(["cat", "/proc/1/status"]).output.decode()
        uid = next(line.split()[1] for line in status.splitlines() if line.startswith("Uid:"))
        assert uid != "0", f"{c.name}'s main process runs as root"



def test_app_and_proxy_root_file_systems_are_read_only(prod_stack, engine):
    """backend, web and nginx: nothing written outside their tmpfs /tmp, and the stack
    serves (nginx renders its config, keeps pid files and buffers there)."""
    for service in ("backend", "web", "nginx"):
        c = engine.containers.get(f"{prod_stack.project}-{service}-1")
        assert c.attrs["HostConfig"]["ReadonlyRootfs"] is True, service
        refused = c.exec_run(["sh", "-c", "echo x > /written-by-test"])
        assert refused.exit_code != 0 and b"Read-only file system" in refused.output, (service, refused.output)
        assert c.exec_run(["sh", "-c", "echo x > /tmp/written-by-test && rm /tmp/written-by-test"]).exit_code == 0, service
    backend = engine.containers.get(f"{prod_stack.project}-backend-1")
    assert "PG_POOL_MAX=50" in backend.attrs["Config"]["Env"]  # the guide's pool per instance
    assert get(prod_stack.http_port, "/api/items")[0] == 200
    assert not [line for line in prod_stack.compose("logs", "nginx").stdout.splitlines() if "[alert]" in line or "[emerg]" in line]

def test_status_matches_the_engine(prod_stack):
    out = prod_stack("status").stdout
    backend = row(out, 0, "backend")
    assert backend[1:5] == ["3", "3", "3", "3"]  # desired, running, healthy, routed
    assert backend[6] == "dev"
    assert row(out, 0, "web")[1:4] == ["4", "4", "4"]
    ports = row(out, 0, "nginx")[8]  # the first line of the cell; the other port is on the next
    assert {ports, *[cells[8] for cells in table_rows(out) if len(cells) > 8 and cells[0] == ""]} >= {
        f"127.0.0.1:{prod_stack.http_port}->8080/tcp", f"127.0.0.1:{prod_stack.https_port}->8443/tcp"}
    assert row(out, 0, "postgres")[1:4] == ["1", "1", "1"]


def test_health_passes_then_names_a_stopped_container(prod_stack, engine):
    out = prod_stack("health").stdout
    assert row(out, 1, "GET /api/health via nginx:" + str(prod_stack.http_port))[0] == "ok"
    victim = engine.containers.get(f"{prod_stack.project}-web-2")
    victim.stop(timeout=10)
    try:
        result = prod_stack("health", check=False)
        assert result.returncode == 1
        assert f"{prod_stack.project}-web-2" in result.stderr
        assert row(result.stdout, 1, "web")[2] == "3 of 4 replicas running"
    finally:
        prod_stack("up")
    prod_stack("health")


def test_logs(prod_stack):
    out = prod_stack("logs", "backend", "--tail", "50").stdout
    assert "backend dev listening on 3000" in out
    assert "web-1" not in out
    bad = prod_stack("logs", "backend,nope", check=False)
    assert bad.returncode == 1 and "unknown service" in bad.stderr


def test_stats_lists_every_running_container(prod_stack, engine):
    out = prod_stack("stats").stdout
    names = [c.name for c in engine.containers.list(filters={"label": f"com.docker.compose.project={prod_stack.project}"})]
    assert len(names) == 10
    for name in names:
        assert "/" in row(out, 0, name)[2]  # memory: used / limit


def test_exec_passes_arguments_without_a_shell(prod_stack, tmp_path):
    words = ["a; touch /tmp/pwned", "$(touch /tmp/pwned2)", "it's \"quoted\"", "two  spaces"]
    out = prod_stack("exec", "backend", command=["node", "-e", "console.log(JSON.stringify(process.argv.slice(1)))", *words]).stdout
    assert json.loads(out.strip().splitlines()[-1]) == words
    check = prod_stack("exec", "backend", command=["sh", "-c", "ls /tmp/pwned /tmp/pwned2 2>&1 || true"]).stdout
    assert "No such file" in check
    failing = prod_stack("exec", "backend", command=["sh", "-c", "exit 7"], check=False)
    assert failing.returncode == 7


def test_down_refuses_volumes_without_yes(prod_stack):
    result = prod_stack("down", "--volumes", check=False)
    assert result.returncode == 1 and "--yes" in result.stderr
    assert prod_stack("status").returncode == 0


def status_of(port: int, path: str) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as resp:
            return resp.status
    except urllib.error.HTTPError as err:
        return err.code


def test_rate_limits_refuse_a_client_beyond_its_burst_and_no_other(tmp_path, images, engine):
    """Per client: within the burst every request passes, beyond it nginx answers 429,
    and another client (another address) is served meanwhile; the API and the site
    have their own limits."""
    stack = make_stack(tmp_path, images, NGINX_API_RATE="2r/s", NGINX_API_BURST="10", NGINX_WEB_RATE="2r/s", NGINX_WEB_BURST="5")
    try:
        stack("up", "--build", timeout=900)
        web = engine.containers.get(f"{stack.project}-web-1")  # another client: its own address on the front network
        other = ["node", "-e", "require('http').get('http://nginx:8080/api/version', (r) => { console.log(r.statusCode); process.exit(0); })"]
        time.sleep(6)  # the tokens `up`'s own checks took are back
        start = time.monotonic()
        burst = [status_of(stack.http_port, "/api/version") for _ in range(11)]  # 1 + burst
        beyond = [status_of(stack.http_port, "/api/version") for _ in range(20)]
        refilled = math.ceil(2 * (time.monotonic() - start))  # 2 r/s came back meanwhile
        served_other = web.exec_run(other).output.decode().strip()
        site = [status_of(stack.http_port, "/") for _ in range(6)]  # the site's own zone: 1 + its burst
        assert burst == [200] * 11, burst
        assert set(beyond) <= {200, 429} and beyond.count(200) <= refilled + 1 and beyond.count(429) >= 1, (beyond, refilled)
        assert served_other == "200"
        assert site == [200] * 6, site
        time.sleep(1.5)
        assert status_of(stack.http_port, "/api/version") == 200  # the rate refills
    finally:
        remove_stack(stack, engine)
