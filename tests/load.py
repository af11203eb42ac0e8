"""A real load generator (wrk) through the proxy, and its result parsed.

Used by the integration tests and the benchmarks. Traffic goes to loopback or to the test bed's own hosts only.
"""
from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

MIXED_SCRIPT = Path(__file__).with_name("load_mixed.lua")


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


def start(port: int, seconds: int, connections: int = 8, path: str = "/", mixed: bool = True, host: str = "127.0.0.1") -> subprocess.Popen:
    """wrk against host:port for ``seconds``, in the background (loopback, or a test
    host the test bed made)."""
    argv = ["wrk", "-t", "2", "-c", str(connections), "-d", f"{seconds}s", "--timeout", "5s", "--latency"]
    if mixed:
        argv += ["-s", str(MIXED_SCRIPT)]
    return subprocess.Popen([*argv, f"http://{host}:{port}{path}"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


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
