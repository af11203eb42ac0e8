"""Two stages on one engine (review point 4), on the recording fake engine: a task that
changes a stage is refused where another stage's stack of its project runs, naming that
stage, before it changes anything (no lock, no backup, no build); unlabelled containers
are the acting stage's; reading tasks warn; a stage's own project; ``down --volumes``
asks for the database's name; the local state is of the machine, not of a checkout."""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from types import SimpleNamespace

import pytest
from invoke import Config, Context
from invoke.exceptions import Exit

from deploy.config import state_home
from deploy.config.schema import parse_config
from deploy.config.settings import Settings
from deploy.engine.stack import Stack
from deploy.fleet import Fleet, local_fleet
from deploy.release import push as push_module
from deploy.stack import owner
from deploy.stack import rollout as rollout_module
from deploy.stack import routing as routing_module
from deploy.state import history, lock
from deploy.state.history import Release
from tasks import ns as root
from tests.unit.conftest import ROOT
from tests.unit.fake_engine import Clock, FakeEngine, is_read

APP, DB = ["backend", "web", "nginx"], ["postgres", "redis"]


@pytest.fixture(autouse=True)
def no_waiting(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(rollout_module, "time", clock)
    monkeypatch.setattr(FakeEngine, "clock", clock)
    monkeypatch.setattr(routing_module, "time", clock)
    monkeypatch.setattr(push_module, "time", SimpleNamespace(sleep=lambda s: None))


def context() -> Context:
    config = Config(project_location=ROOT)
    config.load_project()
    return Context(config)


def stage_settings(fake_settings: Settings, name: str, project: str | None = None) -> Settings:
    """``name``'s settings (its Compose ``project`` name changed if given), with secrets a
    production preflight accepts."""
    stage = fake_settings.config.stage(name)
    if project is not None:
        stage = dataclasses.replace(stage, project=project)
    strong = {"JWT_SECRET": "J7" * 40, "POSTGRES_PASSWORD": "Pg9" * 12, "REDIS_PASSWORD": "Rd8" * 12}
    return dataclasses.replace(fake_settings, stage=stage, env={**fake_settings.env, **strong})


def running(engine: FakeEngine, settings: Settings, version: str = "1.0.0", labelled: bool = True) -> None:
    """``settings``' stage's stack running on ``engine``, as its tasks started it (``labelled``)
    or as they did before stages were labelled."""
    env = Stack(settings, engine).command_env
    engine.start([*APP, *DB], {**env, "APP_VERSION": version, **({} if labelled else {"DEPLOY_STAGE": ""})})
    history.record(Stack(settings, engine), Release(version=version, status="success"))


def tasks_open(monkeypatch, fleet: Fleet) -> None:
    """Every task opens ``fleet``."""
    import tasks.clean
    import tasks.db
    import tasks.deploy
    import tasks.logs
    import tasks.scale
    import tasks.stack
    import tasks.status

    for module in (tasks.stack, tasks.clean, tasks.scale, tasks.db, tasks.deploy, tasks.status, tasks.logs):
        monkeypatch.setattr(module, "open_fleet", lambda c, where, max_surge=None: fleet)


CHANGING = {
    "deploy": lambda t: t(context(), version="2.0.0", skip_tests=True),
    "rollback": lambda t: t(context(), "previous"),
    "up": lambda t: t(context()),
    "down": lambda t: t(context()),
    "scale": lambda t: t(context(), backend="3"),
    "clean": lambda t: t(context()),
    "db.backup": lambda t: t(context()),
    "db.migrate": lambda t: t(context()),
    "db.seed": lambda t: t(context()),
    "db.restore": lambda t: t(context(), "latest", yes=True),
    "db.reindex": lambda t: t(context(), yes=True),
    "db.schedule": lambda t: t(context(), every="6h"),
    "db.offsite.init": lambda t: t(context()),
}


@pytest.mark.parametrize("name", sorted(CHANGING))
def test_a_task_of_production_is_refused_where_developments_stack_runs(name, fake_settings, monkeypatch, tmp_path):
    engine = FakeEngine()
    running(engine, fake_settings)  # the quick start: development, project myapp
    production = stage_settings(fake_settings, "production")
    tasks_open(monkeypatch, local_fleet(production, engine))
    engine.journal.clear()
    with pytest.raises(Exit) as refused:
        CHANGING[name](root[name])
    message = str(refused.value.message)
    assert "is stage development's, not production's" in message and "project myapp" in message
    assert "deploy.stages.production.project" in message and "--stage development" in message
    assert "inv down --stage development" in message
    # refused before anything: no lock taken, no backup, no build, nothing changed
    assert [c.line for c in engine.journal if not is_read(c.argv)] == []
    assert lock.read(Stack(production, engine)) is None
    backups = Path(fake_settings.config.database.backups_dir)
    assert not backups.exists() or not any(backups.rglob("*.dump*"))
    assert {c.stage for c in engine.containers} == {"development"}


def test_containers_without_a_stage_label_are_the_acting_stages(fake_settings, monkeypatch):
    """A stack deployed before stages were labelled: its tasks go on, and what they make is labelled."""
    engine = FakeEngine()
    production = stage_settings(fake_settings, "production")
    running(engine, production, labelled=False)
    assert {c.stage for c in engine.containers} == {""}
    fleet = local_fleet(production, engine)
    owner.refuse_other_stage(fleet)  # no refusal
    tasks_open(monkeypatch, fleet)
    root["scale"](context(), backend="3")
    backends = [c for c in engine.running("backend")]
    assert len(backends) == 3 and {c.stage for c in backends} >= {"production"}


def test_a_deploy_labels_what_it_starts_with_its_stage(fake_settings, monkeypatch):
    engine = FakeEngine()
    running(engine, fake_settings, labelled=False)
    tasks_open(monkeypatch, local_fleet(fake_settings, engine))
    root["deploy"](context(), version="2.0.0", skip_tests=True)
    assert {c.stage for c in engine.running() if c.service in ("backend", "web")} == {"development"}


def test_the_own_stage_and_another_project_are_not_refused(fake_settings):
    engine = FakeEngine()
    running(engine, fake_settings)
    owner.refuse_other_stage(local_fleet(fake_settings, engine))  # development's own stack
    # production with a project of its own: development's containers are not of it
    own = stage_settings(fake_settings, "production", project="myapp-production")
    assert owner.other_stages(Stack(own, engine)) == []
    owner.refuse_other_stage(local_fleet(own, engine))
    assert Stack(own, engine).project.name == "myapp-production"
    assert Stack(own, engine).state_file("x").endswith("/myapp-production/production/x")


def test_reading_tasks_warn_naming_the_stage_that_owns_the_stack(fake_settings, monkeypatch, capsys):
    engine = FakeEngine()
    running(engine, fake_settings)
    tasks_open(monkeypatch, local_fleet(stage_settings(fake_settings, "production"), engine))
    root["health"](context())  # development's stack answers: all "ok", and the warning says whose it is
    out = capsys.readouterr().out
    assert "warning:" in out and "is stage development's, not production's" in out
    root["status"](context())
    assert "is stage development's" in capsys.readouterr().out


# --- the per-stage project in invoke.yaml --------------------------------------------------
def test_a_stage_has_its_own_project_and_the_default_stays_the_top_level_one(raw_config):
    raw_config["deploy_dir"] = None
    raw_config["stages"]["production"]["project"] = "myapp-prod"
    config = parse_config(raw_config, ROOT)
    assert config.stage("development").project == "myapp"  # unchanged: its volumes keep their names
    assert config.stage("production").project == "myapp-prod"
    raw_config["stages"]["production"]["project"] = "Bad Name"
    with pytest.raises(Exit, match=r"deploy\.stages\.production\.project"):
        parse_config(raw_config, ROOT)


def test_a_stage_of_hosts_defaults_to_a_deploy_dir_of_its_project(raw_config):
    raw_config["stages"]["staging"] = {"env_file": ".env", "compose_files": ["compose/docker-compose.yml"], "project": "myapp-staging",
                                       "hosts": {"h1": {"address": "10.0.0.1"}}}
    assert parse_config(raw_config, ROOT).stage("staging").hosts[0].deploy_dir == "/srv/myapp-staging"


# --- down --volumes asks for the database's name ------------------------------------------------
@pytest.fixture
def down_world(fake_settings, monkeypatch) -> FakeEngine:
    engine = FakeEngine()
    running(engine, fake_settings)
    tasks_open(monkeypatch, local_fleet(fake_settings, engine))
    engine.journal.clear()
    return engine


def downs(engine: FakeEngine) -> list[str]:
    return [c.line for c in engine.journal if " down " in f" {c.line} "]


def answering(monkeypatch, answer: str | None) -> list[str]:
    """A terminal that answers ``answer`` (None: no terminal); the questions asked."""
    asked: list[str] = []
    monkeypatch.setattr("sys.stdin", SimpleNamespace(isatty=lambda: answer is not None))
    def ask(question: str) -> str:
        asked.append(question)
        return answer or ""

    monkeypatch.setattr("builtins.input", ask)
    return asked


def test_down_volumes_asks_for_the_database_name_and_refuses_another(down_world, monkeypatch):
    asked = answering(monkeypatch, "myapp")
    with pytest.raises(Exit, match="the confirmation did not match; nothing was changed"):
        root["down"](context(), volumes=True)
    assert len(asked) == 1 and "Type 'app' to confirm" in asked[0] and "the database app" in asked[0]
    assert downs(down_world) == []


def test_down_volumes_deletes_once_the_name_is_typed(down_world, monkeypatch):
    answering(monkeypatch, "app")
    root["down"](context(), volumes=True)
    assert len(downs(down_world)) == 1 and "--volumes" in downs(down_world)[0]


def test_down_volumes_without_a_terminal_needs_yes(down_world, monkeypatch):
    asked = answering(monkeypatch, None)
    with pytest.raises(Exit, match="no terminal to ask on"):
        root["down"](context(), volumes=True)
    assert asked == [] and downs(down_world) == []
    root["down"](context(), volumes=True, yes=True)  # CI
    assert asked == [] and "--volumes" in downs(down_world)[0]


def test_init_suggests_a_project_per_stage_and_down_volumes_that_asks(tmp_path, monkeypatch, capsys):
    from deploy.engine import local

    seen: list[list[str]] = []

    class Volumes:  # this machine's engine: development's volumes exist
        def __init__(self, c: Context) -> None:
            pass

        def run(self, argv: list[str], warn: bool = False) -> SimpleNamespace:
            seen.append(list(argv))
            return SimpleNamespace(ok=True, stdout="myapp_postgres-data\nmyapp_redis-data\n")

    monkeypatch.setattr(local, "LocalTarget", Volumes)  # the task imports it when it runs
    root["init"](context(), stage="production", env_file=str(tmp_path / "env"))
    out = " ".join(capsys.readouterr().out.split())
    assert "label=com.docker.compose.project=myapp" in seen[0]
    assert "inv down --volumes --stage production` (asks for the database's name)" in out and "--yes" not in out
    assert "development and production use one Compose project (myapp)" in out
    assert "deploy.stages.production.project: myapp-production" in out


# --- the state of the local stages: of the machine, not of a checkout --------------------------
def test_the_state_of_a_local_stage_is_of_the_machine(tmp_path, monkeypatch):
    checkout = tmp_path / "checkout"
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    got = state_home.stage_dir(checkout, "", "myapp", "production")
    assert got == tmp_path / "xdg" / "compose-deploy" / "myapp" / "production"
    # two checkouts on one machine: one state, one lock
    assert state_home.stage_dir(tmp_path / "other-checkout", "", "myapp", "production") == got
    assert not str(got).startswith(str(checkout))


def test_the_machine_folder_when_this_user_may_write_there(tmp_path, monkeypatch):
    machine = tmp_path / "var-lib" / "compose-deploy"
    monkeypatch.setattr(state_home, "MACHINE_DIR", machine)
    assert state_home.machine_dir({"XDG_STATE_HOME": str(tmp_path / "xdg")}) == tmp_path / "xdg" / "compose-deploy"  # no /var/lib
    machine.parent.mkdir()
    assert state_home.machine_dir({}) == machine  # may be made
    assert state_home.machine_dir({"HOME": str(tmp_path / "home")}) == machine
    machine.parent.chmod(0o500)
    try:
        if not os.access(machine.parent, os.W_OK):  # (root may write anyway)
            assert state_home.machine_dir({"HOME": str(tmp_path / "home")}) == tmp_path / "home" / ".local" / "state" / "compose-deploy"
    finally:
        machine.parent.chmod(0o700)


def test_an_explicit_state_dir_wins(tmp_path):
    assert state_home.stage_dir(tmp_path, "/srv/state", "myapp", "production") == Path("/srv/state/myapp/production")
    assert state_home.stage_dir(tmp_path, ".deploy", "myapp", "production") == tmp_path / ".deploy" / "myapp" / "production"


def test_the_state_of_the_old_default_is_moved_once_with_a_message(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(state_home, "CHECKOUT_DIR", ".deploy")
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    old = tmp_path / "checkout" / ".deploy" / "myapp" / "production"
    old.mkdir(parents=True)
    (old / "releases.json").write_text("[]\n")
    got = state_home.stage_dir(tmp_path / "checkout", "", "myapp", "production")
    assert got == tmp_path / "xdg" / "compose-deploy" / "myapp" / "production"
    assert (got / "releases.json").read_text() == "[]\n" and not old.exists()
    assert f"moved the state of myapp/production (lock, release history, audit log) from {old} to {got}" in capsys.readouterr().out


def test_the_old_state_stays_while_a_task_holds_its_lock(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(state_home, "CHECKOUT_DIR", ".deploy")
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    old = tmp_path / "checkout" / ".deploy" / "myapp" / "production"
    (old / "deploy.lock").mkdir(parents=True)
    assert state_home.stage_dir(tmp_path / "checkout", "", "myapp", "production") == old
    assert "stays in" in capsys.readouterr().out and not (tmp_path / "xdg" / "compose-deploy" / "myapp" / "production").exists()


def test_the_stack_keeps_its_state_in_the_machine_folder(fake_settings, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    state_home.stage_dir.cache_clear()
    assert fake_settings.config.state_dir == ""  # invoke.yaml leaves it to the default
    path = Stack(fake_settings, FakeEngine()).state_file("releases.json")
    assert path == str(tmp_path / "xdg" / "compose-deploy" / "myapp" / "development" / "releases.json")


def test_inv_reads_the_state_dir_from_the_environment(monkeypatch):
    monkeypatch.setenv("INVOKE_DEPLOY_STATE_DIR", "/var/lib/deploy/state")  # what CI sets
    config = Config(project_location=ROOT)
    config.load_project()
    config.load_shell_env()
    assert config.deploy.state_dir == "/var/lib/deploy/state"

