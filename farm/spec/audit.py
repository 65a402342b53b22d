"""What a recipe audit is (``farm audit``'s recipe mode): the data with its canaries, the recipe,
the runs and the bounds' settings. Pure; the game's jobs are ``farm.commands.audit``'s."""

from __future__ import annotations

from dataclasses import dataclass

from farm.errors import require
from farm.spec.population import PopulationSpec
from farm.spec.recipes import Recipe


@dataclass(frozen=True, kw_only=True)
class RecipeAudit:
    """What to audit: ``population`` (with its ``canaries``), ``recipe`` (not from a challenge's
    base model), ``runs``, the game's ``seed``, and the ``delta``/``confidence`` of the bounds."""

    population: PopulationSpec
    recipe: Recipe
    runs: int = 1
    seed: int = 0
    delta: float = 1e-5
    confidence: float = 0.95

    def __post_init__(self) -> None:
        require(self.population.canaries is not None, "canaries", "a canary set")
        require(self.runs >= 1, "runs", "an integer >= 1", self.runs)
        require(
            self.recipe.model.name != "base",
            "recipe.model.name",
            "tiny, a model directory or a hub name (an audit has no challenge base model)",
            self.recipe.model.name,
        )
