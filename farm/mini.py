"""The mini challenge: a MICO-format tree built by the farm itself, with MICO's exact split logic, scaled down.

``make_challenge(config, out)`` trains a tokenizer on the population and a tiny *base* model on a public corpus
disjoint from it (the stand-in for roberta-base), then every target of every scenario with its scenario's
recipe, all through the executor and the store. It writes

* ``out/challenge/``: what a participant gets -- ``challenge.json`` (constants, population, tokenizer and base
  model paths), ``assets/{tokenizer,base}``, and per scenario ``train`` models with seeds and solutions and
  ``dev``/``final`` models with ``seed_challenge`` and weights only;
* ``out/answers/``: ``dev``/``final`` seeds and ``solution.csv``, so the project can score itself.

``layout: mico`` writes the *release* layout instead, as MICO published it: no ``challenge.json`` (so MICO's
constants apply, and the config must have them: all 68,221 GLUE SST-2 records, 67,349 training records and 100
challenge pairs per model), weights as ``pytorch_model.bin`` (a plain state dict, which readers load with
``weights_only``), and the tokenizer and base model -- what the hub's roberta-base is to the real release -- in
``out/assets/base`` (tokenizer files beside ``config.json`` and weights), which an attack config names as
``assets: {base_model: OUT/assets/base}``.

Each tree is assembled in a temporary folder and renamed into place: a crash leaves no half-written tree.
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from farm.challenge import (
    ASSETS,
    FORGOTTEN_CSV,
    PHASES,
    SCENARIO_RE,
    ChallengeConstants,
    format_row,
    write_constants,
    write_ensemble,
    write_model,
    write_model_files,
)
from farm.config import config_path, expand_vars, read_yaml, recipe_ref, shipped, typed
from farm.defences import Defence, DefencePlan, TargetSpec, plan_target, recipe_privacy, registry
from farm.errors import ConfigError, SpecError, SplitError
from farm.fsutil import atomic_write_text
from farm.jobs import Selection, StoreRef, TokenizerJob, TrainJob
from farm.pateplan import Pate
from farm.recipes import Recipe, canonical_key, from_dict, require, to_dict
from farm.sisa import Sisa, forget_members
from farm.splits import MICO_LEN_CHALLENGE, MICO_LEN_TRAINING, MICO_N_TOTAL, check_constants, split_model


@dataclass(frozen=True)
class Subset:
    """``subset`` of a population spec: positions ``offset .. offset+n-1`` of a seeded permutation."""

    n: int
    seed: int = 0
    offset: int = 0

    def __post_init__(self) -> None:
        require(self.n >= 1, "n", "an integer >= 1", self.n)
        require(self.offset >= 0, "offset", "an integer >= 0", self.offset)


@dataclass(frozen=True)
class PopulationSpec:
    """The shape of a population spec (see ``farm.data``); a config keeps the spec itself as a plain mapping."""

    source: str
    n: int | None = None
    seed: int = 0
    path: str | None = None
    subset: Subset | None = None
    description: str = ""

    def __post_init__(self) -> None:
        require(self.source in SOURCES, "source", " or ".join(SOURCES), self.source)
        require(self.source != "synthetic" or (self.n or 0) >= 1, "n", "an integer >= 1 (synthetic records)", self.n)
        require(self.source != "file" or bool(self.path), "path", "a file or folder (source: file)", self.path)

    @property
    def size(self) -> int | None:
        """Number of records when the spec alone says it (a subset, or a synthetic corpus), else None."""
        return self.subset.n if self.subset else self.n if self.source == "synthetic" else None


SOURCES = ("synthetic", "file", "glue-sst2")
LAYOUTS = ("farm", "mico")


@dataclass(frozen=True)
class MiniConfig:
    """A mini challenge: population, public corpus, split constants, model counts and one recipe per scenario."""

    population: dict[str, Any]
    public: dict[str, Any]
    len_challenge: int
    len_training: int
    models: dict[str, int]
    scenarios: dict[str, str]
    base_recipe: dict[str, Any] = field(default_factory=dict)
    vocab_size: int = 4096
    seed: int = 0
    layout: str = "farm"
    description: str = ""

    def __post_init__(self) -> None:
        require(self.layout in LAYOUTS, "layout", " or ".join(LAYOUTS), self.layout)
        if self.layout == "mico":
            require((self.len_training, self.len_challenge) == (MICO_LEN_TRAINING, MICO_LEN_CHALLENGE),
                    "len_training", f"MICO's constants with layout: mico (len_training {MICO_LEN_TRAINING}, "
                    f"len_challenge {MICO_LEN_CHALLENGE}: a release tree has no challenge.json to name others)",
                    (self.len_training, self.len_challenge))
        population = from_dict(PopulationSpec, self.population, "population")
        public = from_dict(PopulationSpec, self.public, "public")
        require(public.size is not None, "public.n", "the public corpus size (public.n, or public.subset.n)")
        if population.size is not None:
            try:
                check_constants(population.size, self.len_training, self.len_challenge)
            except SplitError as exc:
                raise SpecError(f"{exc} (population size {population.size})", key="len_training") from exc
        require(set(self.models) == set(PHASES), "models", f"a count for each of {', '.join(PHASES)}",
                self.models)
        for phase, count in self.models.items():
            require(count >= 0, f"models.{phase}", "an integer >= 0", count)
        require(bool(self.scenarios), "scenarios", "at least one scenario name mapped to a recipe")
        for name in self.scenarios:
            require(bool(SCENARIO_RE.match(name)) and name != ASSETS, f"scenarios.{name}",
                    f"a scenario folder name (letters, digits, _.-; not {ASSETS!r})")
        require(self.vocab_size >= 300, "vocab_size", "an integer >= 300", self.vocab_size)
        from_dict(Recipe, self.base_recipe, "base_recipe")


def load_config(path: str | Path) -> MiniConfig:
    """A mini config, checked in full (recipes and population files included); relative population file paths
    become absolute (relative to the working directory)."""
    path = config_path(path)
    data = read_yaml(path)
    for key in ("population", "public"):
        spec = data.get(key)
        if isinstance(spec, dict) and spec.get("source") == "file" and isinstance(spec.get("path"), str):
            spec["path"] = str(Path(expand_vars(spec["path"])).expanduser().resolve())
    config = typed(MiniConfig, data, path)
    for key in ("population", "public"):
        spec = getattr(config, key)
        if spec["source"] == "file" and not Path(spec["path"]).exists():
            raise ConfigError(f"{path}: {key}.path: no such file or folder {spec['path']}")
    for scenario, name in config.scenarios.items():
        recipe = load_scenario_recipe(name, path, f"scenarios.{scenario}")
        if isinstance(recipe, Sisa) and recipe.forget > config.len_challenge:
            raise ConfigError(f"{path}: scenarios.{scenario}: defence {name!r} forgets {recipe.forget} members per "
                              f"target, more than the {config.len_challenge} each has (len_challenge)")
        public_n = from_dict(PopulationSpec, config.public).size or 0
        if isinstance(recipe, Pate) and recipe.queries > public_n:
            raise ConfigError(f"{path}: scenarios.{scenario}: defence {name!r} asks {recipe.queries} public queries "
                              f"per target, more than the public corpus's {public_n} records (public)")
    return config


def load_scenario_recipe(ref: str | Mapping[str, Any], path: str | Path, key: str) -> Recipe | Defence:
    """What config ``path`` names at ``key`` as a scenario's target recipe: a plain recipe (``recipe_ref``) or a
    defence (a recipe name, ``.yaml`` path or inline mapping with a top-level ``defence:`` key; see
    ``farm.defences``). ``ConfigError`` naming ``path`` and ``key`` (and the defence file) when it is invalid."""
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
    """A defence config from its mapping (``defence:`` names its class in ``farm.defences.registry``), its member
    ``recipe`` (and any other ``Recipe`` field: PATE's ``student``) resolved like any recipe reference (a name, a
``.yaml`` path relative to the working directory, or a mapping); ``ConfigError`` naming
    ``source`` and the key."""
    data = dict(data)
    classes = registry()
    name = data.pop("defence", None)
    if name not in classes:
        raise ConfigError(f"{source}: defence: expected one of {', '.join(classes)}, got {name!r}")
    if "recipe" not in data:
        raise ConfigError(f"{source}: recipe: missing (the recipe of the defence's member models, e.g. mini-inf)")
    for key in _recipe_fields(classes[name]):  # recipe:, and PATE's student:, named like any recipe
        if key in data:
            data[key] = to_dict(recipe_ref(data[key], source, key))
    defence: Defence = typed(classes[name], data, source)
    return defence


def _recipe_fields(cls: type) -> list[str]:
    """The fields of a defence config class that hold a ``Recipe`` (``recipe``, PATE's ``student``)."""
    return [f.name for f in dataclasses.fields(cls) if f.type in ("Recipe", Recipe)]


def is_defence(ref: str | Mapping[str, Any]) -> bool:
    """Whether a recipe reference (name, ``.yaml`` path or mapping) is a defence config (a ``defence:`` key)."""
    return _defence_data(ref) is not None


def _defence_data(ref: str | Mapping[str, Any]) -> tuple[dict[str, Any], Path | None] | None:
    """``(mapping, its file or None when inline)`` when ``ref`` is a defence (inline, or a file whose top level
    has a ``defence:`` key), else None (a plain recipe reference, or a missing file: ``recipe_ref`` reports it)."""
    if isinstance(ref, Mapping):
        return (dict(ref), None) if "defence" in ref else None
    target = Path(ref) if Path(ref).suffix or Path(ref).name != str(ref) else shipped("recipe").get(str(ref))
    if target is None or not target.is_file():
        return None
    data = read_yaml(target)
    return (data, target) if "defence" in data else None


class Target(NamedTuple):
    """One target of a mini challenge: where it goes in the tree, its seeds, and its jobs (``plan.jobs``: one
    training for a plain recipe, several for a defence; ``farm.defences.DefencePlan``)."""

    scenario: str
    phase: str
    model_id: int
    seeds: tuple[int, ...]
    plan: DefencePlan
    forgotten: np.ndarray | None = None  # an unlearning challenge: 0/1 in challenge order, 1 = forgotten member


@dataclass(frozen=True)
class Plan:
    """Every job of a mini challenge and where each target goes in the tree."""

    constants: ChallengeConstants
    tokenizer: TokenizerJob
    base: TrainJob
    targets: list[Target]

    def target_jobs(self) -> list[Any]:
        """Every job of every target (a defence's several per target)."""
        return [job for t in self.targets for job in t.plan.jobs]


def plan(config: MiniConfig, population_size: int, *, recipe_dir: Path | None = None) -> Plan:
    """The jobs of ``config`` (pure apart from reading recipe files): seeds come from ``config.seed``. A
    scenario's recipe may be a defence (``farm.defences``): its targets are then planned by it."""
    recipes = {scenario: load_scenario_recipe(str(recipe_dir / f"{name}.yaml") if recipe_dir else name,
                                              "make-challenge config", f"scenarios.{scenario}")
               for scenario, name in config.scenarios.items()}
    constants = ChallengeConstants(population_size, config.len_training, config.len_challenge, config.population,
                                   f"{ASSETS}/tokenizer", f"{ASSETS}/base",
                                   {scenario: privacy_record(r) for scenario, r in recipes.items()})
    tok = TokenizerJob(config.population, config.vocab_size, label="tokenizer")
    public_n = int(config.public.get("subset", {}).get("n", config.public.get("n", 0)))
    base_recipe = typed(Recipe, config.base_recipe, "base_recipe", "base_recipe")
    base = TrainJob(config.public, StoreRef(tok.key), Selection.of(public_n, np.arange(public_n)), base_recipe,
                    label="base")
    rng = np.random.default_rng([config.seed, 0xC4A11])
    targets = []
    for scenario, recipe in recipes.items():
        model_id = 0
        for phase in PHASES:
            for _ in range(config.models[phase]):
                seeds = tuple(int(s) for s in rng.integers(-(2**63), 2**63 - 1, size=3, dtype=np.int64))
                split = split_model(*seeds, n_total=population_size, len_training=config.len_training,
                                    len_challenge=config.len_challenge)
                members = Selection.of(population_size, split.train_set())
                spec = TargetSpec(config.population, StoreRef(tok.key), members, seeds[1] & 0x7FFFFFFF,
                                  StoreRef(base.key), label=f"{scenario}/{phase}/model_{model_id}",
                                  public=config.public, public_n=public_n)
                tplan, forgotten = plan_target(recipe, spec), None
                if isinstance(recipe, Sisa) and recipe.forget:
                    assert split.solution is not None
                    tplan, forgotten = forget_members(tplan, split.challenge, split.solution, recipe.forget, seeds[2])
                targets.append(Target(scenario, phase, model_id, seeds, tplan, forgotten))
                model_id += 1
    return Plan(constants, tok, base, targets)


def privacy_record(recipe: Recipe | Defence) -> dict[str, Any]:
    """What ``challenge.json`` says of a scenario's targets: ``{"epsilon": "inf"}`` without DP, else the recipe's
    target epsilon (None when it fixes a noise multiplier instead) and delta; a defence says its own."""
    return recipe_privacy(recipe) if isinstance(recipe, Recipe) else recipe.privacy()


def make_challenge(config_path: str | Path, out: str | Path, executor: Any) -> Path:
    """Build (or reuse, when complete and made from the same config) ``out/challenge`` and ``out/answers``."""
    from farm.data import load_population

    config = load_config(config_path)
    out = Path(out)
    config_key = canonical_key("mini", dataclasses.asdict(config))
    if _complete(out, config_key):
        return out
    population_size = len(load_population(config.population))
    if config.layout == "mico" and population_size != MICO_N_TOTAL:
        raise ConfigError(f"{config_path}: layout: mico needs MICO's population of {MICO_N_TOTAL:,} records (all of "
                          f"GLUE SST-2, train then validation); population has {population_size:,}")
    p = plan(config, population_size)
    executor.run([p.tokenizer], title="tokenizer")
    executor.run([p.base], title="base model")
    executor.run(p.target_jobs(), title="targets")
    _write_trees(out, p, executor.store, config_key, release=config.layout == "mico")
    return out


def _write_trees(out: Path, p: Plan, store: Any, config_key: str, *, release: bool = False) -> None:
    """Assemble ``challenge``, ``answers`` (and with ``release``, ``assets``) in a temporary folder, then rename."""
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out, prefix=".building-") as tmp:
        challenge, answers, assets = Path(tmp) / "challenge", Path(tmp) / "answers", Path(tmp) / "assets"
        for root in (challenge, answers):
            if release:
                root.mkdir()
            else:
                write_constants(root, p.constants)
        cache = Path(tmp) / "cache"
        cache.mkdir()
        keep = shutil.ignore_patterns("manifest.json")
        if release:  # roberta-base's stand-in: one directory with the tokenizer files, config.json and weights
            shutil.copytree(store.get_dir(p.tokenizer.key, cache), assets / "base", ignore=keep)
            shutil.copytree(store.get_dir(p.base.key, cache), assets / "base", ignore=keep, dirs_exist_ok=True)
        else:
            shutil.copytree(store.get_dir(p.tokenizer.key, cache), challenge / ASSETS / "tokenizer", ignore=keep)
            shutil.copytree(store.get_dir(p.base.key, cache), challenge / ASSETS / "base", ignore=keep)
        for target in p.targets:
            _write_target(challenge, answers, target, store, cache, p, scratch=Path(tmp) / "bin" if release else None)
        (challenge / ".complete").write_text(config_key + "\n")
        names = ("challenge", "answers", "assets") if release else ("challenge", "answers")
        for name in names:
            if (out / name).exists():
                shutil.rmtree(out / name)
        for name in reversed(names):  # the challenge last: its .complete marker says the rest is there
            (Path(tmp) / name).rename(out / name)


