import os
import stat

import pytest
from invoke import Context

from deploy import atomic
from deploy.engine.local import LocalTarget


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
    assert os.listdir(path.parent) == ["scale.json"]  # no temp file left
    assert target.read_text(str(tmp_path / "missing")) is None


def test_write_bytes_gives_the_file_exactly_its_mode(tmp_path):
    target = LocalTarget(Context())
    old_umask = os.umask(0o077)
    try:
        target.write_bytes(str(tmp_path / "a.json"), b"{}", 0o644)
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(os.stat(tmp_path / "a.json").st_mode) == 0o644
    target.write_bytes(str(tmp_path / "a.json"), b"[]", 0o600)
    assert stat.S_IMODE(os.stat(tmp_path / "a.json").st_mode) == 0o600
    assert (tmp_path / "a.json").read_bytes() == b"[]"


def test_secrets_never_go_into_a_wider_file(tmp_path, monkeypatch):
    """Replacing a world-readable file: the new bytes go into a new 0600 file, renamed over
    the old one, which is never written to (``inv init --force``)."""
    path = tmp_path / ".env.production"
    path.write_text("OLD=1\n")
    path.chmod(0o644)
    old_inode = os.stat(path).st_ino
    seen = []
    real_replace = os.replace

    def replace(src, dst):
        seen.append((stat.S_IMODE(os.stat(src).st_mode), path.read_text(), os.stat(path).st_ino))
        real_replace(src, dst)

    monkeypatch.setattr(atomic.os, "replace", replace)
    atomic.write_atomic(path, b"JWT_SECRET=s3cr3t\n", 0o600)
    assert seen == [(0o600, "OLD=1\n", old_inode)]  # the temp file was private; the old file untouched
    assert path.read_text() == "JWT_SECRET=s3cr3t\n"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600 and os.stat(path).st_ino != old_inode


def test_a_failed_write_leaves_the_old_file_and_no_temp_file(tmp_path, monkeypatch):
    path = tmp_path / "state.json"
    path.write_text("old")

    def boom(fd):
        raise OSError("disk full")

    monkeypatch.setattr(atomic.os, "fsync", boom)
    with pytest.raises(OSError, match="disk full"):
        atomic.write_atomic(path, b"new")
    assert os.listdir(tmp_path) == ["state.json"] and path.read_text() == "old"


def test_create_never_opens_an_existing_file(tmp_path):
    path = tmp_path / "x.partial"
    path.write_text("someone else's")
    with pytest.raises(FileExistsError):
        atomic.create(path, 0o600)
    assert path.read_text() == "someone else's"


def test_fetch_reports_a_refused_connection():
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    resp = LocalTarget(Context()).fetch(port, "/", timeout=2)
    assert resp.status == 0 and resp.error


def test_fetch_answers_a_redirect_without_following_it():
    """HTTP redirects to HTTPS once a certificate is installed: the check through the
    proxy sees the 301 (an answer), not the HTTPS site behind it."""
    import threading
    from http import server

    class Redirect(server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(301)
            self.send_header("Location", "https://127.0.0.1:9/elsewhere")
            self.end_headers()

        def log_message(self, *args):
            pass

    httpd = server.HTTPServer(("127.0.0.1", 0), Redirect)
    threading.Thread(target=httpd.handle_request, daemon=True).start()
    resp = LocalTarget(Context()).fetch(httpd.server_port, "/api/health", timeout=5)
    httpd.server_close()
    assert resp.status == 301 and not resp.error


def test_remote_temp_file_is_created_exclusively_with_its_mode():
    """The mode travels in the SFTP open request (SFTPClient.open sends none: the server
    would create the file 0666 minus its umask, readable by others until a chmod)."""
    from paramiko.message import Message
    from paramiko.sftp import CMD_HANDLE, CMD_OPEN, SFTP_FLAG_CREATE, SFTP_FLAG_EXCL, SFTP_FLAG_TRUNC, SFTP_FLAG_WRITE

    from deploy.engine.remote import create_exclusive

    class FakeSftp:
        requests: list = []

        def _adjust_cwd(self, path):
            return path

        def _request(self, kind, *args):
            self.requests.append((kind, *args))
            msg = Message()
            msg.add_string(b"handle-1")
            msg.rewind()
            return CMD_HANDLE, msg

        def _log(self, *args):
            pass

        def _async_request(self, *args):
            pass

    sftp = FakeSftp()
    f = create_exclusive(sftp, "/srv/app/.env.ab12cd34.tmp", 0o600)
    (kind, path, flags, attrs), = sftp.requests
    assert (kind, path, attrs.st_mode) == (CMD_OPEN, "/srv/app/.env.ab12cd34.tmp", 0o600)
    assert flags & (SFTP_FLAG_WRITE | SFTP_FLAG_CREATE | SFTP_FLAG_EXCL) == SFTP_FLAG_WRITE | SFTP_FLAG_CREATE | SFTP_FLAG_EXCL
    assert not flags & SFTP_FLAG_TRUNC
    assert f.handle == b"handle-1"
    f.close()


def test_remote_append_opens_the_file_for_appending_with_its_mode():
    """The server opens it with O_APPEND (each write lands at the end, whoever else
    appends), never truncated, and creates it with the mode given when it is missing."""
    from paramiko import sftp as p
    from paramiko.message import Message
    from paramiko.sftp_attr import SFTPAttributes

    from deploy.engine.remote import open_appending

    class FakeSftp:
        requests: list = []

        def _adjust_cwd(self, path):
            return path

        def _request(self, kind, *args):
            self.requests.append((kind, *args))
            msg = Message()
            if kind == p.CMD_FSTAT:  # paramiko asks the size of a file opened for appending
                attrs = SFTPAttributes()
                attrs.st_size = 10
                attrs._pack(msg)
                msg.rewind()
                return p.CMD_ATTRS, msg
            msg.add_string(b"handle-1")
            msg.rewind()
            return p.CMD_HANDLE, msg

        def _log(self, *args):
            pass

        def _async_request(self, *args):
            pass

    sftp = FakeSftp()
    f = open_appending(sftp, "/srv/app/state/production/audit.log", 0o600)
    (kind, path, flags, attrs) = sftp.requests[0]
    assert (kind, path, attrs.st_mode) == (p.CMD_OPEN, "/srv/app/state/production/audit.log", 0o600)
    assert flags == p.SFTP_FLAG_WRITE | p.SFTP_FLAG_CREATE | p.SFTP_FLAG_APPEND and not flags & (p.SFTP_FLAG_TRUNC | p.SFTP_FLAG_EXCL)
    assert f.handle == b"handle-1"
    f.close()
