import json
from datetime import datetime, timezone

from deploy.engine.facts import (
    desired_replicas,
    parse_engine_version,
    parse_hashes,
    parse_identity,
    parse_inspect,
    parse_published,
    parse_stats,
    parse_time,
    version_tuple,
)


def container(**over):
    item = {
        "Id": "0123456789abcdef0123",
        "Name": "/myapp-backend-2",
        "Config": {
            "Image": "reg:5000/ns/backend:1.2.3",
            "Labels": {"com.docker.compose.service": "backend", "com.docker.compose.container-number": "2",
                       "org.opencontainers.image.version": "1.2.3"},
            "Env": ["APP_VERSION=9.9.9"],
        },
        "State": {"Status": "running", "Running": True, "ExitCode": 0, "StartedAt": "2026-11-28T10:00:00.123456789Z",
                  "Health": {"Status": "healthy", "Log": [{"Output": "ok\n"}]}},
        "NetworkSettings": {"Ports": {"3000/tcp": None, "8080/tcp": [{"HostIp": "127.0.0.1", "HostPort": "18080"}]}},
    }
    for key, value in over.items():
        item[key] = value
    return item


def test_parse_inspect_reads_every_field():
    (c,) = parse_inspect(json.dumps([container()]))
    assert c.id == "0123456789ab"
    assert c.name == "myapp-backend-2"
    assert (c.service, c.number, c.state, c.health) == ("backend", 2, "running", "healthy")
    assert c.version == "1.2.3"
    assert c.started_at == datetime(2026, 11, 28, 10, 0, 0, 123456, tzinfo=timezone.utc)
    assert c.ports == ("127.0.0.1:18080->8080/tcp",)
    assert c.health_log == "ok"
    assert c.ok


def test_version_falls_back_to_env_then_tag():
    cfg = {"Image": "postgres:16-alpine", "Labels": {}, "Env": ["APP_VERSION=2.0.0"]}
    assert parse_inspect(json.dumps([container(Config=cfg)]))[0].version == "2.0.0"
    cfg = {"Image": "127.0.0.1:5000/postgres:16-alpine", "Labels": {}}
    assert parse_inspect(json.dumps([container(Config=cfg)]))[0].version == "16-alpine"
    cfg = {"Image": "127.0.0.1:5000/postgres", "Labels": {}}
    assert parse_inspect(json.dumps([container(Config=cfg)]))[0].version == "latest"


def test_stopped_and_unhealthy_are_not_ok():
    stopped = container(State={"Status": "exited", "Running": False, "ExitCode": 137, "StartedAt": "2026-11-28T10:00:00Z"})
    (c,) = parse_inspect(json.dumps([stopped]))
    assert (c.ok, c.exit_code, c.started_at, c.health) == (False, 137, None, "")
    sick = container(State={"Status": "running", "Running": True, "Health": {"Status": "unhealthy", "Log": []}})
    assert not parse_inspect(json.dumps([sick]))[0].ok


def test_parse_inspect_orders_by_service_and_number():
    a = container(Name="/b-1", Config={"Image": "x", "Labels": {"com.docker.compose.service": "web", "com.docker.compose.container-number": "1"}})
    b = container(Name="/a-10", Config={"Image": "x", "Labels": {"com.docker.compose.service": "backend",
                                                                 "com.docker.compose.container-number": "10"}})
    c = container(Name="/a-9", Config={"Image": "x", "Labels": {"com.docker.compose.service": "backend", "com.docker.compose.container-number": "9"}})
    assert [x.name for x in parse_inspect(json.dumps([a, b, c]))] == ["a-9", "a-10", "b-1"]


def test_parse_time():
    assert parse_time("0001-01-01T00:00:00Z") is None
    assert parse_time("") is None
    assert parse_time("2026-01-02T03:04:05+02:00") == datetime(2026, 1, 2, 1, 4, 5, tzinfo=timezone.utc)


