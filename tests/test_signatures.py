"""Wide calls read by keyword: no public function of ``farm`` takes more than 4 positional
parameters, and no call anywhere (package, tests, benchmarks) passes more than 4 positional
arguments to a dataclass or named tuple of ``farm``."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAX_POSITIONAL = 4


def _files(*folders: str) -> list[Path]:
    return [p for folder in folders for p in sorted((ROOT / folder).rglob("*.py"))]


def _is_record(node: ast.ClassDef) -> bool:
    decorated = any(
        (d.func if isinstance(d, ast.Call) else d) is not None
        and getattr(d.func if isinstance(d, ast.Call) else d, "id", None) == "dataclass"
        or getattr(d.func if isinstance(d, ast.Call) else d, "attr", None) == "dataclass"
        for d in node.decorator_list
    )
    named = any(getattr(b, "id", None) == "NamedTuple" for b in node.bases)
    return decorated or named


def records(paths: list[Path]) -> set[str]:
    """Names of the dataclasses and named tuples defined in ``paths``."""
    return {
        node.name
        for path in paths
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.ClassDef) and _is_record(node)
    }


def wide_signatures(path: Path) -> list[str]:
    """``file:line name`` of each public function or method with more than 4 positional
    parameters."""
    found = []
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) or node.name.startswith(
            "_"
        ):
            continue
        params = [
            a.arg for a in node.args.posonlyargs + node.args.args if a.arg not in ("self", "cls")
        ]
        if len(params) > MAX_POSITIONAL:
            found.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name}({', '.join(params)})")
    return found


def wide_record_calls(path: Path, names: set[str]) -> list[str]:
    """``file:line Name`` of each call of a record class with more than 4 positional arguments."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.Call):
            continue
        name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
        if name in names and len(node.args) > MAX_POSITIONAL:
            found.append(
                f"{path.relative_to(ROOT)}:{node.lineno} {name}(<{len(node.args)} positional>)"
            )
    return found


def test_no_public_function_takes_more_than_four_positional_parameters():
    found = [w for path in _files("farm") for w in wide_signatures(path)]
    assert not found, "make the rest keyword-only (*):\n" + "\n".join(found)


def test_no_record_is_built_with_more_than_four_positional_arguments():
    names = records(_files("farm"))
    found = [
        w for path in _files("farm", "tests", "benchmarks") for w in wide_record_calls(path, names)
    ]
    assert not found, "pass by keyword:\n" + "\n".join(found)


def test_the_checks_can_fail(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text(
        "from dataclasses import dataclass\n@dataclass\nclass R:\n    a: int\n    b: int\ndef f(a, "
        "b, c, d, e, *, g=1):\n    return R(1, 2, 3, 4, 5)\ndef _g(a, b, c, d, e):\n    return "
        "R(1, 2, 3, 4, b=5)\n"
    )
    tmp = ROOT / "tests" / "_signature_probe.py"
    tmp.write_text(bad.read_text())
    try:
        assert records([tmp]) == {"R"}
        assert wide_signatures(tmp) == ["tests/_signature_probe.py:6 f(a, b, c, d, e)"]
        assert wide_record_calls(tmp, {"R"}) == ["tests/_signature_probe.py:7 R(<5 positional>)"]
    finally:
        tmp.unlink()
