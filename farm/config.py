"""YAML at the edge: files become typed, validated objects here, with errors naming the file and key.

Every config is checked in full when it is loaded, before Ray starts or any job runs: unknown keys, types,
ranges, attack names and their parameters, normalization modes, plans, DP blocks and recipe references. Each
error is one ``ConfigError`` line ``<file>: <dotted.key>: expected ..., got ...``.

* attack configs (``farm/configs/attack-*.yaml``, a ``best.yaml`` written by ``farm tune``): ``load_attack_config``;
* recipes (``farm/configs/recipes/*.yaml``): ``load_recipe``, and ``recipe_ref`` for a recipe a config names;
* tune configs (``farm/configs/tune-*.yaml``): ``load_tune_config``;
* make-challenge configs live in ``farm.mini`` (``load_config``) and use the same helpers.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import json
import os
import re
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import yaml

from farm.attacks import ATTACKS, RMIA_A_GRID, RMIA_GAMMA_GRID, needs
from farm.challenge import PHASES, Assets, read_challenge
from farm.errors import ConfigError, SpecError
from farm.plans import PlanSpec
from farm.queries import QueryFamily
from farm.recipes import DPConfig, Recipe, coerce, from_dict, require

if TYPE_CHECKING:
    from farm.scenario import Extras

T = TypeVar("T")
NORMALIZE_MODES = ("global", "rank")  # the modes of farm.submission.normalize

Kind = Literal["config", "recipe"]
_FOLDERS: dict[str, tuple[str, ...]] = {"config": ("configs",), "recipe": ("configs", "recipes")}


def shipped(kind: Kind = "config") -> dict[str, Path]:
    """``{name: path}`` of the YAML files shipped as package data: configs (``mini``, ``attack-mini``, ...) under
    ``farm/configs/``, recipes (``mini-inf``, ``mico-lo``, ...) under ``farm/configs/recipes/``."""
    folder = resources.files("farm").joinpath(*_FOLDERS[kind])
    found = {item.name[:-5]: Path(str(item)) for item in folder.iterdir() if item.name.endswith(".yaml")}
    return dict(sorted(found.items()))


_VAR = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}")


def expand_vars(text: str) -> str:
    """``${NAME}`` and ``${NAME:-default}`` replaced from the environment (as a shell does), so a shipped config can
    name data that is not part of the project: ``${FARM_SST2_DIR:-../shared/data/sst2}``. ``ConfigError`` for an
    unset variable without a default.

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
    """The file of a config or recipe given by name (no suffix, no folder: ``attack-mini``, ``mini-inf``) from
    the shipped ones, or ``name_or_path`` unchanged when it is a path. A path ``configs/<name>.yaml`` (or
    ``configs/recipes/<name>.yaml``) that does not exist names the shipped file, so the commands the docs give from
    the repository root work from any working directory. ``ConfigError`` for an unknown name."""
    path = Path(name_or_path)
    if path.suffix or path.name != str(name_or_path):
        folder = "configs/recipes" if kind == "recipe" else "configs"
        if not path.exists() and path.suffix == ".yaml" and path.parent.as_posix() == folder \
                and path.stem in shipped(kind):
            return shipped(kind)[path.stem]
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
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{path}: invalid YAML{where} ({getattr(exc, 'problem', None) or exc})") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of settings at the top level, got {type(data).__name__}")
    return data


def typed(cls: type[T], data: Any, path: str | Path, key: str = "") -> T:
    """``from_dict`` with ``ConfigError`` naming ``path`` and the dotted key below ``key`` (``""``: file root)."""
    try:
        return from_dict(cls, data, key)
    except SpecError as exc:
        raise ConfigError(f"{path}: {exc}") from exc


def load_recipe(name_or_path: str | Path) -> Recipe:
    """A recipe from a YAML file, or by name from the shipped ones (``mico-inf``, ``mini-lo``, ...)."""
    path = config_path(name_or_path, "recipe")
    return typed(Recipe, read_yaml(path), path)


def recipe_ref(ref: str | Mapping[str, Any], path: str | Path, key: str) -> Recipe:
    """The recipe that config ``path`` names at ``key``: a recipe name, a ``.yaml`` path or an inline mapping.
    ``ConfigError`` naming ``path`` and ``key`` when the recipe does not exist or is invalid."""
    if isinstance(ref, Mapping):
        return typed(Recipe, ref, path, key)
    target = _recipe_path(ref)
    if target is None or not target.is_file():
        names = ", ".join(shipped("recipe"))
        raise ConfigError(f"{path}: {key}: no recipe {ref!r} (expected a recipe name ({names}) or a .yaml file)")
    try:
        return load_recipe(target)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {key}: recipe {ref!r} is invalid: {exc}") from exc


