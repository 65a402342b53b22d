"""Every shipped YAML config loads with its loader (recipes, mini challenges, attack and tune configs)."""

from pathlib import Path

import pytest

from farm.config import load_recipe, read_yaml
from farm.driver import load_attack_config
from farm.errors import ConfigError
from farm.mini import load_config
from farm.tuning import load_tune_config

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


@pytest.mark.parametrize("path", sorted((CONFIGS / "recipes").glob("*.yaml")), ids=lambda p: p.stem)
def test_recipes_load(path):
    recipe = load_recipe(path.stem)
    assert recipe == load_recipe(path)


@pytest.mark.parametrize("name", ["mini.yaml", "mini-sst2.yaml"])
def test_mini_configs_load(name):
    config = load_config(CONFIGS / name)
    for recipe in config.scenarios.values():
        load_recipe(recipe)


@pytest.mark.parametrize("name", ["attack-mini.yaml", "attack-mini-sst2.yaml", "attack-mico.yaml"])
def test_attack_configs_load(name):
    configs = load_attack_config(CONFIGS / name)
    assert all(c.shadow_recipe() for c in configs.values())


@pytest.mark.parametrize("name", ["tune-mini.yaml", "tune-mini-sst2.yaml", "tune-mico.yaml"])
def test_tune_configs_load(name):
    config = load_tune_config(CONFIGS / name)
    load_attack_config(config.default_attack)
    assert all(load_recipe(r).dp for r in config.dp_matched.values())


def test_bad_yaml_names_the_file(tmp_path):
    (tmp_path / "x.yaml").write_text("a: [unclosed\n")
    with pytest.raises(ConfigError, match="x.yaml: invalid YAML"):
        read_yaml(tmp_path / "x.yaml")
    (tmp_path / "r.yaml").write_text("epochs: 3\nlearning_rte: 0.1\n")
    with pytest.raises(ConfigError, match="r.yaml: recipe: unknown key"):
        load_recipe(tmp_path / "r.yaml")
