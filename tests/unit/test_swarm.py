"""The stack file rendered for Docker Swarm from a merged compose configuration, and a
swarm stage's hosts: pure, no engine."""
from __future__ import annotations

import json
import shlex
from urllib.parse import quote, quote_plus

import pytest
from invoke.exceptions import Exit

from deploy.config.inventory import parse_hosts
from deploy.swarm.facts import parse_services, parse_tasks
from deploy.swarm.stackfile import Renderer, Roles, StackFiles, object_name

SECRET = "s3cret-pg"
CONFIG = {
    "name": "myapp",
    "services": {
        "backend": {
            "build": {"context": "."}, "image": "reg/myapp/backend:1.2.3", "depends_on": {"postgres": {"condition": "service_healthy"}},
            "security_opt": ["no-new-privileges:true"], "restart": "always", "read_only": True, "tmpfs": ["/tmp:size=64m"],
            "environment": {"PGPASSWORD": SECRET, "PGHOST": "postgres", "EMPTY": None},
            "deploy": {"replicas": 3, "resources": {"limits": {"cpus": 2, "memory": "2147483648"}, "reservations": {}}},
            "networks": {"back": None, "front": None}, "entrypoint": None,
        },
        "nginx": {
            "image": "nginx:1", "ports": [{"mode": "ingress", "host_ip": "0.0.0.0", "target": 8080, "published": "80", "protocol": "tcp"}],
            "volumes": [{"type": "bind", "source": "/cfg/nginx.conf", "target": "/etc/nginx/nginx.conf", "read_only": True},
                        {"type": "bind", "source": "/state/upstreams", "target": "/etc/nginx/upstreams"}],
            "networks": {"front": None},
        },
        "postgres": {
            "image": "postgres:16", "environment": {"POSTGRES_PASSWORD": SECRET}, "shm_size": "268435456",
            "volumes": [{"type": "volume", "source": "postgres-data", "target": "/var/lib/postgresql/data"}],
            "ports": [{"target": 5432, "published": "5432"}], "networks": {"back": None},
        },
    },
    "networks": {"back": {"name": "myapp_back", "internal": True}, "front": {"name": "myapp_front"}},
    "volumes": {"postgres-data": {"name": "myapp_postgres-data"}},
}
FILES = {"/cfg/nginx.conf": b"events {}\n"}


def rendered(encrypt: bool = True, replicas: int = 10) -> StackFiles:
    roles = Roles({"backend": 3000}, ["postgres"], "nginx")
    return Renderer("myapp", CONFIG, roles, {"POSTGRES_PASSWORD": SECRET, "JWT_SECRET": ""}, {"backend": replicas}, FILES.get,
                    encrypt).render()


def test_secrets_become_swarm_secrets_read_from_files() -> None:
    files = rendered()
    backend, postgres = files.app["services"]["backend"], files.stateful["services"]["postgres"]
    assert SECRET not in json.dumps(files.app) + json.dumps(files.stateful)
    assert backend["environment"]["PGPASSWORD_FILE"] == "/run/secrets/PGPASSWORD" and "PGPASSWORD" not in backend["environment"]
    assert postgres["environment"] == {"POSTGRES_PASSWORD_FILE": "/run/secrets/POSTGRES_PASSWORD"}
    (name,) = files.secrets
    assert files.secrets[name] == SECRET.encode()
    assert backend["secrets"] == [{"source": name, "target": "PGPASSWORD", "mode": 0o444}]
    assert files.app["secrets"] == {name: {"external": True}}
    assert backend["environment"]["EMPTY"] == ""


def test_the_v3_schema_gets_no_compose_only_keys_and_keeps_the_rest():
    backend = rendered().app["services"]["backend"]
    for key in ("build", "depends_on", "security_opt", "restart", "tmpfs", "entrypoint"):
        assert key not in backend
    assert backend["image"] == "reg/myapp/backend:1.2.3" and backend["read_only"] is True
    assert backend["volumes"] == [{"type": "tmpfs", "target": "/tmp", "tmpfs": {"size": 64 * 1024 ** 2}}]
    assert backend["networks"] == ["back", "front"]
    assert "shm_size" not in rendered().stateful["services"]["postgres"]  # a tmpfs at /dev/shm instead


