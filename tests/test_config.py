"""Every shipped YAML config loads with its loader (recipes, mini challenges, attack and tune configs)."""

from pathlib import Path

import pytest

from farm.config import config_path, load_recipe, read_yaml, shipped
from farm.driver import load_attack_config
from farm.errors import ConfigError
from farm.mini import load_config
from farm.tuning import load_tune_config

CONFIGS = Path(__file__).resolve().parents[1] / "farm" / "configs"


@pytest.mark.parametrize("name", sorted(shipped("recipe")))
def test_recipes_load_by_name_and_path(name):
    recipe = load_recipe(name)
    assert recipe == load_recipe(CONFIGS / "recipes" / f"{name}.yaml")


@pytest.mark.parametrize("name", ["mini", "mini-sst2"])
def test_mini_configs_load(name):
    config = load_config(name)
    assert config == load_config(CONFIGS / f"{name}.yaml")
    for recipe in config.scenarios.values():
        load_recipe(recipe)


@pytest.mark.parametrize("name", ["attack-mini", "attack-mini-sst2", "attack-mico"])
def test_attack_configs_load(name):
    configs = load_attack_config(name)
    assert all(c.shadow_recipe() for c in configs.values())


@pytest.mark.parametrize("name", ["tune-mini", "tune-mini-sst2", "tune-mico"])
def test_tune_configs_load(name):
    config = load_tune_config(config_path(name))
    load_attack_config(config.default_attack)
    assert all(load_recipe(r).dp for r in config.dp_matched.values())


def test_every_shipped_file_is_tested():
    assert set(shipped()) == {"mini", "mini-sst2", "attack-mini", "attack-mini-sst2", "attack-mico", "tune-mini",
                              "tune-mini-sst2", "tune-mico"}
    assert {p.stem for p in CONFIGS.rglob("*.yaml")} == set(shipped()) | set(shipped("recipe"))


def test_config_path_names_and_paths(tmp_path):
    assert config_path("attack-mini") == CONFIGS / "attack-mini.yaml"
    assert config_path("mini-lo", "recipe") == CONFIGS / "recipes" / "mini-lo.yaml"
    for path in ("x.yaml", tmp_path / "attack-mini", "./attack-mini"):
        assert config_path(path) == Path(path)
    with pytest.raises(ConfigError, match="mini-inf: no shipped config of that name .*attack-mini"):
        config_path("mini-inf")


def test_bad_yaml_names_the_file(tmp_path):
    (tmp_path / "x.yaml").write_text("a: [unclosed\n")
    with pytest.raises(ConfigError, match="x.yaml: invalid YAML"):
        read_yaml(tmp_path / "x.yaml")
    (tmp_path / "r.yaml").write_text("epochs: 3\nlearning_rte: 0.1\n")
    with pytest.raises(ConfigError, match="r.yaml: recipe: unknown key"):
        load_recipe(tmp_path / "r.yaml")
