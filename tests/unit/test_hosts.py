"""Inventory, host selection, the uploaded files and remote command lines (no hosts needed)."""
import inspect
import io
import shlex
import subprocess
import tarfile

import pytest
from invoke.exceptions import Exit

from deploy.config.envfile import env_line
from deploy.config.inventory import Host, SshOptions, parse_hosts, parse_ssh, role_services, select
from deploy.config.settings import Settings
from deploy.engine.remote import RemoteTarget
from deploy.engine.stack import Stack
from deploy.engine.upload import compose_tree, render_env
from deploy.fleet import SPLIT_FILE, Member, host_settings
from deploy.output import PrefixedStream
from deploy.release.switch import batches
from tasks._where import Where, on_host, on_hosts
from tests.unit.conftest import ROOT
from tests.unit.fake_engine import FakeEngine

HOSTS = {"app1": {"address": "10.0.0.11", "roles": ["app"]}, "app2": {"address": "10.0.0.12", "roles": "app"},
         "db1": {"address": "10.0.0.13", "private_address": "192.168.0.13", "roles": ["db"], "user": "deploy", "port": 2222}}


def test_hosts_parse_with_roles_defaults_and_deploy_dir():
    hosts = parse_hosts(HOSTS, "production", "myapp")
    assert [h.name for h in hosts] == ["app1", "app2", "db1"]
    assert hosts[1].roles == ("app",)
    assert hosts[2].user == "deploy" and hosts[2].port == 2222 and hosts[2].reach == "192.168.0.13"
    assert all(h.deploy_dir == "/srv/myapp" for h in hosts)
    both = parse_hosts({"one": {}}, "s", "p")[0]
    assert both.roles == ("app", "db") and both.address == "one"  # an ~/.ssh/config alias


@pytest.mark.parametrize(
    ("hosts", "words"),
    [
        ({"a": {"roles": ["app"]}}, "no host has the db role"),
        ({"a": {"roles": ["db"]}}, "no host has the app role"),
        ({"a": {"roles": ["app", "db"]}, "b": {"roles": ["db"]}}, "more than one host has the db role"),
        ({"a": {"roles": ["web"]}}, "is not a list of app, db"),
        ({"a;rm -rf /": {}}, "not a valid host name"),
        ({"a": {"deploy_dir": "/srv/$(id)"}}, "not an absolute plain path"),
        ({"a": {"deploy_dir": "/srv/../etc"}}, "not an absolute plain path"),
        ({"a": {"port": "22; id"}}, "is not a port number"),
    ],
)
def test_bad_inventory_is_refused_with_the_key(hosts, words):
    with pytest.raises(Exit) as err:
        parse_hosts(hosts, "production", "myapp")
    assert words in str(err.value.message) and "deploy.stages.production.hosts" in str(err.value.message)


def test_ssh_options_validated():
    assert parse_ssh({"connect_timeout": 3, "parallel": 2}, "s") == SshOptions(connect_timeout=3.0, parallel=2)
    with pytest.raises(Exit, match="positive number"):
        parse_ssh({"keepalive": 0}, "s")
    with pytest.raises(Exit, match="unknown key"):
        parse_ssh({"StrictHostKeyChecking": "no"}, "s")


def test_select_narrows_by_name_and_role():
    hosts = parse_hosts(HOSTS, "production", "myapp")
    assert [h.name for h in select(hosts, [], ["db"], "production")] == ["db1"]
    assert [h.name for h in select(hosts, ["app2", "db1"], ["app"], "production")] == ["app2"]
    with pytest.raises(Exit, match="unknown host"):
        select(hosts, ["app3"], [], "production")
    with pytest.raises(Exit, match="unknown role"):
        select(hosts, [], ["cache"], "production")
    with pytest.raises(Exit, match="no host of stage production matches"):
        select(hosts, ["db1"], ["app"], "production")


def test_role_services():
    hosts = parse_hosts(HOSTS, "production", "myapp")
    assert role_services(hosts[0], ["backend", "web"], "nginx", ["postgres", "redis"]) == ["backend", "web", "nginx"]
    assert role_services(hosts[2], ["backend", "web"], "nginx", ["postgres", "redis"]) == ["postgres", "redis"]


def test_split_stage_layers_the_hosts_file_and_names_the_db_host(config):
    stage = config.stage("production")
    settings = Settings(config, stage, ROOT / ".env.example", {"X": "1"})
    hosts = parse_hosts(HOSTS, "production", "myapp")
    split = host_settings(settings, hosts)
    assert split.stage.compose_files == (*stage.compose_files, SPLIT_FILE)
    assert split.env["DB_HOST"] == "192.168.0.13"
    together = parse_hosts({"one": {}}, "production", "myapp")
    assert host_settings(settings, together) == settings
    assert (ROOT / SPLIT_FILE).is_file()


@pytest.mark.parametrize("value", ["plain", "with space", "$HOME and ${X}", "it's", 'say "hi"', "back\\slash", "", "ends\\",
                                   "it's $HOME", "a #b", "two\nlines", "a\\'b"])
def test_env_lines_read_back_unchanged_by_dotenv(tmp_path, value):
    """Read back unchanged by python-dotenv (by Compose too: tests/integration/test_envfile.py)."""
    from dotenv import dotenv_values

    path = tmp_path / "env"
    path.write_text(render_env({"VALUE": value}))
    assert dotenv_values(path, interpolate=False)["VALUE"] == value


