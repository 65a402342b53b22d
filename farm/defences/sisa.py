"""SISA training (sharded, isolated, sliced, aggregated; Bourtoule et al. 2021) and its unlearning.
Pure.

A target's training records are split, from its seed, into ``shards`` disjoint shards of ``slices``
slices each. Shard ``s`` trains slice by slice: checkpoint ``r`` trains on slices ``0..r`` of the
shard, starting from checkpoint ``r - 1`` (checkpoint 0 from where the member recipe starts: the
challenge's base model or a fresh tiny model). Each checkpoint is one keyed ``TrainJob`` whose
``base`` is the previous checkpoint, so shards run in parallel, and two builds sharing a prefix
share its jobs. The released model is the ensemble of the last checkpoints
(``farm.defences.seam.TargetBuild`` with aggregate ``mean`` or ``vote``).

Each checkpoint runs the member recipe as it stands (its epochs on slices ``0..r``): with
``slices: 1`` it is plain training of one model per shard.

With a DP-SGD member recipe (``Sisa.privacy``), each shard's training spends the recipe's target
epsilon on that shard's records (its noise is solved at the shard's size). A record of slice ``r``
(0-based) of ``R`` is trained in the ``R - r`` checkpoints from ``r`` on, so with several slices a
record's epsilon composes over them and one checkpoint's epsilon is not the ensemble's: DP with
``slices > 1`` is refused at load (``SpecError`` naming ``slices``) rather than reported wrongly.
With one slice, shards are disjoint and each record is in exactly one training, so the ensemble's
epsilon is one shard training's (parallel composition).

Unlearning (``unlearn``) removes records from their slices and rebuilds: a shard without forgotten
records keeps every job key, and an affected shard keeps those of its checkpoints before its
earliest affected slice, so the executor reruns only the rest (``farm.defences.seam.redone`` lists
them).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from farm.defences.seam import TargetBuild, TargetSpec, dp_assumptions
from farm.errors import SpecError, require
from farm.privacy.pate import partition
from farm.spec.jobs import Ref, Selection, StoreRef, TrainJob
from farm.spec.recipes import Recipe

Layout = tuple[tuple[np.ndarray, ...], ...]  # [shard][slice] -> sorted int64 population indices
_SPLIT = 0x515A  # the stream tag of a target's shard split (shuffle or keyed hash)


@dataclass(frozen=True, kw_only=True)
class Sisa:
    """A SISA defence config (YAML: ``defence: sisa``). ``aggregate``: ``mean`` (average the
    members' probability vectors) or ``vote`` (majority vote). ``forget``: an unlearning challenge
    -- each target is released after unlearning this many of its challenge members
    (``forget_members``); 0: none."""

    recipe: Recipe
    shards: int = 5
    slices: int = 1
    aggregate: str = "mean"
    forget: int = 0
    description: str = ""

    def __post_init__(self) -> None:
        require(self.forget >= 0, "forget", "an integer >= 0", self.forget)
        require(self.shards >= 1, "shards", "an integer >= 1", self.shards)
        require(self.slices >= 1, "slices", "an integer >= 1", self.slices)
        require(self.aggregate in ("mean", "vote"), "aggregate", "mean or vote", self.aggregate)
        require(
            self.recipe.dp is None or self.slices == 1,
            "slices",
            "1 with a DP member recipe (a record of an early slice is trained in every later "
            "checkpoint of its shard, so one checkpoint's epsilon is not the ensemble's)",
            self.slices,
        )

    def privacy(self) -> dict[str, Any]:
        """SISA itself gives no DP guarantee: epsilon is infinite without a DP member recipe. With
        one (and one slice: ``__post_init__``), the ensemble's epsilon is the member recipe's target
        epsilon, which each shard's training spends on its own records (its noise solved at the
        shard's size), by parallel composition over the disjoint shards (``composition``), with what
        it rests on (``farm.defences.seam.dp_assumptions``). Parallel composition needs each
        record's shard to depend on that record alone: with DP, shards come from the keyed hash of
        ``farm.privacy.pate.partition`` (adding or removing one record changes one shard's data),
        not from ``split``'s shuffle, where one record more moves many others to another shard."""
        dp = self.recipe.dp
        base: dict[str, Any] = {"epsilon": "inf"}
        if dp is not None:
            base = {
                "epsilon": dp.target_epsilon,
                "delta": dp.delta,
                **dp_assumptions(self.recipe),
                "composition": "parallel over disjoint shards (a keyed hash of each record picks "
                "its shard): each record is trained in one shard's one training; each shard's "
                "size is taken as public, as DP-SGD takes n",
            }
        out = {
            **base,
            "defence": "sisa",
            "shards": self.shards,
            "slices": self.slices,
            "aggregate": self.aggregate,
        }
        return {**out, "forget": self.forget} if self.forget else out

    def build(self, target: TargetSpec) -> TargetBuild:
        """The checkpoint jobs of ``target``: shards by ``split`` (a seeded shuffle) without DP;
        with a DP member recipe (one slice), by ``farm.privacy.pate.partition``'s keyed hash, so
        that neighbouring training sets have neighbouring shards and the parallel composition of
        ``privacy`` holds."""
        indices = target.selection.indices()
        if self.recipe.dp is None:
            return build_layout(self, target, split(indices, self.shards, self.slices, target.seed))
        shards = partition(indices, self.shards, [target.seed, _SPLIT])
        return build_layout(self, target, tuple((shard,) for shard in shards))


@dataclass(frozen=True, eq=False)
class SisaState:
    """What ``unlearn`` needs of a SISA plan: the config, the target and the layout."""

    defence: Sisa
    target: TargetSpec
    layout: Layout


def split(indices: np.ndarray, shards: int, slices: int, seed: int) -> Layout:
    """``indices`` shuffled from ``seed`` and cut into ``shards`` near-equal shards of ``slices``
    near-equal slices (sizes differ by at most one); a partition of ``indices``. ``SpecError`` when
    a slice would be empty."""
    indices = np.asarray(indices, dtype=np.int64)
    if indices.size < shards * slices:
        raise SpecError(
            f"{indices.size} records cannot fill {shards} shards x {slices} slices", key="shards"
        )
    perm = np.random.default_rng([seed, _SPLIT]).permutation(indices)
    return tuple(
        tuple(np.sort(part) for part in np.array_split(shard, slices))
        for shard in np.array_split(perm, shards)
    )


def build_layout(defence: Sisa, target: TargetSpec, layout: Layout) -> TargetBuild:
    """The checkpoint jobs of ``layout`` (see the module docstring); members are the shards' last
    checkpoints."""
    jobs: list[TrainJob] = []
    members = []
    n_total = target.selection.n_total
    for s, shard in enumerate(layout):
        if not any(part.size for part in shard):
            raise SpecError(f"shard {s} holds no records", key="shards")
        previous: Ref | None = target.base
        first = True
        for r in range(len(shard)):
            if not shard[
                r
            ].size:  # a slice emptied by unlearning: no checkpoint (the shard's data did not grow)
                continue
            job = TrainJob(
                population=target.population,
                tokenizer=target.tokenizer,
                selection=Selection.of(n_total, np.concatenate(shard[: r + 1])),
                recipe=_checkpoint_recipe(defence.recipe, target.seed, s, r, first=first),
                base=previous,
                label=f"{target.label}/shard_{s}/slice_{r}",
            )
            jobs.append(job)
            previous, first = StoreRef(job.key), False
        members.append(jobs[-1].key)
    return TargetBuild(
        jobs=tuple(jobs),
        members=tuple(members),
        aggregate=defence.aggregate,
        privacy=defence.privacy(),
        state=SisaState(defence, target, layout),
    )


def _checkpoint_recipe(
    recipe: Recipe, seed: int, shard: int, slice_: int, *, first: bool
) -> Recipe:
    """The member recipe for checkpoint ``slice_`` of ``shard``: its own seed, and unless it is the
    shard's ``first`` checkpoint it starts from the previous one (model ``base``, which the job's
    ``base`` names)."""
    job_seed = int(np.random.default_rng([seed, shard, slice_, 0x515A]).integers(2**31))
    model = recipe.model if first else dataclasses.replace(recipe.model, name="base")
    return dataclasses.replace(recipe, seed=job_seed, model=model)


def unlearn(plan: TargetBuild, forget: Iterable[int]) -> TargetBuild:
    """``plan`` (a SISA build) with population indices ``forget`` removed from their slices and
    rebuilt: only the affected shards change, each from its earliest affected slice. Indices the
    target never trained on are ignored. ``SpecError`` when a shard would be left empty."""
    state = plan.state
    if not isinstance(state, SisaState):
        raise SpecError("not a SISA build (nothing to unlearn from)", key="state")
    forget = np.asarray(sorted(set(int(i) for i in forget)), dtype=np.int64)
    layout = tuple(
        tuple(np.setdiff1d(part, forget, assume_unique=True) for part in shard)
        for shard in state.layout
    )
    return build_layout(state.defence, state.target, layout)


def shard_of(plan: TargetBuild, index: int) -> tuple[int, int] | None:
    """``(shard, slice)`` holding population index ``index`` in a SISA build, or None."""
    for s, shard in enumerate(plan.state.layout):
        for r, part in enumerate(shard):
            if np.isin(index, part):
                return s, r
    return None


def forget_members(
    plan: TargetBuild, challenge: np.ndarray, solution: np.ndarray, count: int, *, seed: int
) -> tuple[TargetBuild, np.ndarray]:
    """An unlearning challenge's target: ``count`` of the challenge members (``challenge``:
    population indices in challenge order; ``solution``: 0/1, 1 = member) drawn from ``seed`` and
    unlearned from ``plan``. Returns the unlearned build and the 0/1 ``forgotten`` mask in challenge
    order (1 = trained on, then forgotten)."""
    members = np.flatnonzero(np.asarray(solution) == 1)
    if count > members.size:
        raise SpecError(f"cannot forget {count} of {members.size} challenge members", key="forget")
    chosen = np.random.default_rng([seed & 0x7FFFFFFF, 0xF0E6]).choice(
        members, size=count, replace=False
    )
    mask = np.zeros(len(solution), dtype=np.int64)
    mask[chosen] = 1
    return unlearn(plan, np.asarray(challenge)[chosen]), mask


def forgetting_rates(
    scores: np.ndarray, solution: np.ndarray, forgotten: np.ndarray, max_fpr: float = 0.1
) -> dict[str, float]:
    """How an attack sees an unlearning challenge's three groups of points, at one threshold: the
    highest one that flags (score strictly above it) fewer than ``max_fpr`` of the never-seen points
    (``solution`` 0). Returns the flagged fraction of ``kept`` members (solution 1, not forgotten),
    of ``forgotten`` members and of ``never`` (its achieved FPR, below ``max_fpr``), with the group
    sizes (``n_kept``, ...). Arrays: ``[n]`` aligned, pooled over models as the caller likes; higher
    score = more likely a member. A forgotten point that an attack flags as often as a kept one was
    not forgotten as far as it can tell."""
    scores, solution, forgotten = (np.asarray(a) for a in (scores, solution, forgotten))
    groups = {
        "kept": (solution == 1) & (forgotten == 0),
        "forgotten": forgotten == 1,
        "never": solution == 0,
    }
    never = np.sort(scores[groups["never"]])[::-1]
    if not never.size:
        raise SpecError("no never-seen points to set the threshold on", key="solution")
    allowed = max(
        0, int(np.ceil(max_fpr * never.size)) - 1
    )  # false positives strictly below max_fpr
    threshold = never[min(allowed, never.size - 1)]
    out: dict[str, float] = {}
    for name, mask in groups.items():
        out[name] = float(np.mean(scores[mask] > threshold)) if mask.any() else float("nan")
        out[f"n_{name}"] = int(mask.sum())
    return out
