"""Audit configs: what ``farm audit`` (recipe mode) and ``farm plan`` read, from flags or YAML.

A recipe audit is given by the flags ``--data``, ``--recipe``, ``--canaries`` (and ``--runs``,
``--seed``, ``--delta``, ``--confidence``) or by a YAML file with the same keys::

    description: one-run audit of audit-tiny, 1,000 mislabelled canaries
    data: synthetic:3000          # or a path, or a population mapping
    recipe: audit-tiny            # a shipped name, a path or an inline mapping
    canaries: {kind: mislabelled, count: 1000, seed: 0}   # or KIND:COUNT[:SEED]
    runs: 1
    seed: 0
    delta: 1.0e-5                 # default: the recipe's, else 1e-5
    confidence: 0.95
    public: synthetic:2000        # a defence's public corpus (PATE's student queries); optional

``recipe`` may name a defence that releases one model (PATE, given ``public``); SISA's ensembles
are refused. Both become one ``RecipeAudit`` through ``recipe_audit``; every error names the flag or
the file and key, before anything runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from farm.config.loading import config_path, read_yaml
from farm.config.recipes import load_scenario_recipe
from farm.defences.pate import Pate
from farm.defences.seam import Defence
from farm.defences.sisa import Sisa
from farm.errors import ConfigError, SpecError
from farm.spec.audit import RecipeAudit
from farm.spec.population import PopulationSpec
from farm.spec.recipes import Recipe

AUDIT_KEYS = (
    "description",
    "data",
    "recipe",
    "canaries",
    "runs",
    "seed",
    "delta",
    "confidence",
    "public",
)
_FLAGS = {"data": "--data", "recipe": "--recipe", "canaries": "--canaries", "public": "--public"}


def recipe_audit(
    *,
    data: str | Mapping[str, Any],
    recipe: str | Mapping[str, Any],
    canaries: str | Mapping[str, Any],
    runs: int = 1,
    seed: int = 0,
    delta: float | None = None,
    confidence: float = 0.95,
    public: str | Mapping[str, Any] | None = None,
    config: Path | None = None,
) -> RecipeAudit:
    """The ``RecipeAudit`` the inputs name, checked in full. An error names the input at fault by
    its flag (``--canaries``), or by ``config`` and key when they come from a file. ``ConfigError``
    for anything invalid."""

    def where(key: str) -> str:
        return f"{config}: {key}" if config else _FLAGS.get(key, f"--{key}")

    loaded = load_scenario_recipe(
        recipe, config or "farm audit", "recipe" if config else "--recipe"
    )
    public_spec = _public(public, where("public"))
    _check_defence(loaded, public_spec, where=where("recipe"), shown=_shown(recipe))
    population_data = parse_data(data, where("data")) if isinstance(data, str) else dict(data)
    canary_data = (
        parse_canaries(canaries, where("canaries")) if isinstance(canaries, str) else dict(canaries)
    )
    spec = {**population_data, "canaries": canary_data}
    try:
        population = PopulationSpec.of(spec, "data")
        audit = RecipeAudit(
            population=population,
            recipe=loaded,
            runs=runs,
            seed=seed,
            delta=delta if delta is not None else _delta(loaded),
            confidence=confidence,
            public=public_spec,
        )
    except SpecError as exc:
        first = exc.key.split(".")[0]
        input_key = "canaries" if exc.key.startswith("data.canaries") else first
        raise ConfigError(f"{where(input_key)}: {exc}") from exc
    _check_counts(audit, where("canaries"), _shown(canaries))
    return audit


def load_audit_config(path: str | Path) -> RecipeAudit:
    """A recipe audit from a YAML file (or a shipped audit config by name); ``ConfigError`` naming
    the file and key."""
    path = config_path(path)
    data = read_yaml(path)
    unknown = sorted(set(data) - set(AUDIT_KEYS))
    if unknown:
        raise ConfigError(f"{path}: {unknown[0]}: unknown key (known: {', '.join(AUDIT_KEYS)})")
    for key in ("data", "recipe", "canaries"):
        if key not in data:
            raise ConfigError(f"{path}: {key}: missing")
    settings = {
        k: v for k, v in data.items() if k not in ("description", "data", "recipe", "canaries")
    }
    for key, value in settings.items():
        kind = float if key in ("delta", "confidence") else int
        if isinstance(value, bool) or not isinstance(value, (int, float) if kind is float else int):
            raise ConfigError(f"{path}: {key}: expected a number, got {value!r}")
    return recipe_audit(
        data=data["data"],
        recipe=data["recipe"],
        canaries=data["canaries"],
        config=path,
        **settings,
    )


def _public(value: str | Mapping[str, Any] | None, where: str) -> PopulationSpec | None:
    """``public`` as a checked population spec (``synthetic:N``, a path or a mapping), or None."""
    if value is None:
        return None
    data = parse_data(value, where) if isinstance(value, str) else dict(value)
    try:
        return PopulationSpec.of(data, "public")
    except SpecError as exc:
        raise ConfigError(f"{where}: {exc}") from exc


def _check_defence(
    recipe: Recipe | Defence, public: PopulationSpec | None, *, where: str, shown: str
) -> None:
    """A defence the game can run: one that releases a single model (PATE, with a ``public``
    corpus of at least its ``queries`` records), not SISA's ensembles."""
    if isinstance(recipe, Recipe):
        return
    if isinstance(recipe, Sisa):
        raise ConfigError(
            f"{where} {shown}: SISA releases an ensemble; the audit scores one model (a recipe "
            "or PATE)"
        )
    if isinstance(recipe, Pate):
        size = None if public is None else public.size
        if size is None or size < recipe.queries:
            raise ConfigError(
                f"{where} {shown}: PATE needs --public (config: public), a corpus of at least its "
                f"{recipe.queries} queries that says its size (synthetic:N or a subset)"
            )


