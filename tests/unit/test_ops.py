"""The Executor (deploy.engine.ops): a real run applies ops in order and hands results
back; a failed op's error is thrown into the workflow; a dry run applies nothing and
prints the plan, secrets masked."""
from __future__ import annotations

import io
import tarfile

import pytest
from invoke.exceptions import Exit

from deploy.config.inventory import Host
from deploy.engine.ops import Call, Executor, Note, Put, run
from deploy.engine.stack import Stack
from deploy.fleet import Fleet, HostsFailed, Member, on_each
from tests.unit.fake_engine import FakeEngine


@pytest.fixture
def engine() -> FakeEngine:
    return FakeEngine()


@pytest.fixture
def stack(fake_settings, engine) -> Stack:
    return Stack(fake_settings, engine)


def just(*ops):
    """A workflow of ``ops`` that returns their results."""
    results = []
    for op in ops:
        results.append((yield op))
    return results


def recorder(dry_run: bool = False, hosts: bool = False) -> tuple[Executor, list[str]]:
    said: list[str] = []
    return Executor(dry_run=dry_run, say=said.append, hosts=hosts), said


def test_a_real_run_applies_ops_in_order_and_sends_results_back(stack, engine):
    def workflow():
        first = yield run(stack, ["docker", "compose", "version", "--short"], what="asking compose")
        yield Note(f"compose {first.stdout.strip()}")
        yield run(stack, ["mkdir", "-p", f"/state/{first.stdout.strip()}"], what="making a dir")
        written = yield Put(stack, "/state/x.json", b"{}\n")
        value = yield Call(stack, "compute", lambda: 41 + 1)
        return (written, value)

    ex, said = recorder()
    assert ex(workflow()) == (None, 42)
    assert engine.commands() == [("docker", "compose", "version", "--short"), ("mkdir", "-p", "/state/2.29.7"),
                                 ("write", "/state/x.json")]
    assert engine.files["/state/x.json"] == b"{}\n"
    assert said == ["compose 2.29.7"]
    assert [type(op).__name__ for op in ex.applied] == ["Run", "Note", "Run", "Put", "Call"]
    assert ex.planned == []


def test_a_command_gets_the_stage_env(stack, engine):
    Executor(say=lambda _: None)(just(run(stack, ["docker", "compose", "build"], what="building")))
    assert engine.journal[-1].env["POSTGRES_PASSWORD"] == stack.settings.env["POSTGRES_PASSWORD"]


def test_a_failed_op_is_thrown_into_the_workflow_which_cleans_up_then_the_error_goes_on(stack, engine):
    engine.fail_when("docker stop", stderr="daemon gone")
    seen: list[BaseException] = []

    def workflow():
        yield run(stack, ["mkdir", "-p", "/a"], what="first")
        try:
            yield run(stack, ["docker", "stop", "web-1"], what="stopping web")
            yield run(stack, ["mkdir", "-p", "/never"], what="after the failure")
        except Exit as err:
            seen.append(err)
            yield run(stack, ["rm", "-rf", "/a"], what="cleanup")
            raise
        yield run(stack, ["mkdir", "-p", "/never-either"], what="after the block")

    with pytest.raises(Exit, match="stopping web failed on local.*daemon gone"):
        Executor(say=lambda _: None)(workflow())
    assert len(seen) == 1
    assert engine.commands() == [("mkdir", "-p", "/a"), ("docker", "stop", "web-1"), ("rm", "-rf", "/a")]


def test_a_workflow_may_swallow_the_error_and_return(stack, engine):
    engine.fail_when("docker push")

    def workflow():
        try:
            yield run(stack, ["docker", "push", "x:1"], what="pushing")
        except Exit:
            yield Note("push failed, carrying on")
            return "degraded"
        return "ok"

    ex, said = recorder()
    assert ex(workflow()) == "degraded"
    assert said == ["push failed, carrying on"]


def test_an_unchecked_command_hands_its_failure_back(stack, engine):
    engine.fail_when("docker rm", exited=3)

    def workflow():
        result = yield run(stack, ["docker", "rm", "--force", "gone"], what="removing", check=False)
        return result.exited

    assert Executor(say=lambda _: None)(workflow()) == 3


def test_an_exception_from_a_call_is_thrown_in_too(stack):
    def boom() -> None:
        raise RuntimeError("no")

    caught = []

    def workflow():
        try:
            yield Call(stack, "explode", boom)
        except RuntimeError as err:
            caught.append(str(err))
            raise

    with pytest.raises(RuntimeError, match="no"):
        Executor(say=lambda _: None)(workflow())
    assert caught == ["no"]


def test_a_dry_run_applies_nothing_and_prints_every_op(stack, engine):
    called = []

    def workflow():
        result = yield run(stack, ["docker", "compose", "build"], what="building")
        assert result.ok and result.stdout == ""  # a planned command "succeeds" with no output
        yield Note("progress for people")
        yield Put(stack, "/srv/myapp/.env", b"A=1\n", 0o600)
        yield Call(stack, "wait until healthy", lambda: called.append(1))
        yield run(stack, ["tar", "-x", "-f", "-"], what="unpacking", stdin=b"12345")
        return "planned"

    ex, said = recorder(dry_run=True)
    assert ex(workflow()) == "planned"
    assert engine.journal == [] and engine.files == {} and called == []
    assert said == ["    docker compose build", "    write /srv/myapp/.env (4 bytes, mode 0600)", "    wait until healthy",
                    "    tar -x -f - < (5 bytes)"]
    assert [type(op).__name__ for op in ex.planned] == ["Run", "Note", "Put", "Call", "Run"]
    assert ex.applied == []


