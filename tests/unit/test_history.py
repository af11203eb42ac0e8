"""The release history and the audit log (secrets masked, interrupted releases), and the
versions a deploy may take: never one pushed before, --bump from the highest version of
the history (on the recording fake engine; the registry is a fake one on 127.0.0.1:5000)."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import threading
from collections.abc import Callable

import pytest
from invoke import Context
from invoke.exceptions import Exit

from deploy.engine.commands import images as image_cmds
from deploy.engine.local import LocalTarget
from deploy.engine.ops import Executor
from deploy.engine.stack import Stack
from deploy.engine.target import HttpResponse
from deploy.release import push as push_module
from deploy.release.deploy import choose_version
from deploy.release.push import push_release, push_tags
from deploy.state import history
from deploy.state.history import Release
from deploy.versions import parse
from tests.unit.fake_engine import STATELESS, Called, FakeEngine, Registry

LOOPBACK = "127.0.0.1:5000"


class RegistryEngine(FakeEngine):
    """The fake engine, and a registry on its loopback answering the v2 API's manifest
    requests from ``registry`` (the refs pushed) with the digest of each (the digest a
    push recorded; for a ref put there by hand, one of its own); ``repo_digests``: the
    registry digest a local image carries (the one it was pushed as)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.repo_digests: dict[str, str] = {}
        self.manifests: dict[str, str] = {}  # ref -> the digest its push stored
        self.accepted: list[str] = []  # the Accept header of each manifest request

    def run(self, argv, **kwargs):
        result = super().run(argv, **kwargs)
        ref = argv[-1]
        if tuple(argv) == tuple(image_cmds.identity(ref)) and ref in self.repo_digests:
            result.stdout = f'["{self.repo_digests[ref]}"] sha256:{self.images[ref]}\n'
        if tuple(argv) == tuple(image_cmds.push(ref)) and result.ok:  # the image carries the digest it was pushed as
            repository = ref.rsplit(":", 1)[0]
            digest = self.repo_digests.get(ref) or f"{repository}@sha256:{hashlib.sha256(self.images[ref].encode()).hexdigest()}"
            self.manifests[ref] = self.repo_digests[ref] = digest
        return result

    def fetch(self, port: int, path: str, timeout: float = 5.0, tls: bool = False, headers=None) -> HttpResponse:
        m = re.fullmatch(r"/v2/(.+)/manifests/([^/]+)", path)
        if port != 5000 or not m:
            return super().fetch(port, path, timeout)
        self.journal.append(Called(self.name, ("fetch", str(port), path)))
        self.accepted.append((headers or {}).get("Accept", ""))
        ref = f"{LOOPBACK}/{m.group(1)}:{m.group(2)}"
        if ref not in (self.registry or set()):
            return HttpResponse(404, b"{}")
        digest = self.manifests.get(ref, f"@sha256:{hashlib.sha256(ref.encode()).hexdigest()}").split("@")[1]
        return HttpResponse(200, b"{}", headers=(("docker-content-digest", digest),))


@pytest.fixture
def stack(fake_settings) -> Stack:
    return Stack(fake_settings, FakeEngine())


@pytest.fixture
def here(fake_settings) -> Stack:
    """This machine's engine, pushing to a registry on its loopback."""
    engine = RegistryEngine(registry=Registry())
    return Stack(fake_settings, engine).with_env(DOCKER_REGISTRY=LOOPBACK)


def entries(stack: Stack, *releases: tuple[str, str, bool] | tuple[str, str, bool, str]) -> None:
    """(version, status, pushed[, kind]) in the history, oldest first."""
    for i, (version, status, pushed, *kind) in enumerate(releases):
        history.record(stack, Release(version=version, status=status, pushed=pushed, kind=kind[0] if kind else "deploy",
                                      started_at=f"2026-01-0{i + 1}T00:00:00+00:00"))


# --- secrets never reach the files -------------------------------------------------------------
def test_secrets_are_masked_in_the_history_and_the_audit(stack):
    secrets = [stack.settings.env[k] for k in stack.settings.config.secret_env]
    release = Release(version="1.0.0", status="failed", error=f"backend-1 not ready\n  last log lines:\nJWT_SECRET={secrets[0]}")
    history.record(stack, release)
    history.audit(stack, "deploy failed", error=release.error, lines=[f"password {secrets[1]}"], nested={"x": secrets[-1]})
    for name in ("releases.jsonl", "audit.log"):
        text = stack.target.read_text(stack.state_file(name))
        assert text and "****" in text and not [s for s in secrets if s in text], name
    assert "JWT_SECRET=****" in history.history(stack)[0].error


