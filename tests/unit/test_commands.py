import socket
import subprocess
import threading
import time
from http import server as http_server

from deploy.engine.commands import compose, docker, files, git, http, images

P = compose.ComposeProject(name="myapp", files=("/r/compose/a.yml", "/r/compose/b.yml"), env_file="/r/.env.production")
BASE = ["docker", "compose", "-p", "myapp", "-f", "/r/compose/a.yml", "-f", "/r/compose/b.yml", "--env-file", "/r/.env.production"]


def test_base_without_env_file():
    assert compose.base(compose.ComposeProject("p", ("c.yml",))) == ["docker", "compose", "-p", "p", "-f", "c.yml"]


def test_build():
    assert compose.build(P) == [*BASE, "build"]
    assert compose.build(P, ["web"], no_cache=True) == [*BASE, "build", "--no-cache", "web"]


def test_up_full():
    argv = compose.up(P, ["backend"], build=True, scale={"web": 2, "backend": 5}, no_recreate=True, no_deps=True, wait_timeout=60)
    assert argv == [
        *BASE, "up", "-d", "--remove-orphans", "--build", "--no-recreate", "--no-deps",
        "--wait", "--wait-timeout", "60", "--scale", "backend=5", "--scale", "web=2", "backend",
    ]


def test_up_plain():
    assert compose.up(P) == [*BASE, "up", "-d", "--remove-orphans"]


def test_down():
    assert compose.down(P) == [*BASE, "down", "--remove-orphans"]
    assert compose.down(P, volumes=True) == [*BASE, "down", "--remove-orphans", "--volumes"]


def test_logs():
    assert compose.logs(P) == [*BASE, "logs", "--timestamps"]
    assert compose.logs(P, ["backend", "web"], follow=True, tail=10, since="5m") == [
        *BASE, "logs", "--timestamps", "--follow", "--tail", "10", "--since", "5m", "backend", "web",
    ]


def test_exec_keeps_every_word_separate():
    cmd = ["sh", "-c", "echo $0", "a; rm -rf /"]
    assert compose.exec_(P, "backend", cmd, tty=False) == [*BASE, "exec", "-T", "backend", *cmd]
    assert compose.exec_(P, "backend", ["sh"], tty=True, index=2) == [*BASE, "exec", "--index", "2", "backend", "sh"]


def test_small_builders():
    assert compose.config_json(P) == [*BASE, "config", "--format", "json"]
    assert compose.config_check(P) == [*BASE, "config", "--quiet"]
    assert compose.config_hashes(P, ["postgres", "redis"]) == [*BASE, "config", "--hash", "postgres,redis"]
    assert compose.port(P, "nginx", 8080) == [*BASE, "port", "nginx", "8080"]
    assert compose.remove_stopped(P) == [*BASE, "rm", "--force"]
    assert compose.stop(P, ["backend", "web"]) == [*BASE, "stop", "backend", "web"]
    assert compose.run_once(P, "backend", ["node", "m.js"]) == [*BASE, "run", "--rm", "--no-deps", "-T", "backend", "node", "m.js"]


def test_docker_builders():
    assert docker.version_json() == ["docker", "version", "--format", "{{json .}}"]
    assert docker.compose_version() == ["docker", "compose", "version", "--short"]
    assert docker.project_containers("myapp") == [
        "docker", "ps", "--all", "--quiet", "--no-trunc",
        "--filter", "label=com.docker.compose.project=myapp", "--filter", "label=com.docker.compose.oneoff=False",
    ]
    assert docker.inspect(["a", "b"]) == ["docker", "inspect", "--type", "container", "a", "b"]
    assert docker.stats(["a"]) == ["docker", "stats", "--no-stream", "--format", "{{json .}}", "a"]
    assert docker.stats(["a"], stream=True) == ["docker", "stats", "a"]
    assert docker.prune_dangling_images("myapp") == [
        "docker", "image", "prune", "--force", "--filter", "label=com.docker.compose.project=myapp",
    ]
    assert docker.exec_("c1", ["pg_dump", "a b"]) == ["docker", "exec", "c1", "pg_dump", "a b"]
    assert docker.exec_("c1", ["psql"], interactive=True) == ["docker", "exec", "-i", "c1", "psql"]
    assert docker.exec_("c1", ["psql"], interactive=True, tty=True) == ["docker", "exec", "-i", "-t", "c1", "psql"]
    assert docker.prune_build_cache() == ["docker", "builder", "prune", "--force"]
    assert docker.project_volumes("myapp") == [
        "docker", "volume", "ls", "--quiet", "--filter", "label=com.docker.compose.project=myapp",
    ]
    assert docker.remove_volumes(["v1"]) == ["docker", "volume", "rm", "v1"]


def test_image_builders():
    assert images.tag("a:1", "a:latest") == ["docker", "tag", "a:1", "a:latest"]
    assert images.push("r/n/s:1") == ["docker", "push", "r/n/s:1"]
    assert images.remove("r/n/s:1") == ["docker", "image", "rm", "r/n/s:1"]
    assert images.identity("a:1") == ["docker", "image", "inspect", "--format", "{{json .RepoDigests}} {{.Id}}", "a:1"]
    assert images.size("r/n/s:1") == ["docker", "image", "inspect", "--format", "{{.Size}}", "r/n/s:1"]
    assert images.exists("r/n/s:1") == ["docker", "image", "inspect", "--format", "{{.Id}}", "r/n/s:1"]


