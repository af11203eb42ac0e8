"""A real load generator (wrk) through the proxy, and its result parsed.

Used by the integration tests and the benchmarks. Traffic goes to loopback or to the test bed's own hosts only.
"""
from __future__ import annotations

import re
import signal
import ssl
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

MIXED_SCRIPT = Path(__file__).with_name("load_mixed.lua")
# How long wrk waits for a response before it counts a socket error. The example's pages
# are Next.js server renders: with 50 connections on this 2-core machine, while a step
# starts seven NestJS containers, the slowest page takes 4 to 6 s and still answers 200
# (nginx's log shows it); a browser waits far longer. Failed requests (non-2xx, refused,
# reset) are counted whatever their time.
TIMEOUT = "15s"


@dataclass(frozen=True)
class LoadResult:
    requests: int
    non_2xx: int
    socket_errors: dict[str, int]
    rps: float
    latency_p50_ms: float
    latency_p99_ms: float
    raw: str

    @property
    def errors(self) -> int:
        return self.non_2xx + sum(self.socket_errors.values())


def start(port: int, seconds: int, connections: int = 8, path: str = "/", mixed: bool = True, host: str = "127.0.0.1",
          scheme: str = "http") -> subprocess.Popen:
    """wrk against host:port for ``seconds``, in the background (loopback, or a test
    host the test bed made); ``scheme`` https: over TLS (wrk checks no certificate)."""
    argv = ["wrk", "-t", "2", "-c", str(connections), "-d", f"{seconds}s", "--timeout", TIMEOUT, "--latency"]
    script: list[str] = []
    if mixed:
        argv += ["-s", str(MIXED_SCRIPT)]
        script = ["--", static_asset(f"{scheme}://{host}:{port}")]
    return subprocess.Popen([*argv, f"{scheme}://{host}:{port}{path}", *script], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)


def static_asset(base: str) -> str:
    """The path of the smallest script under /_next/static/ that the page at ``base``
    loads (their names carry the build's content hash). The smallest: browsers keep these
    files (immutable), so in real traffic they are a small share of the bytes; a 170 kB
    chunk in every sixth request would measure this machine's bandwidth, not the routing."""
    context = ssl._create_unverified_context() if base.startswith("https:") else None

    def body(path: str) -> bytes:
        with urllib.request.urlopen(f"{base}{path}", timeout=10, context=context) as resp:
            return resp.read()

    page = body("/").decode()
    scripts = sorted(set(re.findall(r'src="(/_next/static/[^"]+\.js)"', page)))
    if not scripts:
        raise AssertionError(f"the page at {base}/ loads no script under /_next/static/:\n{page[:500]}")
    return min(scripts, key=lambda path: len(body(path)))


def _ms(value: str, unit: str) -> float:
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def parse(output: str) -> LoadResult:
    requests = re.search(r"(\d+) requests in", output)
    if not requests:
        raise ValueError(f"not wrk output:\n{output}")
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    lat = {m.group(1): _ms(m.group(2), m.group(3)) for m in re.finditer(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s|m)\b", output, re.M)}
    return LoadResult(
        requests=int(requests.group(1)),
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=dict(zip(("connect", "read", "write", "timeout"), map(int, sock.groups()), strict=False)) if sock else {},
        rps=float(rps.group(1)) if rps else 0.0,
        latency_p50_ms=lat.get("50", 0.0),
        latency_p99_ms=lat.get("99", 0.0),
        raw=output,
    )


def finish(proc: subprocess.Popen, timeout: float = 120) -> LoadResult:
    out, _ = proc.communicate(timeout=timeout)
    return parse(out)


def stop(proc: subprocess.Popen, timeout: float = 60) -> LoadResult:
    """End a wrk run early (SIGINT: it stops and prints its figures) and parse them."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
    return finish(proc, timeout)


class Traffic:
    """Load through the proxy for the length of a block: ``connections`` (default 50) send
    the mixed GET/POST requests (tests/load_mixed.lua: pages, static files, /api/items,
    /api/health, writes) and 4 more hold 2 s requests (/api/slow) open, so that some are
    always in flight when containers leave."""

    def __init__(self, port: int, seconds: int = 300, connections: int = 50, host: str = "127.0.0.1", scheme: str = "http") -> None:
        self.since = str(int(time.time()) - 1)  # for `docker logs --since`
        self.fast = start(port, seconds, connections=connections, host=host, scheme=scheme)
        self.slow = start(port, seconds, connections=4, path="/api/slow?ms=2000", mixed=False, host=host, scheme=scheme)

    def results(self) -> tuple[LoadResult, LoadResult]:
        return stop(self.fast), stop(self.slow)


def nginx_failures(container: str, since: str) -> list[str]:
    """The access-log lines of the proxy container since ``since`` (epoch seconds) whose
    status was not 2xx/3xx: a failed request must leave no trace there either."""
    logs = subprocess.run(["docker", "logs", "--since", since, container], capture_output=True, text=True)
    return [line for line in logs.stdout.splitlines() if "rt=" in line and not re.search(r'" ([23]\d\d|499) ', line)]


def nginx_diagnostics(container: str, since: str) -> str:
    """For a failure message: nginx's error lines and its slowest requests (over 4 s)."""
    logs = subprocess.run(["docker", "logs", "--since", since, container], capture_output=True, text=True)
    errors = [line for line in logs.stderr.splitlines() if "[error]" in line or "[crit]" in line][-10:]
    slow = [line for line in logs.stdout.splitlines() if (m := re.search(r"rt=([\d.]+)", line)) and float(m.group(1)) > 4][-10:]
    return "\n".join(["nginx errors:", *errors, "slowest requests:", *slow])


def assert_clean(traffic: Traffic, results: tuple[LoadResult, LoadResult], container: str, min_rps: float = 100.0) -> None:
    """0 non-2xx responses and 0 socket errors in both runs, and no failed line in the
    proxy's access log while the traffic ran."""
    fast, slow = results
    failures = nginx_failures(container, traffic.since)
    why = "\n".join(failures[-20:]) + "\n" + nginx_diagnostics(container, traffic.since)
    assert fast.rps >= min_rps, fast.raw
    assert fast.errors == 0, fast.raw + why
    assert slow.requests > 0 and slow.errors == 0, slow.raw + why
    assert not failures, "\n".join(failures[-20:])