def test_stateless_services_roll_start_first_and_swarm_rolls_back_a_failure() -> None:
    deploy = rendered(replicas=10).app["services"]["backend"]["deploy"]
    assert deploy["replicas"] == 10 and deploy["endpoint_mode"] == "dnsrr"
    assert deploy["update_config"]["order"] == "start-first" and deploy["update_config"]["failure_action"] == "rollback"
    assert deploy["rollback_config"]["order"] == "start-first"
    assert deploy["resources"] == {"limits": {"cpus": "2", "memory": "2147483648"}}


def test_the_proxy_runs_on_every_edge_node_on_its_own_ports_and_discovers_the_app() -> None:
    nginx = rendered().app["services"]["nginx"]
    assert nginx["deploy"]["mode"] == "global"
    assert nginx["deploy"]["placement"] == {"constraints": ["node.labels.edge == true"]}
    assert nginx["ports"] == [{"target": 8080, "published": 80, "protocol": "tcp", "mode": "host"}]
    assert nginx["environment"]["NGINX_DISCOVER"] == "backend:3000"
    (config,) = nginx["configs"]
    assert config["target"] == "/etc/nginx/nginx.conf" and rendered().configs[config["source"]] == b"events {}\n"
    assert {"type": "tmpfs", "target": "/etc/nginx/upstreams"} in nginx["volumes"]  # a directory of one host's state


def test_stateful_services_are_a_file_of_their_own_pinned_to_the_db_node_never_published() -> None:
    files = rendered()
    assert set(files.app["services"]) == {"backend", "nginx"} and set(files.stateful["services"]) == {"postgres"}
    postgres = files.stateful["services"]["postgres"]
    assert postgres["deploy"]["placement"] == {"constraints": ["node.labels.db == true"]} and postgres["deploy"]["replicas"] == 1
    assert "ports" not in postgres
    assert postgres["volumes"] == [{"type": "tmpfs", "target": "/dev/shm", "tmpfs": {"size": 268435456}},  # its shm_size
                                   {"type": "volume", "source": "postgres-data", "target": "/var/lib/postgresql/data"}]
    assert files.stateful["volumes"] == {"postgres-data": {}}  # the stack names it myapp_postgres-data, as Compose did


def test_overlay_networks_are_encrypted_unless_the_stage_says_not() -> None:
    assert rendered().app["networks"]["back"] == {"driver": "overlay", "internal": True, "driver_opts": {"encrypted": ""}}
    assert rendered(encrypt=False).app["networks"]["front"] == {"driver": "overlay"}


def test_a_changed_content_is_a_new_object_name_of_at_most_64_characters() -> None:
    assert object_name("myapp", "nginx-nginx.conf", b"a") != object_name("myapp", "nginx-nginx.conf", b"b")
    assert object_name("myapp", "nginx-nginx.conf", b"a").startswith("myapp_nginx-nginx.conf_")
    long = object_name("a-long-project-name", "nginx-security-headers.conf.template", b"a")
    assert len(long) == 64 and long.startswith("a-long-project-name_nginx-security")


def test_a_secret_with_a_dollar_is_matched_as_compose_escapes_it() -> None:
    config = json.loads(json.dumps(CONFIG))
    config["services"]["backend"]["environment"]["PGPASSWORD"] = "pa$$word-long"  # docker compose config writes $ as $$
    roles = Roles({"backend": 3000}, ["postgres"], "nginx")
    files = Renderer("myapp", config, roles, {"POSTGRES_PASSWORD": "pa$word-long"}, {}, FILES.get).render()
    assert "PGPASSWORD" not in files.app["services"]["backend"]["environment"]
    assert list(files.secrets.values()) == [b"pa$word-long"]


def test_a_secret_inside_another_value_is_refused() -> None:
    config = json.loads(json.dumps(CONFIG))
    config["services"]["backend"]["environment"]["DATABASE_URL"] = f"postgres://app:{SECRET}@postgres/app"
    roles = Roles({"backend": 3000}, ["postgres"], "nginx")
    with pytest.raises(Exit, match=r"backend \(environment.DATABASE_URL\) shows the secret POSTGRES_PASSWORD"):
        Renderer("myapp", config, roles, {"POSTGRES_PASSWORD": SECRET}, {}, FILES.get).render()


LONG_SECRET = "p@ss w/rd:$ecret"  # characters that URL and JSON encode, and a $ that Compose writes as $$