def test_parse_stats():
    line = json.dumps({"Name": "myapp-web-1", "CPUPerc": "1.5%", "MemUsage": "10MiB / 1GiB", "MemPerc": "1%",
                       "NetIO": "1kB / 2kB", "BlockIO": "0B / 0B", "PIDs": "7"})
    (s,) = parse_stats(line + "\n\n")
    assert (s.name, s.cpu, s.memory, s.pids) == ("myapp-web-1", "1.5%", "10MiB / 1GiB", "7")


def test_versions():
    assert version_tuple("20.10.24+dfsg1") == (20, 10, 24)
    assert version_tuple("v2.40.3\n") == (2, 40, 3)
    assert version_tuple("1.29") == (1, 29)
    assert version_tuple("") == ()
    assert parse_engine_version('{"Client": {}, "Server": {"Version": "27.1.0"}}') == "27.1.0"
    assert parse_engine_version('{"Client": {}, "Server": null}') == ""
    assert parse_engine_version("Cannot connect") == ""


def test_desired_replicas_prefers_saved_scale():
    config = {"services": {"backend": {"deploy": {"replicas": 3}}, "web": {"scale": 2}, "nginx": {}}}
    assert desired_replicas(config, {}) == {"backend": 3, "web": 2, "nginx": 1}
    assert desired_replicas(config, {"backend": 5})["backend"] == 5


def test_parse_published():
    assert parse_published("0.0.0.0:8080\n") == 8080
    assert parse_published("127.0.0.1:18080\n[::]:18080\n") == 18080
    assert parse_published("") is None
    assert parse_published(":0") is None


def test_parse_hashes():
    assert parse_hashes("postgres 8232df\nredis 3069\n\n") == {"postgres": "8232df", "redis": "3069"}


def test_config_hash_label():
    item = container()
    item["Config"]["Labels"]["com.docker.compose.config-hash"] = "abc"
    assert parse_inspect(json.dumps([item]))[0].config_hash == "abc"


def test_identity_prefers_the_pushed_digest():
    line = '["127.0.0.1:5000/shop/backend@sha256:abc","other/x@sha256:def"] sha256:1234\n'
    assert parse_identity(line, "127.0.0.1:5000/shop/backend") == "127.0.0.1:5000/shop/backend@sha256:abc"
    assert parse_identity("[] sha256:1234", "local/shop/web") == "sha256:1234"
    assert parse_identity("<no value> sha256:1234", "local/shop/web") == "sha256:1234"


def test_parse_inspect_reads_the_address_on_each_network():
    networks = {"Ports": {}, "Networks": {"myapp_front": {"IPAddress": "172.18.0.3", "Aliases": ["backend"]},
                                          "myapp_back": {"IPAddress": "172.19.0.7"}}}
    (c,) = parse_inspect(json.dumps([container(NetworkSettings=networks)]))
    assert c.addresses == (("myapp_back", "172.19.0.7"), ("myapp_front", "172.18.0.3"))
    assert c.address_on(["myapp_front"]) == "172.18.0.3"
    assert c.address_on(["other", "myapp_back", "myapp_front"]) == "172.19.0.7"  # the first of them it is on
    assert c.address_on(["other"]) is None and c.address_on([]) is None


def test_a_stopped_container_has_no_address():
    stopped = container(State={"Status": "exited", "Running": False, "ExitCode": 0},
                        NetworkSettings={"Networks": {"myapp_front": {"IPAddress": ""}, "myapp_back": None}})
    (c,) = parse_inspect(json.dumps([stopped]))
    assert c.addresses == (("myapp_back", ""), ("myapp_front", ""))
    assert c.address_on(["myapp_front", "myapp_back"]) is None
    (bare,) = parse_inspect(json.dumps([container(NetworkSettings={})]))
    assert bare.addresses == () and bare.address_on(["myapp_front"]) is None
