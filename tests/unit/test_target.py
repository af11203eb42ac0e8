import os
import stat

from invoke import Context

from deploy.engine.target import LocalTarget


def test_argv_is_quoted_once_and_nothing_executes(tmp_path):
    marker = tmp_path / "pwned"
    words = ["a; touch " + str(marker), "$(touch " + str(marker) + ")", "`id`", "it's", 'say "hi"', "two  spaces"]
    result = LocalTarget(Context()).run(["printf", "%s\\n", *words])
    assert result.stdout.splitlines() == words
    assert not marker.exists()


def test_env_reaches_the_command_without_the_command_line():
    result = LocalTarget(Context()).run(["sh", "-c", 'printf %s "$SECRET_X"'], env={"SECRET_X": "s3cr3t value"})
    assert result.stdout == "s3cr3t value"


def test_failed_command_with_warn_returns_its_exit_code():
    result = LocalTarget(Context()).run(["sh", "-c", "exit 3"], warn=True)
    assert result.exited == 3 and not result.ok


def test_write_text_is_private_and_atomic(tmp_path):
    target = LocalTarget(Context())
    path = tmp_path / "state" / "scale.json"
    target.write_text(str(path), "{}\n")
    assert target.read_text(str(path)) == "{}\n"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert not (path.parent / "scale.json.tmp").exists()
    assert target.read_text(str(tmp_path / "missing")) is None


def test_fetch_reports_a_refused_connection():
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    resp = LocalTarget(Context()).fetch(port, "/", timeout=2)
    assert resp.status == 0 and resp.error
