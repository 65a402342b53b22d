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


def _strings(node):
    """Every key and string value of a loaded YAML document."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield str(key)
            yield from _strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from _strings(item)
    elif isinstance(node, str):
        yield node


def test_cluster_yaml_placeholders_are_fill_fields():
    """cluster.yaml loads, and what a user must replace is marked ``<FILL: ...>``: no fake AMI, no
    example.invalid URL, no other angle-bracket placeholder."""
    import re

    text = (RAY_JOBS / "cluster.yaml").read_text()
    cluster = yaml.safe_load(text)
    strings = list(_strings(cluster))
    for s in strings:
        assert "example.invalid" not in s and "0123456789" not in s, s
        assert not re.search(r"\bami-[0-9a-f]+", s), s
        for placeholder in re.findall(r"<[^<>]*>", s):
            assert placeholder.startswith("<FILL: "), placeholder
        assert s.count("<") == s.count("<FILL: "), s
    nodes = cluster["available_node_types"]
    for value in [
        cluster["provider"]["region"],
        cluster["auth"]["ssh_user"],
        *(node["node_config"]["ImageId"] for node in nodes.values()),
    ]:
        assert value.startswith("<FILL: "), value
    (install,) = [c for c in cluster["setup_commands"] if c.startswith("pip install")]
    assert re.search(r'"<FILL: [^>]*mia-farm wheel[^>]*>"', install), install
    assert cluster["head_node_type"] in nodes


def test_cluster_yaml_starts_every_node_with_token_auth():
    """Head and workers start with RAY_AUTH_MODE=token and get the client's token by file_mounts,
    as README.md tells a user to submit with it."""
    cluster = yaml.safe_load((RAY_JOBS / "cluster.yaml").read_text())
    for key in ("head_start_ray_commands", "worker_start_ray_commands"):
        (start,) = [c for c in cluster[key] if "ray start" in c]
        assert start.startswith("RAY_AUTH_MODE=token ray start"), start
    assert cluster["file_mounts"]["~/.ray/auth_token"] == "~/.ray/auth_token"
