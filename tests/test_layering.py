"""The rings of docs/design.md, enforced on packages: every import of every module (lazy ones too).

A module's ring is its package's (``RINGS``), or its own where ``STRICTER`` holds it lower. A module
may import farm modules of its ring or a lower one, and third-party code as its ring allows:

- pure: the standard library, numpy, scipy, scikit-learn, nothing else;
- effects: anything but Ray; torch and its kin only under ``farm/training/``;
- ray: ``farm/cluster/``, the only package that imports ``ray``;
- top: ``farm/commands/`` and ``farm/cli.py``, anything but Ray itself (they reach Ray through
  ``farm.cluster``).

There are no import cycles between modules, function-level imports included, and a function-level
import carries a comment saying why it is not at the top (the lazy torch/Ray imports that keep
``import farm`` light).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "farm"
ORDER = ("pure", "effects", "ray", "top")
RINGS = {
    "farm": "pure",
    "farm.errors": "pure",
    "farm.stopwatch": "pure",
    "farm.mico": "pure",
    "farm.privacy": "pure",
    "farm.spec": "pure",
    "farm.attacks": "pure",
    "farm.defences": "pure",
    "farm.challenge": "effects",
    "farm.store": "effects",
    "farm.training": "effects",
    "farm.config": "effects",
    "farm.shadows": "effects",
    "farm.report": "effects",
    "farm.cluster": "ray",
    "farm.commands": "top",
    "farm.cli": "top",
}
# Modules held to a lower ring than their package's.
STRICTER = {
    "farm.shadows.plans": "pure",
    "farm.cluster.queue": "pure",
    "farm.cluster.progress": "pure",
}
PURE_THIRD_PARTY = {"numpy", "scipy", "sklearn"}
TORCH = {"torch", "transformers", "opacus", "tokenizers", "accelerate"}  # only under farm/training/
TORCH_PACKAGES = {"farm.training"}


@dataclass(frozen=True)
class Imported:
    line: int
    module: str  # dotted, absolute (relative imports resolved inside farm)
    lazy: bool  # inside a function or class body
    commented: bool  # a comment on its line or the line above


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def all_modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _resolve(node: ast.ImportFrom, name: str, known: set[str]) -> str:
    base = ".".join(name.split(".")[: len(name.split(".")) - node.level + 1]) if node.level else ""
    module = ".".join(p for p in (base, node.module or "") if p)
    return module


def imports(path: Path, name: str = "farm.x", known: set[str] | None = None) -> list[Imported]:
    """Every import statement anywhere in the file; ``from pkg import mod`` names the module."""
    known = set(all_modules()) if known is None else known
    text = path.read_text()
    lines = text.splitlines()
    tree = ast.parse(text, str(path))
    lazy_nodes = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            lazy_nodes |= {id(n) for n in ast.walk(node) if n is not node}
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, (ast.Import, ast.ImportFrom)):
            continue
        here = lines[node.lineno - 1] + "\n" + "\n".join(lines[node.lineno - 1 : node.end_lineno])
        above = lines[node.lineno - 2] if node.lineno > 1 else ""
        commented = "#" in here or above.lstrip().startswith("#")
        lazy = id(node) in lazy_nodes
        if isinstance(node, ast.Import):
            found += [Imported(node.lineno, a.name, lazy, commented) for a in node.names]
            continue
        module = _resolve(node, name, known) if node.level else node.module or ""
        for alias in node.names:
            sub = f"{module}.{alias.name}"
            found.append(Imported(node.lineno, sub if sub in known else module, lazy, commented))
    return sorted(set(found), key=lambda imp: imp.line)


def ring_of(module: str) -> str:
    if module in STRICTER:
        return STRICTER[module]
    parts = module.split(".")
    for n in range(len(parts), 0, -1):
        if ".".join(parts[:n]) in RINGS:
            return RINGS[".".join(parts[:n])]
    raise KeyError(module)


def _package(module: str) -> str:
    return next(
        (p for p in RINGS if p != "farm" and (module == p or module.startswith(p + "."))), "farm"
    )


def violations(path: Path, module: str, known: set[str] | None = None) -> list[str]:
    """``"file:line imports X"`` for each import the module's ring forbids."""
    ring = ORDER.index(ring_of(module))
    bad = []
    for imp in imports(path, module, known):
        top = imp.module.split(".")[0]
        if top == "farm":
            ok = ORDER.index(ring_of(imp.module)) <= ring
        elif top == "ray":
            ok = ring_of(module) == "ray"
        elif top in TORCH:
            ok = _package(module) in TORCH_PACKAGES
        elif ORDER[ring] == "pure":
            ok = top in sys.stdlib_module_names or top in PURE_THIRD_PARTY or top == "__future__"
        else:
            ok = True
        if not ok:
            bad.append(f"{path.name}:{imp.line} imports {imp.module}")
    return bad


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1 or v in graph.get(v, ()):
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def import_graph() -> dict[str, set[str]]:
    """Module -> the farm modules it imports, with the packages Python runs first (``farm.a.b``
    runs ``farm/a/__init__.py``)."""
    modules = all_modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets = set()
        for imp in imports(path, name, set(modules)):
            if imp.module.split(".")[0] != "farm":
                continue
            parts = imp.module.split(".")
            targets |= {".".join(parts[:n]) for n in range(1, len(parts) + 1)} & set(modules)
        graph[name] = targets - {name}
    return graph


