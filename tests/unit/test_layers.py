"""The library's import graph goes one way: no module imports a name from a layer above
its own (docs/design.md: base, commands, config, engine, state, fleet,
stack, database, swarm, release, the checklist); the command builders import nothing above
the base. Inside a layer that lists several packages, the imports between those packages
go one way too: no cycle (a cycle would make them one package in all but name)."""
from __future__ import annotations

import ast
from collections import defaultdict, deque
from collections.abc import Mapping, Sequence
from itertools import pairwise
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
    ("deploy.swarm",),  # Swarm's side of deploys and rollbacks
    ("deploy.release",),  # deploys and rollbacks, on Compose hosts or a swarm
    ("deploy.checklist",),  # the production checklist reads every part of a stage
]


def place_of(module: str, layers: Sequence[tuple[str, ...]] = LAYERS) -> tuple[str, int]:
    """The LAYERS prefix ``module`` belongs to (the longest that matches) and its layer."""
    best = ("", -1)
    for i, prefixes in enumerate(layers):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > len(best[0]):
                best = (prefix, i)
    if best[1] < 0:
        raise AssertionError(f"{module} is in no layer: add it to LAYERS")
    return best


def layer_of(module: str) -> int:
    return place_of(module)[1]


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
    assert layer_of("deploy.release.switch") > layer_of("deploy.swarm.switch") > layer_of("deploy.engine.steps")


def prefix_edges(imports: Mapping[str, Sequence[str]], layers: Sequence[tuple[str, ...]] = LAYERS) -> dict[tuple[str, str], list[str]]:
    """The imports between different prefixes of one layer, ``(importer, imported)`` to
    the importing files; ``imports`` maps a file (deploy/x/y.py) to the modules it imports."""
    edges: dict[tuple[str, str], list[str]] = defaultdict(list)
    for file, modules in sorted(imports.items()):
        if module_name(ROOT / file) == "deploy":  # the package's __init__: in no layer
            continue
        mine, my_layer = place_of(module_name(ROOT / file), layers)
        for module in modules:
            if module == "deploy":
                continue
            theirs, their_layer = place_of(module, layers)
            if their_layer == my_layer and theirs != mine and file not in edges[(mine, theirs)]:
                edges[(mine, theirs)].append(file)
    return dict(edges)


def cycles(edges: Mapping[tuple[str, str], Sequence[str]]) -> list[list[str]]:
    """Each import cycle in ``edges``, once, as the prefixes in order with the first one
    repeated at the end (a -> b -> a); the shortest cycle through each edge that has one."""
    graph: dict[str, set[str]] = defaultdict(set)
    for a, b in edges:
        graph[a].add(b)
    found: dict[frozenset[str], list[str]] = {}
    for a, b in sorted(edges):
        back = {b: b}  # a breadth-first search from b back to a; node -> predecessor
        queue = deque([b])
        while queue and a not in back:
            node = queue.popleft()
            for step in sorted(graph[node]):
                if step not in back:
                    back[step] = node
                    queue.append(step)
        if a in back:
            path = [a]
            while path[-1] != b:
                path.append(back[path[-1]])
            cycle = [a, *reversed(path)]  # a -> b -> ... -> a
            found.setdefault(frozenset(cycle), cycle)
    return list(found.values())


def describe(cycle: Sequence[str], edges: Mapping[tuple[str, str], Sequence[str]]) -> str:
    hops = "; ".join(f"{a} -> {b} in {', '.join(edges[(a, b)])}" for a, b in pairwise(cycle))
    return f"{' -> '.join(cycle)} ({hops})"


def test_no_import_cycle_inside_a_layer() -> None:
    """Two packages in one layer may use each other one way only: the layer check cannot
    see a cycle between them, so this one does (move the shared part to a lower layer)."""
    edges = prefix_edges({str(path.relative_to(ROOT)): imported(path) for path in MODULES})
    found = cycles(edges)
    assert not found, "import cycles between the packages of one layer: " + " | ".join(describe(c, edges) for c in found)


def test_cycle_check_catches_a_cycle_between_packages_of_one_layer() -> None:
    """The layout before issue 25: release and swarm in one layer, release/steps.py used by
    swarm/switch.py while release/ imports swarm/switch.py."""
    old = [*LAYERS[: layer_of("deploy.swarm")], ("deploy.release", "deploy.swarm"), *LAYERS[layer_of("deploy.release") + 1 :]]
    imports = {
        "deploy/release/deploy.py": ["deploy.release.steps", "deploy.swarm.switch", "deploy.stack.lifecycle"],
        "deploy/release/switch.py": ["deploy.release.steps", "deploy.swarm.switch"],
        "deploy/release/steps.py": ["deploy.engine.ops"],
        "deploy/swarm/switch.py": ["deploy.release.steps", "deploy.swarm.facts"],
        "deploy/swarm/facts.py": ["deploy"],
        "deploy/__init__.py": [],
    }
    edges = prefix_edges(imports, old)
    assert edges == {
        ("deploy.release", "deploy.swarm"): ["deploy/release/deploy.py", "deploy/release/switch.py"],
        ("deploy.swarm", "deploy.release"): ["deploy/swarm/switch.py"],
    }
    assert cycles(edges) == [["deploy.release", "deploy.swarm", "deploy.release"]]
    assert describe(cycles(edges)[0], edges) == (
        "deploy.release -> deploy.swarm -> deploy.release (deploy.release -> deploy.swarm in "
        "deploy/release/deploy.py, deploy/release/switch.py; deploy.swarm -> deploy.release in deploy/swarm/switch.py)"
    )
    del imports["deploy/swarm/switch.py"]  # one way only: no cycle
    assert cycles(prefix_edges(imports, old)) == []
    three = {("a", "b"): ["a.py"], ("b", "c"): ["b.py"], ("c", "a"): ["c.py"], ("c", "d"): ["c.py"]}
    assert cycles(three) == [["a", "b", "c", "a"]]
