"""PATE as ordinary keyed jobs: what a PATE defence YAML asks for, and the jobs that stand in for one target.

``load_pate(path)`` reads a defence YAML (``defence: pate``; ``farm.pate.PateConfig``) and its two recipes, checked
in full at load (one ``ConfigError`` line naming the file and key). ``plan_pate(target, ...)`` turns the training
job a target would have been (its population, tokenizer, base model, record selection and seed) into

1. T teacher ``TrainJob``s, one per disjoint partition of the target's records (``farm.pate.partition``);
2. T ``InferJob``s: each teacher's logits on the queried public records;
3. one ``VoteJob``: the noisy (confident-)GNMax labels of those records;
4. the student ``TrainJob`` on the public records the vote answered, with those labels (``TrainJob.labels``).

The attacker sees the student (``PatePlan.model``), an ordinary model directory.

The public split is a population disjoint from the target population (a make-challenge config's ``public`` corpus,
the one the base model is trained on): records outside the target's member set but inside the challenge
population would include the challenge points themselves (the non-members the attack is scored on), so a
held-out slice of the challenge population is not used.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from farm.config import config_path, read_yaml, recipe_ref, typed
from farm.errors import SpecError
from farm.jobs import InferJob, Job, Selection, StoreRef, TrainJob, VoteJob
from farm.pate import PateConfig, mix_seeds, partition
from farm.recipes import Recipe


@dataclass(frozen=True)
class Pate:
    """A loaded PATE defence: its settings and the teachers' (``member``) and student's recipes."""

    config: PateConfig
    member: Recipe
    student: Recipe


@dataclass(frozen=True)
class PatePlan:
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


def load_pate(path: str | Path) -> Pate:
    """A PATE defence from a YAML file or a shipped recipe name; ``ConfigError`` (file, key) when invalid."""
    path = config_path(path, "recipe")
    config = typed(PateConfig, read_yaml(path), path)
    return Pate(config, recipe_ref(config.member, path, "member"), recipe_ref(config.student, path, "student"))


def plan_pate(target: TrainJob, pate: Pate, *, public: Mapping[str, Any], public_n: int) -> PatePlan:
    """The PATE jobs that stand in for ``target`` (see the module docstring). ``public``: the public population
    spec, of ``public_n`` records, from which ``pate.config.queries`` are drawn (seeded by the target's seed).
    Teachers and student take the target's tokenizer and base model; teacher ``i`` trains with ``pate.member`` and a
    seed mixed from the target's and ``i``; the student with ``pate.student`` and the target's seed. Pure."""
    cfg, seed = pate.config, target.recipe.seed
    if cfg.queries > public_n:
        raise SpecError(f"{target.label}: {cfg.queries} queries asked of a public split of {public_n} records")
    parts = partition(target.selection.indices(), cfg.teachers, [cfg.seed, seed])
    n_total = target.selection.n_total
    teachers = tuple(TrainJob(target.population, target.tokenizer, Selection.of(n_total, part),
                              dataclasses.replace(pate.member, seed=mix_seeds(seed, i) & 0x7FFFFFFF), target.base,
                              label=f"{target.label}/teacher_{i}") for i, part in enumerate(parts))
    rng = np.random.default_rng([mix_seeds(cfg.seed, seed), 0x9E81C])
    queried = Selection.of(public_n, np.sort(rng.choice(public_n, cfg.queries, replace=False)))
    answers = tuple(InferJob(public, target.tokenizer, StoreRef(t.key), queried, max_length=pate.member.max_length,
                             precision=pate.member.precision, label=f"{t.label}/answers") for t in teachers)
    votes = VoteJob(tuple(StoreRef(a.key) for a in answers), cfg.aggregation(seed), label=f"{target.label}/votes")
    student = TrainJob(public, target.tokenizer, queried, dataclasses.replace(pate.student, seed=seed), target.base,
                       labels=StoreRef(votes.key), label=f"{target.label}/student")
    return PatePlan(teachers, answers, votes, student)
