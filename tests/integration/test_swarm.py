"""The Docker Swarm engine on the three test hosts: h1 manager, edge and db node, h2 a
worker and edge, h3 a worker (tests/integration/swarm.py). One stack for the module:
the swarm formed and 1.0.0 deployed from nothing; the tests run in this order, each
leaving it serving a known version, the disruptive ones last:

  first deploy -> next version -> unhealthy version (Swarm rolls it back) -> inv rollback
  -> backup round trip -> drain h3 and back -> scale 3 -> 10 -> 3 -> h3 cut off 30 s.

Every change runs under wrk through the nginx of every edge (h1 and h2: 25 mixed
connections each, GET pages, static files and the API and POST writes, plus 4 holding
2 s requests each) and passes only with 0 non-2xx responses, 0 socket errors and no
failed line in either nginx's access log. Traffic goes only to the test hosts' addresses.
"""
from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path

import pytest

from deploy.config.settings import read_env_file
from tests.integration.conftest import changed_backend, row
from tests.integration.hosts import ssh, version_at
from tests.integration.swarm import (
    EDGES,
    STACK_LABEL,
    assert_edges_clean,
    converged,
    hosts_swarm_lock,
    image_tag,
    leave_swarm,
    link,
    make_swarm_stack,
    node_ids,
    nodes,
    on_manager,
    pg_dumpall,
    remove_swarm_stack,
    replicas,
    run_under_traffic,
    service_spec,
    tasks,
    tasks_on,
    traffic_through_edges,
    wait_converged,
    wait_for,
)

APPS = ("backend", "web")


@pytest.fixture(scope="module")
def swarm(tmp_path_factory, images, testbed, engine):
    """The swarm formed by `inv swarm.init` and the example stack deployed to it as
    1.0.0 from nothing; afterwards the stack, its volumes, secrets, configs and images
    removed and every host out of the swarm (also when a test failed)."""
    stack = make_swarm_stack(tmp_path_factory.mktemp("swarm"), images, testbed)
    with hosts_swarm_lock():
        for host in testbed["addrs"]:  # a link an interrupted run left down
            link(host, "up")
        if any(node_ids(testbed).values()):  # a swarm an interrupted run left behind
            leave_swarm(testbed)
        try:
            stack("swarm.init", timeout=300)
            stack.ids = node_ids(testbed)  # host -> its node id
            stack.first_deploy = stack("deploy", "--version", "1.0.0", "--skip-tests", timeout=1200)
            yield stack
        finally:
            remove_swarm_stack(stack, testbed, engine)


def served(testbed: dict, port: int) -> dict[str, str]:
    return {host: version_at(testbed, host, port) for host in EDGES}


def line_of(output: str, needle: str) -> str:
    lines = [line for line in output.splitlines() if needle in line]
    assert len(lines) == 1, f"{len(lines)} lines with {needle!r}:\n{output}"
    return lines[0].lower()


