from deploy.config.envfile import render
from deploy.config.settings import read_env_file

EXAMPLE = """# comment
POSTGRES_PASSWORD=change-me
JWT_SECRET=change-me-too
DOCKER_NAMESPACE=myapp
# NODE_IMAGE=node:20-alpine
"""


def test_render_replaces_secrets_and_enables_overrides(tmp_path):
    text = render(EXAMPLE, ("POSTGRES_PASSWORD", "JWT_SECRET"), {"NODE_IMAGE": "local/node:18", "EXTRA": "1"})
    path = tmp_path / "x.env"
    path.write_text(text)
    env = read_env_file(path)
    assert len(env["POSTGRES_PASSWORD"]) == 64 and env["POSTGRES_PASSWORD"] != "change-me"
    assert len(env["JWT_SECRET"]) == 64 and env["JWT_SECRET"] != env["POSTGRES_PASSWORD"]
    assert env["DOCKER_NAMESPACE"] == "myapp"
    assert env["NODE_IMAGE"] == "local/node:18"
    assert env["EXTRA"] == "1"
    assert text.startswith("# comment\n")


def test_render_gives_new_secrets_each_time():
    assert render(EXAMPLE, ("JWT_SECRET",), {}) != render(EXAMPLE, ("JWT_SECRET",), {})
