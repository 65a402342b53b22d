"""Attack configs (``farm/config/shipped/attack/``, a ``best.yaml`` written by ``farm tune``): one
typed ``AttackConfig`` per scenario, checked in full at load."""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from farm.attacks.registry import ATTACKS, needs
from farm.challenge.tree import PHASES, Assets, Challenge, read_challenge
from farm.config.loading import check_scenarios, config_path, expand_vars, read_yaml, typed
from farm.config.recipes import recipe_ref
from farm.errors import ConfigError, SpecError, require
from farm.shadows.plans import PlanSpec
from farm.shadows.scenario import Extras
from farm.spec.coerce import coerce, from_dict
from farm.spec.queries import QueryFamily
from farm.spec.recipes import Recipe

NORMALIZE_MODES = ("global", "rank")  # the modes of farm.challenge.submission.normalize


def check_attack_inputs(
    config: str | Path,
    challenge: str | Path | Challenge,
    answers: str | Path | None = None,
    *,
    require_weights: bool = True,
) -> dict[str, AttackConfig]:
    """All ``farm attack`` reads, checked before a job is scheduled: the config and its recipes, the
    challenge tree (seeds, ``config.json``, weights safely loadable; seeds only without
    ``require_weights``, for a plan), the answers tree, and that every scenario override names a
    scenario of the challenge (a ``Challenge`` already read or built, such as a published layout of
    ``farm.challenge.layouts``, is taken as it is). Returns the configs."""
    configs = load_attack_config(config)
    ch = (
        challenge
        if isinstance(challenge, Challenge)
        else read_challenge(challenge, require_weights=require_weights)
    )
    scenarios = ch.scenarios()
    check_scenarios(config, "scenarios", [name for name in configs if name != "*"], scenarios)
    configs["*"].assets.apply(ch.root, ch.constants)
    if answers is not None:
        read_challenge(answers, require_weights=False)
    return configs


@dataclass(frozen=True, kw_only=True)
class AttackConfig:
    """How one scenario is attacked: the shadow plan and recipe, the attack and its parameters,
    normalization.

    ``attack``: a name in ``farm.attacks.registry.ATTACKS``; ``params``: its keyword-only parameters
    (checked, and converted to their declared types); ``recipe``: a recipe name from
    ``farm/config/shipped/recipes/``, a ``.yaml`` path or an inline recipe mapping; ``normalize``: a
    ``farm.challenge.submission.normalize`` mode. ``match_targets``: ``recipe`` is the targets' own
    recipe, and shadows run the targets' mechanism (``farm.training.train.matched_recipe`` at the
    targets' training-set size, the challenge's ``len_training``): the same noise multiplier, clip,
    logical batch, learning rate, schedule, sampling and number of steps. False: shadows train with
    ``recipe`` on their own records as it stands (a ``target_epsilon`` is solved at their own size).
    ``assets``: local copies of the hub inputs of a release tree (``farm.challenge.tree.Assets``);
    top level only. ``queries``: the ``farm.spec.queries.QueryFamily`` (its fields: ``kinds``,
    ``drop_rate``, ``swaps``, ``special``, ``seed``) whose logits an attack reading query logits
    (``lira_queries``) gets; default ``QueryFamily()``. Inference computes extra signals only when
    the attack needs them (``extras``).
    """

    attack: str = "loss"
    params: dict[str, Any] = field(default_factory=dict)
    plan: PlanSpec = field(default_factory=PlanSpec)
    recipe: str | dict[str, Any] = "mini-inf"
    normalize: str = "global"
    match_targets: bool = False
    assets: Assets = field(default_factory=Assets)
    queries: QueryFamily | None = None

    def __post_init__(self) -> None:
        require(self.attack in ATTACKS, "attack", f"one of {', '.join(ATTACKS)}", self.attack)
        object.__setattr__(self, "params", attack_params(self.attack, self.params))
        try:
            needs(self.attack, self.params)
        except ValueError as exc:
            raise SpecError(str(exc), key="params.extra_signals") from None
        require(
            self.normalize in NORMALIZE_MODES,
            "normalize",
            " or ".join(NORMALIZE_MODES),
            self.normalize,
        )
        for i, phase in enumerate(self.plan.phases):
            require(phase in PHASES, f"plan.phases[{i}]", f"one of {', '.join(PHASES)}", phase)
        if isinstance(self.recipe, Mapping):
            from_dict(Recipe, self.recipe, "recipe")

    def extras(self) -> Extras:
        """The signals beyond logits inference must compute for this attack
        (``farm.attacks.registry.needs``): none for logits-only attacks, so their inference jobs
        (and store keys) stay plain."""

        return Extras.needed(needs(self.attack, self.params), self.queries)

    def named_recipe(self) -> Recipe:
        """The recipe ``recipe`` names (with ``match_targets``: the targets' recipe, before
        matching)."""
        return recipe_ref(self.recipe, "attack config", "recipe")

    def shadow_recipe(self, n_target: int | None = None) -> Recipe:
        """The recipe shadows train with: ``named_recipe``, or with ``match_targets`` the targets'
        mechanism at ``n_target`` (the challenge's ``len_training``; required then), which solves
        the noise multiplier once (torch and Opacus are imported then)."""
        recipe = self.named_recipe()
        if not self.match_targets:
            return recipe
        if n_target is None:
            raise ConfigError(
                "attack config: match_targets: the targets' training-set size is needed"
            )
        # lazy: loads torch
        from farm.training.train import matched_recipe

        return matched_recipe(recipe, n_target)


