"""PATE as a defence of ordinary keyed jobs: the defence config (YAML ``defence: pate``) and the
jobs that stand in for one target. Pure (no torch, no files).

``Pate.build(target)`` (the defence seam, ``farm.defences.seam``) calls ``pate_jobs`` with the
target's public split. ``pate_jobs(target, pate, public=..., public_n=...)`` turns what
make-challenge decided for a target (its population, tokenizer, base model, training selection and
seed: a ``farm.defences.seam.TargetSpec``; its ``public`` fields are not read) into

1. T teacher ``TrainJob``s, one per disjoint partition of the target's records
   (``farm.privacy.pate.partition``: each record placed by a keyed hash of its id and the seeds
   alone, so adding or removing one record changes exactly one teacher's data and substituting one
   at most two; partition sizes are binomial, not equal);
2. T ``InferJob``s: each teacher's logits on the queried public records;
3. one ``VoteJob``: the noisy (confident-)GNMax labels of those records, with the epsilon they
   spent;
4. the student ``TrainJob`` on the public records the vote answered, with those labels
   (``TrainJob.labels``).

The attacker sees the student (``PateJobs.model``), an ordinary model directory (aggregate
``single``).

The epsilon recorded (``Pate.privacy``) is the data-independent RDP of the answered queries
(``farm.privacy.pate.pate_rdp``) for neighbouring datasets of the config's ``adjacency``
(add/remove: one teacher's vote changes, L2 sensitivity sqrt(2); substitution: two, 2 sqrt(2)). It
covers the vote, hence the student, which sees only the public records and the vote's labels; the
teachers are never released and their training is not private.

The public split is a population disjoint from the challenge population: a make-challenge config's
``public`` corpus (the one the base model is pre-trained on). A held-out slice of the challenge
population is not used: its records outside a target's member set include that target's challenge
points (the non-members the attack is scored on), which a student would then be trained on.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

from farm.defences.seam import TargetBuild, TargetSpec
from farm.errors import SpecError, require
from farm.privacy.accounting import assumptions
from farm.privacy.pate import Aggregation, mix_seeds, partition
from farm.spec.jobs import InferJob, Job, Selection, StoreRef, TrainJob, VoteJob
from farm.spec.population import PopulationSpec
from farm.spec.recipes import Recipe


@dataclass(frozen=True, kw_only=True)
class Pate:
    """A PATE defence (YAML ``defence: pate``): ``teachers`` teachers trained with ``recipe`` on
    disjoint partitions of a target's training records; ``queries`` public records labelled by the
    teachers' noisy vote (GNMax with ``sigma``; confident-GNMax when ``threshold`` and ``sigma1``
    are given); a student trained with ``student`` on the answered ones. ``delta``: the delta its
    epsilon is reported at; ``seed``: mixed into every target's seed (partitions, queries, noise);
    ``adjacency``: the neighbouring datasets the epsilon is for
    (``farm.privacy.accounting.ADJACENCIES``: add/remove, the default, or substitution)."""

    recipe: Recipe
    student: Recipe
    teachers: int
    sigma: float
    queries: int
    threshold: float | None = None
    sigma1: float | None = None
    delta: float = 1e-5
    seed: int = 0
    adjacency: str = "add/remove"
    description: str = ""

    def __post_init__(self) -> None:
        require(self.teachers >= 1, "teachers", "an integer >= 1", self.teachers)
        require(self.queries >= 1, "queries", "an integer >= 1", self.queries)
        self.aggregation(0)  # checks sigma, threshold / sigma1, delta and adjacency

    def aggregation(self, seed: int) -> Aggregation:
        """The vote aggregation of the target of seed ``seed``."""
        return Aggregation(
            sigma=self.sigma,
            threshold=self.threshold,
            sigma1=self.sigma1,
            seed=mix_seeds(self.seed, seed),
            delta=self.delta,
            adjacency=self.adjacency,
        )

    def privacy(self) -> dict[str, Any]:
        """What ``challenge.json`` records of PATE targets: the epsilon (at ``delta``) of
        ``queries`` answers, an upper bound for confident-GNMax (fewer answers spend less; each
        target's vote entry records its own), with the defence's settings and what the epsilon rests
        on (``farm.privacy.accounting.assumptions``: the ``pate-rdp`` accountant, i.e. the
        data-independent RDP of the answered queries, nothing subsampled, ``adjacency``). The
        teachers' own training is not private: only the student is released."""
        epsilon = self.aggregation(0).epsilon(queries=self.queries, answered=self.queries)
        out = {
            "epsilon": epsilon,
            "delta": self.delta,
            "defence": "pate",
            "teachers": self.teachers,
            "sigma": self.sigma,
            "queries": self.queries,
            **assumptions(accountant="pate-rdp", sampling=None, adjacency=self.adjacency),
        }
        return (
            out
            if self.threshold is None
            else {**out, "threshold": self.threshold, "sigma1": self.sigma1}
        )

    def build(self, target: TargetSpec) -> TargetBuild:
        """The defence seam's build (``farm.defences.seam``): ``pate_jobs`` on the target's public
        split, released as the student alone (aggregate ``single``); ``state`` is the ``PateJobs``.
        ``SpecError`` when the target has no public split (``TargetSpec.public``) or it is smaller
        than ``queries``."""
        if target.public is None or target.public_n < 1:
            raise SpecError(
                f"{target.label}: PATE needs a public split to query (the challenge's public "
                f"corpus)",
                key="public",
            )
        p = pate_jobs(target, self, public=target.public, public_n=target.public_n)
        return TargetBuild(
            jobs=tuple(p.jobs),
            members=(p.student.key,),
            aggregate="single",
            privacy=self.privacy(),
            state=p,
        )


@dataclass(frozen=True)
class PateJobs:
    """The jobs of one PATE target, in dependency order, and the model the attacker sees."""

    teachers: tuple[TrainJob, ...]
    answers: tuple[InferJob, ...]
    votes: VoteJob
    student: TrainJob

    @property
    def jobs(self) -> list[Job]:
        return [*self.teachers, *self.answers, self.votes, self.student]

    @property
    def model(self) -> StoreRef:
        """The student's store entry: what the attacker sees."""
        return StoreRef(self.student.key)


def pate_jobs(target: TargetSpec, pate: Pate, *, public: PopulationSpec, public_n: int) -> PateJobs:
    """The PATE jobs that stand in for ``target`` (see the module docstring). ``public``: the public
    population spec, of ``public_n`` records, of which ``pate.queries`` are drawn (seeded by the
    target's seed). Teachers and student read the target's tokenizer and start from its base model;
    teacher ``i`` trains with ``pate.recipe`` and a seed mixed from the target's and ``i``, the
    student with ``pate.student`` and the target's seed. ``SpecError`` when a teacher's partition
    would be empty (``farm.privacy.pate.partition``) or ``pate.queries > public_n``."""
    if pate.queries > public_n:
        raise SpecError(
            f"{target.label}: {pate.queries} queries asked of a public split of {public_n} records",
            key="queries",
        )
    try:
        parts = partition(target.selection.indices(), pate.teachers, [pate.seed, target.seed])
    except SpecError as err:  # a teacher left with no records: name the target
        raise SpecError(f"{target.label}: {err.detail}", key=err.key) from None
    n_total = target.selection.n_total
    teachers = tuple(
        TrainJob(
            population=target.population,
            tokenizer=target.tokenizer,
            selection=Selection.of(n_total, part),
            recipe=dataclasses.replace(pate.recipe, seed=mix_seeds(target.seed, i) & 0x7FFFFFFF),
            base=target.base,
            label=f"{target.label}/teacher_{i}",
        )
        for i, part in enumerate(parts)
    )
    rng = np.random.default_rng([mix_seeds(pate.seed, target.seed), 0x9E81C])
    queried = Selection.of(public_n, np.sort(rng.choice(public_n, pate.queries, replace=False)))
    answers = tuple(
        InferJob(
            population=public,
            tokenizer=target.tokenizer,
            model=StoreRef(t.key),
            selection=queried,
            max_length=pate.recipe.max_length,
            precision=pate.recipe.precision,
            label=f"{t.label}/answers",
        )
        for t in teachers
    )
    votes = VoteJob(
        tuple(StoreRef(a.key) for a in answers),
        pate.aggregation(target.seed),
        label=f"{target.label}/votes",
    )
    student = TrainJob(
        population=public,
        tokenizer=target.tokenizer,
        selection=queried,
        recipe=dataclasses.replace(pate.student, seed=target.seed),
        base=target.base,
        labels=StoreRef(votes.key),
        label=f"{target.label}/student",
    )
    return PateJobs(teachers, answers, votes, student)
