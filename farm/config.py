"""YAML at the edge: files become typed, validated objects here, with errors naming the file and key."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml

from farm.errors import ConfigError, SpecError
from farm.recipes import Recipe, from_dict

T = TypeVar("T")
RECIPE_DIR = Path(__file__).resolve().parents[1] / "configs" / "recipes"


def read_yaml(path: str | Path) -> dict[str, Any]:
    """A YAML mapping from ``path``; ``ConfigError`` naming the file when missing, unparsable or not a mapping."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML ({exc})") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return data


def typed(cls: type[T], data: Any, path: str | Path, key: str) -> T:
    """``from_dict`` with ``ConfigError`` naming ``path`` and ``key``."""
    try:
        return from_dict(cls, data, key)
    except SpecError as exc:
        raise ConfigError(f"{path}: {exc}") from exc


def load_recipe(name_or_path: str | Path) -> Recipe:
    """A recipe from a YAML file, or by name from ``configs/recipes/`` (``mico-inf``, ``mini-lo``, ...)."""
    path = Path(name_or_path)
    if not path.suffix:
        path = RECIPE_DIR / f"{name_or_path}.yaml"
    return typed(Recipe, read_yaml(path), path, "recipe")