def test_interrupt_running_marks_running_releases_in_place(stack):
    entries(stack, ("1.0.0", "success", True), ("1.0.1", "running", True), ("1.0.2", "failed", False))
    marked = history.interrupt_running(stack, "interrupted: its lock was broken")
    assert [r.version for r in marked] == ["1.0.1"]
    assert [(r.version, r.status) for r in history.history(stack)] == [("1.0.0", "success"), ("1.0.1", "interrupted"),
                                                                        ("1.0.2", "failed")]
    assert history.interrupt_running(stack, "again") == []


def test_an_older_history_without_the_new_fields_still_reads(stack):
    old = [{"version": "1.0.0", "status": "success", "kind": "deploy", "started_at": "2026-01-01T00:00:00+00:00"}]
    stack.target.write_text(stack.state_file("releases.json"), json.dumps(old))
    (r,) = history.history(stack)
    assert (r.version, r.pushed) == ("1.0.0", False) and r.id


# --- concurrent writers: appended, a line in one write, never rewritten ---------------------------
@pytest.fixture
def on_disk(fake_settings, tmp_path) -> Stack:
    """The history and the audit log in files on this machine (under tmp_path)."""
    settings = dataclasses.replace(fake_settings, config=dataclasses.replace(fake_settings.config, root=tmp_path))
    return Stack(settings, LocalTarget(Context()))


def all_at_once(work: Callable[[int], None], writers: int = 8) -> None:
    """``work(i)`` in ``writers`` threads started together."""
    start = threading.Barrier(writers)

    def one(i: int) -> None:
        start.wait()
        work(i)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def test_concurrent_audit_writers_lose_no_line(on_disk):
    def write(i: int) -> None:
        for n in range(40):
            history.audit(on_disk, "step", writer=i, n=n)

    all_at_once(write)
    lines = (on_disk.target.read_text(on_disk.state_file("audit.log")) or "").splitlines()
    assert sorted((e["writer"], e["n"]) for e in map(json.loads, lines)) == [(i, n) for i in range(8) for n in range(40)]
    assert os.stat(on_disk.state_file("audit.log")).st_mode & 0o777 == 0o600


def test_concurrent_history_writers_lose_no_release(on_disk):
    def write(i: int) -> None:
        for n in range(20):
            history.record(on_disk, Release(version=f"{i}.{n}.0", status="success"))

    all_at_once(write)
    assert sorted(r.version for r in history.history(on_disk)) == sorted(f"{i}.{n}.0" for i in range(8) for n in range(20))


def test_the_history_folds_its_journal_after_the_old_array_file(on_disk):
    old = [{"version": "1.0.0", "status": "success", "id": "a"}, {"version": "1.1.0", "status": "running", "id": "b"}]
    on_disk.target.write_text(on_disk.state_file(history.LEGACY), json.dumps(old))
    history.record(on_disk, Release(version="1.2.0", status="running", id="c"))
    assert [r.version for r in history.interrupt_running(on_disk, "its lock was broken")] == ["1.1.0", "1.2.0"]
    history.record(on_disk, Release(version="1.0.0", status="success", kind="rollback", id="a"))  # recorded again: moved last
    assert [(r.id, r.status) for r in history.history(on_disk)] == [("b", "interrupted"), ("c", "interrupted"), ("a", "success")]
    assert on_disk.target.read_text(on_disk.state_file(history.LEGACY)) == json.dumps(old)  # never written


def test_a_broken_line_of_the_journal_is_named(on_disk):
    history.record(on_disk, Release(version="1.0.0", status="success"))
    on_disk.target.append_text(on_disk.state_file(history.JOURNAL), '{"record": {"version": "1.0.1", "sta\n')
    with pytest.raises(Exit, match=r"line 2 of .*releases\.jsonl .* is not a change of the release history"):
        history.history(on_disk)


# --- --bump: from the highest version of the history, skipping every version used ---------------
def test_bump_skips_a_version_pushed_by_a_failed_deploy(stack):
    entries(stack, ("1.0.2", "success", True), ("1.0.3", "failed", True))
    assert choose_version(stack, None, "patch").tag == "1.0.4"


def test_bump_skips_a_version_whose_deploy_failed_before_pushing(stack):
    entries(stack, ("1.0.0", "success", True), ("1.0.1", "failed", False))
    assert choose_version(stack, None, "patch").tag == "1.0.2"