def test_git_builders():
    assert git.is_work_tree("/r") == ["git", "-C", "/r", "rev-parse", "--is-inside-work-tree"]
    assert git.head("/r") == ["git", "-C", "/r", "rev-parse", "HEAD"]
    assert git.is_tracked("/r", "-x.env") == ["git", "-C", "/r", "ls-files", "--error-unmatch", "--", "-x.env"]
    assert git.is_ignored("/r", ".env.production") == ["git", "-C", "/r", "check-ignore", "--quiet", "--", ".env.production"]


def test_file_builders():
    assert files.make_dirs("/srv/app/state/prod") == ["mkdir", "-p", "/srv/app/state/prod"]
    assert files.make_dir("/srv/app/state/prod/deploy.lock") == ["mkdir", "/srv/app/state/prod/deploy.lock"]
    assert files.is_dir("/srv/a b") == ["test", "-d", "/srv/a b"]
    assert files.is_file("/srv/app/compose/docker-compose.yml") == ["test", "-f", "/srv/app/compose/docker-compose.yml"]
    assert files.remove_tree("/srv/app/state/prod/deploy.lock") == ["rm", "-rf", "/srv/app/state/prod/deploy.lock"]
    assert files.install_dir("/srv/app") == ["install", "-d", "-m", "0750", "/srv/app"]
    assert files.install_dir("/srv/app", 0o700) == ["install", "-d", "-m", "0700", "/srv/app"]
    assert files.untar("/srv/app") == ["tar", "-x", "--no-same-owner", "-C", "/srv/app", "-f", "-"]


class _Handler(http_server.BaseHTTPRequestHandler):
    """/ok, /also-ok: 200; /slow: 200 after 3 s; /later: 503 until ``ready_at``, then 200;
    anything else: 503."""

    ready_at = 0.0

    def do_GET(self):
        if self.path == "/slow":
            time.sleep(3)
        ok = self.path in ("/ok", "/also-ok", "/slow") or (self.path == "/later" and time.monotonic() >= self.ready_at)
        self.send_response(200 if ok else 503)
        self.end_headers()

    def log_message(self, *args):
        pass


def _server() -> tuple[http_server.ThreadingHTTPServer, str]:
    server = http_server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_port}"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_http_probe_fetches_every_url_at_once_and_prints_those_that_answered():
    """The probe script itself, run by sh with this machine's wget against a loopback
    server: 2xx answers; 503, a refused port and a slow one (over the timeout) do not;
    all are fetched in parallel (well under the sum of their times)."""
    server, base = _server()
    closed = _closed_port()
    urls = [f"{base}/ok", f"{base}/bad", f"http://127.0.0.1:{closed}/ok", f"{base}/slow", f"{base}/also-ok"]
    argv = http.probe(urls, timeout=1)
    assert argv[:2] == ["sh", "-c"] and argv[-5:] == urls  # the URLs are arguments, never script text
    start = time.monotonic()
    out = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=30).stdout
    assert http.answered(out) == {f"{base}/ok", f"{base}/also-ok"}
    assert time.monotonic() - start < 2.5
    server.shutdown()


def test_http_probe_rounds_end_at_the_first_answer_or_when_its_time_is_up():
    """A container that starts listening while the probe runs is seen within a round
    (0.1 s); with nothing answering, the probe ends when its time is up (the clock's next
    whole second for within=1), printing nothing; a slow answer holds a round no longer
    than the fetch timeout."""
    server, base = _server()
    closed = _closed_port()
    nothing = [f"http://127.0.0.1:{closed}/ok", f"{base}/bad"]
    start = time.monotonic()
    out = subprocess.run(http.probe(nothing, timeout=1, within=1), capture_output=True, text=True, check=True, timeout=30).stdout
    assert out == "" and time.monotonic() - start < 2.5
    start = time.monotonic()
    out = subprocess.run(http.probe([f"{base}/slow"], timeout=1, within=1), capture_output=True, text=True, check=True, timeout=30).stdout
    assert out == "" and time.monotonic() - start < 3.5  # within + timeout, not rounds x timeout
    _Handler.ready_at = time.monotonic() + 0.6  # /later answers 503 until then
    start = time.monotonic()
    out = subprocess.run(http.probe([f"{base}/later", *nothing], timeout=1, within=5), capture_output=True, text=True,
                         check=True, timeout=30).stdout
    assert http.answered(out) == {f"{base}/later"} and 0.6 <= time.monotonic() - start < 1.5
    server.shutdown()


def test_http_probe_times_are_whole_seconds():
    """busybox's wget takes no fractions in -T: the builder gives whole seconds, at least 1."""
    argv = http.probe(["http://a/health"], timeout=1.5, within=2.7)  # type: ignore[arg-type]
    assert argv[4:6] == ["1", "2"] and http.probe(["u"], timeout=0)[4] == "1"
