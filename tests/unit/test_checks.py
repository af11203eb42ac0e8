from pathlib import Path

from deploy.stack.checks import check_compose, check_engine, check_env_file_git, check_outside_checkout, check_required, check_secrets

SECRETS = ("POSTGRES_PASSWORD", "REDIS_PASSWORD", "JWT_SECRET")
EXAMPLE = {"POSTGRES_PASSWORD": "change-me-postgres-password", "REDIS_PASSWORD": "change-me-redis", "JWT_SECRET": "change-me-jwt"}


def test_engine():
    assert check_engine("20.10.24+dfsg1").ok
    assert check_engine("27.0.1").ok
    old = check_engine("19.03.15")
    assert not old.ok and "older than 20.10" in old.detail and old.fix
    down = check_engine("", "Cannot connect to the Docker daemon")
    assert not down.ok and "Cannot connect" in down.detail and "dockerd" in down.fix


def test_compose():
    assert check_compose("2.40.3\n").ok
    assert check_compose("v2.17.0").ok
    assert not check_compose("1.29.2").ok
    assert not check_compose("").ok


def test_compose_older_than_2_17_is_refused_with_the_reason():
    """``up --wait-timeout`` (up, scale, deploy) came with Compose 2.17."""
    for old in ("v2.0.0", "2.16.9"):
        f = check_compose(old)
        assert not f.ok and "older than 2.17" in f.detail and "--wait-timeout" in f.detail and "2.17 or newer" in f.fix


def test_required_lists_every_missing_variable_at_once():
    f = check_required({"A": "x", "B": ""}, ("A", "B", "C"), ".env")
    assert not f.ok
    assert f.detail == "missing or empty: B, C"
    assert ".env" in f.fix
    assert check_required({"A": "x"}, ("A",), ".env").ok


def test_production_refuses_example_and_default_values_with_a_reason_each():
    env = {"POSTGRES_PASSWORD": "change-me-postgres-password", "REDIS_PASSWORD": "password", "JWT_SECRET": "change-me-jwt"}
    findings = check_secrets(env, SECRETS, EXAMPLE, production=True)
    by = {(f.subject, f.detail) for f in findings if not f.ok}
    assert ("POSTGRES_PASSWORD", "is still the value from .env.example") in by
    assert ("REDIS_PASSWORD", "is empty or a well-known default") in by
    assert ("JWT_SECRET", "is still the value from .env.example") in by
    assert any(f.subject == "JWT_SECRET" and "at least 64" in f.detail for f in findings)
    assert all(f.fix for f in findings)


def test_development_only_warns():
    env = {"POSTGRES_PASSWORD": "postgres", "REDIS_PASSWORD": "x" * 20, "JWT_SECRET": "short"}
    findings = check_secrets(env, SECRETS, EXAMPLE, production=False)
    assert findings and all(f.ok and f.fix for f in findings)


def test_a_secret_too_short_to_be_masked_in_text_fails_in_production():
    env = {"POSTGRES_PASSWORD": "a1b2c3d", "REDIS_PASSWORD": "b" * 40, "JWT_SECRET": "c" * 64}
    findings = check_secrets(env, SECRETS, EXAMPLE, production=True)
    assert [(f.subject, f.ok) for f in findings] == [("POSTGRES_PASSWORD", False)]
    assert "7 characters" in findings[0].detail and "whole word" in findings[0].detail and findings[0].fix


def test_strong_production_secrets_pass():
    env = {"POSTGRES_PASSWORD": "a" * 40, "REDIS_PASSWORD": "b" * 40, "JWT_SECRET": "c" * 64}
    assert check_secrets(env, SECRETS, EXAMPLE, production=True) == []


def test_env_file_git_rules():
    assert [f.ok for f in check_env_file_git(".env.production", tracked=False, ignored=True)] == [True]
    tracked = check_env_file_git(".env.production", tracked=True, ignored=True)
    assert not tracked[0].ok and "git rm --cached" in tracked[0].fix
    not_ignored = check_env_file_git(".env.production", tracked=False, ignored=False)
    assert not not_ignored[0].ok and ".gitignore" in not_ignored[0].fix
    assert check_env_file_git("/tmp/x.env", tracked=False, ignored=None)[0].ok


def test_state_and_backups_inside_the_checkout_are_a_warning_with_the_setting_to_change():
    root = Path("/srv/app")
    inside = check_outside_checkout("backups", root / "backups", root, True, "deploy.database.backups_dir")
    assert inside.ok and inside.fix  # a warning: shown, not failing
    assert "git clean -ffdx" in inside.detail and "backups/" in inside.detail
    assert "deploy.database.backups_dir" in inside.fix and "INVOKE_DEPLOY_DATABASE_BACKUPS_DIR" in inside.fix
    outside = check_outside_checkout("release history", Path("/var/lib/deploy/state"), root, True, "deploy.state_dir")
    assert outside.ok and not outside.fix
    not_git = check_outside_checkout("release history", root / ".deploy", root, False, "deploy.state_dir")
    assert not_git.ok and not not_git.fix  # no git work tree: nothing cleans it
