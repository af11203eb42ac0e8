"""One Compose project of one stage on one target: the handle every workflow uses."""
from __future__ import annotations

import dataclasses
import json
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

from invoke.runners import Result

from deploy.config import state_home
from deploy.config.settings import Settings
from deploy.engine.commands import compose, docker, files
from deploy.engine.facts import Container, desired_replicas, parse_inspect, parse_published
from deploy.engine.target import Target
from deploy.errors import fail

# The proxy's folders in the state directory, mounted into its container (NGINX_*_DIR):
UPSTREAMS_DIR = "upstreams"  # its routing (deploy.stack.routing)
TLS_DIR = "tls"  # its certificate (deploy.stack.tls)
ACME_DIR = "acme"  # the ACME HTTP-01 webroot it serves
PROXY_DIRS = {"NGINX_UPSTREAMS_DIR": UPSTREAMS_DIR, "NGINX_TLS_DIR": TLS_DIR, "NGINX_ACME_DIR": ACME_DIR}
STAGE_VARIABLE = "DEPLOY_STAGE"  # compose/docker-compose.yml labels every container with it (facts.STAGE_LABEL)
ENGINE_FIX = "check that the Docker engine runs (`docker info`); on a test bed: bash scripts/testbed/setup.sh"


def last_lines(text: str, n: int = 8) -> str:
    return "\n".join(text.strip().splitlines()[-n:])


@dataclass
class Stack:
    settings: Settings
    target: Target

    def with_env(self, **values: str) -> Stack:
        """The same stack with some variables set (e.g. APP_VERSION of a release)."""
        s = self.settings
        settings = dataclasses.replace(s, env={**s.env, **values}, overrides={**s.overrides, **values})
        return Stack(settings, self.target)

    @property
    def project(self) -> compose.ComposeProject:
        workdir = self.target.workdir
        return self.settings.compose if workdir is None else self.settings.compose_in(workdir)

    @property
    def command_env(self) -> dict[str, str]:
        """The variables a command gets. Locally the whole stage env; on a host only this
        run's overrides (APP_VERSION): the rest, secrets included, is in the env file
        uploaded to the deploy directory, never on a command line. Both get the proxy's
        folders (``PROXY_DIRS``: its routing, its certificate, the ACME webroot) and the
        stage's name (``STAGE_VARIABLE``: the label of every container it makes)."""
        ours = {**{variable: self.state_file(folder) for variable, folder in PROXY_DIRS.items()}, STAGE_VARIABLE: self.settings.stage.name}
        if self.target.local:
            return {**self.settings.env, **ours}
        secret = sorted(set(self.settings.overrides) & set(self.settings.config.secret_env))
        if secret:
            fail(f"refusing to put {', '.join(secret)} on a command line on {self.target.name}",
                 "secrets reach hosts only in the uploaded env file: set them in the stage's env file")
        return {**self.settings.overrides, **ours}

    def run(self, argv: Sequence[str], *, what: str, fix: str = ENGINE_FIX, **kwargs: Any) -> Result:
        """Run argv on the target with the stage's env; fail with ``what`` and ``fix`` if it fails."""
        result = self.target.run(argv, env=self.command_env, warn=True, **kwargs)
        if not result.ok:
            self.failed(argv, result, what, fix)
        return result

    def feed(self, argv: Sequence[str], data: bytes, *, what: str, fix: str = ENGINE_FIX) -> Result:
        """Run argv on the target with ``data`` on its stdin; fail with ``what`` and ``fix``."""
        proc = self.target.spawn(argv, env=self.command_env, stdin=True)
        assert proc.stdin is not None
        try:
            proc.stdin.write(data)
        finally:
            proc.stdin.close()
        code = proc.wait(self.settings.stage.ssh.command_timeout)
        result = Result(stdout="", stderr=proc.stderr_text(), command=shlex.join(argv), exited=code)
        if code != 0:
            self.failed(argv, result, what, fix)
        return result

    def failed(self, argv: Sequence[str], result: Result, what: str, fix: str) -> NoReturn:
        detail = self.settings.masked(last_lines(result.stderr or result.stdout))
        cmd = self.settings.masked(shlex.join(argv))
        reason = detail.splitlines()[-1] if detail else "no output"
        fail(f"{what} failed on {self.target.name} (exit {result.exited}): {reason}\ncommand: {cmd}\n{detail}", fix)

    def containers(self) -> list[Container]:
        """The stack's containers on the target (on a swarm node: the tasks it runs)."""
        project = self.settings.stage.project
        listing = docker.stack_containers(project) if self.settings.stage.swarm else docker.project_containers(project)
        ids = self.run(listing, what="listing containers").stdout.split()
        if not ids:
            return []
        return parse_inspect(self.run(docker.inspect(ids), what="inspecting containers").stdout)

    def config(self) -> dict[str, Any]:
        """The merged compose configuration of this stage (``docker compose config``)."""
        argv = compose.config_json(self.project)
        result = self.target.run(argv, env=self.command_env, warn=True)
        if not result.ok:
            workdir = self.target.workdir
            if workdir is not None and not self.target.run(files.is_file(self.project.files[0]), warn=True).ok:
                fail(f"nothing of {self.settings.stage.project} is on {self.target.name} yet ({workdir} has no compose files)",
                     f"deploy there first: inv deploy --stage {self.settings.stage.name} --version X.Y.Z (or inv up)")
            self.failed(argv, result, "reading the compose configuration",
                         f"run `inv check --stage {self.settings.stage.name}` to see what is wrong")
        return json.loads(result.stdout)

    def state_file(self, name: str) -> str:
        """A file of this stage in its state directory (scale counts, the deploy lock, the
        release history): on a host in its deploy directory, locally where
        ``deploy.config.state_home`` says."""
        s = self.settings
        if self.target.workdir is not None:
            return f"{self.target.workdir}/state/{s.stage.name}/{name}"
        return str(state_home.stage_dir(s.config.root, s.config.state_dir, s.stage.project, s.stage.name) / name)

    def saved_scale(self) -> dict[str, int]:
        """Replica counts set with ``inv scale``, kept so that a later ``up`` keeps them."""
        text = self.target.read_text(self.state_file("scale.json"))
        return {str(k): int(v) for k, v in json.loads(text).items()} if text else {}

    def save_scale(self, counts: dict[str, int]) -> None:
        self.target.write_text(self.state_file("scale.json"), json.dumps(dict(sorted(counts.items())), indent=2) + "\n")

    def desired(self) -> dict[str, int]:
        return desired_replicas(self.config(), self.saved_scale())

    def proxy_port(self, tls: bool = False) -> int | None:
        """The host port the proxy's HTTP (or HTTPS) is published on, or None when it is not running."""
        proxy = self.settings.config.proxy
        port = proxy.tls_port if tls else proxy.port
        if self.settings.stage.swarm:  # its task on this node, published on the node's own port
            running = [c for c in self.containers() if c.service == proxy.service and c.state == "running"]
            return parse_published("\n".join(p.split("->")[0] for c in running for p in c.ports if p.endswith(f"->{port}/tcp")))
        result = self.target.run(compose.port(self.project, proxy.service, port), env=self.command_env, warn=True)
        return parse_published(result.stdout) if result.ok else None
