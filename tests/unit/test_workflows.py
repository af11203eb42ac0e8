"""The GitHub Actions workflows: what the guide's CI path needs of them, read from the
files (no runner here), and the variables they set read by Invoke as our config."""
from __future__ import annotations

from pathlib import Path

from invoke import Config
from invoke.util import yaml

ROOT = Path(__file__).resolve().parents[2]


def workflow(name: str) -> dict:
    data = yaml.safe_load((ROOT / ".github/workflows" / name).read_text())
    data["on"] = data.pop(True, data.get("on"))  # YAML 1.1 reads the key `on` as true
    return data


def runs(job: dict) -> list[str]:
    return [step.get("run", "") for step in job["steps"]]


def test_the_test_workflow_lints_and_runs_the_unit_tests_on_every_push_and_pull_request():
    wf = workflow("test.yml")
    assert set(wf["on"]) == {"push", "pull_request", "workflow_call"} and wf["on"]["push"] == {"branches": ["**"]}
    lines = runs(wf["jobs"]["unit"])
    assert "bash scripts/lint.sh" in lines and any("pytest" in r and "tests/unit" in r for r in lines)


def test_the_deploy_workflow_deploys_a_tag_once_tested_one_at_a_time_with_its_state_kept(monkeypatch):
    wf = workflow("deploy.yml")
    assert wf["on"] == {"push": {"tags": ["v*"]}}
    assert wf["concurrency"]["cancel-in-progress"] is False and wf["concurrency"]["group"]
    deploy = wf["jobs"]["deploy"]
    assert deploy["needs"] == "test" and wf["jobs"]["test"]["uses"] == "./.github/workflows/test.yml"
    steps = {s.get("name", ""): s for s in deploy["steps"]}
    login = next(s for name, s in steps.items() if name.startswith("Log in"))
    assert "--password-stdin" in login["run"] and "secrets." not in login["run"]  # the password only in the env
    assert login["env"]["REGISTRY_PASSWORD"] == "${{ secrets.REGISTRY_PASSWORD }}"
    step = next(s for s in deploy["steps"] if "deploy.sh" in s.get("run", ""))
    assert step["run"] == "./scripts/deploy.sh deploy" and step["env"]["VERSION"] == "${{ github.ref_name }}"
    # state and backups outside the checkout (actions/checkout cleans it), as Invoke reads them
    for key, value in wf["env"].items():
        monkeypatch.setenv(key, value)
    config = Config(project_location=str(ROOT))
    config.load_project()
    config.load_shell_env()
    for where in (config.deploy.state_dir, config.deploy.database.backups_dir):
        assert where.startswith(wf["env"]["DEPLOY_HOME"] + "/") and Path(where).is_absolute()