def test_first_deploy_from_nothing_serves_through_every_edge(swarm, testbed):
    project, ids = swarm.project, swarm.ids
    assert all(ids.values()) and len(set(ids.values())) == 3, ids
    assert served(testbed, swarm.http_port) == {"h1": "1.0.0", "h2": "1.0.0"}
    # The nodes as the manager sees them: roles, labels that place the proxy and the database.
    view = nodes(testbed)
    assert {h: (view[i].role, view[i].state, view[i].availability) for h, i in ids.items()} == {
        "h1": ("manager", "ready", "active"), "h2": ("worker", "ready", "active"), "h3": ("worker", "ready", "active")}
    assert view[ids["h1"]].labels.get("edge") == "true" and view[ids["h2"]].labels.get("edge") == "true"
    assert view[ids["h1"]].labels.get("db") == "true"
    assert "edge" not in view[ids["h3"]].labels and "db" not in view[ids["h2"]].labels and "db" not in view[ids["h3"]].labels
    # Every service converged; the proxy runs once on each edge, the stateful ones on the db node.
    assert converged(testbed, project) == {"backend": "3/3", "web": "4/4", "nginx": "2/2", "postgres": "1/1", "redis": "1/1"}
    running = tasks(testbed, project)
    assert sorted(t.node for t in running if t.service == "nginx") == sorted([ids["h1"], ids["h2"]])
    assert {t.node for t in running if t.service in ("postgres", "redis")} == {ids["h1"]}
    assert {image_tag(service_spec(testbed, project, s)) for s in APPS} == {"1.0.0"}
    # The secrets are Swarm secrets: no value in any service's spec or in the stack files.
    secrets = read_env_file(swarm.env_file)
    specs = on_manager(testbed, f"docker service inspect $(docker service ls -q --filter label={STACK_LABEL}={project})").stdout
    stack_files = on_manager(testbed, f"cat /srv/{project}/state/swarm/stack-*.yml").stdout
    for name in ("POSTGRES_PASSWORD", "REDIS_PASSWORD", "JWT_SECRET"):
        assert secrets[name] not in specs + stack_files + swarm.first_deploy.stdout + swarm.first_deploy.stderr, name
    assert f"{project}_backend" in stack_files or '"backend"' in stack_files or "backend:" in stack_files
    # `inv swarm.status`: each node with its address, role, state, availability and labels; the services.
    status = swarm("swarm.status").stdout
    h1, h2, h3 = (line_of(status, testbed["addrs"][h]) for h in ("h1", "h2", "h3"))
    assert "manager" in h1 and "edge" in h1 and "db" in h1 and "ready" in h1 and "active" in h1, status
    assert "worker" in h2 and "edge" in h2 and "db" not in h2 and "ready" in h2, status
    assert "worker" in h3 and "edge" not in h3 and "ready" in h3, status
    for service in ("backend", "web", "nginx", "postgres", "redis"):
        assert service in status, status
    assert row(swarm("releases").stdout, 0, "1.0.0")[1] == "success"


def test_the_everyday_tasks_work_on_the_swarm(swarm, testbed):
    """status, health, stats, logs, exec, db.migrate, lock.status and a deploy's dry run on
    the swarm as a user types them; the Compose-only tasks refuse, saying what to do."""
    status = swarm("status").stdout
    for service, tasks_ in (("backend", "3/3"), ("web", "4/4"), ("nginx", "2/2"), ("postgres", "1/1")):
        assert tasks_ in line_of(status, f" {service} "), status
    health = swarm("health").stdout
    assert "service backend" in health and "GET /api/health" in health, health
    assert "backend" in swarm("stats").stdout
    assert f"{swarm.project}_backend." in swarm("logs", "backend", "--tail", "5").stdout  # every task's lines, named
    assert "v=1.0.0" in swarm("exec", "backend", command=["node", "-e", "console.log('v=' + process.env.APP_VERSION)"]).stdout
    assert "up to date" in swarm("db.migrate").stdout
    assert swarm("lock.status").stdout.strip() == "not locked"
    before = {s: service_spec(testbed, swarm.project, s) for s in APPS}
    plan = swarm("deploy", "--version", "1.0.9", "--skip-tests", "--dry-run").stdout
    assert "docker stack deploy --detach=false" in plan and "(the worker token)" not in plan, plan
    assert {s: service_spec(testbed, swarm.project, s) for s in APPS} == before  # nothing changed
    refused = swarm("up", check=False)
    assert refused.returncode == 1 and "does not work on a swarm stage" in refused.stderr, refused.stderr


def test_next_version_under_load_through_every_edge(swarm, testbed):
    run = run_under_traffic(swarm, testbed, "deploy", "--version", "1.0.1", "--skip-tests", timeout=900)
    assert run.returncode == 0, run.output
    assert run.results, f"the load never started (no step after {'/'.join(('build', 'push'))}):\n{run.output}"
    assert_edges_clean(testbed, swarm.project, run.results)
    assert served(testbed, swarm.http_port) == {"h1": "1.0.1", "h2": "1.0.1"}
    assert {image_tag(service_spec(testbed, swarm.project, s)) for s in APPS} == {"1.0.1"}
    assert converged(testbed, swarm.project) == {"backend": "3/3", "web": "4/4", "nginx": "2/2", "postgres": "1/1", "redis": "1/1"}
    assert row(swarm("releases").stdout, 0, "1.0.1")[1] == "success"