def test_a_note_is_said_by_a_real_run_only(stack):
    real, real_said = recorder()
    dry, dry_said = recorder(dry_run=True)
    real(just(Note("rolling back")))
    dry(just(Note("rolling back")))
    assert real_said == ["rolling back"] and dry_said == []


def test_secrets_are_masked_in_printed_commands(stack, fake_settings):
    secret = fake_settings.env["POSTGRES_PASSWORD"]
    ex, said = recorder(dry_run=True)
    ex(just(run(stack, ["psql", f"postgres://app:{secret}@db/app", "-c", "select 1"], what="asking")))
    assert said == ["    psql postgres://app:****@db/app -c 'select 1'"]
    assert secret not in "".join(said)


def test_a_failed_command_names_the_host_and_masks_secrets(stack, engine, fake_settings):
    secret = fake_settings.env["JWT_SECRET"]
    engine.fail_when("docker", stderr=f"bad token {secret}")
    with pytest.raises(Exit) as err:
        Executor(say=lambda _: None)(just(run(stack, ["docker", "login", "-p", secret], what="logging in")))
    assert "logging in failed on local" in str(err.value.message)
    assert secret not in str(err.value.message) and "****" in str(err.value.message)


def test_a_dry_run_on_hosts_names_the_host(fake_settings):
    stack = Stack(fake_settings, FakeEngine("app1", local=False, workdir="/srv/myapp"))
    ex, said = recorder(dry_run=True, hosts=True)
    ex(just(run(stack, ["docker", "compose", "pull"], what="pulling")))
    assert said == ["    app1: docker compose pull"]


def test_stdin_is_fed_to_the_command(stack, engine):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("compose/docker-compose.yml")
        info.size = 9
        tar.addfile(info, io.BytesIO(b"services:"))
    argv = ["tar", "-x", "--no-same-owner", "-C", "/srv/myapp", "-f", "-"]
    Executor(say=lambda _: None)(just(run(stack, argv, what="unpacking", stdin=buf.getvalue())))
    assert engine.commands() == [tuple(argv)]
    assert engine.files == {"/srv/myapp/compose/docker-compose.yml": b"services:"}


def test_a_command_fed_stdin_that_fails_stops_the_workflow(stack, engine):
    engine.fail_when("tar -x", stderr="No space left on device")
    with pytest.raises(Exit, match="unpacking failed on local.*No space left on device"):
        Executor(say=lambda _: None)(just(run(stack, ["tar", "-x", "-C", "/srv", "-f", "-"], what="unpacking", stdin=b"x")))
    assert engine.files == {}


def fleet_of(fake_settings, names: list[str]) -> tuple[Fleet, dict[str, FakeEngine]]:
    journal: list = []
    engines = {n: FakeEngine(n, local=False, workdir="/srv/myapp", journal=journal) for n in names}
    members = tuple(Member(Host(n, n, ("app", "db") if i == 0 else ("app",), "/srv/myapp"), Stack(fake_settings, e))
                    for i, (n, e) in enumerate(engines.items()))
    return Fleet(fake_settings, members, members[0], 4, Stack(fake_settings, FakeEngine())), engines


def test_each_runs_a_workflow_per_host_and_a_dry_run_lists_them_in_order(fake_settings):
    fleet, engines = fleet_of(fake_settings, ["h1", "h2", "h3"])

    def work(m: Member):
        yield run(m.stack, ["mkdir", "-p", f"/srv/{m.name}"], what="making")
        return m.name.upper()

    ex, said = recorder(dry_run=True, hosts=True)
    assert ex(just(on_each(fleet, fleet.members, work, "making"))) == [{"h1": "H1", "h2": "H2", "h3": "H3"}]
    assert said == ["    h1: mkdir -p /srv/h1", "    h2: mkdir -p /srv/h2", "    h3: mkdir -p /srv/h3"]
    assert all(e.journal == [] for e in engines.values())

    real = Executor(say=lambda _: None)
    assert real(just(on_each(fleet, fleet.members[1:], work, "making"))) == [{"h2": "H2", "h3": "H3"}]
    assert [e.commands() for e in engines.values()] == [[], [("mkdir", "-p", "/srv/h2")], [("mkdir", "-p", "/srv/h3")]]


def test_each_fails_naming_the_failed_host_after_every_host_ran(fake_settings):
    fleet, engines = fleet_of(fake_settings, ["h1", "h2", "h3"])
    engines["h2"].fail_when("mkdir", stderr="disk full")

    def work(m: Member):
        yield run(m.stack, ["mkdir", "-p", "/srv/x"], what="making")

    with pytest.raises(HostsFailed) as err:
        Executor(say=lambda _: None)(just(on_each(fleet, fleet.members, work, "making", summary=False)))
    assert [o.host for o in err.value.outcomes] == ["h2"]
    assert "disk full" in err.value.outcomes[0].detail
    assert all(e.commands() == [("mkdir", "-p", "/srv/x")] for e in engines.values())
