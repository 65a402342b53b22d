"""YAML at the edge: files become typed, validated objects here, with errors naming the file and key."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml

from farm.errors import ConfigError, SpecError
from farm.recipes import Recipe, from_dict

T = TypeVar("T")
Kind = Literal["config", "recipe"]
_FOLDERS: dict[str, tuple[str, ...]] = {"config": ("configs",), "recipe": ("configs", "recipes")}


def shipped(kind: Kind = "config") -> dict[str, Path]:
    """``{name: path}`` of the YAML files shipped as package data: configs (``mini``, ``attack-mini``, ...) under
    ``farm/configs/``, recipes (``mini-inf``, ``mico-lo``, ...) under ``farm/configs/recipes/``."""
    folder = resources.files("farm").joinpath(*_FOLDERS[kind])
    found = {item.name[:-5]: Path(str(item)) for item in folder.iterdir() if item.name.endswith(".yaml")}
    return dict(sorted(found.items()))


def config_path(name_or_path: str | Path, kind: Kind = "config") -> Path:
    """The file of a config or recipe given by name (no suffix, no folder: ``attack-mini``, ``mini-inf``) from
    the shipped ones, or ``name_or_path`` unchanged when it is a path. ``ConfigError`` for an unknown name."""
    path = Path(name_or_path)
    if path.suffix or path.name != str(name_or_path):
        return path
    known = shipped(kind)
    if str(name_or_path) not in known:
        raise ConfigError(f"{name_or_path}: no shipped {kind} of that name (known: {', '.join(sorted(known))}); "
                          "give a path to a YAML file instead")
    return known[str(name_or_path)]


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
    """A recipe from a YAML file, or by name from the shipped ones (``mico-inf``, ``mini-lo``, ...)."""
    path = config_path(name_or_path, "recipe")
    return typed(Recipe, read_yaml(path), path, "recipe")