def _recipe_path(name_or_path: str | Path) -> Path | None:
    path = Path(name_or_path)
    if path.suffix or path.name != str(name_or_path):
        return path
    return shipped("recipe").get(str(name_or_path))


def check_scenarios(path: str | Path, key: str, names: Iterable[str], scenarios: list[str]) -> None:
    """``ConfigError`` unless each scenario ``names`` (keys under ``key`` in ``path``) is one of ``scenarios``."""
    for name in names:
        if name not in scenarios:
            raise ConfigError(f"{path}: {key}.{name}: no such scenario in the challenge (expected one of "
                              f"{', '.join(scenarios)})")


def check_attack_inputs(config: str | Path, challenge: str | Path, answers: str | Path | None = None, *,
                        require_weights: bool = True) -> dict[str, AttackConfig]:
    """All ``farm attack`` reads, checked before a job is scheduled: the config and its recipes, the challenge
    tree (seeds, ``config.json``, weights safely loadable; seeds only without ``require_weights``, for a plan),
    the answers tree, and that every scenario override names a scenario of the challenge. Returns the configs."""
    configs = load_attack_config(config)
    ch = read_challenge(challenge, require_weights=require_weights)
    scenarios = ch.scenarios()
    check_scenarios(config, "scenarios", [name for name in configs if name != "*"], scenarios)
    configs["*"].assets.apply(ch.root, ch.constants)
    if answers is not None:
        read_challenge(answers, require_weights=False)
    return configs


def check_tune_inputs(config: str | Path, challenge: str | Path, only: list[str] | None = None, *,
                      require_weights: bool = True) -> TuneConfig:
    """All ``farm tune`` reads, checked before a job is scheduled: the config (its recipes and default attack
    config), the challenge tree (seeds only without ``require_weights``), and the scenario names of
    ``dp_matched``, the default attack's overrides and ``only`` (``--scenarios``). Returns the tune config."""
    tune_config = load_tune_config(config)
    ch = read_challenge(challenge, require_weights=require_weights)
    scenarios = ch.scenarios()
    check_scenarios(config, "dp_matched", tune_config.dp_matched, scenarios)
    tune_config.assets.apply(ch.root, ch.constants)
    defaults = load_attack_config(tune_config.default_attack)
    check_scenarios(tune_config.default_attack, "scenarios", [n for n in defaults if n != "*"], scenarios)
    for name in only or []:
        if name not in scenarios:
            raise ConfigError(f"--scenarios: no scenario {name!r} in {challenge} (expected one of "
                              f"{', '.join(scenarios)})")
    return tune_config


