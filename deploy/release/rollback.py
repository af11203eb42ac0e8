"""``inv rollback``: return a fleet's app hosts to a kept successful release, with the
same steps a deploy switches hosts with (upload, pull, rollout in batches, verify), all
or nothing, under the deploy lock and in the release history."""
from __future__ import annotations

from deploy.engine.commands import images as image_cmds
from deploy.engine.images import app_images
from deploy.engine.ops import Executor
from deploy.engine.steps import perform
from deploy.errors import fail
from deploy.fleet import Fleet
from deploy.release.deploy import DeployOptions
from deploy.release.record import new_release, run_recorded
from deploy.release.switch import switch_for
from deploy.state import history
from deploy.state.history import Release


def rollback_target(fleet: Fleet, version: str | None) -> str:
    """The release to return to: ``version`` (a successful release whose images are still
    on the local engine; hosts pull theirs from the registry), or the successful release
    before the one now serving."""
    stack = fleet.primary.stack
    done = history.successful_versions(stack)
    serving = history.current(stack)
    names = [] if fleet.remote else app_images(fleet.here)  # hosts pull theirs from the registry

    def images_kept(version: str) -> bool:
        return all(stack.target.run(image_cmds.exists(n.ref(version)), warn=True).ok for n in names)

    available = [v for v in done if images_kept(v)]
    listing = ", ".join(available) or "none"
    if version is None:
        earlier = [v for v in done if not serving or v != serving.version]
        if not earlier:
            fail("there is no earlier successful release to roll back to", f"releases with images here: {listing}")
        version = earlier[-1]
    if version not in done:
        fail(f"{version} is not a successful release in the history", f"roll back to one of: {listing}")
    if version not in available:
        fail(f"the images of {version} are gone from this engine", f"roll back to one of: {listing}")
    return version


def rollback(fleet: Fleet, version: str | None, options: DeployOptions, executor: Executor) -> Release | None:
    """Return every app host of ``fleet`` to ``version`` (None: the previous release),
    its images by the digests its deploy recorded (a tag moved in the registry since
    changes nothing); a dry run prints the steps' ops and returns None."""
    target = rollback_target(fleet, version)
    entries = history.history(fleet.primary.stack)
    pins = history.pins(entries, target)
    new = fleet.with_env(APP_VERSION=target)
    switch = switch_for(fleet, new, target, options.timeout, options.parallel, pins)
    apps = new.with_role("app")
    steps = [switch.upload_step(apps), switch.pull_step(apps), switch.roll_step(), switch.verify_step()]
    if executor.dry_run:
        perform(steps, executor)
        return None
    kept = [r for r in entries if r.version == target and r.status == "success" and r.images]
    images = kept[-1].images if kept else {n.service: n.ref(target) for n in app_images(fleet.here)}
    digests = {service: pin.digest for service, pin in pins.items()}
    release = new_release(fleet, target, "rollback")

    def finish() -> None:
        release.images.update(images)
        release.digests.update(digests)

    run_recorded(fleet, release, steps, switch, executor, finish=finish)
    return release
