"""The ring rule: pure modules import neither torch nor ray; only cluster/tuning import ray."""

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "farm"
PURE = {"splits", "pool", "signals", "attacks", "metrics", "spec", "errors"}
RAY_USERS = {"cluster", "tuning"}


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_pure_modules_import_no_torch_or_ray():
    for path in PACKAGE.glob("*.py"):
        if path.stem in PURE:
            assert not _imports(path) & {"torch", "ray", "transformers", "opacus"}, path


def test_only_cluster_and_tuning_import_ray():
    for path in PACKAGE.rglob("*.py"):
        if path.stem not in RAY_USERS:
            assert "ray" not in _imports(path), path


def test_import_farm_is_light():
    code = "import sys, farm, farm.cli, farm.splits, farm.metrics; print('torch' in sys.modules, 'ray' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