def _delta(recipe: Recipe | Defence) -> float:
    """The bounds' default delta: the recipe's (a defence's, or its member recipe's DP delta),
    else 1e-5."""
    if isinstance(recipe, Recipe):
        return recipe.dp.delta if recipe.dp else 1e-5
    delta = recipe.privacy().get("delta")
    return float(delta) if isinstance(delta, int | float) and delta > 0 else 1e-5


def _check_counts(audit: RecipeAudit, where: str, shown: str) -> None:
    """More canaries made from records than a synthetic corpus holds: refused by name."""
    canaries = audit.population.canaries
    assert canaries is not None
    population = audit.population
    if population.source == "synthetic" and canaries.kind != "ood":
        size = population.n or 0
        if canaries.count > size:
            raise ConfigError(f"{where} {shown}: {canaries.count} canaries from {size} records")


def _shown(value: Any) -> str:
    """An input as an error shows it: a string as given, a mapping compactly."""
    return value if isinstance(value, str) else repr(dict(value))


def parse_data(value: str, where: str = "--data") -> dict[str, Any]:
    """``--data``: ``synthetic:N`` (the project's corpus of N records) or a path that
    ``farm.training.data`` reads (TSV/CSV/parquet with ``label`` and ``sentence``, a saved HF
    dataset, a GLUE-style folder). ``ConfigError`` naming it when it does not exist."""
    if value.startswith("synthetic:"):
        n = value.split(":", 1)[1]
        if not n.isdigit() or int(n) < 1:
            raise ConfigError(f"{where} {value}: expected synthetic:N with N a positive integer")
        return {"source": "synthetic", "n": int(n)}
    path = Path(value).expanduser().resolve()
    if not path.exists():
        raise ConfigError(f"{where} {value}: no such file or folder")
    return {"source": "file", "path": str(path)}


def parse_canaries(value: str, where: str = "--canaries") -> dict[str, Any]:
    """``--canaries``: ``KIND:COUNT[:SEED]`` (``mislabelled:500``) or a YAML file holding
    ``kind``, ``count`` and optionally ``seed``/``repeats``."""
    parts = value.split(":")
    if len(parts) in (2, 3) and not Path(value).exists():
        kind, count, *seed = parts
        if not count.isdigit() or (seed and not seed[0].isdigit()):
            raise ConfigError(f"{where} {value}: expected KIND:COUNT[:SEED], e.g. mislabelled:500")
        return {"kind": kind, "count": int(count), "seed": int(seed[0]) if seed else 0}
    return read_yaml(value)
