import copy

import pytest
from invoke.exceptions import Exit

from deploy.config.schema import parse_config
from deploy.retention import Policy
from tests.unit.conftest import ROOT


def test_repository_config_parses(config):
    assert config.project == "myapp"
    assert list(config.stateless) == ["backend", "web"]
    assert config.stateless["backend"].port == 3000
    assert config.stateful == ("postgres", "redis")
    assert config.proxy.service == "nginx"
    assert config.services == ("backend", "web", "nginx", "postgres", "redis")
    assert config.stage("production").compose_files == ("compose/docker-compose.yml", "compose/docker-compose.prod.yml")
    assert config.stage("production").production is True
    assert config.stage(None).name == "development"
    assert config.env_defaults["DOCKER_NAMESPACE"] == "myapp"
    assert "POSTGRES_PASSWORD" in config.required_env


def test_unknown_stage_lists_the_known_ones(config):
    with pytest.raises(Exit) as err:
        config.stage("staging")
    assert "unknown stage 'staging'" in str(err.value.message)
    assert "development, production" in str(err.value.message)


def test_unknown_service_refused(config):
    with pytest.raises(Exit, match="unknown service"):
        config.check_services(["backend", "worker;rm -rf /"])


@pytest.mark.parametrize("name", ["MyApp", "-x", "a b", "a;b", ""])
def test_invalid_project_name(raw_config, name):
    raw = copy.deepcopy(raw_config)
    raw["project"] = name
    with pytest.raises(Exit, match="project"):
        parse_config(raw, ROOT)


def test_service_in_both_lists_refused(raw_config):
    raw = copy.deepcopy(raw_config)
    raw["services"]["stateful"].append("backend")
    with pytest.raises(Exit, match="both stateless and stateful"):
        parse_config(raw, ROOT)


def test_missing_stages_refused(raw_config):
    raw = copy.deepcopy(raw_config)
    del raw["stages"]
    with pytest.raises(Exit, match="deploy.stages is missing"):
        parse_config(raw, ROOT)


@pytest.mark.parametrize("value", [0, -1, "3", True])
def test_retention_must_be_positive_int(raw_config, value):
    raw = copy.deepcopy(raw_config)
    raw["retention"]["backups"] = value
    with pytest.raises(Exit, match="retention.backups"):
        parse_config(raw, ROOT)


def test_registry_key_is_only_a_default(raw_config):
    raw = copy.deepcopy(raw_config)
    raw["registry"] = "127.0.0.1:5000"
    raw["env_defaults"]["DOCKER_REGISTRY"] = "explicit"
    assert parse_config(raw, ROOT).env_defaults["DOCKER_REGISTRY"] == "explicit"
    del raw["env_defaults"]["DOCKER_REGISTRY"]
    assert parse_config(raw, ROOT).env_defaults["DOCKER_REGISTRY"] == "127.0.0.1:5000"


def test_the_backups_retention_policy_and_its_defaults(raw_config):
    raw = copy.deepcopy(raw_config)
    assert parse_config(raw, ROOT).retention.backups == Policy(7, daily=7, weekly=4, monthly=6, min_age=86400)
    raw["retention"] = {"backups": 3, "keep_daily": 0, "min_age": "36h"}
    assert parse_config(raw, ROOT).retention.backups == Policy(3, daily=0, weekly=4, monthly=6, min_age=36 * 3600)
    for key, value, message in [("keep_weekly", -1, "keep_weekly must be a whole number"), ("keep_monthly", "6", "keep_monthly"),
                                ("min_age", "a day", "min_age 'a day' is not a duration")]:
        raw["retention"] = {key: value}
        with pytest.raises(Exit, match=message):
            parse_config(raw, ROOT)
