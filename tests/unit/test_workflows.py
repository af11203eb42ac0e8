"""The GitHub Actions workflows: what the guide's CI path needs of them, read from the
files (no runner here), and the variables they set read by Invoke as our config."""
from __future__ import annotations

import re
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
    assert step["run"] == "./scripts/deploy.sh deploy --skip-tests" and step["env"]["VERSION"] == "${{ github.ref_name }}"
    # state and backups outside the checkout (actions/checkout cleans it), as Invoke reads them
    for key, value in wf["env"].items():
        monkeypatch.setenv(key, value)
    config = Config(project_location=ROOT)
    config.load_project()
    config.load_shell_env()
    for where in (config.deploy.state_dir, config.deploy.database.backups_dir):
        assert where.startswith(wf["env"]["DEPLOY_HOME"] + "/") and Path(where).is_absolute()


def steps_of(wf: dict) -> list[dict]:
    return [step for job in wf["jobs"].values() for step in job.get("steps", [])]


def test_every_action_is_pinned_by_commit_and_the_token_only_reads():
    """A moved tag (actions/checkout@v4) would change what runs beside the production
    secrets; the workflow's token may only read, and checkout does not keep it on disk."""
    for name in ("test.yml", "deploy.yml"):
        wf = workflow(name)
        assert wf["permissions"] == {"contents": "read"}, name
        for step in steps_of(wf):
            if "uses" in step:
                action, _, ref = step["uses"].partition("@")
                assert re.fullmatch(r"[0-9a-f]{40}", ref), f"{name}: {step['uses']} is not pinned by commit"
                if action == "actions/checkout":
                    assert step["with"]["persist-credentials"] is False, name


def test_the_deploy_job_runs_no_third_party_code_and_leaves_no_secret_behind():
    """pnpm install and the apps' tests run in the test job (a hosted runner without
    secrets), never beside .env.production; the env file and the registry login go at the
    end whatever happened; only a tag on main deploys."""
    deploy = workflow("deploy.yml")["jobs"]["deploy"]
    lines = runs(deploy)
    assert not any("node.sh" in r or "pnpm" in r or "npm " in r for r in lines), lines
    cleanup = next(s for s in deploy["steps"] if "rm -f .env.production" in s.get("run", ""))
    assert cleanup["if"] == "always()" and "docker logout" in cleanup["run"]
    assert deploy["steps"].index(cleanup) == len(deploy["steps"]) - 1
    guard = next(i for i, s in enumerate(deploy["steps"]) if "merge-base --is-ancestor" in s.get("run", ""))
    writes = next(i for i, s in enumerate(deploy["steps"]) if ".env.production" in s.get("run", ""))
    assert guard < writes and "origin/main" in deploy["steps"][guard]["run"]
    checkout = next(s for s in deploy["steps"] if s.get("uses", "").startswith("actions/checkout@"))
    assert checkout["with"]["fetch-depth"] == 0  # main's history, for the guard
