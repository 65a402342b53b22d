"""Recipes and defences by name, path or inline mapping, resolved wherever a config names one."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from farm.config.loading import config_path, read_yaml, shipped, typed
from farm.defences.registry import registry
from farm.defences.seam import Defence
from farm.errors import ConfigError
from farm.spec.recipes import Recipe, to_dict


def load_recipe(name_or_path: str | Path) -> Recipe:
    """A recipe from a YAML file, or by name from the shipped ones (``mico-inf``, ``mini-lo``,
    ...)."""
    path = config_path(name_or_path, "recipe")
    return typed(Recipe, read_yaml(path), path)


def recipe_ref(ref: str | Mapping[str, Any], path: str | Path, key: str) -> Recipe:
    """The recipe that config ``path`` names at ``key``: a recipe name, a ``.yaml`` path or an
    inline mapping. ``ConfigError`` naming ``path`` and ``key`` when the recipe does not exist or is
    invalid."""
    if isinstance(ref, Mapping):
        return typed(Recipe, ref, path, key)
    target = _recipe_path(ref)
    if target is None or not target.is_file():
        names = ", ".join(shipped("recipe"))
        raise ConfigError(
            f"{path}: {key}: no recipe {ref!r} (expected a recipe name ({names}) or a .yaml file)"
        )
    try:
        return load_recipe(target)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {key}: recipe {ref!r} is invalid: {exc}") from exc


def _recipe_path(name_or_path: str | Path) -> Path | None:
    path = Path(name_or_path)
    if path.suffix or path.name != str(name_or_path):
        return path
    return shipped("recipe").get(str(name_or_path))


def load_scenario_recipe(
    ref: str | Mapping[str, Any], path: str | Path, key: str
) -> Recipe | Defence:
    """What config ``path`` names at ``key`` as a scenario's target recipe: a plain recipe
    (``recipe_ref``) or a defence (a recipe name, ``.yaml`` path or inline mapping with a top-level
    ``defence:`` key; see ``farm.defences.seam``). ``ConfigError`` naming ``path`` and ``key`` (and
    the defence file) when it is invalid."""
    found = _defence_data(ref)
    if found is None:
        return recipe_ref(ref, path, key)
    data, source = found
    if source is None:  # inline: errors name the config and the key
        return load_defence_data(data, f"{path}: {key}")
    try:
        return load_defence_data(data, source)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {key}: defence {ref!r} is invalid: {exc}") from exc


def load_defence(name_or_path: str | Path) -> Defence:
    """A defence config from a YAML file, or by name from the shipped recipes (``sisa-s5-r1``)."""
    source = config_path(name_or_path, "recipe")
    return load_defence_data(read_yaml(source), source)


def load_defence_data(data: Mapping[str, Any], source: str | Path) -> Defence:
    """A defence config from its mapping (``defence:`` names its class in
    ``farm.defences.registry.registry``), its member ``recipe`` (and any other ``Recipe`` field:
    PATE's ``student``) resolved like any recipe reference (a name, a ``.yaml`` path relative to
    the working directory, or a mapping); ``ConfigError`` naming ``source`` and the key."""
    data = dict(data)
    classes = registry()
    name = data.pop("defence", None)
    if name not in classes:
        raise ConfigError(f"{source}: defence: expected one of {', '.join(classes)}, got {name!r}")
    if "recipe" not in data:
        raise ConfigError(
            f"{source}: recipe: missing (the recipe of the defence's member models, e.g. mini-inf)"
        )
    for key in _recipe_fields(classes[name]):  # recipe:, and PATE's student:, named like any recipe
        if key in data:
            data[key] = to_dict(recipe_ref(data[key], source, key))
    defence: Defence = typed(classes[name], data, source)
    return defence


def _recipe_fields(cls: type) -> list[str]:
    """The fields of a defence config class that hold a ``Recipe`` (``recipe``, PATE's
    ``student``)."""
    return [f.name for f in dataclasses.fields(cls) if f.type in ("Recipe", Recipe)]


def is_defence(ref: str | Mapping[str, Any]) -> bool:
    """Whether a recipe reference (name, ``.yaml`` path or mapping) is a defence config (a
    ``defence:`` key)."""
    return _defence_data(ref) is not None


def _defence_data(ref: str | Mapping[str, Any]) -> tuple[dict[str, Any], Path | None] | None:
    """``(mapping, its file or None when inline)`` when ``ref`` is a defence (inline, or a file
    whose top level has a ``defence:`` key), else None (a plain recipe reference, or a missing file:
    ``recipe_ref`` reports it)."""
    if isinstance(ref, Mapping):
        return (dict(ref), None) if "defence" in ref else None
    target = (
        Path(ref)
        if Path(ref).suffix or Path(ref).name != str(ref)
        else shipped("recipe").get(str(ref))
    )
    if target is None or not target.is_file():
        return None
    data = read_yaml(target)
    return (data, target) if "defence" in data else None