def attack_params(attack: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """``params`` checked against the keyword-only parameters of ``ATTACKS[attack]``: names, then
    types (``SpecError`` naming ``params.<name>``). Parameters a variant fixes (``lira_online``'s
    ``online``) are not settable."""
    declared = _keyword_params(attack)
    out = {}
    for name, value in params.items():
        if name not in declared:
            expected = (
                f"one of {', '.join(declared)}"
                if declared
                else "none: the attack takes no parameters"
            )
            raise SpecError(
                f"unknown parameter of attack {attack!r} (expected {expected})",
                key=f"params.{name}",
            )
        out[name] = coerce(declared[name], value, f"params.{name}")
    return out


@functools.lru_cache(maxsize=32)
def _keyword_params(attack: str) -> dict[str, Any]:
    """``{name: annotation}`` of the attack function's keyword-only parameters, minus those a
    partial fixes."""
    fn: Any = ATTACKS[attack]
    fixed = set(fn.keywords) if isinstance(fn, functools.partial) else set()
    base = fn.func if isinstance(fn, functools.partial) else fn
    hints = typing.get_type_hints(base)
    return {
        p.name: hints.get(p.name, Any)
        for p in inspect.signature(base).parameters.values()
        if p.kind is inspect.Parameter.KEYWORD_ONLY and p.name not in fixed
    }


def load_attack_config(path: str | Path) -> dict[str, AttackConfig]:
    """``{scenario or "*": AttackConfig}`` from YAML: top-level keys are the default,
    ``scenarios.<name>`` overrides them per scenario (a ``best.yaml`` written by ``farm tune`` has
    the same shape); a scenario that names another attack does not inherit the top-level ``params``
    (they are that attack's). Recipe references are resolved now, so a missing recipe fails here."""
    path = config_path(path)
    data = read_yaml(path)
    overrides = data.pop("scenarios", None) or {}
    if not isinstance(overrides, Mapping):
        raise ConfigError(
            f"{path}: scenarios: expected a mapping of scenario name to overrides, got "
            f"{overrides!r}"
        )
    if isinstance(data.get("assets"), Mapping):
        data["assets"] = expand_assets(data["assets"])
    configs = {"*": _attack_config(data, path, "")}
    for name, extra in overrides.items():
        if extra is not None and not isinstance(extra, Mapping):
            raise ConfigError(
                f"{path}: scenarios.{name}: expected a mapping of overrides, got {extra!r}"
            )
        if extra and "assets" in extra:
            raise ConfigError(
                f"{path}: scenarios.{name}.assets: assets belong to the whole challenge (set them "
                f"at the top level)"
            )
        merged = {**data, **(extra or {})}
        if merged.get("attack") != data.get("attack") and "params" not in (extra or {}):
            merged.pop("params", None)  # parameters of another attack
        configs[str(name)] = _attack_config(merged, path, f"scenarios.{name}")
    return configs


def expand_assets(assets: Mapping[str, Any]) -> dict[str, Any]:
    """An ``assets`` mapping with ``${VAR}`` expanded (``expand_vars``) in its directories and
    population path, and those made absolute (relative to the working directory), as
    ``farm.challenge.tree.Assets`` expects them."""
    out = dict(assets)

    def local(value: Any) -> Any:
        return (
            str(Path(expand_vars(value)).expanduser().resolve())
            if isinstance(value, str)
            else value
        )

    for key in ("base_model", "tokenizer"):
        if key in out:
            out[key] = local(out[key])
    if isinstance(out.get("population"), Mapping) and "path" in out["population"]:
        out["population"] = {**out["population"], "path": local(out["population"]["path"])}
    return out


def _attack_config(data: dict, path: str | Path, where: str) -> AttackConfig:
    config = typed(AttackConfig, data, path, where)
    recipe_ref(config.recipe, path, f"{where}.recipe" if where else "recipe")
    return config
