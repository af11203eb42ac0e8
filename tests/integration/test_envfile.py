"""Compose reads the env files we write exactly as python-dotenv does (tests/unit/
test_envfile.py): the same values, for any value the writer does not refuse. Only the
compose binary is needed (``docker compose config`` starts nothing)."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deploy.config.envfile import render
from deploy.config.settings import read_env_file
from deploy.engine.upload import render_env
from tests.unit.test_envfile import VALUES, unrepresentable

PREFIX = "RT_ENVFILE_"  # names no process environment has (Compose's precedence: the environment first)
NASTY = ["", "plain", "back\\", "ends\\\\", "a\\\\b", "it's", 'say "hi"', "a #b", "a#b", " lead and trail ", "two\nlines",
         "cr\rlf\r\n", "tab\tx", "$HOME", "${HOME}", "$$", "$", "x$", "$1", "it's $HOME", "a\\'b", "\\n literally", "\\$x",
         "é ünïcödé ☃", "\x0b\x0c\x1c\x85\u2028", "=equals=", "'", '"', "\\", "#", "$HOME\\x", "'$A'", '"$A"']


def compose_reads(tmp_path: Path, text: str, names: list[str]) -> dict[str, str]:
    """The values Compose interpolates from env file ``text`` into a service's environment."""
    env_file, compose_file = tmp_path / "values.env", tmp_path / "compose.yml"
    env_file.write_bytes(text.encode())
    compose_file.write_text(json.dumps({"services": {"x": {"image": "scratch", "environment": {n: f"${{{n}}}" for n in names}}}}))
    clean = {k: v for k, v in os.environ.items() if not k.startswith(PREFIX)}
    result = subprocess.run(["docker", "compose", "-p", "envfile-test", "--env-file", str(env_file), "-f", str(compose_file),
                             "config", "--format", "json"], capture_output=True, text=True, env=clean, timeout=60)
    assert result.returncode == 0, result.stderr
    environment = json.loads(result.stdout)["services"]["x"].get("environment", {})
    return {k: v.replace("$$", "$") for k, v in environment.items()}  # config writes every $ of a value as $$


def check(tmp_path: Path, values: list[str]) -> None:
    env = {f"{PREFIX}{i:03d}": v for i, v in enumerate(values) if not unrepresentable(v)}
    text = render_env(env)
    assert compose_reads(tmp_path, text, list(env)) == env
    assert {k: v for k, v in read_env_file(tmp_path / "values.env").items() if k.startswith(PREFIX)} == env
    init = render("# example\nA=1\n", (), env)  # inv init writes the same lines
    assert compose_reads(tmp_path, init, list(env)) == env


def test_compose_reads_back_the_nasty_values(tmp_path):
    check(tmp_path, NASTY)


@settings(max_examples=8, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(values=st.lists(VALUES, min_size=1, max_size=40))
def test_compose_reads_back_random_values(tmp_path, values):
    check(tmp_path, values)
