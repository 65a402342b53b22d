"""Defences: a scenario's targets trained by a mechanism that is more than one training (SISA, PATE). Pure.

The seam (how any defence stands in for a scenario's target recipe in ``farm make-challenge``):

* **Config.** A defence is a frozen dataclass registered in ``registry()`` under the word its YAML's ``defence:``
  key holds (``sisa``; PATE adds ``pate``). Its fields are validated in ``__post_init__`` with
  ``farm.recipes.require``; it has a field ``recipe: Recipe`` (the member/teacher recipe; the YAML names it
  like any recipe reference -- a shipped name, a ``.yaml`` path or an inline mapping -- and the loader,
  ``farm.mini.load_scenario_recipe``, resolves it before typing). A YAML with a ``defence:`` key is accepted
  wherever a make-challenge config names a scenario recipe (``scenarios: {sst2_sisa: sisa-s5-r1}``); a bad one
  fails at load with one ``ConfigError`` line naming the file and key. Shipped defence YAMLs live beside the
  recipes (``farm/configs/recipes/``); ``farm.mini.is_defence`` tells them apart, ``farm.mini.load_defence`` loads
  one by name or path.
* **Methods** (``Defence`` protocol): ``plan(target: TargetSpec) -> DefencePlan`` (pure: builds keyed jobs, runs
  nothing) and ``privacy() -> dict`` (JSON-ready; what ``challenge.json`` records under ``targets.<scenario>``:
  ``{"epsilon": "inf"}`` or a number, plus ``delta`` and any descriptive keys such as ``defence``).
* **TargetSpec**: what make-challenge decided for one target: population spec, tokenizer ref, the target's
  training ``selection`` (its members, MICO split), ``seed`` (a non-negative int31: derive every job seed from
  it), the challenge's ``base`` model ref (what ``model: {name: base}`` means), a ``label`` prefix for jobs, and
  the challenge's ``public`` population spec (disjoint from the population; what the base model pre-trains on)
  with its size ``public_n`` (records), which a defence may draw from (PATE's student queries); None / 0 when
  the caller has none.
* **DefencePlan**: ``jobs`` -- every job the released model needs, ordinary keyed jobs of ``farm.jobs`` in any
  order (the executor orders them by their ``StoreRef`` inputs, see ``farm.cluster.job_inputs``; the store
  reuses any already done); ``members`` -- store keys of the HF model folders (TrainJob outputs) the released
  model is made of, in member order; ``aggregate`` -- how they answer a query (``AGGREGATES``): ``single``
  (exactly one member, released as a plain model folder: a PATE student), ``mean`` (log of the mean of the
  members' probability vectors) or ``vote`` (log of the members' argmax vote fractions, floored at
  ``VOTE_FLOOR``); ``privacy`` -- as ``privacy()``; ``state`` -- defence-specific data for follow-up operations
  (SISA: its shard/slice layout, for ``farm.sisa.unlearn``), never read by make-challenge.
* **Release.** make-challenge writes a ``single`` plan as an ordinary model folder and a ``mean``/``vote`` plan as an
  ensemble folder (``farm.challenge.write_ensemble``: ``ensemble.json`` plus ``member_<i>/`` HF folders), which
  ``farm.models.load_model`` loads as one classifier, so ``farm attack`` runs on it unchanged.

A plain ``Recipe`` is planned through the same door (``plan_target``): one ``TrainJob``, aggregate ``single``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from farm.jobs import Job, Ref, Selection, TrainJob
from farm.recipes import Recipe, require

AGGREGATES = ("single", "mean", "vote")
ADJACENCIES = ("add/remove", "substitution")  # what "neighbouring datasets" means for an epsilon
VOTE_FLOOR = 1e-3  # the least vote fraction an ensemble reports, so that log(fraction) stays finite


@dataclass(frozen=True)
class TargetSpec:
    """One target as make-challenge planned it (see the module docstring). ``seed``: in ``[0, 2**31)``."""

    population: Mapping[str, Any]
    tokenizer: Ref
    selection: Selection
    seed: int
    base: Ref | None = None
    label: str = ""
    public: Mapping[str, Any] | None = None
    public_n: int = 0

    def __post_init__(self) -> None:
        require(0 <= self.seed < 2**31, "seed", "an integer in [0, 2**31)", self.seed)
        require(self.public_n >= 0, "public_n", "an integer >= 0", self.public_n)


@dataclass(frozen=True)
class DefencePlan:
    """The jobs of one released model and how its members answer (see the module docstring)."""

    jobs: tuple[Job, ...]
    members: tuple[str, ...]
    aggregate: str
    privacy: Mapping[str, Any]
    state: Any = field(default=None, compare=False)

    def __post_init__(self) -> None:
        require(self.aggregate in AGGREGATES, "aggregate", " or ".join(AGGREGATES), self.aggregate)
        require(bool(self.members), "members", "at least one member")
        require(self.aggregate != "single" or len(self.members) == 1, "members", "exactly one member (single)",
                len(self.members))
        keys = {job.key for job in self.jobs}
        missing = [m for m in self.members if m not in keys]
        require(not missing, "members", "keys of jobs of the plan", missing[:1])


class Defence(Protocol):
    """What a defence config provides (see the module docstring)."""

    recipe: Recipe

    def plan(self, target: TargetSpec) -> DefencePlan: ...

    def privacy(self) -> dict[str, Any]: ...


def registry() -> dict[str, type]:
    """``{word of the YAML's defence: key: defence config class}``."""
    from farm.pateplan import Pate
    from farm.sisa import Sisa

    return {"sisa": Sisa, "pate": Pate}


def recipe_privacy(recipe: Recipe) -> dict[str, Any]:
    """What ``challenge.json`` says of targets trained by ``recipe``: ``{"epsilon": "inf"}`` without DP-SGD, else the
    recipe's target epsilon (None when it fixes a noise multiplier instead) and delta, with what
    they rest on (``dp_assumptions``: its accountant and sampling, add/remove adjacency). A recipe
    with ``label_noise`` (randomized response) adds ``"label_dp": "label-DP"`` with its
    ``label_epsilon`` (pure: delta 0) and ``mechanism``. ``epsilon`` stays the record-level one
    (what ``farm attack``'s audit is checked against): label DP protects the labels only, not
    whether a sentence was trained on, so alone it bounds nothing there.

    >>> from farm.recipes import DPConfig
    >>> shuffled = Recipe(dp=DPConfig(target_epsilon=4.0, delta=1e-5, sampling="shuffle"))
    >>> recipe_privacy(shuffled)["assumes"]  # doctest: +ELLIPSIS
    'as accounted for Poisson sampling; the run used shuffled batches (prv accountant, ...)'
    """
    out: dict[str, Any] = {"epsilon": "inf"}
    if recipe.dp is not None:
        out = {"epsilon": recipe.dp.target_epsilon, "delta": recipe.dp.delta,
               **dp_assumptions(recipe)}
    noise = recipe.label_noise
    if noise is None:
        return out
    return {**out, "label_dp": "label-DP", "label_epsilon": noise.epsilon, "mechanism": noise.mechanism}


def dp_assumptions(recipe: Recipe) -> dict[str, str]:
    """``assumptions`` of a DP-SGD recipe's epsilon: its Opacus accountant and sampling, add/remove
    adjacency (what Opacus' accountants account: neighbouring training sets differ by one record
    added or removed)."""
    require(recipe.dp is not None, "dp", "a dp block (a DP-SGD recipe)")
    assert recipe.dp is not None
    return assumptions(accountant=recipe.dp.accountant, sampling=recipe.dp.sampling,
                       adjacency="add/remove")


def assumptions(*, accountant: str, sampling: str | None, adjacency: str) -> dict[str, str]:
    """What an epsilon rests on, recorded beside it wherever it is written (``challenge.json``, ``metrics.json``, the
    report, the defence table, ``farm plan``): ``accountant`` (``prv``, ``rdp``, ``gdp``, ``pate-rdp``,
    ``randomized-response``, ...), ``sampling`` (``poisson``, ``shuffle`` or None where nothing is subsampled),
    ``adjacency`` (``ADJACENCIES``) and ``assumes``, one readable line. A DP-SGD run on shuffled fixed-size batches is
    accounted as if Poisson-sampled, which is not a proof for the run (Chua et al. 2024), and the line says so.

    >>> assumptions(accountant="prv", sampling="shuffle", adjacency="add/remove")["assumes"]
    'as accounted for Poisson sampling; the run used shuffled batches (prv accountant, add/remove adjacency)'
    >>> assumptions(accountant="prv", sampling="poisson", adjacency="add/remove")["assumes"]
    'prv accountant, Poisson sampling, add/remove adjacency'
    """
    require(adjacency in ADJACENCIES, "adjacency", " or ".join(ADJACENCIES), adjacency)
    require(sampling in (None, "poisson", "shuffle"), "sampling", "poisson, shuffle or null", sampling)
    if sampling == "shuffle":
        line = (f"as accounted for Poisson sampling; the run used shuffled batches ({accountant} accountant, "
                f"{adjacency} adjacency)")
    elif sampling == "poisson":
        line = f"{accountant} accountant, Poisson sampling, {adjacency} adjacency"
    else:
        line = f"{accountant} accountant, {adjacency} adjacency"
    return {"accountant": accountant, "sampling": sampling or "none", "adjacency": adjacency, "assumes": line}


def describe_epsilon(privacy: Mapping[str, Any]) -> str:
    """A privacy record (``Defence.privacy()`` / ``recipe_privacy``) as one table cell: the epsilon and what it
    assumes, e.g. ``10 (as accounted for Poisson sampling; ...)``; ``inf`` without DP; a record written before
    assumptions were recorded says so.

    >>> describe_epsilon({"epsilon": "inf"})
    'inf'
    """
    eps = privacy.get("epsilon")
    if eps is None or eps == "inf":
        return "inf" if eps == "inf" else "unknown"
    text = f"{float(eps):.3g}"
    return f"{text} ({privacy['assumes']})" if privacy.get("assumes") else f"{text} (assumptions not recorded)"


def plan_target(recipe: Recipe | Defence, target: TargetSpec) -> DefencePlan:
    """The jobs of one target: a defence's own plan, or for a plain recipe one ``TrainJob`` (the recipe with
    ``target.seed``) released as a single model."""
    if not isinstance(recipe, Recipe):
        return recipe.plan(target)
    job = TrainJob(target.population, target.tokenizer, target.selection, dataclasses.replace(recipe, seed=target.seed),
                   target.base, label=target.label)
    return DefencePlan((job,), (job.key,), "single", recipe_privacy(recipe))


def redone(before: DefencePlan, after: DefencePlan) -> list[Job]:
    """Jobs of ``after`` that ``before`` did not have (by key): what an update of a plan (unlearning) must run."""
    known = {job.key for job in before.jobs}
    return [job for job in after.jobs if job.key not in known]
