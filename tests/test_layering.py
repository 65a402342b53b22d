"""The rings of docs/design.md, enforced on every import of every module (lazy imports inside functions too).

- pure: the standard library, numpy, scipy, scikit-learn and other pure modules, nothing else;
- effects: torch, files and anything below, but no Ray and nothing of the Ray ring or the top;
- Ray: ``cluster`` and ``tuning``, the only modules that import ``ray``;
- top: ``driver``, ``report``, ``cli``.
Every module of ``farm/`` belongs to exactly one ring, so a new module must be placed before it is tested.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "farm"
PURE = {"__init__", "errors", "splits", "plans", "signals", "attacks", "metrics", "recipes", "jobs", "audit",
        "intervals", "queries", "estimates", "stopwatch", "pate", "labeldp", "pateplan", "defences", "sisa",
        "protocol"}
EFFECTS = {"fsutil", "config", "challenge", "data", "synthetic", "models", "train", "infer", "store", "run", "mini",
           "submission", "scoring", "plots", "scenario", "whitebox", "bench"}
RAY = {"cluster", "tuning"}
TOP = {"driver", "report", "cli", "dryrun"}
PURE_THIRD_PARTY = {"numpy", "scipy", "sklearn"}
# Ring of each module -> the farm modules it may import.
ALLOWED = {**dict.fromkeys(PURE, PURE), **dict.fromkeys(EFFECTS, PURE | EFFECTS),
           **dict.fromkeys(RAY, PURE | EFFECTS | RAY), **dict.fromkeys(TOP, PURE | EFFECTS | RAY | TOP)}


@dataclass(frozen=True)
class Imported:
    line: int
    module: str  # dotted, absolute (relative imports resolved inside farm)
    names: tuple[str, ...] = ()  # what a ``from ... import`` takes


def imports(path: Path) -> list[Imported]:
    """Every import statement anywhere in the file (module level, functions, classes, branches)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [Imported(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = ".".join(["farm"] + [""] * (node.level - 1)) if node.level else ""
            module = ".".join(p for p in (base, node.module or "") if p) if node.level else node.module or ""
            names = tuple(alias.name for alias in node.names)
            if module == "farm":  # ``from farm import driver`` imports farm.driver; ``__version__`` is farm itself
                found += [Imported(node.lineno, f"farm.{name}" if (PACKAGE / f"{name}.py").exists() else "farm")
                          for name in names]
            else:
                found.append(Imported(node.lineno, module, names))
    return sorted(found, key=lambda imp: imp.line)


def violations(path: Path, ring_of: str | None = None) -> list[str]:
    """``"file:line imports X"`` for each import the module's ring forbids (``ring_of``: the module name whose
    ring applies, default the file's own stem)."""
    name = ring_of or path.stem
    allowed = ALLOWED[name]
    bad = []
    for imp in imports(path):
        top, *rest = imp.module.split(".")
        if top == "farm":
            target = rest[0] if rest else "__init__"
            if target in allowed:
                continue
        elif name in PURE:
            if top in sys.stdlib_module_names or top in PURE_THIRD_PARTY or top == "__future__":
                continue
        elif top != "ray" or name in RAY:
            continue
        bad.append(f"{path.name}:{imp.line} imports {imp.module}")
    return bad


def test_every_module_is_in_exactly_one_ring():
    modules = {p.stem for p in PACKAGE.glob("*.py")}
    assert sum(map(len, (PURE, EFFECTS, RAY, TOP))) == len(PURE | EFFECTS | RAY | TOP)
    unplaced, gone = modules - ALLOWED.keys(), ALLOWED.keys() - modules
    assert not unplaced and not gone, f"place {sorted(unplaced)} in a ring; drop {sorted(gone)}"
    assert not [p for p in PACKAGE.glob("*/") if list(p.rglob("*.py"))], "subpackages are not covered by the ring check"


def test_every_module_imports_only_what_its_ring_allows():
    found = [v for path in sorted(PACKAGE.glob("*.py")) for v in violations(path)]
    assert not found, "\n".join(found)


def test_the_checker_fails_a_pure_module_that_imports_anything_non_pure(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import os\nimport numpy as np\nfrom farm.errors import SpecError\nfrom . import metrics\n"
                   "import yaml\n"
                   "def f():\n    import torch\n    from farm import driver, plans\n"
                   "class C:\n    def g(self):\n        from .store import Store\n        import farm.infer\n"
                   "if True:\n    from transformers import AutoModel\n")
    found = violations(bad, ring_of="metrics")
    assert found == ["bad.py:5 imports yaml", "bad.py:7 imports torch", "bad.py:8 imports farm.driver",
                     "bad.py:11 imports farm.store", "bad.py:12 imports farm.infer",
                     "bad.py:14 imports transformers"]
    assert violations(bad, ring_of="cli") == []  # the top may import all of it (but Ray)
    ray = tmp_path / "ray_user.py"
    ray.write_text("def f():\n    import ray.tune\n")
    assert violations(ray, ring_of="run") == ["ray_user.py:2 imports ray.tune"]
    assert violations(ray, ring_of="cluster") == []


def test_the_checker_enforces_rings_above_the_core(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("from farm.driver import attack_challenge\nfrom farm.driver import AttackConfig\n"
                   "from farm.cluster import Executor\n")
    assert violations(bad, ring_of="tuning") == ["bad.py:1 imports farm.driver", "bad.py:2 imports farm.driver"]
    assert violations(bad, ring_of="scenario") == ["bad.py:1 imports farm.driver", "bad.py:2 imports farm.driver",
                                                   "bad.py:3 imports farm.cluster"]


def test_import_farm_is_light():
    code = ("import sys, farm, farm.cli, farm.driver, farm.tuning, farm.scenario, farm.splits, farm.metrics; "
            "print('torch' in sys.modules, 'ray' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
