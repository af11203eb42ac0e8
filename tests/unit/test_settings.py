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
    assert "not found" in err.value.message
    assert "cp .env.example .env.production" in err.value.message


def test_masked_hides_every_secret(config, tmp_path):
    env = tmp_path / "x.env"
    env.write_text("POSTGRES_PASSWORD=hunter2hunter2\nREDIS_PASSWORD=r3d1s-pass\n")
    s = resolve(config, None, str(env), environ={})
    assert s.masked("pw=hunter2hunter2 redis=r3d1s-pass") == "pw=**** redis=****"
