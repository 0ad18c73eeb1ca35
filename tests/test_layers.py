"""The shape of the package (docs/architecture.md): every module has a layer, imports nothing of a
higher layer, and the import graph has no cycle. Function-local imports count."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "mt3"

# Lowest first; a module may import its own layer and the ones before it.
LAYERS = (
    ("mt3.errors", "mt3.atomic", "mt3.cache", "mt3.allocator"),
    ("mt3.audio", "mt3.vocab", "mt3.notes"),
    (
        "mt3.events",
        "mt3.metrics",
        "mt3.spectrogram",
        "mt3.render",
        "mt3.pianoroll",
        "mt3.notation*",
    ),
    ("mt3.config", "mt3.outputs"),
    ("mt3.model", "mt3.model.t5", "mt3.model.decoding", "mt3.model.loss"),
    ("mt3.model.store", "mt3.model.convert", "mt3.hub"),
    (
        "mt3.data",
        "mt3.data.records",
        "mt3.data.synth",
        "mt3.data.datasets*",
        "mt3.data.prepare",
        "mt3.data.pipeline",
    ),  # fmt: skip
    ("mt3.infer",),
    ("mt3.evaluate", "mt3.app"),
    (
        "mt3.train",
        "mt3.train.optim",
        "mt3.train.tensorboard",
        "mt3.train.distributed",
        "mt3.train.train",
    ),
    ("mt3.demo",),
    ("mt3.cli*", "mt3", "mt3.__main__"),
)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def layer_of(module: str) -> int | None:
    for index, names in enumerate(LAYERS):
        for name in names:
            if module == name or (name.endswith("*") and module.startswith(name[:-1])):
                return index
    return None


def imports_of(module: str) -> set[str]:
    """The mt3 modules that ``module`` imports anywhere in its file."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
                base = f"{base}.{node.module}" if node.module else base
            # `from mt3.x import y` imports the submodule mt3.x.y when there is one.
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base
                     for a in node.names]  # fmt: skip
        else:
            continue
        found.update(n for n in names if n in MODULES and n != module)
    return found


GRAPH = {module: imports_of(module) for module in MODULES}


def test_every_module_has_a_layer():
    assert [m for m in MODULES if layer_of(m) is None] == []


def test_no_module_imports_a_higher_layer():
    upward = [
        f"{m} (layer {layer_of(m)}) imports {d} (layer {layer_of(d)})"
        for m, deps in GRAPH.items()
        for d in sorted(deps)
        if layer_of(d) > layer_of(m)
    ]
    assert upward == []


def test_no_import_cycles():
    state: dict[str, int] = {}  # 1: on the current path, 2: finished
    cycles = []

    def visit(module, path):
        state[module] = 1
        for dependency in sorted(GRAPH[module]):
            if state.get(dependency) == 1:
                cycles.append(" -> ".join([*path[path.index(dependency) :], dependency]))
            elif dependency not in state:
                visit(dependency, [*path, dependency])
        state[module] = 2

    for module in sorted(GRAPH):
        if module not in state:
            visit(module, [module])
    assert cycles == []


def test_the_checker_sees_function_local_imports():
    assert "mt3.model.store" in GRAPH["mt3.infer"]
    assert "mt3.train.train" in GRAPH["mt3.demo"]  # imported inside run_demo
