"""Scaling under load, cleaning, the production preflight and the k6 load test, on the real engine."""
import io
import json
import subprocess
import time

from tests import load
from tests.integration.conftest import ROOT, make_stack, remove_stack, row, table_rows


def running(engine, project, service):
    return len(engine.containers.list(filters={"label": [f"com.docker.compose.project={project}", f"com.docker.compose.service={service}"]}))


def test_scale_under_load_fails_no_request_and_persists(prod_stack, engine):
    wrk = load.start(prod_stack.http_port, seconds=45)
    try:
        time.sleep(3)
        prod_stack("scale", "--backend", "5")
        assert running(engine, prod_stack.project, "backend") == 5
        time.sleep(3)
        prod_stack("scale", "--backend", "2", "--web", "2")
        assert running(engine, prod_stack.project, "backend") == 2
        time.sleep(3)
        prod_stack("scale", "--backend", "3")
    finally:
        result = load.finish(wrk)
    assert result.requests > 1000, result.raw
    assert result.errors == 0, result.raw
    # The counts persist: a later `up` keeps them.
    prod_stack("up")
    assert running(engine, prod_stack.project, "backend") == 3
    assert running(engine, prod_stack.project, "web") == 2
    out = prod_stack("status").stdout
    assert row(out, 0, "web")[1:4] == ["2", "2", "2"]


def test_scale_refuses_bad_counts_and_stateful_services(prod_stack, engine):
    before = running(engine, prod_stack.project, "backend")
    for args, message in [
        (("--set", "postgres=2"), "stateful"),
        (("--backend", "-1"), "negative"),
        (("--backend", "many"), "not a number"),
        (("--backend", "0"), "add --yes"),
    ]:
        result = prod_stack("scale", *args, check=False)
        assert result.returncode == 1, args
        assert message in result.stderr
    assert running(engine, prod_stack.project, "backend") == before
    assert running(engine, prod_stack.project, "postgres") == 1


def test_clean_removes_dangling_and_keeps_images_in_use(prod_stack, engine):
    label = {"com.docker.compose.project": prod_stack.project}
    dockerfile = "FROM deploy-testbed/base:bookworm\nRUN echo {} > /marker\n"
    tag = f"{prod_stack.project}-scratch:1"
    first, _ = engine.images.build(fileobj=io.BytesIO(dockerfile.format("one").encode()), tag=tag, labels=label, rm=True)
    engine.images.build(fileobj=io.BytesIO(dockerfile.format("two").encode()), tag=tag, labels=label, rm=True)
    assert engine.images.get(first.id).tags == []  # dangling now
    in_use = {c.image.id for c in engine.containers.list(filters={"label": f"com.docker.compose.project={prod_stack.project}"})}

    out = prod_stack("clean").stdout
    assert "dangling images removed:" in out and "build cache freed:" in out
    remaining = {i.id for i in engine.images.list()}
    assert first.id not in remaining
    assert in_use <= remaining
    prod_stack("health")

    refused = prod_stack("clean", "--volumes", check=False)
    assert refused.returncode == 1 and "--yes" in refused.stderr
    kept = prod_stack("clean", "--volumes", "--yes").stdout
    assert "database; add --include-database" in kept
    assert {v.name for v in engine.volumes.list(filters={"label": f"com.docker.compose.project={prod_stack.project}"})} >= {
        f"{prod_stack.project}_postgres-data"
    }


def test_check_refuses_example_values_for_production(tmp_path, images, engine):
    example = (ROOT / ".env.example").read_text()
    stack = make_stack(tmp_path, images)
    stack.env_file.write_text(example)
    try:
        result = stack("check", check=False)
        assert result.returncode == 1
        out = result.stdout
        for name in ("POSTGRES_PASSWORD", "REDIS_PASSWORD", "JWT_SECRET"):
            assert row(out, 1, name)[0] == "FAIL", name
        assert "is still the value from .env.example" in out
        assert "at least 64" in out
        assert "check(s) failed" in result.stderr
        assert row(out, 1, "Docker engine")[0] == "ok"
    finally:
        remove_stack(stack, engine)


def test_check_passes_a_good_production_env(prod_stack, tmp_path):
    out = prod_stack("check").stdout
    assert row(out, 1, "compose files")[0] == "ok"
    assert "FAIL" not in out
    assert row(out, 1, "release history")[0] == "ok"  # the test's state is outside the checkout
    # the state in the checkout (.deploy), the backups there by default: a warning naming the setting, not a failure
    config = json.loads(prod_stack.runtime_config.read_text())
    config["deploy"]["state_dir"] = ".deploy"
    del config["deploy"]["database"]
    runtime = tmp_path / "defaults.json"
    runtime.write_text(json.dumps(config))
    argv = prod_stack.argv("check")
    argv[argv.index(str(prod_stack.runtime_config))] = str(runtime)
    result = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr
    assert row(result.stdout, 1, "release history")[0] == "WARN" and row(result.stdout, 1, "backups")[0] == "WARN"
    for words in ("-ffdx", "deploy.state_dir", "INVOKE_DEPLOY_STATE_DIR", "deploy.database.backups_dir"):  # cells may wrap
        assert words in result.stdout, words


def thresholds_table(out: str) -> dict[tuple[str, str], str]:
    """(metric, threshold) -> result, from the table inv loadtest prints."""
    return {(cells[0], cells[1]): cells[3] for cells in table_rows(out) if len(cells) == 4}


def test_loadtest_prints_the_thresholds_and_exits_by_them(prod_stack, tmp_path):
    guide = prod_stack("loadtest", "--duration", "3s", "--vus", "2", check=False)
    results = thresholds_table(guide.stdout)
    assert set(results) == {("http_req_duration", "p(95)<100"), ("http_req_failed", "rate<0.01")}, guide.stdout + guide.stderr
    assert guide.returncode == (0 if set(results.values()) == {"ok"} else 1), guide.stdout + guide.stderr

    def script(thresholds: str) -> str:
        path = tmp_path / f"load-{len(list(tmp_path.iterdir()))}.js"
        path.write_text("import http from 'k6/http';\n"
                        f"export const options = {{ thresholds: {thresholds} }};\n"
                        "export default function () { http.get(`${__ENV.BASE_URL}/api/health`); }\n")
        return str(path)

    served = prod_stack("loadtest", "--script", script("{ http_req_failed: ['rate<0.5'], http_reqs: ['count>10'] }"),
                        "--duration", "2s", "--vus", "2", check=False)
    assert served.returncode == 0, served.stdout + served.stderr
    assert thresholds_table(served.stdout) == {("http_req_failed", "rate<0.5"): "ok", ("http_reqs", "count>10"): "ok"}

    crossed = prod_stack("loadtest", "--script", script("{ http_req_failed: ['rate<0.5'], http_req_duration: ['max<0'] }"),
                         "--duration", "2s", check=False)
    assert crossed.returncode == 1, crossed.stdout + crossed.stderr
    assert thresholds_table(crossed.stdout) == {("http_req_failed", "rate<0.5"): "ok", ("http_req_duration", "max<0"): "FAIL"}
    assert "threshold(s) failed: http_req_duration max<0" in crossed.stderr
