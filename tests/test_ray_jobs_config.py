"""The ray_jobs/ configuration files as a user gets them: the runtime_env ships the code and none of
the caches, virtual environments or outputs; cluster.yaml holds no fake-looking value, only
``<FILL: ...>`` fields. No Ray instance is started."""

from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
RAY_JOBS = ROOT / "ray_jobs"


def _runtime_env() -> dict:
    return yaml.safe_load((RAY_JOBS / "runtime_env.yaml").read_text())


@pytest.mark.parametrize(
    "path",
    [
        ".venv/lib/python3.11/site-packages/torch/lib/libtorch.so",
        "venv/bin/python",
        ".git/objects/ab/cdef",
        "farm/__pycache__/cli.cpython-311.pyc",
        "mia_farm.egg-info/PKG-INFO",
        ".mypy_cache/3.11/farm.json",
        ".ruff_cache/0.5.0/123",
        ".pytest_cache/v/cache/nodeids",
        "farm-demo/challenge/challenge.json",
        "rehearsal/challenge/challenge.json",
        "out/report.md",
        "dist/mia_farm-0.1.0-py3-none-any.whl",
        "tune/sst2_inf/ray_results/trial/result.json",
        "farm-demo/submission.zip",
    ],
)
def test_runtime_env_excludes_caches_venvs_and_outputs(path):
    """Ray matches ``excludes`` with its own gitignore-style matcher: use that, on the paths a
    checkout that ran the demo and the tests holds."""
    from ray._private.runtime_env.packaging import _get_excludes

    excluded = _get_excludes(ROOT, _runtime_env()["excludes"])
    assert excluded(ROOT / path), path


@pytest.mark.parametrize(
    "path",
    [
        "farm/cli.py",
        "farm/config/shipped/challenge/mini.yaml",
        "ray_jobs/make_challenge.py",
        "tests/data/tiny-mini.yaml",
        "pyproject.toml",
    ],
)
def test_runtime_env_ships_the_code(path):
    """The entry points, the package and the test configs a job names stay in the working dir."""
    from ray._private.runtime_env.packaging import _get_excludes

    env = _runtime_env()
    assert env["working_dir"] == "."
    assert not _get_excludes(ROOT, env["excludes"])(ROOT / path), path


def test_runtime_env_excludes_no_tracked_file():
    """Every file git tracks reaches the job (when the checkout is a git work tree)."""
    import subprocess

    from ray._private.runtime_env.packaging import _get_excludes

    listed = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True)
    if listed.returncode != 0:
        pytest.skip("not a git work tree")
    excluded = _get_excludes(ROOT, _runtime_env()["excludes"])
    assert [p for p in listed.stdout.splitlines() if excluded(ROOT / p)] == []
