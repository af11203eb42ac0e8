"""The env file writer: ``inv init`` (render) and the upload to hosts (render_env) write
every value with env_line, which python-dotenv reads back unchanged (Compose too:
tests/integration/test_envfile.py)."""
import re

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from invoke.exceptions import Exit

from deploy.config.envfile import env_line, render
from deploy.config.settings import read_env_file
from deploy.engine.upload import render_env

EXAMPLE = """# comment
POSTGRES_PASSWORD=change-me
JWT_SECRET=change-me-too
DOCKER_NAMESPACE=myapp
# NODE_IMAGE=node:20-alpine
"""


def test_render_replaces_secrets_and_enables_overrides(tmp_path):
    text = render(EXAMPLE, ("POSTGRES_PASSWORD", "JWT_SECRET"), {"NODE_IMAGE": "local/node:18", "EXTRA": "1"})
    path = tmp_path / "x.env"
    path.write_text(text)
    env = read_env_file(path)
    assert len(env["POSTGRES_PASSWORD"]) == 64 and env["POSTGRES_PASSWORD"] != "change-me"
    assert len(env["JWT_SECRET"]) == 64 and env["JWT_SECRET"] != env["POSTGRES_PASSWORD"]
    assert env["DOCKER_NAMESPACE"] == "myapp"
    assert env["NODE_IMAGE"] == "local/node:18"
    assert env["EXTRA"] == "1"
    assert text.startswith("# comment\n")


def test_render_gives_new_secrets_each_time():
    assert render(EXAMPLE, ("JWT_SECRET",), {}) != render(EXAMPLE, ("JWT_SECRET",), {})


# Characters that matter to env file readers, mixed with any text.
TRICKY = st.sampled_from(list("\\'\"$#{}= \t\n\r_aZ9") + ["$A", "${A}", "$$", " #", "\\\\", "\\'", "\r\n"])
VALUES = st.lists(st.one_of(TRICKY, st.text(max_size=3)), max_size=12).map("".join)


def unrepresentable(value: str) -> bool:
    """What no line carries for both readers: a $ that Compose expands (so single quotes
    are a must) together with what single quotes cannot carry."""
    return bool(re.search(r"\$[A-Za-z_{$]", value)) and bool(re.search(r"\\[\\']|\\$|\r", value))


def read_back(tmp_path, text: str) -> dict[str, str]:
    path = tmp_path / "x.env"
    path.write_bytes(text.encode())
    return read_env_file(path)


@settings(max_examples=250, deadline=None, database=None)  # no .hypothesis/ in the work tree
@given(value=VALUES, after=st.text(alphabet="abc", max_size=3))
@example(value="back\\", after="x").via("trailing backslash")
@example(value="a #b", after="x").via("space hash")
@example(value="line1\nline2", after="x").via("newline")
@example(value="it's \"quoted\" $HOME", after="x").via("quotes and $")
def test_every_value_is_written_and_read_back_identically(tmp_path_factory, value, after):
    """Each value and every line after it read back by python-dotenv exactly as given, or
    refused (with the variable's name, never its value) when no line can carry it."""
    tmp_path = tmp_path_factory.mktemp("env")
    env = {"FIRST": value, "LATER": after}  # sorted: FIRST is written before LATER
    if unrepresentable(value):
        with pytest.raises(Exit, match="the value of FIRST cannot be written"):
            render_env(env)
        return
    assert read_back(tmp_path, render_env(env)) == env
    overrides = {"NODE_IMAGE": value, "EXTRA": after}
    init = read_back(tmp_path, render(EXAMPLE, ("JWT_SECRET",), overrides))
    assert init["NODE_IMAGE"] == value and init["EXTRA"] == after and init["DOCKER_NAMESPACE"] == "myapp"


def test_a_trailing_backslash_does_not_swallow_the_lines_after_it(tmp_path):
    env = {"A": "ends with \\", "B": "b", "C": "$HOME\\x"}
    assert read_back(tmp_path, render_env(env)) == env


def test_simple_values_stay_unquoted_and_secrets_are_plain_hex():
    assert env_line("HTTP_BIND", "127.0.0.1") == "HTTP_BIND=127.0.0.1"
    assert env_line("EMPTY", "") == "EMPTY="
    assert env_line("NAME", "with space") == 'NAME="with space"'
    assert env_line("PASSWORD", "$ecret'x") == "PASSWORD='$ecret\\'x'"
    assert re.search(r"^JWT_SECRET=[0-9a-f]{64}$", render(EXAMPLE, ("JWT_SECRET",), {}), re.M)


def test_refused_values_and_names_say_which_variable_and_not_the_value():
    with pytest.raises(Exit, match="value of TOKEN cannot be written") as err:
        env_line("TOKEN", "${HOME}s3cr3t\\")
    assert "s3cr3t" not in str(err.value) and "fix: change TOKEN" in str(err.value)
    with pytest.raises(Exit, match="not a valid variable name"):
        env_line("A B", "x")
    with pytest.raises(Exit, match="TOKEN is not valid text"):
        env_line("TOKEN", "\udc80")


def test_init_force_replaces_a_0644_file_with_a_new_0600_one_never_wider(tmp_path, monkeypatch):
    """``inv init --force`` over a world-readable env file, under umask 000: the secrets go
    into a new file that is 0600 from its creation, renamed over the old one (never written)."""
    import os
    import stat

    from invoke import Config, Context

    import tasks.init
    from deploy import atomic
    from deploy.engine import local

    path = tmp_path / ".env.production"
    path.write_text("OLD=1\n")
    path.chmod(0o644)
    old_inode = path.stat().st_ino
    overrides = tmp_path / "overrides.env"
    overrides.write_text("NODE_IMAGE='local/node:18'\nEXTRA=\"ends with \\\\\"\nLATER=1\n")
    seen = []
    real_replace = os.replace

    def replace(src, dst):
        seen.append((stat.S_IMODE(os.stat(src).st_mode), path.read_text(), os.stat(path).st_ino))
        real_replace(src, dst)

    class NoEngine:
        def __init__(self, c):
            pass

        def run(self, argv, **kwargs):
            return type("Result", (), {"ok": False, "stdout": ""})()

    monkeypatch.setattr(atomic.os, "replace", replace)
    monkeypatch.setattr(local, "LocalTarget", NoEngine)  # the task imports it when it runs
    config = Config(project_location=tasks.init.ROOT)
    config.load_project()
    old_umask = os.umask(0)
    try:
        tasks.init.init.body(Context(config), overrides=str(overrides), force=True, stage="production", env_file=str(path))
    finally:
        os.umask(old_umask)
    assert seen == [(0o600, "OLD=1\n", old_inode)]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and path.stat().st_ino != old_inode
    env = read_env_file(path)
    assert env["EXTRA"] == "ends with \\" and env["LATER"] == "1" and len(env["JWT_SECRET"]) == 64
