"""The library's import graph goes one way: no module imports a name from a layer above
its own (docs/design.md: base, commands, config, engine, state, fleet,
stack, database, release, the checklist); the command builders import nothing above the base."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LAYERS = [
    ("deploy.errors", "deploy.output", "deploy.versions", "deploy.atomic", "deploy.retention", "deploy.validators", "deploy.defaults"),  # base
    ("deploy.engine.commands",),  # pure argv builders
    ("deploy.config",),
    ("deploy.engine",),
    ("deploy.state",),
    ("deploy.fleet",),
    ("deploy.stack", "deploy.loadtest"),  # the stack's parts; a load test of its URL
    ("deploy.database",),
    ("deploy.release", "deploy.swarm"),  # deploys and rollbacks; Swarm's side of them
    ("deploy.checklist",),  # the production checklist reads every part of a stage
]


def layer_of(module: str) -> int:
    best = (-1, -1)  # (prefix length, layer)
    for i, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best[0]:
                best = (len(prefix), i)
    if best[1] < 0:
        raise AssertionError(f"{module} is in no layer: add it to LAYERS")
    return best[1]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported(path: Path) -> list[str]:
    """Every deploy.* module ``path`` imports (``from deploy.x import y`` counts y when it
    is a module)."""
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("deploy") and node.level == 0:
            for alias in node.names:
                candidate = f"{node.module}.{alias.name}"
                is_module = (ROOT / Path(*candidate.split("."))).with_suffix(".py").is_file() or (ROOT / Path(*candidate.split("."))).is_dir()
                names.append(candidate if is_module else node.module)
        elif isinstance(node, ast.Import):
            names += [a.name for a in node.names if a.name.startswith("deploy")]
    return names


MODULES = sorted((ROOT / "deploy").rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: module_name(p))
def test_no_import_from_a_layer_above(path: Path) -> None:
    mine = module_name(path)
    above = [m for m in imported(path) if m != "deploy" and layer_of(m) > layer_of(mine)]
    assert not above, f"{mine} (layer {layer_of(mine)}) imports from layers above it: {above}"


def test_layer_check_catches_an_upward_import(tmp_path: Path) -> None:
    assert layer_of("deploy.release.deploy") > layer_of("deploy.stack.rollout") > layer_of("deploy.engine.stack")
    assert layer_of("deploy.engine.commands.compose") < layer_of("deploy.config.settings")
