import pytest

from tests.load import parse

CLEAN = """Running 2s test @ http://127.0.0.1:8080/
  2 threads and 4 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.03ms    1.48ms  23.01ms   90.55%
    Req/Sec     2.98k     0.91k    6.18k    85.37%
  Latency Distribution
     50%  488.00us
     75%    1.35ms
     90%    2.45ms
     99%    1.51s
  12143 requests in 2.10s, 9.34MB read
Requests/sec:   5784.01
Transfer/sec:      4.45MB
"""

FAILING = """Running 25s test @ http://127.0.0.1:18080/api/items
  2 threads and 20 connections
  33912 requests in 20.02s, 25.26MB read
  Socket errors: connect 1, read 2, write 3, timeout 20
  Non-2xx or 3xx responses: 7
Requests/sec:   1693.73
"""


def test_parse_clean_run():
    r = parse(CLEAN)
    assert (r.requests, r.non_2xx, r.socket_errors, r.errors) == (12143, 0, {}, 0)
    assert r.rps == 5784.01
    assert r.latency_p50_ms == pytest.approx(0.488)
    assert r.latency_p99_ms == pytest.approx(1510.0)


def test_parse_counts_every_kind_of_error():
    r = parse(FAILING)
    assert r.socket_errors == {"connect": 1, "read": 2, "write": 3, "timeout": 20}
    assert r.non_2xx == 7
    assert r.errors == 33


def test_parse_refuses_what_is_not_wrk_output():
    with pytest.raises(ValueError):
        parse("wrk: command not found")
