"""Defences: a scenario's targets trained by a mechanism that is more than one training (SISA,
PATE). Pure.

The seam (how any defence stands in for a scenario's target recipe in ``farm make-challenge``):

* **Config.** A defence is a frozen dataclass registered in ``registry()`` under the word its YAML's
  ``defence:`` key holds (``sisa``; PATE adds ``pate``). Its fields are validated in
  ``__post_init__`` with ``farm.errors.require``; it has a field ``recipe: Recipe`` (the
  member/teacher recipe; the YAML names it like any recipe reference -- a shipped name, a ``.yaml``
  path or an inline mapping -- and the loader, ``farm.config.recipes.load_scenario_recipe``,
  resolves it before typing). A YAML with a ``defence:`` key is accepted wherever a make-challenge
  config names a scenario recipe (``scenarios: {sst2_sisa: sisa-s5-r1}``); a bad one fails at load
  with one ``ConfigError`` line naming the file and key. Shipped defence YAMLs live beside the
  recipes (``farm/config/shipped/defences/``); ``farm.config.recipes.is_defence`` tells them apart,
  ``farm.config.recipes.load_defence`` loads one by name or path.
* **Methods** (``Defence`` protocol): ``build(target: TargetSpec) -> TargetBuild`` (pure: builds
  keyed jobs, runs nothing) and ``privacy() -> dict`` (JSON-ready; what ``challenge.json`` records
  under ``targets.<scenario>``: ``{"epsilon": "inf"}`` or a number, plus ``delta`` and any
  descriptive keys such as ``defence``).
* **TargetSpec**: what make-challenge decided for one target: population spec, tokenizer ref, the
  target's training ``selection`` (its members, MICO split), ``seed`` (a non-negative int31: derive
  every job seed from it), the challenge's ``base`` model ref (what ``model: {name: base}`` means),
  a ``label`` prefix for jobs, and the challenge's ``public`` population spec (disjoint from the
  population; what the base model pre-trains on) with its size ``public_n`` (records), which a
  defence may draw from (PATE's student queries); None / 0 when the caller has none.
* **TargetBuild**: ``jobs`` -- every job the released model needs, ordinary keyed jobs of
  ``farm.spec.jobs`` in any order (the executor orders them by their ``StoreRef`` inputs, see
  ``farm.spec.jobs.job_inputs``; the store reuses any already done); ``members`` -- store
  keys of the HF model folders (TrainJob outputs) the released model is made of, in member order;
  ``aggregate`` -- how they answer a query (``AGGREGATES``): ``single`` (exactly one member,
  released as a plain model folder: a PATE student), ``mean`` (log of the mean of the members'
  probability vectors) or ``vote`` (log of the members' argmax vote fractions, floored at
  ``VOTE_FLOOR``); ``privacy`` -- as ``privacy()``; ``state`` -- defence-specific data for follow-up
  operations (SISA: its shard/slice layout, for ``farm.defences.sisa.unlearn``), never read by
  make-challenge.
* **Release.** make-challenge writes a ``single`` build as an ordinary model folder and a
  ``mean``/``vote`` build as an ensemble folder (``farm.challenge.tree.write_ensemble``:
  ``ensemble.json`` plus ``member_<i>/`` HF folders), which ``farm.training.models.load_model``
  loads as one classifier, so ``farm attack`` runs on it unchanged.

A plain ``Recipe`` is built through the same door (``build_target``): one ``TrainJob``, aggregate
``single``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from farm.errors import require
from farm.privacy.accounting import assumptions
from farm.spec.jobs import Job, Ref, Selection, TrainJob
from farm.spec.population import PopulationSpec
from farm.spec.recipes import Recipe

AGGREGATES = ("single", "mean", "vote")
VOTE_FLOOR = 1e-3  # the least vote fraction an ensemble reports, so that log(fraction) stays finite


@dataclass(frozen=True, kw_only=True)
class TargetSpec:
    """One target as make-challenge decided it (see the module docstring). ``seed``: in ``[0,
    2**31)``."""

    population: PopulationSpec
    tokenizer: Ref
    selection: Selection
    seed: int
    base: Ref | None = None
    label: str = ""
    public: PopulationSpec | None = None
    public_n: int = 0

    def __post_init__(self) -> None:
        require(0 <= self.seed < 2**31, "seed", "an integer in [0, 2**31)", self.seed)
        require(self.public_n >= 0, "public_n", "an integer >= 0", self.public_n)


@dataclass(frozen=True, kw_only=True)
class TargetBuild:
    """The jobs of one released model and how its members answer (see the module docstring)."""

    jobs: tuple[Job, ...]
    members: tuple[str, ...]
    aggregate: str
    privacy: Mapping[str, Any]
    state: Any = field(default=None, compare=False)

    def __post_init__(self) -> None:
        require(self.aggregate in AGGREGATES, "aggregate", " or ".join(AGGREGATES), self.aggregate)
        require(bool(self.members), "members", "at least one member")
        require(
            self.aggregate != "single" or len(self.members) == 1,
            "members",
            "exactly one member (single)",
            len(self.members),
        )
        keys = {job.key for job in self.jobs}
        missing = [m for m in self.members if m not in keys]
        require(not missing, "members", "keys of jobs of the build", missing[:1])


class Defence(Protocol):
    """What a defence config provides (see the module docstring)."""

    recipe: Recipe

    def build(self, target: TargetSpec) -> TargetBuild: ...

    def privacy(self) -> dict[str, Any]: ...


def recipe_privacy(recipe: Recipe) -> dict[str, Any]:
    """What ``challenge.json`` says of targets trained by ``recipe``: ``{"epsilon": "inf"}`` without
    DP-SGD, else the recipe's target epsilon (None when it fixes a noise multiplier instead) and
    delta, with what they rest on (``dp_assumptions``: its accountant and sampling, add/remove
    adjacency). A recipe with ``label_noise`` adds ``"label_dp": "label-DP"`` with its
    ``label_epsilon`` (pure: delta 0) and ``mechanism``; ALIBI's record also says so outright
    (``label_delta`` 0) and that its noise is drawn once per record (``noised: once``: the
    epsilon is for the whole run, however many epochs), keys randomized response's record never
    had. ``epsilon`` stays the record-level one (what ``farm attack``'s audit is checked against):
    label DP protects the labels only, not whether a sentence was trained on, so alone it bounds
    nothing there. ``farm.privacy.accounting.describe_epsilon`` prints both.

    >>> from farm.spec.recipes import DPConfig
    >>> shuffled = Recipe(dp=DPConfig(target_epsilon=4.0, delta=1e-5, sampling="shuffle"))
    >>> recipe_privacy(shuffled)["assumes"]  # doctest: +ELLIPSIS
    'as accounted for Poisson sampling; the run used shuffled batches (prv accountant, ...)'
    """
    out: dict[str, Any] = {"epsilon": "inf"}
    if recipe.dp is not None:
        out = {
            "epsilon": recipe.dp.target_epsilon,
            "delta": recipe.dp.delta,
            **dp_assumptions(recipe),
        }
    noise = recipe.label_noise
    if noise is None:
        return out
    label = {"label_dp": "label-DP", "label_epsilon": noise.epsilon, "mechanism": noise.mechanism}
    if noise.mechanism == "alibi":
        label = {**label, "label_delta": 0.0, "noised": "once"}
    return {**out, **label}


def dp_assumptions(recipe: Recipe) -> dict[str, str]:
    """``assumptions`` of a DP-SGD recipe's epsilon: its Opacus accountant and sampling, add/remove
    adjacency (what Opacus' accountants account: neighbouring training sets differ by one record
    added or removed)."""
    require(recipe.dp is not None, "dp", "a dp block (a DP-SGD recipe)")
    assert recipe.dp is not None
    return assumptions(
        accountant=recipe.dp.accountant, sampling=recipe.dp.sampling, adjacency="add/remove"
    )


def build_target(recipe: Recipe | Defence, target: TargetSpec) -> TargetBuild:
    """The jobs of one target: a defence's own plan, or for a plain recipe one ``TrainJob`` (the
    recipe with ``target.seed``) released as a single model."""
    if not isinstance(recipe, Recipe):
        return recipe.build(target)
    job = TrainJob(
        population=target.population,
        tokenizer=target.tokenizer,
        selection=target.selection,
        recipe=dataclasses.replace(recipe, seed=target.seed),
        base=target.base,
        label=target.label,
    )
    return TargetBuild(
        jobs=(job,), members=(job.key,), aggregate="single", privacy=recipe_privacy(recipe)
    )


def redone(before: TargetBuild, after: TargetBuild) -> list[Job]:
    """Jobs of ``after`` that ``before`` did not have (by key): what an update of a build
    (unlearning) must run."""
    known = {job.key for job in before.jobs}
    return [job for job in after.jobs if job.key not in known]