# --- attack configs -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AttackConfig:
    """How one scenario is attacked: the shadow plan and recipe, the attack and its parameters, normalization.

    ``attack``: a name in ``farm.attacks.ATTACKS``; ``params``: its keyword-only parameters (checked, and
    converted to their declared types); ``recipe``: a recipe name from ``farm/configs/recipes``, a ``.yaml`` path or
    an inline recipe mapping; ``normalize``: a ``farm.submission.normalize`` mode.
    ``match_targets``: ``recipe`` is the targets' own recipe, and shadows run the targets' mechanism
    (``farm.train.matched_recipe`` at the targets' training-set size, the challenge's ``len_training``): the same
    noise multiplier, clip, logical batch, learning rate, schedule, sampling and number of steps. False: shadows
    train with ``recipe`` on their own records as it stands (a ``target_epsilon`` is solved at their own size).
    ``assets``: local copies of the hub inputs of a release tree (``farm.challenge.Assets``); top level only.
    ``queries``: the ``farm.queries.QueryFamily`` (its fields: ``kinds``, ``drop_rate``, ``swaps``, ``special``,
    ``seed``) whose logits an attack reading query logits (``lira_queries``) gets; default ``QueryFamily()``.
    Inference computes extra signals only when the attack needs them (``extras``).
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
        require(self.normalize in NORMALIZE_MODES, "normalize", " or ".join(NORMALIZE_MODES), self.normalize)
        for i, phase in enumerate(self.plan.phases):
            require(phase in PHASES, f"plan.phases[{i}]", f"one of {', '.join(PHASES)}", phase)
        if isinstance(self.recipe, Mapping):
            from_dict(Recipe, self.recipe, "recipe")

    def extras(self) -> Extras:
        """The signals beyond logits inference must compute for this attack (``farm.attacks.needs``): none for
        logits-only attacks, so their inference jobs (and store keys) stay plain."""
        from farm.scenario import Extras

        return Extras.needed(needs(self.attack, self.params), self.queries)

    def named_recipe(self) -> Recipe:
        """The recipe ``recipe`` names (with ``match_targets``: the targets' recipe, before matching)."""
        return recipe_ref(self.recipe, "attack config", "recipe")

    def shadow_recipe(self, n_target: int | None = None) -> Recipe:
        """The recipe shadows train with: ``named_recipe``, or with ``match_targets`` the targets' mechanism at
        ``n_target`` (the challenge's ``len_training``; required then), which solves the noise multiplier once
        (torch and Opacus are imported then)."""
        recipe = self.named_recipe()
        if not self.match_targets:
            return recipe
        if n_target is None:
            raise ConfigError("attack config: match_targets: the targets' training-set size is needed")
        from farm.train import matched_recipe

        return matched_recipe(recipe, n_target)


def attack_params(attack: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """``params`` checked against the keyword-only parameters of ``ATTACKS[attack]``: names, then types
    (``SpecError`` naming ``params.<name>``). Parameters a variant fixes (``lira_online``'s ``online``) are
    not settable."""
    declared = _keyword_params(attack)
    out = {}
    for name, value in params.items():
        if name not in declared:
            expected = f"one of {', '.join(declared)}" if declared else "none: the attack takes no parameters"
            raise SpecError(f"unknown parameter of attack {attack!r} (expected {expected})", key=f"params.{name}")
        out[name] = coerce(declared[name], value, f"params.{name}")
    return out


@functools.lru_cache(maxsize=32)
def _keyword_params(attack: str) -> dict[str, Any]:
    """``{name: annotation}`` of the attack function's keyword-only parameters, minus those a partial fixes."""
    fn: Any = ATTACKS[attack]
    fixed = set(fn.keywords) if isinstance(fn, functools.partial) else set()
    base = fn.func if isinstance(fn, functools.partial) else fn
    hints = typing.get_type_hints(base)
    return {p.name: hints.get(p.name, Any) for p in inspect.signature(base).parameters.values()
            if p.kind is inspect.Parameter.KEYWORD_ONLY and p.name not in fixed}


def load_attack_config(path: str | Path) -> dict[str, AttackConfig]:
    """``{scenario or "*": AttackConfig}`` from YAML: top-level keys are the default, ``scenarios.<name>`` overrides
    them per scenario (a ``best.yaml`` written by ``farm tune`` has the same shape). Recipe references are
    resolved now, so a missing recipe fails here."""
    path = config_path(path)
    data = read_yaml(path)
    overrides = data.pop("scenarios", None) or {}
    if not isinstance(overrides, Mapping):
        raise ConfigError(f"{path}: scenarios: expected a mapping of scenario name to overrides, got {overrides!r}")
    if isinstance(data.get("assets"), Mapping):
        data["assets"] = expand_assets(data["assets"])
    configs = {"*": _attack_config(data, path, "")}
    for name, extra in overrides.items():
        if extra is not None and not isinstance(extra, Mapping):
            raise ConfigError(f"{path}: scenarios.{name}: expected a mapping of overrides, got {extra!r}")
        if extra and "assets" in extra:
            raise ConfigError(f"{path}: scenarios.{name}.assets: assets belong to the whole challenge (set them at "
                              "the top level)")
        configs[str(name)] = _attack_config({**data, **(extra or {})}, path, f"scenarios.{name}")
    return configs


def expand_assets(assets: Mapping[str, Any]) -> dict[str, Any]:
    """An ``assets`` mapping with ``${VAR}`` expanded (``expand_vars``) in its directories and population path, and
    those made absolute (relative to the working directory), as ``farm.challenge.Assets`` expects them."""
    out = dict(assets)

    def local(value: Any) -> Any:
        return str(Path(expand_vars(value)).expanduser().resolve()) if isinstance(value, str) else value

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


# --- tune configs -------------------------------------------------------------------------------------------

ATTACK_GRID: dict[str, list[dict]] = {
    "loss": [{}],
    "in_calibration": [{"labelled_only": True}, {"labelled_only": False}],
    "reference": [{}],
    "lira_online": [{"fixed_variance": True}, {"fixed_variance": False}],
    "lira_offline": [{"fixed_variance": True}],
    "rmia": [{"gamma": 1.0}],
    "learned": [{}],
    # Attacks of issue 13 on logits. lira_queries, lira_grad and gradient need Signals.query_logits / grad_norm,
    # which the driver collects when an attack config names them (AttackConfig.extras) but trials do not (Q
    # forward passes, a backward pass per record): not in the grid.
    "lira_farm": [{}],  # LiRA online: IN from the labelled models, OUT from the shadows (fixed in ATTACKS)
    "rmia_offline": [{"offline_a": 0.3},  # RMIA offline: a fixed, then a and gamma fitted on the labelled models
                     {"offline_a": list(RMIA_A_GRID), "gamma": list(RMIA_GAMMA_GRID)}],
    "rmia_fit": [{}],  # RMIA with a and gamma cross-fitted on the labelled models (its grids are fixed in ATTACKS)
    "stacked": [{}],  # logistic stacker on features plus rmia and lira_farm, cross-fitted
}
SPACE_KEYS = ("learning_rate", "epochs", "steps", "batch_size", "max_length", "dp")  # recipe fields a trial may set
DOMAINS = ("choice", "loguniform", "uniform")
DP_WORDS = ("none", "matched")
DP_MECHANISM_KEYS = ("noise_multiplier", "max_grad_norm", "clip_scale", "sampling", "delta", "accountant")


@dataclass(frozen=True)
class TuneConfig:
    """A search: its space, the budget and what "DP-matched" means per scenario.

    ``space``: ``{key: {choice: [...]}}`` or ``{key: {loguniform|uniform: [low, high]}}`` over ``SPACE_KEYS``.
    A ``dp`` choice is one of three variants, and only a DP mapping lets a search vary a DP mechanism:

    * ``none``: no DP; the trial's recipe is ``recipe`` with the trial's hyperparameters.
    * ``matched``: exactly the targets' mechanism: the scenario's ``dp_matched`` recipe run as the targets ran it
      (``farm.train.matched_recipe`` at the challenge's ``len_training``: its noise multiplier, clip, logical
      batch, learning rate, schedule, sampling and step count). The trial's hyperparameters do not apply to it.
      A scenario without a ``dp_matched`` recipe gets ``none``.
    * a mapping of the fields that describe a mechanism (``DP_MECHANISM_KEYS``): ``noise_multiplier``
      (required: a search varies noise, not an epsilon whose noise would follow from the trial's batch and
      steps), ``max_grad_norm`` and ``clip_scale``, ``sampling``, and ``delta``/``accountant`` (they only
      account). Its batch and steps are the trial's ``batch_size`` and ``epochs``/``steps``; ``recipe``'s
      ``grad_clip`` is dropped (DP-SGD clips per example) and so is its length grouping (no
      accountant covers data-dependent batches). Such a variant samples Poisson batches, as its
      accountant assumes, unless it says ``sampling: shuffle`` (``farm.recipes.DPConfig``).

    Mappings are held as their canonical JSON (a plain string Tune and Optuna can carry), and ``dp_choice`` turns
    any of them back into a ``DPConfig``. ``assets``: as in an attack config (``farm.challenge.Assets``).
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
        require(self.max_shadows >= self.group and self.max_shadows % self.group == 0, "max_shadows",
                f"a positive multiple of group ({self.group})", self.max_shadows)
        require(0 < self.held_out < 1, "held_out", "a fraction in (0, 1)", self.held_out)
        require(self.search in ("optuna", "random"), "search", "optuna or random", self.search)
        require(self.num_samples >= 1, "num_samples", "an integer >= 1", self.num_samples)
        require(self.max_concurrent >= 1, "max_concurrent", "an integer >= 1", self.max_concurrent)
        require(self.time_budget_s > 0, "time_budget_s", "a number of seconds > 0", self.time_budget_s)
        require(bool(self.attacks), "attacks", "at least one attack")
        for i, name in enumerate(self.attacks):
            require(name in ATTACK_GRID, f"attacks[{i}]", f"one of {', '.join(ATTACK_GRID)}", name)
        object.__setattr__(self, "space", {name: _domain(name, spec) for name, spec in self.space.items()})


def _domain(name: str, spec: Any) -> dict[str, list]:
    """One search-space entry, checked: every value must be valid for the recipe field it sets."""
    key = f"space.{name}"
    require(name in SPACE_KEYS, key, f"a key among {', '.join(SPACE_KEYS)}")
    if not (isinstance(spec, Mapping) and len(spec) == 1):
        raise SpecError("expected one domain: {choice: [...]}, {loguniform: [low, high]} or {uniform: [low, high]}",
                        key=key)
    (kind, values), = spec.items()
    require(kind in DOMAINS, f"{key}.{kind}", f"a domain among {', '.join(DOMAINS)}")
    key = f"{key}.{kind}"
    require(isinstance(values, list) and bool(values), key, "a non-empty list", values)
    if kind == "choice":
        return {kind: [_space_value(name, v, f"{key}[{i}]") for i, v in enumerate(values)]}
    numeric = name != "dp" and _recipe_types()[name] is float
    require(numeric, key, f"choice (a {kind} range only suits a real-valued key such as learning_rate)")
    require(len(values) == 2, key, "[low, high]", values)
    low, high = (_space_value(name, v, f"{key}[{i}]") for i, v in enumerate(values))
    require(low < high, key, "low < high", values)
    return {kind: [low, high]}


def _space_value(name: str, value: Any, key: str) -> Any:
    """A value for recipe field ``name`` (type and range checked), or a DP choice as its canonical label."""
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
    """A DP variant: ``"none"``, ``"matched"``, or the ``DPConfig`` of a mapping (or of its JSON label) of
    ``DP_MECHANISM_KEYS`` with a ``noise_multiplier`` (see ``TuneConfig``)."""
    if isinstance(value, str) and value in DP_WORDS:
        return value
    if isinstance(value, str) and value.startswith("{"):
        try:
            value = json.loads(value)
        except ValueError as exc:
            raise SpecError(f"invalid JSON DP settings ({exc})", key=key) from exc
    if not isinstance(value, Mapping):
        raise SpecError(f"expected none, matched or a mapping of DP settings such as {{noise_multiplier: 0.5, "
                        f"max_grad_norm: 1.0, delta: 1.0e-5}}, got {value!r}", key=key)
    for name in value:
        if name not in DP_MECHANISM_KEYS:
            raise SpecError(f"a searched DP variant describes a mechanism: expected keys among "
                            f"{', '.join(DP_MECHANISM_KEYS)} (matched: the targets' own)", key=f"{key}.{name}")
    if "noise_multiplier" not in value:
        raise SpecError("missing (a searched DP variant fixes its noise)", key=f"{key}.noise_multiplier")
    return from_dict(DPConfig, value, key)


def dp_label(dp: DPConfig, given: Any) -> str:
    """Canonical JSON of the settings the config gave (as checked), e.g. ``{"delta":1e-05,...}``."""
    given = json.loads(given) if isinstance(given, str) else given
    return json.dumps({k: getattr(dp, k) for k in sorted(given)}, separators=(",", ":"))


@functools.lru_cache(maxsize=1)
def _recipe_types() -> dict[str, Any]:
    return typing.get_type_hints(Recipe)


def load_tune_config(path: str | Path) -> TuneConfig:
    """A tune config, checked in full (its recipes, DP-matched recipes and default attack config included);
    file references become absolute, since trials run elsewhere."""
    path = config_path(path)
    data = read_yaml(path)
    absolute = lambda ref: str(Path(ref).resolve()) if isinstance(ref, str) and Path(ref).suffix else ref  # noqa: E731
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
            raise ConfigError(f"{path}: dp_matched.{scenario}: recipe {name!r} has no dp block (expected a DP recipe)")
    try:
        load_attack_config(config.default_attack)
    except ConfigError as exc:
        raise ConfigError(f"{path}: default_attack: {exc}") from exc
    return config


def trial_recipe(params: dict, tune_config: TuneConfig, scenario: str, n_target: int) -> Recipe:
    """The trial's shadow recipe (``TuneConfig`` says what each DP variant means). ``n_target``: the targets'
    training-set size (the challenge's ``len_training``), at which a ``matched`` variant runs their mechanism."""
    choice = dp_choice(params.get("dp", "none"))
    if choice == "matched" and scenario in tune_config.dp_matched:
        from farm.train import matched_recipe

        return matched_recipe(load_recipe(tune_config.dp_matched[scenario]), n_target)
    recipe = load_recipe(tune_config.recipe)
    recipe = dataclasses.replace(recipe, **{k: params[k] for k in SPACE_KEYS if k in params and k != "dp"})
    if isinstance(choice, DPConfig):
        return dataclasses.replace(recipe, dp=choice, grad_clip=None, group_by_length=False)
    return dataclasses.replace(recipe, dp=None)
