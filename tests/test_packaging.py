"""The wheel installs anywhere: built from the checkout, installed into a fresh virtual environment
outside it, the ``farm`` command runs and every shipped recipe and config loads by name from the
installed package data.

Offline: the build uses the installed setuptools (no build isolation), the environment borrows
torch, Ray, ... from the system (``--system-site-packages``) and the wheel installs with
``--no-deps --no-index``. The venv's own site-packages comes first on ``sys.path``, so its ``farm``
wins over an editable install of the checkout; the test checks that it did."""

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import farm

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ["pyproject.toml", "README.md", "LICENSE", "farm"]

LOAD_ALL = """
import json, sys
from pathlib import Path
import farm
from farm.config.attack import load_attack_config
from farm.config.loading import config_path, shipped
from farm.config.audit import load_audit_config
from farm.config.recipes import load_recipe
from farm.config.tune import load_tune_config
from farm.config.challenge import load_challenge_config
from farm.config.recipes import is_defence, load_defence
site = Path(sys.argv[1]).resolve()
inside = lambda p: Path(p).resolve().is_relative_to(site)
loaded = {"farm": farm.__file__, "recipes": [], "configs": []}
assert inside(farm.__file__), farm.__file__
for name in shipped("recipe"):
    load = load_defence if is_defence(name) else load_recipe
    assert inside(config_path(name, "recipe")) and load(name)
    loaded["recipes"].append(name)
for name in shipped():
    assert inside(config_path(name)), config_path(name)
    if name.startswith("tune-"):
        tune = load_tune_config(config_path(name))
        load_attack_config(tune.default_attack)
        [load_recipe(r) for r in [tune.recipe, *tune.dp_matched.values()]]
    elif name.startswith("attack-"):
        [c.named_recipe() for c in load_attack_config(name).values()]
    elif name.startswith("audit-"):
        load_audit_config(name)
    else:
        recipes = load_challenge_config(name).scenarios.values()
        [(load_defence if is_defence(r) else load_recipe)(r) for r in recipes]
    loaded["configs"].append(name)
print(json.dumps(loaded))
"""


def _run(cmd: list, cwd: Path, env: dict) -> str:
    result = subprocess.run(
        [str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, f"{cmd}\n{result.stdout}\n{result.stderr}"
    return result.stdout


def test_wheel_installs_and_runs_outside_the_checkout(tmp_path):
    pytest.importorskip("setuptools", minversion="77")
    env = {
        k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")
    }
    env["PIP_NO_INDEX"], env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1", "1"
    for corpus in ("sst2", "clickbait"):  # the shipped challenge configs read them
        env.setdefault(f"FARM_{corpus.upper()}_DIR", str(ROOT.parent / "shared" / "data" / corpus))
    src = tmp_path / "src"  # a copy, so that the build leaves nothing in the checkout
    src.mkdir()
    for name in SHIPPED:
        copy = shutil.copytree if (ROOT / name).is_dir() else shutil.copy2
        copy(
            ROOT / name,
            src / name,
            **({"ignore": shutil.ignore_patterns("__pycache__")} if name == "farm" else {}),
        )
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            tmp_path / "dist",
            src,
        ],
        tmp_path,
        env,
    )
    (wheel,) = (tmp_path / "dist").glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert {
        "farm/config/shipped/attack/attack-mini.yaml",
        "farm/config/shipped/recipes/mini-inf.yaml",
        "farm/config/shipped/defences/sisa-s5-r1.yaml",
    } <= set(names)
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)

    venv = tmp_path / "venv"
    _run(
        [sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", venv],
        tmp_path,
        env,
    )
    python, command = venv / "bin" / "python", venv / "bin" / "farm"
    _run([python, "-m", "pip", "install", "-q", "--no-deps", "--no-index", wheel], tmp_path, env)
    site = _run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], tmp_path, env
    ).strip()

    work = tmp_path / "elsewhere"
    work.mkdir()
    assert _run([command, "--version"], work, env).strip() == f"farm {farm.__version__}"
    assert "attack-mini" in _run([command, "demo", "--help"], work, env)
    loaded = json.loads(_run([python, "-c", LOAD_ALL, site], work, env))
    shipped_yaml = ROOT / "farm" / "config" / "shipped"
    recipes, configs = (
        sum(len(list((shipped_yaml / kind).glob("*.yaml"))) for kind in kinds)
        for kinds in (("recipes", "defences"), ("challenge", "attack", "tune", "audit"))
    )
    assert (len(loaded["recipes"]), len(loaded["configs"])) == (recipes, configs), loaded
