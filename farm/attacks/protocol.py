"""The comparison protocol: how a benchmark, Tune or a shipped default chooses an attack and reports
it. Pure.

1. **Choose without answers.** An attack, its K and its parameters are chosen on the labelled
   models' leave-one-out scores (MICO's ``train`` models: each scored by an attack that did not use
   its own answers), or on Tune's held-out estimate; never on dev/final answers (``choose``).
2. **Score once.** The chosen candidate is then scored on dev and final, each phase under its own
   threshold as MICO scores it; the headline is the mean of the two figures.
3. **Compare paired.** A ratio to an anchor is a paired model bootstrap
   (``farm.attacks.intervals.paired_bootstrap``): both attacks on the same resampled target models,
   dev and final resampled jointly, with its 95% interval, and a verdict (``better``, ``worse``,
   ``within noise``). No interval from fewer than 5 models per phase.

A ``Scored`` is one candidate's pooled scores (``farm.mico.scorer.pooled_scores``) per labelled
phase, one array per model, with its solutions; ``farm.shadows.scenario.Scenario.pooled`` gives them
(``benchmarks/scaling.py``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from farm.attacks.intervals import Paired, paired_bootstrap
from farm.mico.scorer import score

SELECT_ON = "train"  # the labelled models' leave-one-out scores
REPORT_ON = ("dev", "final")
KEY = "TPR_FPR_1000"  # TPR at FPR < 0.1, MICO's score


@dataclass(frozen=True, kw_only=True)
class Scored:
    """One candidate (an attack at one K with its parameters): ``labels[phase]`` / ``scores[phase]``
    hold one 0/1 solution array and one pooled score array per labelled model of the phase, in the
    same order for every candidate of a scenario. ``trainings``: the shadow or reference trainings
    it used."""

    name: str
    k: int | str
    trainings: int
    labels: Mapping[str, Sequence[np.ndarray]]
    scores: Mapping[str, Sequence[np.ndarray]]

    def figure(self, phase: str, key: str = KEY) -> float:
        """The phase's pooled figure (one threshold over all its models), NaN when the phase is
        absent."""
        if phase not in self.scores:
            return float("nan")
        return float(
            score(np.concatenate(self.labels[phase]), np.concatenate(self.scores[phase]))[key]
        )

    def headline(self, phases: Sequence[str] = REPORT_ON, key: str = KEY) -> float:
        """The mean of the phases' figures (MICO: dev and final, each under its own threshold)."""
        return float(np.mean([self.figure(p, key) for p in phases if p in self.scores]))


def choose(
    candidates: Sequence[Scored],
    *,
    on: str | Sequence[str] = SELECT_ON,
    budget: int | None = None,
    key: str = KEY,
) -> Scored:
    """The candidate with the best figure on phase ``on`` (the labelled models' leave-one-out
    scores), among those using at most ``budget`` trainings; ties go to fewer trainings, then to the
    earlier candidate. ``on`` may name several phases: then the figure is their mean, each phase
    under its own threshold (``Scored.headline``). Reads no other phase, so dev and final answers
    cannot steer it. ``ValueError`` when no candidate qualifies."""
    phases = [on] if isinstance(on, str) else list(on)
    pool = [
        c
        for c in candidates
        if all(p in c.scores for p in phases) and (budget is None or c.trainings <= budget)
    ]
    if not pool:
        raise ValueError(f"no candidate is scored on {on!r} within a budget of {budget} trainings")
    best = max(
        range(len(pool)), key=lambda i: (pool[i].headline(phases, key), -pool[i].trainings, -i)
    )
    return pool[best]


def compare(
    a: Scored,
    b: Scored,
    *,
    phases: Sequence[str] = REPORT_ON,
    n_boot: int = 1000,
    seed: int = 0,
    key: str = KEY,
) -> Paired:
    """``a`` against anchor ``b`` on the same target models of ``phases`` (those both scored),
    paired."""
    shared = [p for p in phases if p in a.scores and p in b.scores]
    if not shared:
        raise ValueError(f"{a.name} and {b.name} share no scored phase among {list(phases)}")
    for p in shared:
        same = len(a.labels[p]) == len(b.labels[p]) and all(
            np.array_equal(x, y) for x, y in zip(a.labels[p], b.labels[p])
        )
        if not same:
            raise ValueError(f"{a.name} and {b.name} are not scored on the same models of {p}")
    data = {p: (a.labels[p], a.scores[p], b.scores[p]) for p in shared}
    return paired_bootstrap(data, key=key, n_boot=n_boot, seed=seed)


def ratio_cell(paired: Paired) -> str:
    """``1.23x [1.05, 1.41] better`` for a table (``[n<5 models]`` where no interval was
    computed)."""
    r = paired.ratio
    return f"{r.value:.2f}x {r.cell(2)} {paired.verdict()}"