def _model_files(model_dir: Path) -> dict[str, Path]:
    return {"config.json": model_dir / "config.json", "model.safetensors": model_dir / "model.safetensors"}


def _as_release(model_dir: Path, scratch: Path) -> dict[str, Path]:
    """A stored model as MICO released its models: ``config.json`` and ``pytorch_model.bin``, a plain state dict
    of tensors (``torch.save``), which ``torch.load(weights_only=True)`` reads back."""
    import torch
    from safetensors.torch import load_file

    scratch.mkdir(exist_ok=True)
    target = scratch / "pytorch_model.bin"
    torch.save(load_file(str(model_dir / "model.safetensors")), target)
    return {"config.json": model_dir / "config.json", "pytorch_model.bin": target}


def _write_target(challenge: Path, answers: Path, target: Target, store: Any, cache: Path, p: Plan, *,
                  scratch: Path | None = None) -> None:
    """One target's folder (a plain model, or an ensemble folder for a defence with several members) and, for a
    dev/final target, its answers. ``scratch``: write a plain model in the release layout (``_as_release``)."""
    scenario, phase, model_id, seeds, tplan, forgotten = target
    split = split_model(*seeds, n_total=p.constants.n_total, len_training=p.constants.len_training,
                        len_challenge=p.constants.len_challenge)
    labelled = phase == "train"
    name = f"model_{model_id}"
    mdir = write_model(challenge / scenario / phase / name, seed_challenge=seeds[0],
                       seed_training=seeds[1] if labelled else None, seed_membership=seeds[2] if labelled else None,
                       solution=split.solution if labelled else None)
    members = [store.get_dir(key, cache) for key in tplan.members]
    if tplan.aggregate == "single":
        write_model_files(mdir, _as_release(members[0], scratch) if scratch else _model_files(members[0]))
    else:
        write_ensemble(mdir, [_model_files(m) for m in members], tplan.aggregate)
    if not labelled:
        write_model(answers / scenario / phase / name, seed_challenge=seeds[0], seed_training=seeds[1],
                    seed_membership=seeds[2], solution=split.solution)
    if forgotten is not None:  # beside the solution: the attacker's for train models, the answers' otherwise
        atomic_write_text((mdir if labelled else answers / scenario / phase / name) / FORGOTTEN_CSV,
                          format_row(forgotten) + "\n")


def _complete(out: Path, config_key: str) -> bool:
    marker = out / "challenge" / ".complete"
    return marker.is_file() and marker.read_text().strip() == config_key and (out / "answers").is_dir()
