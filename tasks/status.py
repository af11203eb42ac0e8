from invoke import Context, Exit, task

from deploy import health as healthmod
from deploy.commands import docker
from deploy.facts import parse_stats
from deploy.output import mark, table
from deploy.status import human_duration, summarize
from tasks._common import helps, open_stack


@task(help=helps())
def status(c: Context, stage: str | None = None, env_file: str | None = None) -> None:
    """Per service: desired/running/healthy replicas, image and version, uptime, ports."""
    stack = open_stack(c, stage, env_file)
    statuses = summarize(stack.settings.config.services, stack.containers(), stack.desired())
    table(
        f"{stack.settings.config.project} ({stack.settings.stage.name}) on {stack.target.name}",
        ["service", "desired", "running", "healthy", "image", "version", "uptime", "ports"],
        (
            (
                s.service,
                s.desired,
                s.running,
                f"{s.healthy}" if s.ok else f"[red]{s.healthy}[/red]",
                "\n".join(s.images) or "-",
                ", ".join(s.versions) or "-",
                human_duration(s.uptime),
                "\n".join(s.ports) or "-",
            )
            for s in statuses
        ),
    )


@task(help=helps())
def health(c: Context, stage: str | None = None, env_file: str | None = None) -> None:
    """Every container's health plus HTTP checks through the proxy; exits 1 naming what is unhealthy."""
    stack = open_stack(c, stage, env_file)
    containers = stack.containers()
    statuses = summarize(stack.settings.config.services, containers, stack.desired())
    checks = healthmod.container_checks(containers) + healthmod.replica_checks(statuses) + healthmod.http_checks(stack)
    table("health", ["", "what", "detail"], ((mark(ch.ok), ch.subject, ch.detail) for ch in checks))
    bad = [ch.subject for ch in checks if not ch.ok]
    if bad:
        raise Exit(f"unhealthy: {', '.join(bad)}\n  fix: see `inv logs SERVICE` for each", code=1)


@task(help=helps(watch="stream live figures until Ctrl-C"))
def stats(c: Context, watch: bool = False, stage: str | None = None, env_file: str | None = None) -> None:
    """CPU, memory, network and disk I/O of the stack's running containers."""
    stack = open_stack(c, stage, env_file)
    ids = [ct.id for ct in stack.containers() if ct.state == "running"]
    if not ids:
        raise Exit("no running containers\n  fix: start the stack with `inv up`", code=1)
    if watch:
        stack.target.run(docker.stats(ids, stream=True), hide=False, pty=True, warn=True)
        return
    rows = parse_stats(stack.run(docker.stats(ids), what="reading stats").stdout)
    table(
        "stats",
        ["container", "cpu", "memory", "mem %", "net i/o", "block i/o", "pids"],
        ((r.name, r.cpu, r.memory, r.memory_percent, r.net_io, r.block_io, r.pids) for r in rows),
    )
