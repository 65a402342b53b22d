"""make-challenge's release layout (``layout: mico``): MICO's published shape, checked on the
test-sized challenge's stored models (no training here), and its config checks."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from farm.challenge.tree import CHALLENGE_JSON, check_weights
from farm.commands.make_challenge import _write_trees, challenge_jobs
from farm.config.challenge import ChallengeConfig, load_challenge_config
from farm.config.loading import config_path, read_yaml, shipped
from farm.errors import SpecError
from farm.store.store import Store
from farm.training.data import load_population


def test_release_layout_writes_micos_shape(tiny_built, tmp_path):
    config = load_challenge_config("tests/data/tiny-mini.yaml")
    p = challenge_jobs(config, len(load_population(config.population_spec)))
    _write_trees(tmp_path, p, Store(tiny_built / "store"), "key", release=True)
    challenge, answers, assets = tmp_path / "challenge", tmp_path / "answers", tmp_path / "assets"
    assert not (challenge / CHALLENGE_JSON).exists() and not (answers / CHALLENGE_JSON).exists()
    assert not (challenge / "assets").exists()
    train = challenge / "sst2_inf" / "train" / "model_0"
    assert sorted(f.name for f in train.iterdir()) == [
        "config.json",
        "pytorch_model.bin",
        "seed_challenge",
        "seed_membership",
        "seed_training",
        "solution.csv",
    ]
    dev = challenge / "sst2_inf" / "dev" / "model_4"
    assert sorted(f.name for f in dev.iterdir()) == [
        "config.json",
        "pytorch_model.bin",
        "seed_challenge",
    ]
    assert (answers / "sst2_inf" / "dev" / "model_4" / "solution.csv").is_file()
    check_weights(dev / "pytorch_model.bin")  # loads with weights_only, as every reader does
    stored = Store(tiny_built / "store").get_dir(p.targets[4].build.members[0], tmp_path / "cache")
    expected = load_file(str(stored / "model.safetensors"))
    got = torch.load(dev / "pytorch_model.bin", weights_only=True)
    assert got.keys() == expected.keys() and all(torch.equal(got[k], expected[k]) for k in got)
    names = {f.name for f in (assets / "base").iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= names
    assert not list(tmp_path.glob(".building-*"))


def test_release_layout_needs_micos_constants():
    config = load_challenge_config("tests/data/tiny-mini.yaml")
    with pytest.raises(SpecError, match="len_training"):
        dataclasses.replace(config, layout="mico")
    with pytest.raises(SpecError, match="layout"):
        dataclasses.replace(config, layout="hub")


def test_the_rehearsal_config_is_shipped_and_found_by_its_documented_path(monkeypatch, tmp_path):
    monkeypatch.chdir(
        tmp_path
    )  # no configs/ folder here: the documented path names the shipped file
    assert config_path("configs/mico-rehearsal.yaml") == shipped()["mico-rehearsal"]
    assert (
        config_path("configs/recipes/rehearsal-hi.yaml", "recipe")
        == shipped("recipe")["rehearsal-hi"]
    )
    assert config_path("configs/nope.yaml") == Path("configs/nope.yaml")
    data = read_yaml(shipped()["mico-rehearsal"])
    assert data["layout"] == "mico" and data["models"] == {"train": 100, "dev": 50, "final": 50}
    assert set(data["scenarios"]) == {"sst2_inf", "sst2_hi", "sst2_lo"}
    assert ChallengeConfig.__dataclass_fields__["layout"].default == "farm"


def test_a_reused_tree_counts_its_stored_jobs_as_reused(tiny_built, tmp_path, capsys):
    """The ``jobs:`` line counts the same jobs on every run (issue 23): rebuilding a complete tree
    runs nothing and counts every challenge job the store holds as reused; with
    a store that holds none of them, the tree is still reused and nothing is counted."""
    import shutil

    from farm.cli import main

    config = load_challenge_config("tests/data/tiny-mini.yaml")
    p = challenge_jobs(config, len(load_population(config.population_spec)))
    n = 2 + len(p.target_jobs())  # the tokenizer, the base model and the targets
    out = tmp_path / "tiny"
    shutil.copytree(tiny_built / "challenge", out / "challenge")
    shutil.copytree(tiny_built / "answers", out / "answers")
    args = ["make-challenge", "--config", "tests/data/tiny-mini.yaml", "--out", str(out)]
    assert main([*args, "--store", str(tiny_built / "store")]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == f"jobs: 0 run, {n} reused"
    assert main([*args, "--store", str(tmp_path / "empty")]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == "jobs: 0 run, 0 reused"
