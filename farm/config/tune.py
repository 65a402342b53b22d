"""Tune configs (``farm/config/shipped/tune/``): the search space over shadow recipes, DP variants,
pool sizes and attacks, checked in full at load."""

from __future__ import annotations

import dataclasses
import functools
import json
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from farm.attacks.rmia import RMIA_A_GRID, RMIA_GAMMA_GRID
from farm.challenge.tree import Assets, Challenge, read_challenge
from farm.config.attack import expand_assets, load_attack_config
from farm.config.loading import check_scenarios, config_path, read_yaml, typed
from farm.config.recipes import load_recipe, recipe_ref
from farm.errors import ConfigError, SpecError, require
from farm.spec.coerce import coerce, from_dict
from farm.spec.recipes import DPConfig, Recipe


def check_tune_inputs(
    config: str | Path,
    challenge: str | Path | Challenge,
    only: list[str] | None = None,
    *,
    require_weights: bool = True,
) -> TuneConfig:
    """All ``farm tune`` reads, checked before a job is scheduled: the config (its recipes and
    default attack config), the challenge tree (seeds only without ``require_weights``), and the
    scenario names of ``dp_matched``, the default attack's overrides and ``only`` (``--scenarios``).
    A ``Challenge`` already read or built (a published layout) is taken as it is. Returns the tune
    config."""
    tune_config = load_tune_config(config)
    ch = (
        challenge
        if isinstance(challenge, Challenge)
        else read_challenge(challenge, require_weights=require_weights)
    )
    scenarios = ch.scenarios()
    check_scenarios(config, "dp_matched", tune_config.dp_matched, scenarios)
    tune_config.assets.apply(ch.root, ch.constants)
    defaults = load_attack_config(tune_config.default_attack)
    check_scenarios(
        tune_config.default_attack, "scenarios", [n for n in defaults if n != "*"], scenarios
    )
    for name in only or []:
        if name not in scenarios:
            raise ConfigError(
                f"--scenarios: no scenario {name!r} in {ch.root} (expected one of "
                f"{', '.join(scenarios)})"
            )
    return tune_config


ATTACK_GRID: dict[str, list[dict]] = {
    "loss": [{}],
    "in_calibration": [{"labelled_only": True}, {"labelled_only": False}],
    "reference": [{}],
    "lira_online": [{"fixed_variance": True}, {"fixed_variance": False}],
    "lira_offline": [{"fixed_variance": True}],
    "rmia": [{"gamma": 1.0}],
    "learned": [{}],
    # Attacks of issue 13 on logits. lira_queries, lira_grad and gradient need
    # Signals.query_logits / grad_norm, which `farm attack` collects when an attack config names
    # them (AttackConfig.extras) but trials do not (Q forward passes, a backward pass per record):
    # not in the grid.
    # LiRA online: IN from the labelled models, OUT from the shadows (fixed in ATTACKS)
    "lira_farm": [{}],
    "rmia_offline": [
        {"offline_a": 0.3},  # RMIA offline: a fixed, then a and gamma fitted on the labelled models
        {"offline_a": list(RMIA_A_GRID), "gamma": list(RMIA_GAMMA_GRID)},
    ],
    "rmia_fit": [
        {}
    ],  # RMIA with a and gamma cross-fitted on the labelled models (its grids are fixed in ATTACKS)
    "stacked": [{}],  # logistic stacker on features plus rmia and lira_farm, cross-fitted
}


SPACE_KEYS = (
    "learning_rate",
    "epochs",
    "steps",
    "batch_size",
    "max_length",
    "dp",
)  # recipe fields a trial may set


DOMAINS = ("choice", "loguniform", "uniform")


DP_WORDS = ("none", "matched")


DP_MECHANISM_KEYS = (
    "noise_multiplier",
    "max_grad_norm",
    "clip_scale",
    "sampling",
    "delta",
    "accountant",
)