@pytest.mark.parametrize(("service", "key", "value", "where"), [
    ("backend", "command", ["node", "main.js", f"--password={LONG_SECRET}"], r"backend \(command\[2\]\)"),
    ("backend", "healthcheck", {"test": ["CMD-SHELL", f"check --token '{LONG_SECRET}'"]}, r"backend \(healthcheck.test\[1\]\)"),
    ("backend", "labels", {"token": LONG_SECRET.replace("$", "$$")}, r"backend \(labels.token\)"),
    ("backend", "environment", {"DATABASE_URL": f"postgres://app:{quote(LONG_SECRET, safe='')}@postgres/app"},
     r"backend \(environment.DATABASE_URL\)"),
    ("backend", "environment", {"SETTINGS": json.dumps({"pass": LONG_SECRET + "!"})}, r"backend \(environment.SETTINGS\)"),
    ("postgres", "entrypoint", ["sh", "-c", f"PGPASSWORD={LONG_SECRET} exec postgres"], r"postgres \(entrypoint\[2\]\)"),
    ("nginx", "labels", {"x": "short"}, None),
])
def test_a_secret_anywhere_in_a_spec_is_refused(service, key, value, where) -> None:
    """Not only the environment: a secret in a command, a healthcheck, a label, a DSN
    (URL-encoded) or a JSON value would be shown by docker service inspect."""
    config = json.loads(json.dumps(CONFIG))
    spec = config["services"][service]
    spec[key] = {**spec.get(key, {}), **value} if isinstance(value, dict) else value
    secrets = {"POSTGRES_PASSWORD": SECRET, "JWT_SECRET": LONG_SECRET, "REDIS_PASSWORD": "short"}
    render = Renderer("myapp", config, Roles({"backend": 3000}, ["postgres"], "nginx"), secrets, {}, FILES.get).render
    if where is None:  # a short secret is matched only as a whole value, and swapped for a file in the environment only
        with pytest.raises(Exit, match=r"nginx \(labels.x\) shows the secret REDIS_PASSWORD"):
            render()
    else:
        with pytest.raises(Exit, match=where + " shows the secret JWT_SECRET"):
            render()


def test_a_secret_in_a_bind_mounted_file_is_refused() -> None:
    """A config's content is readable by docker config inspect."""
    files = {"/cfg/nginx.conf": f"events {{}}\n# {SECRET}-and-more\n".encode()}
    with pytest.raises(Exit, match="the config myapp_nginx-nginx.conf_[0-9a-f]+ shows the secret POSTGRES_PASSWORD"):
        Renderer("myapp", CONFIG, Roles({"backend": 3000}, ["postgres"], "nginx"), {"POSTGRES_PASSWORD": SECRET}, {}, files.get).render()


def test_a_port_bound_to_one_address_is_refused() -> None:
    config = json.loads(json.dumps(CONFIG))
    config["services"]["nginx"]["ports"][0]["host_ip"] = "127.0.0.1"
    with pytest.raises(Exit, match="publishes 80 on 127.0.0.1 only"):
        Renderer("myapp", config, Roles({"backend": 3000}, ["postgres"], "nginx"), {}, {}, FILES.get).render()


def test_a_missing_service_is_named() -> None:
    roles = Roles({"api": 3000}, ["postgres"], "nginx")
    with pytest.raises(Exit, match="no service api"):
        Renderer("myapp", CONFIG, roles, {}, {}, FILES.get).render()


@pytest.mark.parametrize(("roles", "message"), [
    ({"a": ["edge", "db"]}, "a manager or a worker"),
    ({"a": ["manager", "worker", "edge", "db"]}, "a manager or a worker"),
    ({"a": ["worker", "edge", "db"]}, "no host is a manager"),
    ({"a": ["manager", "edge"]}, "db role"),
    ({"a": ["manager", "db"]}, "edge role"),
    ({"a": ["manager", "app"]}, "is not a list of manager, worker, edge, db"),
])
def test_swarm_roles_are_checked(roles: dict[str, list[str]], message: str) -> None:
    with pytest.raises(Exit, match=message):
        parse_hosts({name: {"roles": r, "address": "10.0.0.1"} for name, r in roles.items()}, "prod", "myapp", engine="swarm")


