"""The layers stay visible in the tree: imports flow one way and never in a circle.

The walk reads every module's imports with :mod:`ast` (imports inside functions included: a lazy
import is still a dependency), so it needs nothing installed and sees what a reader sees.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("drivers", "sequences", "data", "hil")

# Lower number = lower layer. A module may import modules of a lower layer, or of its own group;
# siblings of one layer (training and characterisation, emulator and sequences) stay apart.
LAYERS = {
    "drivers": 0,
    "data": 0,
    "hil": 1,  # the shared foundation: hil/*.py (errors, bench file, network encoding, ...)
    "hil.backends": 2,
    "sequences": 3,
    "hil.emulator": 3,
    "hil.training": 4,
    "hil.characterization": 4,
    "hil.studies": 5,
    "hil.watch": 5,
    "hil.cli": 6,
}


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(root: Path, packages: tuple[str, ...] = PACKAGES) -> dict[str, set[str]]:
    """Each project module and the project modules it imports."""
    files = {module_name(f, root): f for pkg in packages for f in (root / pkg).rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        is_pkg = path.name == "__init__.py"
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = name.split(".")[: len(name.split(".")) - node.level + is_pkg]
                    base = ".".join([*anchor, base] if base else anchor)
                targets = [f"{base}.{a.name}" for a in node.names] + [base]
            else:
                continue
            for target in targets:
                # the longest project module the dotted name starts with
                while target and target not in files:
                    target = target.rpartition(".")[0]
                if target and target != name:
                    deps.add(target)
        graph[name] = deps
    return graph


def group(module: str) -> str:
    parts = module.split(".")
    if parts[0] == "hil" and len(parts) > 1 and ".".join(parts[:2]) in LAYERS:
        return ".".join(parts[:2])
    return parts[0]


def forbidden(graph: dict[str, set[str]]) -> list[str]:
    """Imports from a module to one of a higher layer, or to a sibling group of the same layer."""
    bad = []
    for src, deps in sorted(graph.items()):
        for dst in sorted(deps):
            gs, gd = group(src), group(dst)
            if gs != gd and LAYERS[gd] >= LAYERS[gs]:
                bad.append(f"{src} ({gs}, layer {LAYERS[gs]}) imports {dst} "
                           f"({gd}, layer {LAYERS[gd]})")
    return bad


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of two or more modules, as one cycle through it."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan; the project is small enough for recursion
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(_cycle_through(sorted(component), graph))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def _cycle_through(component: list[str], graph: dict[str, set[str]]) -> list[str]:
    """A closed path through the component's first module, for a message a reader can follow."""
    members, start = set(component), component[0]
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(graph[v] & members):
                if w == start:
                    return [*paths[v], start]
                if w not in paths:
                    paths[w] = [*paths[v], w]
                    nxt.append(w)
        frontier = nxt
    raise AssertionError("a strongly connected component always closes")


def test_project_imports_have_no_cycle():
    found = cycles(import_graph(ROOT))
    assert not found, "import cycles: " + "; ".join(" -> ".join(c) for c in found)


def test_project_imports_flow_down_the_layers():
    bad = forbidden(import_graph(ROOT))
    assert not bad, "imports against the layers:\n" + "\n".join(bad)


def test_every_module_belongs_to_a_layer():
    assert {group(m) for m in import_graph(ROOT)} <= set(LAYERS)


def test_hil_top_level_stays_small():
    modules = sorted(p.name for p in (ROOT / "hil").glob("*.py"))
    assert len(modules) <= 8, modules


def _tree(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


@pytest.fixture
def old_layout(tmp_path: Path) -> Path:
    """The cycle the flat layout had: the interface module built its own implementations."""
    return _tree(tmp_path, {
        "hil/__init__.py": "",
        "hil/backend.py": "def make_backend():\n    from hil.sim import SimBackend\n",
        "hil/sim.py": "from hil.backend import Backend\n",
        "drivers/__init__.py": "",
        "drivers/errors.py": "from hil.errors import HilError\n",
        "hil/errors.py": "",
    })


def test_walk_finds_the_old_cycle_and_names_it(old_layout):
    graph = import_graph(old_layout, ("drivers", "hil"))
    assert cycles(graph) == [["hil.backend", "hil.sim", "hil.backend"]]


def test_walk_finds_a_driver_importing_hil(old_layout):
    bad = forbidden(import_graph(old_layout, ("drivers", "hil")))
    assert bad == ["drivers.errors (drivers, layer 0) imports hil.errors (hil, layer 1)"]


def test_walk_resolves_relative_and_package_imports(tmp_path):
    root = _tree(tmp_path, {
        "hil/__init__.py": "",
        "hil/backends/__init__.py": "from . import base\n",
        "hil/backends/base.py": "",
        "hil/backends/sim.py": "from .base import X\nfrom hil.backends import base\n",
        "hil/cli/__init__.py": "",
        "hil/cli/main.py": "import hil.backends.sim as s\n",
    })
    graph = import_graph(root, ("hil",))
    assert graph["hil.backends"] == {"hil.backends.base"}
    assert graph["hil.backends.sim"] == {"hil.backends.base", "hil.backends"}
    assert graph["hil.cli.main"] == {"hil.backends.sim"}
    graph["hil.backends.base"].add("hil.cli.main")
    assert forbidden(graph) == [
        "hil.backends.base (hil.backends, layer 2) imports hil.cli.main (hil.cli, layer 6)"]