def test_bump_after_a_rollback_starts_from_the_highest_version(stack):
    entries(stack, ("1.0.0", "success", True), ("1.1.0", "success", True), ("1.0.0", "success", False, "rollback"))
    current = history.current(stack)
    assert current is not None and current.version == "1.0.0"
    assert choose_version(stack, None, "patch").tag == "1.1.1"
    assert choose_version(stack, None, "minor").tag == "1.2.0"


def test_bump_skips_versions_the_registry_has(stack, here):
    entries(stack, ("1.0.3", "success", True))
    here.target.registry.update({f"{LOOPBACK}/myapp/web:1.0.4", f"{LOOPBACK}/myapp/backend:1.0.5"})
    assert choose_version(stack, None, "patch", here).tag == "1.0.6"


def test_bump_needs_a_version_in_the_history(stack):
    with pytest.raises(Exit, match="--bump needs a previous release"):
        choose_version(stack, None, "patch")


# --- --version: one never pushed before ---------------------------------------------------------
def test_a_version_pushed_by_a_failed_deploy_is_refused_with_the_next_free_one(stack):
    entries(stack, ("1.0.2", "success", True), ("1.0.3", "failed", True), ("1.0.4", "failed", False))
    with pytest.raises(Exit, match=r"(?s)1\.0\.3 was pushed by a deploy that ended failed.*never pushed again.*--version 1\.0\.5"):
        choose_version(stack, "1.0.3", None)


def test_a_deployed_version_is_refused_with_the_rollback(stack):
    entries(stack, ("1.0.2", "success", True))
    with pytest.raises(Exit, match=r"(?s)1\.0\.2 was already deployed.*inv rollback 1\.0\.2"):
        choose_version(stack, "1.0.2", None)


def test_a_version_whose_deploy_failed_before_pushing_may_be_deployed_again(stack):
    entries(stack, ("1.0.2", "success", True), ("1.0.3", "failed", False))
    assert choose_version(stack, "1.0.3", None).tag == "1.0.3"


def test_a_version_the_registry_has_is_refused(stack, here):
    here.target.registry.add(f"{LOOPBACK}/myapp/backend:2.0.0")
    with pytest.raises(Exit, match=r"127\.0\.0\.1:5000/myapp/backend:2\.0\.0 is already in the registry"):
        choose_version(stack, "2.0.0", None, here)
    assert choose_version(stack, "2.0.1", None, here).tag == "2.0.1"


def test_a_registry_elsewhere_is_not_asked(stack, fake_settings):
    engine = RegistryEngine(registry=Registry({"registry.example.com/myapp/backend:2.0.0"}))
    assert choose_version(stack, "2.0.0", None, Stack(fake_settings, engine)).tag == "2.0.0"
    assert not [c for c in engine.journal if c.argv[0] == "fetch"]


# --- push: a version tag is pushed once ----------------------------------------------------------
def build(here: Stack, *tags: str) -> None:
    engine = here.target
    assert isinstance(engine, FakeEngine)
    for s in STATELESS:
        for tag in tags:
            engine.images[f"{LOOPBACK}/myapp/{s}:{tag}"] = "new"


def pushes(here: Stack) -> list[str]:
    engine = here.target
    assert isinstance(engine, FakeEngine)
    return [c.line for c in engine.journal if c.argv[:2] == ("docker", "push")]


def test_a_fresh_push_of_a_version_the_registry_has_is_refused_before_anything_is_pushed(here):
    build(here, "1.0.3", "latest")
    here.target.registry.add(f"{LOOPBACK}/myapp/web:1.0.3")
    names = push_module.app_images(here)
    with pytest.raises(Exit, match="web:1.0.3 is already in the registry"):
        Executor()(push_tags(here, names, ["1.0.3", "20260101"]))
    assert pushes(here) == []
    Executor()(push_tags(here, names, ["latest"]))  # moving tags are pushed again
    assert len(pushes(here)) == 2


def test_the_pins_of_a_push_are_the_digests_pushed_and_the_registry_must_hold_them(here):
    build(here, "1.0.3")
    names = push_module.app_images(here)
    Executor()(push_tags(here, names, ["1.0.3"]))
    pins = push_module.pushed_pins(here, names, "1.0.3")
    assert {s: (p.ref, p.digest) for s, p in pins.items()} == {
        s: (f"{LOOPBACK}/myapp/{s}:1.0.3", here.target.repo_digests[f"{LOOPBACK}/myapp/{s}:1.0.3"]) for s in STATELESS}
    # another push of the tag between ours and the question: the deploy stops, naming it
    here.target.manifests[f"{LOOPBACK}/myapp/web:1.0.3"] = f"{LOOPBACK}/myapp/web@sha256:{'e' * 64}"
    with pytest.raises(Exit, match=r"web:1\.0\.3 in the registry is another image .* another push moved the tag"):
        push_module.pushed_pins(here, names, "1.0.3")


