"""What one run acts on: the config, the chosen stage, and its environment.

Environment precedence, highest first (the same rule Compose applies):
  1. the process environment (``export POSTGRES_PASSWORD=...``),
  2. the stage's env file (``.env``; ``.env.production`` for production; ``--env-file``),
  3. ``deploy.env_defaults`` (and ``deploy.registry`` / ``deploy.namespace``) in invoke.yaml.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from deploy import validators
from deploy.config import masking
from deploy.config.schema import DeployConfig, Stage
from deploy.engine.commands.compose import ComposeProject
from deploy.errors import fail

REMOTE_ENV_FILE = ".env"  # in a host's deploy directory, mode 0600
# The variables compose/ writes as they are into a config file (nginx's by
# compose/nginx/start.sh, redis's by the redis service's command), and their rule.
CONFIG_FILE_VALUES = {
    "NGINX_API_RATE": validators.nginx_rate,
    "NGINX_WEB_RATE": validators.nginx_rate,
    "NGINX_API_BURST": validators.nginx_burst,
    "NGINX_WEB_BURST": validators.nginx_burst,
    "REDIS_PASSWORD": validators.redis_secret,
}


def read_env_file(path: Path) -> dict[str, str]:
    """The variables of a dotenv file (values without a ``=`` count as empty)."""
    from dotenv import dotenv_values

    return {k: (v or "") for k, v in dotenv_values(path, interpolate=False).items()}


def merge_env(
    defaults: Mapping[str, str],
    file_values: Mapping[str, str],
    environ: Mapping[str, str],
    known: tuple[str, ...] = (),
) -> dict[str, str]:
    """Merge by precedence: process env over env file over defaults.

    Only variables the stack knows (defaults, the file, ``known``) are taken from the
    process environment, so PATH and friends never leak into the stack's settings.
    """
    names = dict.fromkeys([*defaults, *file_values, *known])
    merged = {}
    for name in names:
        for source in (environ, file_values, defaults):
            if name in source:
                merged[name] = source[name]
                break
    return merged


@dataclass(frozen=True)
class Settings:
    config: DeployConfig
    stage: Stage
    env_file: Path
    env: Mapping[str, str]
    overrides: Mapping[str, str] = field(default_factory=dict)  # set by this run (APP_VERSION), not the env file

    @property
    def compose(self) -> ComposeProject:
        root = self.config.root
        return ComposeProject(
            name=self.stage.project,
            files=tuple(str(root / f) for f in self.stage.compose_files),
            env_file=str(self.env_file),
        )

    def compose_in(self, workdir: str) -> ComposeProject:
        """The project as uploaded to a host's deploy directory (see deploy.upload)."""
        base = PurePosixPath(workdir)
        return ComposeProject(
            name=self.stage.project,
            files=tuple(str(base / f) for f in self.stage.compose_files),
            env_file=str(base / REMOTE_ENV_FILE),
        )

    @property
    def secret_names(self) -> tuple[str, ...]:
        """The stage's secret variables: the stack's, and the offsite repository's password and variables."""
        offsite = self.stage.offsite
        return (*self.config.secret_env, *((offsite.password_env, *offsite.env_vars) if offsite else ()))

    def masked(self, text: str) -> str:
        """``text`` with every form of the value of every secret variable, declared or
        named like one, replaced by **** (deploy.config.masking says which and how)."""
        return masking.mask(text, masking.secret_values(self.env, self.secret_names))


def check_config_values(env: Mapping[str, str]) -> None:
    """Refuse a value of ``CONFIG_FILE_VALUES`` (when set) that its config file cannot carry."""
    for name, check in CONFIG_FILE_VALUES.items():
        if env.get(name):
            check(env[name], name)


def example_env(config: DeployConfig) -> dict[str, str]:
    """The variables of .env.example (empty when the file is missing)."""
    path = config.root / config.env_example
    return read_env_file(path) if path.is_file() else {}


def resolve(
    config: DeployConfig,
    stage_name: str | None = None,
    env_file: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Settings for a stage, reading its env file (or ``env_file`` when given)."""
    stage = config.stage(stage_name)
    path = Path(env_file) if env_file else config.root / stage.env_file
    if not path.is_file():
        fail(
            f"env file {path} not found (stage {stage.name})",
            f"cp {config.env_example} {stage.env_file} and fill in the values, or pass --env-file PATH",
        )
    environ = os.environ if environ is None else environ
    known = (*config.required_env, *example_env(config))
    env = merge_env(config.env_defaults, read_env_file(path), environ, known=known)
    check_config_values(env)
    return Settings(config=config, stage=stage, env_file=path.resolve(), env=env)