def test_an_unhealthy_version_is_rolled_back_by_swarm_under_load(swarm, testbed, tmp_path):
    """1.0.2's backend answers 404 on /health (its healthcheck): its new tasks never get
    healthy, Swarm's update fails and rolls back (failure_action rollback); the deploy
    exits non-zero saying so, 1.0.1 keeps serving and the release is recorded failed."""
    broken = changed_backend(tmp_path, "@Get('health')", "@Get('never')")
    run = run_under_traffic(swarm, testbed, "deploy", "--version", "1.0.2", "--skip-tests", "--skip-backup", env=broken, timeout=900)
    assert run.returncode != 0, run.output
    assert re.search(r"roll(ed|s|ing)?[ -]?back", run.output, re.I), run.output
    assert run.results, f"the load never started:\n{run.output}"
    assert_edges_clean(testbed, swarm.project, run.results)
    assert served(testbed, swarm.http_port) == {"h1": "1.0.1", "h2": "1.0.1"}
    backend = service_spec(testbed, swarm.project, "backend")
    assert image_tag(backend) == "1.0.1", backend.get("UpdateStatus")
    assert (backend.get("UpdateStatus") or {}).get("State", "").startswith("rollback"), backend.get("UpdateStatus")
    assert image_tag(service_spec(testbed, swarm.project, "web")) == "1.0.1"
    assert not [t for t in tasks(testbed, swarm.project) if t.service in APPS and t.state != "running"]
    assert converged(testbed, swarm.project) is not None
    assert row(swarm("releases").stdout, 0, "1.0.2")[1] == "failed"
    assert swarm("lock.status").stdout.strip() == "not locked"


def test_rollback_under_load(swarm, testbed):
    run = run_under_traffic(swarm, testbed, "rollback", "1.0.0", timeout=600, at_once=True)
    assert run.returncode == 0, run.output
    assert "rolled back to 1.0.0" in run.output
    assert_edges_clean(testbed, swarm.project, run.results)
    assert served(testbed, swarm.http_port) == {"h1": "1.0.0", "h2": "1.0.0"}
    assert {image_tag(service_spec(testbed, swarm.project, s)) for s in APPS} == {"1.0.0"}
    assert row(swarm("releases").stdout, 0, "1.0.0")[2] == "rollback"


def test_backup_pulled_home_and_restored_round_trips(swarm, testbed):
    """No load here: the load's writes would change what pg_dumpall compares."""
    before = pg_dumpall(testbed, swarm.project)
    result = swarm("db.backup", "--label", "swarm")
    reported = re.search(r"backup: (\S+\.dump)", result.stdout)
    assert reported, result.stdout
    dump = Path(reported.group(1))
    assert dump.parent == swarm.backups and dump.is_file() and dump.read_bytes()[:5] == b"PGDMP"
    assert Path(f"{dump}.sha256").is_file() and json.loads(Path(f"{dump}.json").read_text())["row_counts"]
    post = subprocess.run(["curl", "-s", "-m", "5", "-XPOST", "-H", "content-type: application/json", "-d", '{"name": "after"}',
                           f"http://{testbed['addrs']['h2']}:{swarm.http_port}/api/items"], capture_output=True, text=True)
    assert '"after"' in post.stdout, post
    assert pg_dumpall(testbed, swarm.project) != before
    swarm("db.restore", dump.name, "--yes", "--force", timeout=600)
    assert pg_dumpall(testbed, swarm.project) == before
    assert served(testbed, swarm.http_port) == {"h1": "1.0.0", "h2": "1.0.0"}


