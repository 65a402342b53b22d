"""Make-challenge configs (``farm/config/shipped/challenge/``): the population, the public corpus,
split constants, model counts and one recipe or defence per scenario."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from farm.challenge.tree import (
    ASSETS,
    PHASES,
    SCENARIO_RE,
)
from farm.config.loading import config_path, expand_vars, read_yaml, typed
from farm.config.recipes import load_scenario_recipe
from farm.defences.pate import Pate
from farm.defences.sisa import Sisa
from farm.errors import ConfigError, SpecError, SplitError, require
from farm.mico.splits import MICO_LEN_CHALLENGE, MICO_LEN_TRAINING, check_constants
from farm.spec.coerce import from_dict
from farm.spec.population import SOURCES, PopulationSpec
from farm.spec.recipes import Recipe

LAYOUTS = ("farm", "mico")


@dataclass(frozen=True, kw_only=True)
class ChallengeConfig:
    """A mini challenge: population, public corpus, split constants, model counts and one recipe per
    scenario."""

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
            require(
                (self.len_training, self.len_challenge) == (MICO_LEN_TRAINING, MICO_LEN_CHALLENGE),
                "len_training",
                f"MICO's constants with layout: mico (len_training {MICO_LEN_TRAINING}, "
                f"len_challenge {MICO_LEN_CHALLENGE}: a release tree has no challenge.json to "
                f"name others)",
                (self.len_training, self.len_challenge),
            )
        population, public = self.population_spec, self.public_spec
        for key, spec in (("population", population), ("public", public)):
            require(spec.known, f"{key}.source", " or ".join(SOURCES), spec.source)
        require(
            public.size is not None,
            "public.n",
            "the public corpus size (public.n, or public.subset.n)",
        )
        if population.size is not None:
            try:
                check_constants(population.size, self.len_training, self.len_challenge)
            except SplitError as exc:
                raise SpecError(
                    f"{exc} (population size {population.size})", key="len_training"
                ) from exc
        require(
            set(self.models) == set(PHASES),
            "models",
            f"a count for each of {', '.join(PHASES)}",
            self.models,
        )
        for phase, count in self.models.items():
            require(count >= 0, f"models.{phase}", "an integer >= 0", count)
        require(bool(self.scenarios), "scenarios", "at least one scenario name mapped to a recipe")
        for name in self.scenarios:
            require(
                bool(SCENARIO_RE.match(name)) and name != ASSETS,
                f"scenarios.{name}",
                f"a scenario folder name (letters, digits, _.-; not {ASSETS!r})",
            )
        require(self.vocab_size >= 300, "vocab_size", "an integer >= 300", self.vocab_size)
        from_dict(Recipe, self.base_recipe, "base_recipe")

    @property
    def population_spec(self) -> PopulationSpec:
        """``population`` as a checked spec (the mapping stays the config's record)."""
        return PopulationSpec.of(self.population, "population")

    @property
    def public_spec(self) -> PopulationSpec:
        """``public`` as a checked spec."""
        return PopulationSpec.of(self.public, "public")


def load_challenge_config(path: str | Path) -> ChallengeConfig:
    """A make-challenge config, checked in full (recipes and population files included); relative
    population
    file paths become absolute (relative to the working directory)."""
    path = config_path(path)
    data = read_yaml(path)
    for key in ("population", "public"):
        spec = data.get(key)
        if (
            isinstance(spec, dict)
            and spec.get("source") == "file"
            and isinstance(spec.get("path"), str)
        ):
            spec["path"] = str(Path(expand_vars(spec["path"])).expanduser().resolve())
    config = typed(ChallengeConfig, data, path)
    for key in ("population", "public"):
        spec = getattr(config, key)
        if spec["source"] == "file" and not Path(spec["path"]).exists():
            raise ConfigError(f"{path}: {key}.path: no such file or folder {spec['path']}")
    for scenario, name in config.scenarios.items():
        recipe = load_scenario_recipe(name, path, f"scenarios.{scenario}")
        if isinstance(recipe, Sisa) and recipe.forget > config.len_challenge:
            raise ConfigError(
                f"{path}: scenarios.{scenario}: defence {name!r} forgets {recipe.forget} members "
                f"per target, more than the {config.len_challenge} each has (len_challenge)"
            )
        public_n = config.public_spec.size or 0
        if isinstance(recipe, Pate) and recipe.queries > public_n:
            raise ConfigError(
                f"{path}: scenarios.{scenario}: defence {name!r} asks {recipe.queries} public "
                f"queries per target, more than the public corpus's {public_n} records (public)"
            )
    return config
