"""What a recipe audit is (``farm audit``'s recipe mode): the data with its canaries, the recipe
(or a defence that releases one model, such as PATE), the runs and the bounds' settings. Pure; the
game's jobs are ``farm.commands.audit``'s."""

from __future__ import annotations

from dataclasses import dataclass

from farm.defences.seam import Defence
from farm.errors import require
from farm.spec.population import PopulationSpec
from farm.spec.recipes import Recipe


@dataclass(frozen=True, kw_only=True)
class RecipeAudit:
    """What to audit: ``population`` (with its ``canaries``), ``recipe`` (a training recipe, or a
    defence of ``farm.defences.seam``; no model of it from a challenge's base model), ``runs``, the
    game's ``seed``, the ``delta``/``confidence`` of the bounds, and ``public``: the public corpus
    a defence may draw on (PATE's student queries), disjoint from the population."""

    population: PopulationSpec
    recipe: Recipe | Defence
    runs: int = 1
    seed: int = 0
    delta: float = 1e-5
    confidence: float = 0.95
    public: PopulationSpec | None = None

    def __post_init__(self) -> None:
        require(self.population.canaries is not None, "canaries", "a canary set")
        require(self.runs >= 1, "runs", "an integer >= 1", self.runs)
        for key, recipe in self.recipes.items():
            require(
                recipe.model.name != "base",
                f"{key}.model.name",
                "tiny, a model directory or a hub name (an audit has no challenge base model)",
                recipe.model.name,
            )
        require(
            self.public is None or self.public.size is not None,
            "public",
            "a corpus that says its size (synthetic n, or a subset)",
        )

    @property
    def recipes(self) -> dict[str, Recipe]:
        """``{key: recipe}`` of every training the audit runs: ``recipe``, or a defence's member
        recipe (and PATE's ``student``)."""
        if isinstance(self.recipe, Recipe):
            return {"recipe": self.recipe}
        student = getattr(self.recipe, "student", None)
        found = {"recipe.recipe": self.recipe.recipe}
        return found | ({"recipe.student": student} if isinstance(student, Recipe) else {})

    @property
    def tokenizer_model(self) -> str:
        """The model name whose tokenizer the game uses: ``tiny`` (a tokenizer trained on the
        population) or a model directory / hub name (its own)."""
        return next(iter(self.recipes.values())).model.name