def test_service_and_task_facts() -> None:
    services = parse_services(json.dumps([{
        "ID": "abc", "Version": {"Index": 42},
        "Spec": {"Name": "myapp_backend", "Mode": {"Replicated": {"Replicas": 3}},
                 "TaskTemplate": {"ContainerSpec": {"Image": "reg/myapp/backend:1.0.1@sha256:ff"}}},
        "UpdateStatus": {"State": "rollback_completed", "Message": "update rolled back"},
    }]))
    assert services[0].tag == "1.0.1" and services[0].replicas == 3 and services[0].version == 42 and services[0].rolled_back
    tasks = parse_tasks('{"ID":"t1","Name":"myapp_backend.1","Node":"vm","DesiredState":"Running","CurrentState":"Running 5 seconds ago"}\n')
    assert tasks[0].state == "running" and tasks[0].service == "myapp_backend"


def test_tasks_of_compose_projects_refuse_a_swarm_stage_saying_what_to_do() -> None:
    from types import SimpleNamespace

    from tasks._open import compose_only

    swarm = SimpleNamespace(swarm=True, settings=SimpleNamespace(stage=SimpleNamespace(name="cluster")))
    with pytest.raises(Exit, match=r"inv up does not work on a swarm stage yet \(cluster\)\n.*fix: deploy with inv deploy"):
        compose_only(swarm, "up", "deploy with inv deploy")  # type: ignore[arg-type]
    compose = SimpleNamespace(swarm=False)
    assert compose_only(compose, "up", "") is compose  # type: ignore[arg-type]


@pytest.mark.parametrize(("form", "shown"), [
    ("quote, '/' kept", lambda s: f"postgres://app:{quote(s)}@postgres/app"),  # urllib's default: safe="/"
    ("quote_plus", lambda s: f"https://hook.example/?token={quote_plus(s)}"),  # a form's or a query's encoding
    ("shell quotes", lambda s: shlex.join(["check", "--token", s])),  # a ' written as '"'"'
])
def test_every_form_masking_knows_of_a_secret_is_refused(form, shown) -> None:
    """The forms of a secret are masking's (deploy.config.masking.forms): URL-encoded with
    '/' kept and with '+' for a space were missed before."""
    secret = "p@ss w/rd:'$ecret"
    config = json.loads(json.dumps(CONFIG))
    config["services"]["backend"]["labels"] = {"x": shown(secret)}
    with pytest.raises(Exit, match=r"backend \(labels.x\) shows the secret JWT_SECRET"):
        Renderer("myapp", config, Roles({"backend": 3000}, ["postgres"], "nginx"), {"POSTGRES_PASSWORD": SECRET, "JWT_SECRET": secret},
                 {}, FILES.get).render()


def test_a_variable_named_like_a_secret_is_refused_in_a_spec_and_told_to_be_declared() -> None:
    """Not only deploy.secret_env: SMTP_PASSWORD (named like a secret, as masking finds
    them) shows nowhere either; a short one matches by chance and is left."""
    from deploy.config import masking

    env = {"SMTP_PASSWORD": "smtp-Pass-9a7f", "GITHUB_TOKEN": "ghp_1", "TOKEN_TTL": "3600", "PGHOST": "postgres"}
    named = masking.secrets(env, ["POSTGRES_PASSWORD"])
    assert named == {"SMTP_PASSWORD": "smtp-Pass-9a7f", "GITHUB_TOKEN": "ghp_1", "TOKEN_TTL": "3600"}
    config = json.loads(json.dumps(CONFIG))
    config["services"]["backend"]["environment"]["SMTP_URL"] = f"smtp://mailer:{quote(env['SMTP_PASSWORD'])}@mail:587"
    roles = Roles({"backend": 3000}, ["postgres"], "nginx")
    with pytest.raises(Exit, match=r"backend \(environment.SMTP_URL\) shows the secret SMTP_PASSWORD(.|\n)*"
                                   r"declare it a secret: invoke.yaml deploy.secret_env: \[\.\.\., SMTP_PASSWORD\]"):
        Renderer("myapp", config, roles, {"POSTGRES_PASSWORD": SECRET}, {}, FILES.get, named=named).render()
    config["services"]["backend"]["environment"] = {"PGPASSWORD": SECRET, "TTL": "3600", "GH": "ghp_1"}
    files = Renderer("myapp", config, roles, {"POSTGRES_PASSWORD": SECRET}, {}, FILES.get, named=named).render()
    assert files.app["services"]["backend"]["environment"] == {"PGPASSWORD_FILE": "/run/secrets/PGPASSWORD", "TTL": "3600", "GH": "ghp_1"}
