"""Build, pull, start and stop the stack, as ops (run them with an ``Executor``)."""
from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

from deploy.engine.commands import compose
from deploy.engine.commands import images as image_cmds
from deploy.engine.facts import parse_hashes
from deploy.engine.images import Pinned
from deploy.engine.ops import Note, Ops, run
from deploy.engine.stack import Stack
from deploy.engine.upload import upload
from deploy.errors import fail
from deploy.fleet import Fleet, on_each
from deploy.output import human_bytes
from deploy.stack.health import serving
from deploy.stack.rollout import admit, retire, rollout, victims
from deploy.stack.routing import proxy_container, route
from deploy.state import history


def build(stack: Stack, services: Sequence[str] = (), no_cache: bool = False) -> Ops[None]:
    """Build the images from source (on this machine's engine), output shown; then the
    time it took and the size of each image built."""
    stack.settings.config.check_services(list(services))
    started = time.monotonic()
    yield run(stack, compose.build(stack.project, services, no_cache=no_cache), what="building images",
              fix="read the build output above; fix the Dockerfile or the build context", show=True)
    seconds = time.monotonic() - started
    built = {name: spec["image"] for name, spec in stack.config().get("services", {}).items()
             if "build" in spec and "image" in spec and (not services or name in services)}
    sizes = [f"{name} {image_size(stack, ref)}" for name, ref in sorted(built.items())]
    yield Note(f"built in {seconds:.1f} s: {', '.join(sizes) or 'no image'}")


def image_size(stack: Stack, ref: str) -> str:
    """An image's size for people, or "?" when the engine cannot tell."""
    result = stack.target.run(image_cmds.size(ref), warn=True)
    return human_bytes(int(result.stdout)) if result.ok and result.stdout.strip().isdigit() else "?"


def pull(stack: Stack, services: Sequence[str], pins: Mapping[str, Pinned]) -> Ops[None]:
    """On a host: pull the services' images (of the release the stack names). The one
    place a host gets an app image: one its release pushed (``pins``) is pulled by the
    digest it was pushed as and tagged as the compose files name it, so a tag moved in
    the registry since (another stage's push of the same version) changes nothing here;
    the others (the proxy, the stateful services, a release recorded without digests)
    by their tags, with Compose."""
    fix = "check that the host reaches the registry (DOCKER_REGISTRY) and that the images were pushed (inv push)"
    for s in [s for s in services if s in pins]:
        pin = pins[s]
        yield run(stack, image_cmds.pull(pin.digest), what=f"pulling {pin.digest}", fix=fix)
        yield run(stack, image_cmds.tag(pin.digest, pin.ref), what=f"tagging {pin.ref}")
    rest = [s for s in services if s not in pins]
    if rest:
        yield run(stack, compose.pull(stack.project, rest), what="pulling images", fix=fix)


def up(stack: Stack, build: bool = False, services: Sequence[str] = (), pins: Mapping[str, Pinned] | None = None) -> Ops[None]:
    """Start (or update) the services (all: every one) and wait until they are healthy.

    Replica counts set with ``inv scale`` are applied, so they survive an ``up``. On a
    host, only its role's services, after uploading the files and pulling the images
    (the app images by the digests the release was pushed as: ``pins``).
    Running stateless services whose configuration changed are replaced with the
    zero-downtime rollout, not recreated by Compose; the routing is written before (a
    proxy that ``up`` starts or recreates reads it) and after.
    """
    if not stack.target.local:
        yield from upload(stack)
        yield from pull(stack, services, pins or {})
    timeout = stack.settings.config.up_timeout
    changed = changed_stateless(stack, services)
    scale = {k: v for k, v in stack.saved_scale().items() if (not services or k in services) and k not in changed}
    if changed:
        services = [s for s in (services or list(stack.config().get("services", {}))) if s not in changed]
    # More containers than wanted (a rollout killed after its new ones started): Compose
    # would remove the extra ones while they may be routed; take them out properly first.
    stateless = [s for s in stack.settings.config.stateless if (not services or s in services) and s not in changed]
    desired = stack.desired() if stateless else {}
    extra = victims(stack.containers(), {s: desired.get(s, 1) for s in stateless})
    if extra:
        yield Note(f"removing {len(extra)} container(s) beyond the wanted counts: {', '.join(extra)}")
        yield from retire(stack, extra)
    # Applied now to a proxy that stays; one that `up` creates or recreates reads it at start.
    yield from route(stack, apply=proxy_stays(stack))
    argv = compose.up(stack.project, services, build=build, scale=scale, no_deps=bool(services), wait_timeout=timeout)
    yield run(stack, argv, what="starting the stack", fix="see `inv health` and `inv logs SERVICE`", show=True)
    if changed:
        yield Note(f"{', '.join(changed)} changed: replacing their containers without downtime")
        yield from rollout(stack, changed, timeout)
    yield from admit(stack, timeout)  # what `up` started joins once probed


