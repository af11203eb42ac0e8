from pathlib import Path

import pytest
from invoke import Config

from deploy.config.schema import DeployConfig, parse_config, plain

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def raw_config() -> dict:
    """The repository's own deploy: section, loaded the way `inv` loads it."""
    cfg = Config(project_location=str(ROOT))
    cfg.load_project()
    return plain(cfg.deploy)


@pytest.fixture
def config(raw_config: dict) -> DeployConfig:
    return parse_config(raw_config, ROOT)
