"""YAML at the edge: files become typed, validated objects here, with errors naming the file and
key.

Every config is checked in full when it is loaded, before Ray starts or any job runs: unknown keys,
types, ranges, attack names and their parameters, normalization modes, plans, DP blocks and recipe
references. Each error is one ``ConfigError`` line ``<file>: <dotted.key>: expected ..., got ...``.

This module holds what every loader shares: the shipped files by name and kind (``shipped``,
``config_path``, ``config_kind``; ``farm/config/shipped/<kind>/``), reading YAML with errors that
name the file (``read_yaml``, ``expand_vars``), typing it (``typed``) and checking scenario names.
One loader per kind sits beside it: ``farm.config.challenge`` (make-challenge configs),
``farm.config.attack`` (attack configs and ``best.yaml``), ``farm.config.tune`` (tune configs) and
``farm.config.recipes`` (recipes and defences).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from importlib import resources
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml

from farm.errors import ConfigError, SpecError
from farm.spec.coerce import from_dict

T = TypeVar("T")

Kind = Literal["config", "recipe"]
# The shipped YAML (package data) by kind: a config is one of four kinds, each in its own folder; a
# recipe is a training recipe or a defence that stands in for one (``load_scenario_recipe``).
FOLDERS: dict[str, tuple[str, ...]] = {
    "config": ("challenge", "attack", "tune", "audit"),
    "recipe": ("recipes", "defences"),
}


def shipped(kind: Kind = "config") -> dict[str, Path]:
    """``{name: path}`` of the YAML files shipped as package data under ``farm/config/shipped/``:
    configs (``mini``, ``attack-mini``, ``tune-mini``, ...) in ``challenge/``, ``attack/`` and
    ``tune/``, recipes (``mini-inf``, ``mico-lo``, ...) in ``recipes/`` and defences
    (``sisa-s5-r1``, ``pate-t10-s5``, ...) in ``defences/``. Names are unique across a kind's
    folders."""
    found = {}
    for folder in FOLDERS[kind]:
        for item in resources.files("farm").joinpath("config", "shipped", folder).iterdir():
            if item.name.endswith(".yaml"):
                found[item.name[:-5]] = Path(str(item))
    return dict(sorted(found.items()))


def config_kind(path: str | Path) -> str:
    """``challenge``, ``attack``, ``tune`` or ``audit``: the folder of a shipped config, else what
    its keys say (a ``space`` is a tune config's, a ``population`` a make-challenge config's,
    ``canaries`` an audit config's, anything else an attack config's). ``ConfigError`` naming the
    file when it cannot be read."""
    path = Path(path)
    root = Path(str(resources.files("farm").joinpath("config", "shipped"))).resolve()
    if path.resolve().parent.parent == root and path.parent.name in FOLDERS["config"]:
        return path.parent.name
    keys = read_yaml(path)
    if "space" in keys:
        return "tune"
    return "challenge" if "population" in keys else "audit" if "canaries" in keys else "attack"


_VAR = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}")


def expand_vars(text: str) -> str:
    """``${NAME}`` and ``${NAME:-default}`` replaced from the environment (as a shell does), so a
    shipped config can name data that is not part of the project:
    ``${FARM_SST2_DIR:-../shared/data/sst2}``. ``ConfigError`` for an unset variable without a
    default.

    >>> expand_vars("${FARM_TEST_UNSET_VAR:-a/b}/c")
    'a/b/c'
    """

    def one(match: re.Match) -> str:
        value = os.environ.get(match["name"], match["default"])
        if value is None:
            raise ConfigError(f"{text}: environment variable {match['name']} is not set")
        return value

    return _VAR.sub(one, text)


def config_path(name_or_path: str | Path, kind: Kind = "config") -> Path:
    """The file of a config or recipe given by name (no suffix, no folder: ``attack-mini``,
    ``mini-inf``) from the shipped ones, or ``name_or_path`` unchanged when it is a path. A path
    ``configs/<name>.yaml`` (or ``configs/recipes/<name>.yaml``, where the shipped files lay before
    they were sorted by kind) that does not exist names the shipped file, so commands written for
    any layout work from any working directory. ``ConfigError`` for an unknown name."""
    path = Path(name_or_path)
    if path.suffix or path.name != str(name_or_path):
        folder = "configs/recipes" if kind == "recipe" else "configs"
        if (
            not path.exists()
            and path.suffix == ".yaml"
            and path.parent.as_posix() == folder
            and path.stem in shipped(kind)
        ):
            return shipped(kind)[path.stem]
        return path
    known = shipped(kind)
    if str(name_or_path) not in known:
        raise ConfigError(
            f"{name_or_path}: no shipped {kind} of that name (known: {', '.join(sorted(known))}); "
            f"give a path to a YAML file instead"
        )
    return known[str(name_or_path)]


def read_yaml(path: str | Path) -> dict[str, Any]:
    """A YAML mapping from ``path``; ``ConfigError`` naming the file when missing, unparsable or not
    a mapping."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(
            f"{path}: invalid YAML{where} ({getattr(exc, 'problem', None) or exc})"
        ) from exc
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path}: expected a mapping of settings at the top level, got {type(data).__name__}"
        )
    return data


def typed(cls: type[T], data: Any, path: str | Path, key: str = "") -> T:
    """``from_dict`` with ``ConfigError`` naming ``path`` and the dotted key below ``key`` (``""``:
    file root)."""
    try:
        return from_dict(cls, data, key)
    except SpecError as exc:
        raise ConfigError(f"{path}: {exc}") from exc


def check_scenarios(path: str | Path, key: str, names: Iterable[str], scenarios: list[str]) -> None:
    """``ConfigError`` unless each scenario ``names`` (keys under ``key`` in ``path``) is one of
    ``scenarios``."""
    for name in names:
        if name not in scenarios:
            raise ConfigError(
                f"{path}: {key}.{name}: no such scenario in the challenge (expected one of "
                f"{', '.join(scenarios)})"
            )