@dataclass(frozen=True, kw_only=True)
class TuneConfig:
    """A search: its space, the budget and what "DP-matched" means per scenario.

    ``space``: ``{key: {choice: [...]}}`` or ``{key: {loguniform|uniform: [low, high]}}`` over
    ``SPACE_KEYS``. A ``dp`` choice is one of three variants, and only a DP mapping lets a search
    vary a DP mechanism:

    * ``none``: no DP; the trial's recipe is ``recipe`` with the trial's hyperparameters.
    * ``matched``: exactly the targets' mechanism: the scenario's ``dp_matched`` recipe run as the
      targets ran it (``farm.training.train.matched_recipe`` at the challenge's ``len_training``:
      its noise multiplier, clip, logical batch, learning rate, schedule, sampling and step count).
      The trial's hyperparameters do not apply to it. A scenario without a ``dp_matched`` recipe
      gets ``none``.
    * a mapping of the fields that describe a mechanism (``DP_MECHANISM_KEYS``):
      ``noise_multiplier`` (required: a search varies noise, not an epsilon whose noise would follow
      from the trial's batch and steps), ``max_grad_norm`` and ``clip_scale``, ``sampling``, and
      ``delta``/``accountant`` (they only account). Its batch and steps are the trial's
      ``batch_size`` and ``epochs``/``steps``; ``recipe``'s ``grad_clip`` is dropped (DP-SGD clips
      per example) and so is its length grouping (no accountant covers data-dependent batches). Such
      a variant samples Poisson batches, as its accountant assumes, unless it says
      ``sampling: shuffle`` (``farm.spec.recipes.DPConfig``).

    Mappings are held as their canonical JSON (a plain string Tune and Optuna can carry), and
    ``dp_choice`` turns any of them back into a ``DPConfig``. ``assets``: as in an attack config
    (``farm.challenge.tree.Assets``).
    """

    space: dict[str, Any]
    recipe: str = "mini-inf"
    dp_matched: dict[str, str] = field(default_factory=dict)
    attacks: list[str] = field(default_factory=lambda: list(ATTACK_GRID))
    num_samples: int = 6
    max_shadows: int = 4
    group: int = 2
    held_out: float = 0.375
    max_concurrent: int = 2
    time_budget_s: float = 1800.0
    search: str = "optuna"
    seed: int = 0
    default_attack: str = "attack-mini"  # a shipped config name or a path
    assets: Assets = field(default_factory=Assets)

    def __post_init__(self) -> None:
        require(self.group >= 2, "group", "an integer >= 2", self.group)
        require(
            self.max_shadows >= self.group and self.max_shadows % self.group == 0,
            "max_shadows",
            f"a positive multiple of group ({self.group})",
            self.max_shadows,
        )
        require(0 < self.held_out < 1, "held_out", "a fraction in (0, 1)", self.held_out)
        require(self.search in ("optuna", "random"), "search", "optuna or random", self.search)
        require(self.num_samples >= 1, "num_samples", "an integer >= 1", self.num_samples)
        require(self.max_concurrent >= 1, "max_concurrent", "an integer >= 1", self.max_concurrent)
        require(
            self.time_budget_s > 0, "time_budget_s", "a number of seconds > 0", self.time_budget_s
        )
        require(bool(self.attacks), "attacks", "at least one attack")
        for i, name in enumerate(self.attacks):
            require(name in ATTACK_GRID, f"attacks[{i}]", f"one of {', '.join(ATTACK_GRID)}", name)
        object.__setattr__(
            self, "space", {name: _domain(name, spec) for name, spec in self.space.items()}
        )


def _domain(name: str, spec: Any) -> dict[str, list]:
    """One search-space entry, checked: every value must be valid for the recipe field it sets."""
    key = f"space.{name}"
    require(name in SPACE_KEYS, key, f"a key among {', '.join(SPACE_KEYS)}")
    if not (isinstance(spec, Mapping) and len(spec) == 1):
        raise SpecError(
            "expected one domain: {choice: [...]}, {loguniform: [low, high]} or {uniform: [low, "
            "high]}",
            key=key,
        )
    ((kind, values),) = spec.items()
    require(kind in DOMAINS, f"{key}.{kind}", f"a domain among {', '.join(DOMAINS)}")
    key = f"{key}.{kind}"
    require(isinstance(values, list) and bool(values), key, "a non-empty list", values)
    if kind == "choice":
        return {kind: [_space_value(name, v, f"{key}[{i}]") for i, v in enumerate(values)]}
    numeric = name != "dp" and _recipe_types()[name] is float
    require(
        numeric, key, f"choice (a {kind} range only suits a real-valued key such as learning_rate)"
    )
    require(len(values) == 2, key, "[low, high]", values)
    low, high = (_space_value(name, v, f"{key}[{i}]") for i, v in enumerate(values))
    require(low < high, key, "low < high", values)
    return {kind: [low, high]}