def test_drain_a_node_and_make_it_active_again_under_load(swarm, testbed):
    project, h3 = swarm.project, swarm.ids["h3"]
    before = tasks_on(testbed, project, h3)
    assert before, "no task on h3 to move"
    results: dict = {}
    try:
        with traffic_through_edges(testbed, swarm.http_port, results):
            on_manager(testbed, f"docker node update --availability drain {h3}")
            wait_converged(testbed, project, "h3's tasks rescheduled on the other nodes", timeout=120,
                           also=lambda: not tasks_on(testbed, project, h3))
            wait_for("h3's containers stopped", lambda: not ssh(testbed, "h3", f"docker ps -q --filter label={STACK_LABEL}={project}").stdout.strip(),
                     timeout=60)
            status = swarm("swarm.status").stdout
            assert "drain" in line_of(status, testbed["addrs"]["h3"]), status
            on_manager(testbed, f"docker node update --availability active {h3}")
            assert nodes(testbed)[h3].availability == "active"
    finally:
        on_manager(testbed, f"docker node update --availability active {h3}", check=False)
    assert_edges_clean(testbed, project, results)
    assert served(testbed, swarm.http_port) == {"h1": "1.0.0", "h2": "1.0.0"}
    # Swarm's counts settle seconds after a drain's moves (seen: no task failed, every ended task one the drain shut
    # down, yet a service short for over 5 s): converged within a minute, and a failure names the tasks Swarm ended.
    assert wait_converged(testbed, project, "the stack converged", timeout=60) == {
        "backend": "3/3", "web": "4/4", "nginx": "2/2", "postgres": "1/1", "redis": "1/1"}


def test_scale_to_10_and_back_to_3_under_load(swarm, testbed):
    project = swarm.project
    results: dict = {}
    with traffic_through_edges(testbed, swarm.http_port, results):
        swarm("scale", "--backend", "10", timeout=600)
        assert replicas(testbed, project)["backend"] == "10/10"
        assert len([t for t in tasks(testbed, project) if t.service == "backend" and t.state == "running"]) == 10
        swarm("scale", "--backend", "3", timeout=600)
        assert replicas(testbed, project)["backend"] == "3/3"
    assert_edges_clean(testbed, project, results)
    running = [t for t in tasks(testbed, project) if t.service == "backend"]
    assert len(running) == 3 and all(t.state == "running" for t in running), running
    assert served(testbed, swarm.http_port) == {"h1": "1.0.0", "h2": "1.0.0"}


def test_a_node_cut_off_for_30_s_under_load(swarm, testbed):
    """h3's link down for 30 s: h1 and h2 keep serving, Swarm reschedules h3's tasks on
    them; the link up again, h3 is Ready and its stale tasks stopped. No request fails
    but the responses h3's tasks were in the middle of sending when it vanished: nginx had
    passed their status and first bytes on, so no proxy can finish or retry them (seen: 0
    to 3 pages the web service was streaming); each must show in nginx's error log as cut
    short by a task of h3, and the requests that had not begun to be answered are retried
    on another task."""
    project, h3 = swarm.project, swarm.ids["h3"]
    if not tasks_on(testbed, project, h3):  # the drain moved them all and the scale left none there
        on_manager(testbed, f"docker service update --detach=false --quiet --force {project}_web", check=True)
    before = tasks_on(testbed, project, h3)
    assert before, "no task on h3"
    results: dict = {}
    try:
        with traffic_through_edges(testbed, swarm.http_port, results):
            link("h3", "down")
            cut = time.monotonic()
            wait_for("h3 seen down by the manager", lambda: nodes(testbed)[h3].state == "down", timeout=60)
            wait_for("h3's tasks rescheduled on h1 and h2", lambda: not tasks_on(testbed, project, h3) and converged(testbed, project),
                     timeout=90)
            assert served(testbed, swarm.http_port) == {"h1": "1.0.0", "h2": "1.0.0"}
            time.sleep(max(0.0, 30 - (time.monotonic() - cut)))
            link("h3", "up")
            wait_for("h3 Ready again", lambda: nodes(testbed)[h3].state == "ready", timeout=90)
            stale = {t.id for t in before}
            wait_for("h3's stale containers stopped", lambda: not stale & set(
                ssh(testbed, "h3", f"docker ps --filter label={STACK_LABEL}={project} --format '{{{{.Label \"com.docker.swarm.task.id\"}}}}'")
                .stdout.split()), timeout=60)
    finally:
        link("h3", "up")
    cut_short = assert_edges_clean(testbed, project, results, lost={a for t in before for a in t.addresses})
    print(f"responses cut short by h3's loss: {cut_short}")
    assert converged(testbed, project) == {"backend": "3/3", "web": "4/4", "nginx": "2/2", "postgres": "1/1", "redis": "1/1"}
    assert served(testbed, swarm.http_port) == {"h1": "1.0.0", "h2": "1.0.0"}
