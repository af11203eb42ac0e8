"""Whose stack runs on an engine: the stage label of the project's containers
(``facts.STAGE_LABEL``, set from the stage the tasks act for).

Two stages with one Compose project on one engine (the local engine, or a host in both
inventories) are one stack: a production deploy there would back up the development
database and replace development's containers. So a task that changes a stage reads
the project's containers first and is refused when any carries another stage's label,
naming that stage; a task that only reads says so in a warning. Containers without the
label (made before stages were labelled, or by hand) are taken as the acting stage's:
the first task that replaces them labels them.
"""
from __future__ import annotations

from collections.abc import Sequence

from deploy.engine.facts import STAGE_LABEL
from deploy.engine.stack import Stack
from deploy.errors import fail
from deploy.fleet import Fleet, Member
from deploy.output import say, styled


def other_stages(stack: Stack) -> list[str]:
    """The stages other than ``stack``'s whose containers of its project run (or stopped) on its target."""
    mine = stack.settings.stage.name
    return sorted({c.stage for c in stack.containers() if c.stage and c.stage != mine})


def _engines(fleet: Fleet) -> Sequence[Member]:
    """The chosen members and the primary (it keeps the stage's lock and history)."""
    members = {m.name: m for m in fleet.members}
    members.setdefault(fleet.primary.name, fleet.primary)
    return list(members.values())


def _found(fleet: Fleet) -> dict[str, list[str]]:
    """Member name -> the other stages whose stack runs there (members without any left out)."""
    found = fleet.each(lambda m: other_stages(m.stack), what="reading whose stack runs", members=_engines(fleet), summary=False)
    return {name: stages for name, stages in found.items() if stages}


def _on(fleet: Fleet, name: str) -> str:
    return f"on {name}" if fleet.remote else "on the local engine"


def refuse_other_stage(fleet: Fleet) -> None:
    """Refuse to change the fleet's stage where another stage's stack of its project runs."""
    found = _found(fleet)
    if not found:
        return
    stage, project = fleet.settings.stage.name, fleet.settings.stage.project
    others = next(iter(found.values()))
    where = ", ".join(_on(fleet, n) for n in found)
    fail(f"the stack of project {project} {where} is stage {' and '.join(others)}'s, not {stage}'s "
         f"(its containers carry {STAGE_LABEL}={others[0]}): both stages use the Compose project {project} there; nothing was changed",
         f"give {stage} its own project (invoke.yaml deploy.stages.{stage}.project, e.g. {project}-{stage}), "
         f"or act on that stage (--stage {others[0]}), or remove its stack first (inv down --stage {others[0]})")


def warn_other_stage(fleet: Fleet) -> None:
    """Say (not refuse) where what runs as the fleet's stack is another stage's: a task that only reads."""
    stage, project = fleet.settings.stage.name, fleet.settings.stage.project
    for name, others in _found(fleet).items():
        say(styled("warning:", "yellow") + f" the stack of project {project} {_on(fleet, name)} is stage {' and '.join(others)}'s, "
            f"not {stage}'s: what follows is {others[0]}'s (give {stage} its own project: deploy.stages.{stage}.project)")
