from pathlib import Path

import pytest
from invoke import Config

from deploy.config.schema import DeployConfig, parse_config, plain

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def isolated_state(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No test reads, moves or writes a real state folder (deploy.config.state_home):
    this machine's is a temporary one, the checkout's old one is never looked at, and an
    ``inv`` the tests run gets an explicit INVOKE_DEPLOY_STATE_DIR."""
    from deploy.config import state_home

    base = tmp_path_factory.mktemp("state")
    monkeypatch.setattr(state_home, "MACHINE_DIR", base / "var-lib" / "compose-deploy")
    monkeypatch.setattr(state_home, "CHECKOUT_DIR", ".deploy-of-no-test")
    monkeypatch.setenv("XDG_STATE_HOME", str(base / "xdg"))
    monkeypatch.setenv("INVOKE_DEPLOY_STATE_DIR", str(base / "inv"))
    state_home.stage_dir.cache_clear()
    return base


@pytest.fixture(autouse=True)
def no_verify_pause(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fake's proxy answers at once: verification need not pause between errors."""
    from deploy.stack import health

    monkeypatch.setattr(health, "VERIFY_PAUSE", 0.0)


@pytest.fixture
def raw_config() -> dict:
    """The repository's own deploy: section, loaded the way `inv` loads it."""
    cfg = Config(project_location=ROOT)
    cfg.load_project()
    return plain(cfg.deploy)


@pytest.fixture
def config(raw_config: dict) -> DeployConfig:
    return parse_config(raw_config, ROOT)


# --- the recording fake engine (tests/unit/fake_engine.py) -------------------------------
FAKE_ENV = {
    "POSTGRES_USER": "app", "POSTGRES_DB": "app", "POSTGRES_PASSWORD": "pg-Secret-4711", "REDIS_PASSWORD": "redis-Secret-4712",
    "JWT_SECRET": "jwt-Secret-4713", "NEXT_PUBLIC_API_URL": "/api", "NEXT_PUBLIC_APP_URL": "http://localhost:8080",
    "CORS_ORIGIN": "http://localhost:8080", "DOCKER_REGISTRY": "registry.example.com", "DOCKER_NAMESPACE": "myapp",
}


@pytest.fixture
def fake_settings(config: DeployConfig, tmp_path: Path):
    """The development stage's settings with known secrets; backups go to tmp_path."""
    import dataclasses

    from deploy.config.settings import Settings

    cfg = dataclasses.replace(config, database=dataclasses.replace(config.database, backups_dir=str(tmp_path / "backups")))
    return Settings(cfg, cfg.stage("development"), ROOT / ".env", dict(FAKE_ENV))