def test_every_module_is_in_a_ring():
    unplaced = []
    for name in all_modules():
        try:
            ring_of(name)
        except KeyError:
            unplaced.append(name)
    assert not unplaced, f"place {unplaced} in RINGS"
    assert set(RINGS) <= set(all_modules()), sorted(set(RINGS) - set(all_modules()))


def test_every_module_imports_only_what_its_ring_allows():
    known = set(all_modules())
    found = [v for name, path in all_modules().items() for v in violations(path, name, known)]
    assert not found, "\n".join(found)


def test_there_are_no_import_cycles():
    found = cycles(import_graph())
    assert not found, "\n".join(" <-> ".join(c) for c in found)


def test_every_function_level_import_says_why():
    known = set(all_modules())
    silent = [
        f"{path.relative_to(PACKAGE.parent)}:{imp.line} {imp.module}"
        for name, path in all_modules().items()
        for imp in imports(path, name, known)
        if imp.lazy and not imp.commented
    ]
    assert not silent, "move to the top or comment why not:\n" + "\n".join(silent)


def test_the_checker_fails_a_pure_module_that_imports_anything_non_pure(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text(
        "import os\nimport numpy as np\nfrom farm.errors import SpecError\nfrom farm.mico import "
        "scorer\nimport yaml\ndef f():\n    import torch\n    from farm.commands import "
        "attack\nclass C:\n    def g(self):\n        from farm.store.store import Store\n        "
        "import farm.training.infer\nif True:\n    from transformers import AutoModel\n"
    )
    found = violations(bad, "farm.mico.scorer")
    assert found == [
        "bad.py:5 imports yaml",
        "bad.py:7 imports torch",
        "bad.py:8 imports farm.commands.attack",
        "bad.py:11 imports farm.store.store",
        "bad.py:12 imports farm.training.infer",
        "bad.py:14 imports transformers",
    ]
    assert violations(bad, "farm.commands.attack") == [
        "bad.py:7 imports torch",
        "bad.py:14 imports transformers",
    ]
    assert violations(bad, "farm.training.train") == ["bad.py:8 imports farm.commands.attack"]
    ray = tmp_path / "ray_user.py"
    ray.write_text("def f():\n    import ray.tune\n")
    assert violations(ray, "farm.store.run_job") == ["ray_user.py:2 imports ray.tune"]
    assert violations(ray, "farm.cli") == ["ray_user.py:2 imports ray.tune"]
    assert violations(ray, "farm.cluster.executor") == []
    assert violations(ray, "farm.cluster.queue") == ["ray_user.py:2 imports ray.tune"]  # STRICTER


def test_the_checker_finds_cycles_and_silent_lazy_imports(tmp_path):
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []
    lazy = tmp_path / "lazy.py"
    lazy.write_text(
        "def f():\n    import ray  # Ray loads only when a run starts\n    from farm.errors import "
        "SpecError\n"
    )
    got = [(i.module, i.lazy, i.commented) for i in imports(lazy)]
    assert got == [("ray", True, True), ("farm.errors", True, False)]


def test_import_farm_is_light():
    code = (
        "import sys, farm, farm.cli, farm.commands.attack, farm.commands.dry_run, "
        "farm.cluster.tune, farm.shadows.scenario, farm.config.loading, farm.challenge.tree, "
        "farm.report.attack_report; print('torch' in sys.modules, 'ray' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.split() == ["False", "False"]