def test_env_line_refuses_what_cannot_round_trip():
    with pytest.raises(Exit, match="value of X cannot be written"):
        env_line("X", "$HOME\\")


def test_compose_tree_has_the_compose_folder_and_no_env_files(config):
    files = config.stage("production").compose_files + (SPLIT_FILE,)
    with tarfile.open(fileobj=io.BytesIO(compose_tree(ROOT, files))) as tar:
        names = tar.getnames()
        assert all(m.mode == 0o644 and m.uid == 0 for m in tar.getmembers())
    assert "compose/docker-compose.yml" in names and "compose/nginx/nginx.conf.template" in names
    assert not [n for n in names if ".env" in n]


def test_compose_tree_keeps_each_files_permissions_and_never_widens_them(tmp_path):
    compose = tmp_path / "compose"
    (compose / "certs").mkdir(parents=True)
    modes = {"docker-compose.yml": 0o644, "certs/site.key": 0o600, "start.sh": 0o755, "shared.conf": 0o666,
             "group.conf": 0o640, "setuid": 0o4775, ".env.local": 0o644}
    for name, mode in modes.items():
        (compose / name).write_text("x")
        (compose / name).chmod(mode)
    with tarfile.open(fileobj=io.BytesIO(compose_tree(tmp_path, ("compose/docker-compose.yml",)))) as tar:
        got = {m.name.removeprefix("compose/"): m.mode for m in tar.getmembers()}
    assert got == {"docker-compose.yml": 0o644, "certs/site.key": 0o600, "start.sh": 0o755, "shared.conf": 0o644,
                   "group.conf": 0o640, "setuid": 0o755}  # .env* stays here: a host gets the 0600 env file


def test_remote_commands_are_quoted_once():
    host = parse_hosts({"h": {}}, "s", "p")[0]
    target = RemoteTarget(host, SshOptions())
    hostile = ["docker", "logs", "a; touch /tmp/x", "$(id)", "it's \"quoted\""]
    line = target._command(hostile, {"APP_VERSION": "1.0.0; id"})
    assert shlex.split(line) == ["env", "APP_VERSION=1.0.0; id", *hostile]
    out = subprocess.run(["sh", "-c", target._command(["printf", "%s|", *hostile[2:]], None)], capture_output=True, text=True)
    assert out.stdout == "a; touch /tmp/x|$(id)|it's \"quoted\"|"


def test_prefixed_stream_writes_whole_lines():
    out = io.StringIO()
    stream = PrefixedStream("h1", out)
    stream.write("one\ntw")
    assert out.getvalue() == "[h1] one\n"
    stream.write("o\n")
    stream.write("three")
    stream.flush()
    assert out.getvalue() == "[h1] one\n[h1] two\n[h1] three\n"


def test_batches(fake_settings):
    members = [Member(Host(f"app{i}", f"10.0.0.{i}", ("app",), "/srv/myapp"), Stack(fake_settings, FakeEngine(f"app{i}")))
               for i in (1, 2, 3)]

    def names(groups: list[list[Member]]) -> list[list[str]]:
        return [[m.name for m in group] for group in groups]

    assert names(batches(members, 2)) == [["app1", "app2"], ["app3"]]
    assert names(batches(members, 1)) == [["app1"], ["app2"], ["app3"]]


def test_on_hosts_adds_the_flags_and_passes_where():
    seen: list[tuple[int, Where]] = []  # each call's (count, where)

    def body(c, count: int = 1, *, where: Where) -> None:
        seen.append((count, where))

    wrapped = on_hosts()(body).body
    params = list(inspect.signature(wrapped).parameters)
    assert params == ["c", "count", "stage", "env_file", "hosts", "roles", "accept_new_host_keys"]
    wrapped(None, count=2, stage="production", hosts="h1", accept_new_host_keys=True)
    assert seen == [(2, Where(stage="production", hosts="h1", accept_new_host_keys=True))]
    one = on_host()(body).body
    assert list(inspect.signature(one).parameters)[-3:] == ["env_file", "host", "accept_new_host_keys"]
    one(None, host="db1")
    assert seen[-1][1].hosts == "db1"


def test_a_secret_never_goes_on_a_remote_command_line(config):
    from deploy.engine.stack import Stack

    settings = Settings(config, config.stage("production"), ROOT / ".env.example", {"JWT_SECRET": "s" * 64})
    host = parse_hosts({"h": {}}, "production", "p")[0]
    stack = Stack(settings, RemoteTarget(host, SshOptions()))
    # only this run's version, where the proxy's folders are and the stage (its containers' label): no secret
    assert stack.with_env(APP_VERSION="1.0.0").command_env == {"APP_VERSION": "1.0.0",
                                                               "NGINX_UPSTREAMS_DIR": "/srv/p/state/production/upstreams",
                                                               "NGINX_TLS_DIR": "/srv/p/state/production/tls",
                                                               "NGINX_ACME_DIR": "/srv/p/state/production/acme",
                                                               "DEPLOY_STAGE": "production"}
    with pytest.raises(Exit, match="refusing to put JWT_SECRET on a command line"):
        stack.with_env(JWT_SECRET="x" * 64).command_env  # noqa: B018