def proxy_stays(stack: Stack) -> bool:
    """The proxy runs and its configuration is the compose files' (``up`` leaves it be)."""
    proxy = stack.settings.config.proxy.service
    running = [c for c in stack.containers() if c.service == proxy and c.state == "running"]
    if not running:
        return False
    wanted = parse_hashes(stack.run(compose.config_hashes(stack.project, [proxy]), what=f"hashing {proxy}").stdout)
    return all(c.config_hash == wanted.get(proxy) for c in running)


def changed_stateless(stack: Stack, services: Sequence[str] = ()) -> list[str]:
    """The running stateless services (of ``services``; all when empty) whose containers
    were made from another configuration than the compose files give now."""
    stateless = [s for s in stack.settings.config.stateless if not services or s in services]
    running = [c for c in stack.containers() if c.state == "running" and c.service in stateless]
    if not running:
        return []
    wanted = parse_hashes(stack.run(compose.config_hashes(stack.project, sorted({c.service for c in running})),
                                    what="hashing the app services").stdout)
    return sorted({c.service for c in running if c.config_hash != wanted.get(c.service)})


def up_fleet(fleet: Fleet, build: bool = False) -> Ops[None]:
    """``up`` on every chosen host, the db host first (what the apps need); on a host only
    its role's services."""
    if build and fleet.remote:
        fail("--build builds on this machine's engine; hosts pull their images from the registry",
             f"build and push with inv deploy --stage {fleet.settings.stage.name} --version X.Y.Z, or drop --build")
    pins = history.pins(history.history(fleet.primary.stack), fleet.here.settings.env.get("APP_VERSION", "")) if fleet.remote else {}
    for batch in fleet.ordered():
        if batch:
            yield on_each(fleet, batch, lambda m: up_serving(m.stack, build, () if m.stack.target.local else m.services(), pins), "up")


def up_serving(stack: Stack, build: bool, services: Sequence[str], pins: Mapping[str, Pinned]) -> Ops[None]:
    """``up``, then the check that the host serves through its proxy (where it runs one)."""
    yield from up(stack, build, services, pins)
    yield from serving(stack)


def down_fleet(fleet: Fleet, volumes: bool = False) -> Ops[None]:
    """``down`` on every chosen host."""
    yield on_each(fleet, fleet.members, lambda m: down(m.stack, volumes), "down")


def start_proxy(stack: Stack, timeout: float) -> Ops[None]:
    """Start the proxy if it is not running (a first deploy); a running one is left as it is."""
    proxy = stack.settings.config.proxy.service
    yield from route(stack)
    if proxy_container(stack.settings.config, stack.containers()) is not None:
        return
    yield run(stack, compose.up(stack.project, [proxy], no_recreate=True, no_deps=True, wait_timeout=int(timeout)),
              what=f"starting {proxy}", fix=f"see inv logs {proxy}")


def down(stack: Stack, volumes: bool = False) -> Ops[None]:
    """Stop and remove the project's containers on the target; volumes (the database!)
    only when asked (the task asks for the database's name first)."""
    yield run(stack, compose.down(stack.project, volumes=volumes), what="stopping the stack", show=True)