def _space_value(name: str, value: Any, key: str) -> Any:
    """A value for recipe field ``name`` (type and range checked), or a DP choice as its canonical
    label."""
    if name == "dp":
        choice = dp_choice(value, key)
        return choice if isinstance(choice, str) else dp_label(choice, value)
    value = coerce(_recipe_types()[name], value, key)
    try:
        dataclasses.replace(Recipe(), **{name: value})
    except SpecError as exc:
        raise SpecError(exc.detail, key=key) from exc
    return value


def dp_choice(value: Any, key: str = "dp") -> str | DPConfig:
    """A DP variant: ``"none"``, ``"matched"``, or the ``DPConfig`` of a mapping (or of its JSON
    label) of ``DP_MECHANISM_KEYS`` with a ``noise_multiplier`` (see ``TuneConfig``)."""
    if isinstance(value, str) and value in DP_WORDS:
        return value
    if isinstance(value, str) and value.startswith("{"):
        try:
            value = json.loads(value)
        except ValueError as exc:
            raise SpecError(f"invalid JSON DP settings ({exc})", key=key) from exc
    if not isinstance(value, Mapping):
        raise SpecError(
            f"expected none, matched or a mapping of DP settings such as "
            f"{{noise_multiplier: 0.5, max_grad_norm: 1.0, delta: 1.0e-5}}, got {value!r}",
            key=key,
        )
    for name in value:
        if name not in DP_MECHANISM_KEYS:
            raise SpecError(
                f"a searched DP variant describes a mechanism: expected keys among "
                f"{', '.join(DP_MECHANISM_KEYS)} (matched: the targets' own)",
                key=f"{key}.{name}",
            )
    if "noise_multiplier" not in value:
        raise SpecError(
            "missing (a searched DP variant fixes its noise)", key=f"{key}.noise_multiplier"
        )
    return from_dict(DPConfig, value, key)


def dp_label(dp: DPConfig, given: Any) -> str:
    """Canonical JSON of the settings the config gave (as checked), e.g. ``{"delta":1e-05,...}``."""
    given = json.loads(given) if isinstance(given, str) else given
    return json.dumps({k: getattr(dp, k) for k in sorted(given)}, separators=(",", ":"))


@functools.lru_cache(maxsize=1)
def _recipe_types() -> dict[str, Any]:
    return typing.get_type_hints(Recipe)


def load_tune_config(path: str | Path) -> TuneConfig:
    """A tune config, checked in full (its recipes, DP-matched recipes and default attack config
    included); file references become absolute, since trials run elsewhere."""
    path = config_path(path)
    data = read_yaml(path)

    def absolute(ref: Any) -> Any:
        return str(Path(ref).resolve()) if isinstance(ref, str) and Path(ref).suffix else ref

    for key in ("recipe", "default_attack"):
        if key in data:
            data[key] = absolute(data[key])
    if isinstance(data.get("dp_matched"), Mapping):
        data["dp_matched"] = {k: absolute(v) for k, v in data["dp_matched"].items()}
    if isinstance(data.get("assets"), Mapping):
        data["assets"] = expand_assets(data["assets"])
    config = typed(TuneConfig, data, path)
    recipe_ref(config.recipe, path, "recipe")
    for scenario, name in config.dp_matched.items():
        if recipe_ref(name, path, f"dp_matched.{scenario}").dp is None:
            raise ConfigError(
                f"{path}: dp_matched.{scenario}: recipe {name!r} has no dp block (expected a DP "
                f"recipe)"
            )
    try:
        load_attack_config(config.default_attack)
    except ConfigError as exc:
        raise ConfigError(f"{path}: default_attack: {exc}") from exc
    return config


def trial_recipe(params: dict, tune_config: TuneConfig, scenario: str, n_target: int) -> Recipe:
    """The trial's shadow recipe (``TuneConfig`` says what each DP variant means). ``n_target``: the
    targets' training-set size (the challenge's ``len_training``), at which a ``matched`` variant
    runs their mechanism."""
    choice = dp_choice(params.get("dp", "none"))
    if choice == "matched" and scenario in tune_config.dp_matched:
        # lazy: loads torch
        from farm.training.train import matched_recipe

        return matched_recipe(load_recipe(tune_config.dp_matched[scenario]), n_target)
    recipe = load_recipe(tune_config.recipe)
    recipe = dataclasses.replace(
        recipe, **{k: params[k] for k in SPACE_KEYS if k in params and k != "dp"}
    )
    if isinstance(choice, DPConfig):
        return dataclasses.replace(recipe, dp=choice, grad_clip=None, group_by_length=False)
    return dataclasses.replace(recipe, dp=None)
