"""The SSH test hosts (scripts/testbed/hosts.sh) as the integration tests use them: their
settings, a stage of them as invoke.yaml would list it, and the system ssh client for an
independent look at a host."""
from __future__ import annotations

import dataclasses
import json
import subprocess
from concurrent.futures import ThreadPoolExecutor

from deploy.config.settings import read_env_file
from deploy.state import history
from tests.integration.conftest import TESTBED_STATE

HOSTS_ENV = TESTBED_STATE / "hosts" / "hosts.env"
ROLES = {"h1": ["app"], "h2": ["app"], "h3": ["db"]}  # the default stage: two app hosts, one db host


def read_testbed() -> dict:
    """hosts.env of scripts/testbed/hosts.sh, with ``addrs``: host name -> address."""
    env: dict = read_env_file(HOSTS_ENV)
    env["addrs"] = dict(zip(env["TESTBED_HOSTS"].split(), env["TESTBED_HOST_ADDRS"].split(), strict=True))
    return env


def remote_env(testbed: dict) -> dict[str, str]:
    """The env of a stage on the test hosts: their registry address and stand-in images."""
    return {"DOCKER_REGISTRY": testbed["TESTBED_HOST_REGISTRY"], "POSTGRES_IMAGE": testbed["HOST_POSTGRES_IMAGE"],
            "REDIS_IMAGE": testbed["HOST_REDIS_IMAGE"], "NGINX_IMAGE": testbed["HOST_NGINX_IMAGE"], "HTTP_BIND": "0.0.0.0"}


def ssh_argv(testbed: dict, host: str, command: str) -> list[str]:
    """The system ssh client's command line for ``command`` on a host, with the test bed's key and known_hosts."""
    return ["ssh", "-i", testbed["TESTBED_SSH_KEY"], "-o", f"UserKnownHostsFile={testbed['TESTBED_KNOWN_HOSTS']}",
            "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-o", "ConnectTimeout=5", f"root@{testbed['addrs'][host]}", command]


def ssh(testbed: dict, host: str, command: str, check: bool = True) -> subprocess.CompletedProcess:
    """The system ssh client, with the test bed's key and known_hosts: an independent look at a host."""
    result = subprocess.run(ssh_argv(testbed, host, command), capture_output=True, text=True, timeout=120)
    if check and result.returncode != 0:
        raise AssertionError(f"ssh {host} {command}: {result.returncode}\n{result.stdout}\n{result.stderr}")
    return result


def ssh_bytes(testbed: dict, host: str, command: str, data: bytes) -> bytes:
    """``command`` on a host reading ``data`` on its stdin: what it printed (it must succeed)."""
    result = subprocess.run(ssh_argv(testbed, host, command), input=data, capture_output=True, timeout=300)
    if result.returncode != 0:
        raise AssertionError(f"ssh {host} {command}: {result.returncode}\n{result.stderr.decode(errors='replace')}")
    return result.stdout


def releases_on(testbed: dict, project: str, host: str = "h3", stage: str = "remote") -> list[dict]:
    """The release history kept on ``host`` (its journal, folded as the tasks fold it), oldest first."""
    path = f"/srv/{project}/state/{stage}/{history.JOURNAL}"
    journal = ssh(testbed, host, f"cat {path} 2>/dev/null || true").stdout
    return [dataclasses.asdict(r) for r in history.folded(journal, f"{path} on {host}")]


def stage_config(testbed: dict, known_hosts: str | None = None, roles: dict[str, list[str]] | None = None, name: str = "remote") -> dict:
    """A stage of the test hosts in ``roles``, as invoke.yaml would list it."""
    hosts = {host: {"address": testbed["addrs"][host], "user": "root", "key": testbed["TESTBED_SSH_KEY"], "roles": r}
             for host, r in (roles or ROLES).items()}
    return {name: {
        "env_file": ".env.remote", "compose_files": ["compose/docker-compose.yml", "compose/docker-compose.prod.yml"],
        "production": True, "hosts": hosts,
        "ssh": {"known_hosts": known_hosts or testbed["TESTBED_KNOWN_HOSTS"], "ssh_config": "/nonexistent",
                "connect_timeout": 5, "keepalive": 3, "command_timeout": 300},
    }}


def remove_from_hosts(stack, testbed: dict, engine) -> None:
    """Everything of the stack off the hosts (all at once), and its images off this engine."""
    label = f"label=com.docker.compose.project={stack.project}"
    command = (f"docker ps -aq --filter {label} | xargs -r docker rm -f >/dev/null; "
               f"docker volume ls -q --filter {label} | xargs -r docker volume rm >/dev/null; "
               f"docker network ls -q --filter {label} | xargs -r docker network rm >/dev/null; "
               f"docker images -q '*/{stack.project}/*' | sort -u | xargs -r docker rmi -f >/dev/null; "
               f"rm -rf /srv/{stack.project}")
    with ThreadPoolExecutor(max_workers=len(testbed["addrs"])) as pool:
        list(pool.map(lambda host: ssh(testbed, host, command, check=False), testbed["addrs"]))
    for image in engine.images.list(name=f"{testbed['TESTBED_HOST_REGISTRY']}/{stack.project}/*"):
        engine.images.remove(image.id, force=True)


def version_at(testbed: dict, host: str, port: int) -> str:
    out = subprocess.run(["curl", "-s", "-m", "5", f"http://{testbed['addrs'][host]}:{port}/api/version"], capture_output=True, text=True)
    return json.loads(out.stdout)["version"] if out.stdout.startswith("{") else f"no answer ({out.returncode})"
