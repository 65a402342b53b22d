"""What an attack run found, per scenario: the types ``farm attack`` fills and the report, Tune and
the benchmarks read."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from farm.attacks.audit import EpsilonAudit
from farm.attacks.intervals import Interval
from farm.config.attack import AttackConfig
from farm.shadows.scenario import (
    Mechanism,
    ModelId,
)

# resamples per pooled figure: about 0.6 s for 100 models x 200 points (weighted resamples)
N_BOOT = 1000


LEVEL = 0.95  # intervals and the epsilon audit


@dataclass(frozen=True)
class TargetPrivacy:
    """The (epsilon, delta) the targets of a scenario were trained with: ``epsilon`` None when
    unknown (inf without DP); ``delta`` the audit uses; ``source`` says where both come from;
    ``record``: the privacy record as ``challenge.json`` keeps it
    (``farm.defences.seam.recipe_privacy``: epsilon, delta and what the epsilon assumes --
    ``accountant``, ``sampling``, ``adjacency``, ``assumes`` -- where recorded), which
    ``farm.privacy.accounting.describe_epsilon`` renders; ``{}`` when nothing is known."""

    epsilon: float | None
    delta: float
    source: str
    record: Mapping[str, Any] = field(default_factory=dict)

    @property
    def adjacency(self) -> str | None:
        """The adjacency of ``epsilon`` where recorded (``farm.privacy.accounting.ADJACENCIES``)."""
        return self.record.get("adjacency")


@dataclass(frozen=True, kw_only=True)
class Audit:
    """Empirical epsilon lower bounds (``farm.attacks.audit``) of one test: the threshold chosen on
    the models ``fit_on`` (leave-one-out scores), counted on the held-out models ``held_out``;
    beside the targets' privacy.  ``audit``: the pooled bound (every held-out point a trial:
    heuristic, ``farm.attacks.audit.POOLED_VALIDITY``); ``independent``: one point per held-out
    model (None when not computed), ``independent_validity`` says why its trials are independent or
    why it was not computed."""

    audit: EpsilonAudit
    fit_on: str
    held_out: str
    target: TargetPrivacy
    independent: EpsilonAudit | None = None
    independent_validity: str = ""


@dataclass(frozen=True, kw_only=True)
class ScenarioResult:
    """Scores of one scenario: raw dev/final scores per model, metrics per phase (pooled with
    ``farm.mico.scorer.pooled_scores``), ROC curves per phase (``baseline_curves``: the loss
    baseline's), compute spent.

    ``intervals`` / ``counts``: per phase, ``LEVEL`` bootstrap intervals over models
    (``farm.attacks.intervals``) of the pooled metrics and the models, members and non-members
    behind them (``baseline_intervals``: the same for the loss baseline); ``train_scores``: the
    labelled models' raw leave-one-out scores; ``records``: every model's challenge points
    (population indices, challenge order); ``solutions``: known 0/1 memberships; ``audit``: the
    empirical epsilon lower bound, None when the scenario has too few labelled models.
    """

    name: str
    config: AttackConfig
    raw: dict[ModelId, np.ndarray]
    phases: dict[str, dict[str, float]]
    trainings: int
    job_seconds: float
    curves: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    baseline: dict[str, dict[str, float]] = field(
        default_factory=dict
    )  # the loss attack on the same phases
    baseline_curves: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    intervals: dict[str, dict[str, Interval]] = field(default_factory=dict)
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    baseline_intervals: dict[str, dict[str, Interval]] = field(default_factory=dict)
    train_scores: dict[ModelId, np.ndarray] = field(default_factory=dict)
    records: dict[ModelId, np.ndarray] = field(default_factory=dict)
    solutions: dict[ModelId, np.ndarray] = field(default_factory=dict)
    audit: Audit | None = None
    mechanism: Mechanism | None = None  # how the shadows were trained (None: no shadows)
