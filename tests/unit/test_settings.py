import json
import shlex
from urllib.parse import quote, quote_plus

import pytest
from invoke.exceptions import Exit

from deploy.config.settings import merge_env, read_env_file, resolve


def test_precedence_process_env_over_file_over_defaults():
    merged = merge_env(
        defaults={"A": "default", "B": "default", "C": "default"},
        file_values={"B": "file", "C": "file"},
        environ={"C": "process", "PATH": "/usr/bin"},
    )
    assert merged == {"A": "default", "B": "file", "C": "process"}


def test_unrelated_process_variables_do_not_leak():
    merged = merge_env({}, {"A": "1"}, {"HOME": "/root", "B": "2"}, known=("B",))
    assert merged == {"A": "1", "B": "2"}


def test_empty_values_count_as_set_in_their_layer():
    assert merge_env({"A": "default"}, {"A": ""}, {}) == {"A": ""}


def test_env_file_values_are_not_interpolated(tmp_path):
    path = tmp_path / "x.env"
    path.write_text("A=plain\nB='$A and ${HOME}'\nC=\nexport D=quoted value\n")
    assert read_env_file(path) == {"A": "plain", "B": "$A and ${HOME}", "C": "", "D": "quoted value"}


def test_resolve_reads_the_given_env_file(config, tmp_path):
    env = tmp_path / "prod.env"
    env.write_text("POSTGRES_PASSWORD=from-file\nJWT_SECRET=j\n")
    s = resolve(config, "production", str(env), environ={"JWT_SECRET": "from-process"})
    assert s.stage.name == "production"
    assert s.env["POSTGRES_PASSWORD"] == "from-file"
    assert s.env["JWT_SECRET"] == "from-process"
    assert s.env["POSTGRES_USER"] == "app"  # invoke.yaml env_defaults
    assert s.compose.files[-1].endswith("compose/docker-compose.prod.yml")
    assert s.compose.env_file == str(env)


def test_missing_env_file_says_how_to_create_it(config, tmp_path):
    with pytest.raises(Exit) as err:
        resolve(config, "production", str(tmp_path / "nope.env"), environ={})
    assert "not found" in str(err.value.message)
    assert "cp .env.example .env.production" in str(err.value.message)


def test_masked_hides_every_secret(config, tmp_path):
    env = tmp_path / "x.env"
    env.write_text("POSTGRES_PASSWORD=hunter2hunter2\nREDIS_PASSWORD=r3d1s-pass\n")
    s = resolve(config, None, str(env), environ={})
    assert s.masked("pw=hunter2hunter2 redis=r3d1s-pass") == "pw=**** redis=****"


def test_masked_hides_the_json_url_and_shell_forms_of_a_secret(config, tmp_path):
    env = tmp_path / "x.env"
    env.write_text("POSTGRES_USER=app\n")
    secret = 'p@ss "wörd" it\'s/1'
    s = resolve(config, None, str(env), environ={"POSTGRES_PASSWORD": secret})
    texts = [json.dumps({"error": f"auth failed for {secret}"}), json.dumps(secret, ensure_ascii=False),
             f"postgres://app:{quote(secret, safe='')}@db/app", f"postgres://app:{quote(secret)}@db/app",
             f"pw={quote_plus(secret)}", shlex.join(["psql", f"PGPASSWORD={secret}"])]
    for text in texts:
        shown = s.masked(text)
        assert "****" in shown and "rd" not in shown and "s/1" not in shown and "s%2F1" not in shown, (text, shown)


def test_masked_hides_variables_named_like_secrets_that_secret_env_leaves_out(config, tmp_path):
    env = tmp_path / "x.env"
    env.write_text("SMTP_PASSWORD=smtp-pass-1234\nGITHUB_TOKEN=ghp_abcdefgh1234\nPG_POOL_MAX=50000000\n")
    s = resolve(config, None, str(env), environ={})
    assert s.masked("smtp-pass-1234 ghp_abcdefgh1234 50000000") == "**** **** 50000000"


def test_a_short_secret_is_masked_only_as_a_whole_word(config, tmp_path):
    env = tmp_path / "x.env"
    env.write_text("POSTGRES_PASSWORD=a\nREDIS_PASSWORD=abc12\n")
    s = resolve(config, None, str(env), environ={})
    assert s.masked("an app at db: password a, redis abc12 (abc123 stays)") == "an app at db: password ****, redis **** (abc123 stays)"