def test_inv_push_refuses_a_version_pushed_by_a_failed_deploy(here):
    entries(here, ("1.0.3", "failed", True))
    build(here, "1.0.3")
    with pytest.raises(Exit, match="1.0.3 was pushed by a deploy that ended failed"):
        push_release(here, parse("1.0.3"), Executor())
    assert pushes(here) == []


def test_inv_push_pushes_a_release_again_only_with_its_own_images(here):
    engine = here.target
    build(here, "1.0.3")
    pushed = {s: f"{LOOPBACK}/myapp/{s}@sha256:{'a' * 64}" for s in STATELESS}
    history.record(here, Release(version="1.0.3", status="success", pushed=True, tags=["1.0.3"], digests=pushed))
    engine.registry.update(f"{LOOPBACK}/myapp/{s}:1.0.3" for s in STATELESS)
    engine.repo_digests.update({f"{LOOPBACK}/myapp/{s}:1.0.3": d for s, d in pushed.items()})  # the very images pushed
    push_release(here, parse("1.0.3"), Executor())
    assert pushes(here) == [f"docker push {LOOPBACK}/myapp/{s}:1.0.3" for s in STATELESS]
    engine.journal.clear()
    engine.repo_digests.pop(f"{LOOPBACK}/myapp/web:1.0.3")  # web rebuilt since: another image under 1.0.3
    with pytest.raises(Exit, match=r"web:1\.0\.3 on this engine .* is not the image release 1\.0\.3 pushed"):
        push_release(here, parse("1.0.3"), Executor())
    assert pushes(here) == []


# --- a version a failed deploy pushed: deployed again only as the very same build ----------------------
def failed_push(stack: Stack, here: Stack, version: str) -> list:
    """A deploy of ``version`` that pushed its images, then failed (its CI job to be run again)."""
    build(here, version)
    names = push_module.app_images(here)
    Executor()(push_tags(here, names, [version]))
    entries(stack, ("1.0.0", "success", True), (version, "failed", True))
    engine = here.target
    assert isinstance(engine, FakeEngine)
    engine.journal.clear()
    return names


def test_a_version_a_failed_deploy_pushed_may_be_deployed_again_as_the_same_build(stack, here):
    names = failed_push(stack, here, "2.0.0")
    assert choose_version(stack, "v2.0.0", None, here).tag == "2.0.0"  # the CI job of tag v2.0.0, run again
    Executor()(push_tags(here, names, ["2.0.0"]))  # rebuilt from the cache: the very images pushed
    assert pushes(here) == [f"docker push {LOOPBACK}/myapp/{s}:2.0.0" for s in STATELESS]
    # Asked for the manifest as stored (without these, a registry rewrites it to schema 1: another digest).
    assert here.target.accepted and all("application/vnd.docker.distribution.manifest.v2+json" in a and
                                        "application/vnd.oci.image.manifest.v1+json" in a for a in here.target.accepted)


def test_another_build_of_a_version_a_failed_deploy_pushed_is_refused_with_the_next_free_one(stack, here):
    names = failed_push(stack, here, "2.0.0")
    engine = here.target
    engine.images[f"{LOOPBACK}/myapp/web:2.0.0"] = "rebuilt"  # another image under 2.0.0, never pushed
    engine.repo_digests.pop(f"{LOOPBACK}/myapp/web:2.0.0")
    assert choose_version(stack, "2.0.0", None, here).tag == "2.0.0"  # decided when the images are built
    suggest = lambda: push_module.next_free(history.history(stack), here, names, "patch", parse("2.0.0"))  # noqa: E731
    with pytest.raises(Exit, match=r"(?s)web:2\.0\.0 is already in the registry, another image.*never pushed again.*--version 2\.0\.1"):
        Executor()(push_tags(here, names, ["2.0.0"], suggest=suggest))
    assert pushes(here) == []


def test_a_version_a_failed_deploy_pushed_is_refused_where_the_registry_cannot_be_asked(stack, fake_settings):
    entries(stack, ("2.0.0", "failed", True))
    elsewhere = Stack(fake_settings, RegistryEngine(registry=Registry({"registry.example.com/myapp/backend:2.0.0"})))
    with pytest.raises(Exit, match=r"2\.0\.0 was pushed by a deploy that ended failed.*cannot be asked for its digest"):
        choose_version(stack, "2.0.0", None, elsewhere)
