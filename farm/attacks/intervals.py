"""Error bars for pooled MICO metrics: a percentile bootstrap over *models*, pure numpy.

The MICO score pools every model's points under one threshold, and points of one model are not
independent (they share the model's training run), so the resampling unit is the model: draw
``len(models)`` models with replacement, pool their points, recompute the metric; the interval is
the ``(1-level)/2`` and ``(1+level)/2`` percentiles of the replicates. Deterministic given ``seed``.
Replicates whose pool lacks members or non-members are redrawn (they have no ROC curve).

No interval from fewer than ``MIN_MODELS`` (5) models: a bootstrap over 2 models has at most 3
distinct resamples and prints intervals such as [0.080, 0.080] that look like certainty. Below that
the interval's ends are NaN (``Interval.known`` is False) and tables print the point alone, with the
model count beside it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from farm.mico.scorer import figure_of_roc, roc_of_sorted, score, score_roc

INTERVAL_KEYS = ("TPR_FPR_1000", "TPR_FPR_100", "AUC")
MIN_MODELS = 5  # no interval from fewer models (see the module docstring)


@dataclass(frozen=True)
class Interval:
    """A point estimate on all models and its bootstrap interval ``[lo, hi]`` (same units as the
    metric)."""

    value: float
    lo: float
    hi: float

    @property
    def known(self) -> bool:
        """False when no interval was computed (fewer than ``MIN_MODELS`` models): ``lo``/``hi`` are
        NaN."""
        return bool(np.isfinite(self.lo) and np.isfinite(self.hi))

    def cell(self, digits: int = 3) -> str:
        """``[lo, hi]`` for a table cell, or ``[n<5 models]`` where no interval was computed."""
        return (
            f"[{self.lo:.{digits}f}, {self.hi:.{digits}f}]"
            if self.known
            else f"[n<{MIN_MODELS} models]"
        )

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def counts(labels: Sequence[np.ndarray]) -> dict[str, int]:
    """``{"models", "members", "non_members"}`` behind a pooled figure; ``labels`` are 0/1 arrays,
    one per model."""
    y = np.concatenate([np.ravel(a) for a in labels]) if len(labels) else np.zeros(0, np.int64)
    return {
        "models": len(labels),
        "members": int((y == 1).sum()),
        "non_members": int((y == 0).sum()),
    }


def bootstrap_by_model(
    labels: Sequence[np.ndarray],
    scores: Sequence[np.ndarray],
    *,
    keys: Sequence[str] = INTERVAL_KEYS,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> dict[str, Interval]:
    """95% (``level``) bootstrap intervals over models for the ``score`` keys ``keys``.

    ``labels[m]`` (0/1, 1 = member) and ``scores[m]`` (finite, higher = member) are model ``m``'s
    points; the point estimate pools all models once, exactly as ``farm.mico.scorer.score`` does.
    With fewer than ``MIN_MODELS`` models the intervals' ends are NaN (no interval; see the module
    docstring).
    """
    if len(labels) != len(scores) or not labels:
        raise ValueError(
            f"need one score array per label array and at least one model, got {len(labels)} "
            f"labels and {len(scores)} scores"
        )
    y = [np.ravel(a).astype(np.int64) for a in labels]
    s = [np.ravel(a).astype(np.float64) for a in scores]
    point = score(np.concatenate(y), np.concatenate(s))
    if len(y) < MIN_MODELS:
        return {k: Interval(float(point[k]), math.nan, math.nan) for k in keys}
    reps = _replicates(y, s, keys, n_boot, np.random.default_rng([seed, 0xB007]))
    tail = (1 - level) / 2
    lo, hi = (
        np.quantile(reps, [tail, 1 - tail], axis=0)
        if reps.size
        else (np.full(len(keys), np.nan),) * 2
    )
    return {k: Interval(float(point[k]), float(lo[i]), float(hi[i])) for i, k in enumerate(keys)}


def bootstrap_by_record(
    labels: np.ndarray,
    scores: np.ndarray,
    *,
    keys: Sequence[str] = INTERVAL_KEYS,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> dict[str, Interval]:
    """Percentile bootstrap intervals over the *records* of one model: ``bootstrap_by_model`` with
    each record its own unit (``labels`` 0/1 and finite ``scores``, one per record).

    For one target model (``farm audit --model``), where no model can be resampled: the interval
    shows how the figure moves with the sample of records, the model held fixed. It is narrower
    than a model bootstrap would be, since it leaves out how another training run would score the
    same records; fewer than ``MIN_MODELS`` records give no interval."""
    y, s = np.ravel(labels), np.ravel(scores)
    if y.shape != s.shape:
        raise ValueError(f"one score per record: {y.size} labels, {s.size} scores")
    return bootstrap_by_model(
        list(y.reshape(-1, 1)),
        list(s.reshape(-1, 1)),
        keys=keys,
        n_boot=n_boot,
        level=level,
        seed=seed,
    )


def _replicates(
    y: list[np.ndarray],
    s: list[np.ndarray],
    keys: Sequence[str],
    n_boot: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """``[n_boot, len(keys)]`` metrics of resampled model pools (at most ``10 * n_boot`` draws). The
    points are sorted once; a resample is a count per model (``roc_of_sorted`` weights each point by
    its model's count), which gives exactly the metrics of the concatenated resample, without
    concatenating or sorting it."""
    labels, scores = np.concatenate(y), np.concatenate(s)
    model = np.repeat(np.arange(len(y)), [a.size for a in y])
    order = np.argsort(scores, kind="mergesort")[::-1]
    labels, scores, model = labels[order].astype(np.int64), scores[order], model[order]
    positives = np.array([int(a.sum()) for a in y])
    negatives = np.array([a.size for a in y]) - positives
    out: list[list[float]] = []
    for _ in range(10 * n_boot):
        if len(out) == n_boot:
            break
        counts = np.bincount(rng.integers(0, len(y), len(y)), minlength=len(y))
        if not (counts @ positives and counts @ negatives):
            continue
        got = score_roc(*roc_of_sorted(scores, labels, counts[model])[:2])
        out.append([got[k] for k in keys])
    return np.asarray(out, dtype=np.float64).reshape(-1, len(keys))


PhaseData = tuple[Sequence[np.ndarray], Sequence[np.ndarray], Sequence[np.ndarray]]


@dataclass(frozen=True, kw_only=True)
class Paired:
    """Attack A against anchor B on the same target models (``paired_bootstrap``).

    ``a`` / ``b``: each one's headline, the mean over the phases of the phase figure (MICO: dev and
    final, each scored under its own threshold); ``ratio`` = a / b and ``diff`` = a - b, each with
    its paired bootstrap interval (NaN ends when a phase has fewer than ``MIN_MODELS`` models);
    ``per_phase``: the phase figures as ``{phase: (a, b)}``; ``models``: models per phase.
    """

    a: float
    b: float
    ratio: Interval
    diff: Interval
    per_phase: dict[str, tuple[float, float]]
    models: dict[str, int]

    @property
    def within_noise(self) -> bool:
        """True when the ratio's interval covers 1 (or none was computed): no difference can be
        claimed."""
        return not self.ratio.known or self.ratio.lo <= 1.0 <= self.ratio.hi

    def verdict(self) -> str:
        """``better``, ``worse`` or ``within noise`` (the ratio's 95% interval against 1)."""
        if self.within_noise:
            return "within noise"
        return "better" if self.ratio.lo > 1.0 else "worse"


def paired_bootstrap(
    phases: dict[str, PhaseData],
    *,
    key: str = "TPR_FPR_1000",
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> Paired:
    """A paired model bootstrap of attack A against anchor B.

    ``phases[phase] = (labels, scores_a, scores_b)``: per target model of the phase, its 0/1
    solution and the two attacks' pooled scores (``farm.mico.scorer.pooled_scores``) of its points.
    A phase's figure pools its models under one threshold (``farm.mico.scorer.score``'s ``key``,
    MICO's per-phase rule); the headline is the mean of the phase figures. A replicate draws each
    phase's models with replacement, independently per phase, and scores BOTH attacks on the same
    draw, so the interval of ``a / b`` reflects only how the two differ on the same targets, not how
    hard the targets happen to be (a marginal interval of either does). Percentile intervals at
    ``level``; deterministic in ``seed``; NaN ends when any phase has fewer than ``MIN_MODELS``
    models.
    """
    figures, prepared = _prepare(phases, key)
    per_phase = {p: (fa, fb) for p, (fa, fb) in figures.items()}
    a = float(np.mean([v[0] for v in per_phase.values()]))
    b = float(np.mean([v[1] for v in per_phase.values()]))
    models = {p: len(v[0]) for p, v in prepared.items()}
    point_ratio = a / b if b else math.inf
    if min(models.values()) < MIN_MODELS:
        nan = math.nan
        return Paired(
            a=a,
            b=b,
            ratio=Interval(point_ratio, nan, nan),
            diff=Interval(a - b, nan, nan),
            per_phase=per_phase,
            models=models,
        )
    reps = _paired_replicates(prepared, key, n_boot, np.random.default_rng([seed, 0x9A1D]))
    tail = (1 - level) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = reps[:, 0] / reps[:, 1]
    r_lo, r_hi = np.nanquantile(ratios, [tail, 1 - tail])
    d_lo, d_hi = np.quantile(reps[:, 0] - reps[:, 1], [tail, 1 - tail])
    return Paired(
        a=a,
        b=b,
        ratio=Interval(point_ratio, float(r_lo), float(r_hi)),
        diff=Interval(a - b, float(d_lo), float(d_hi)),
        per_phase=per_phase,
        models=models,
    )


def headline_bootstrap(
    phases: dict[str, tuple[Sequence[np.ndarray], Sequence[np.ndarray]]],
    *,
    key: str = "TPR_FPR_1000",
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> Interval:
    """One attack's headline (the mean of its per-phase figures, each phase pooled under its own
    threshold) with a bootstrap interval that resamples every phase's models jointly;
    ``phases[phase] = (labels, scores)``, one array per model. NaN ends when a phase has fewer than
    ``MIN_MODELS`` models."""
    figures, prepared = _prepare(phases, key)
    value = float(np.mean([f[0] for f in figures.values()]))
    if min(len(y) for y, _ in prepared.values()) < MIN_MODELS:
        return Interval(value, math.nan, math.nan)
    reps = _paired_replicates(prepared, key, n_boot, np.random.default_rng([seed, 0x9A1D]))[:, 0]
    tail = (1 - level) / 2
    lo, hi = np.quantile(reps, [tail, 1 - tail])
    return Interval(value, float(lo), float(hi))


def _prepare(phases: dict, key: str) -> tuple[dict[str, tuple[float, ...]], dict]:
    """Per phase ``(labels, *sides)`` (one array per model for each): each side's pooled figure, and
    the labels with each side's points sorted once for the replicates (``_paired_replicates``)."""
    figures, prepared = {}, {}
    for phase, (labels, *sides) in phases.items():
        if not labels or any(len(side) != len(labels) for side in sides):
            raise ValueError(
                f"{phase}: need one score array per model for each attack and at least one model"
            )
        y = [np.ravel(v).astype(np.int64) for v in labels]
        flat = [[np.ravel(v).astype(np.float64) for v in side] for side in sides]
        figures[phase] = tuple(
            float(score(np.concatenate(y), np.concatenate(f))[key]) for f in flat
        )
        prepared[phase] = (y, [_sorted_pool(y, f) for f in flat])
    return figures, prepared


def _sorted_pool(
    y: list[np.ndarray], s: list[np.ndarray]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One phase's points sorted by score (descending): scores, labels and each point's model
    index."""
    scores, labels = np.concatenate(s), np.concatenate(y)
    model = np.repeat(np.arange(len(y)), [v.size for v in y])
    order = np.argsort(scores, kind="mergesort")[::-1]
    return scores[order], labels[order], model[order]


def _paired_replicates(
    prepared: dict, key: str, n_boot: int, rng: np.random.Generator
) -> np.ndarray:
    """``[n_boot, sides]`` headlines (A, B, or A alone) of resampled model pools: per replicate and
    phase, one draw of models shared by every side (a draw lacking members or non-members is
    redrawn)."""
    sides = len(next(iter(prepared.values()))[1])
    classes = {
        phase: (np.array([int(v.sum()) for v in y]), np.array([int((v == 0).sum()) for v in y]))
        for phase, (y, _) in prepared.items()
    }
    out = np.empty((n_boot, sides))
    for i in range(n_boot):
        figures = []
        for phase, (y, pools) in prepared.items():
            pos, neg = classes[phase]
            while True:
                counts = np.bincount(rng.integers(0, len(y), len(y)), minlength=len(y))
                if counts @ pos and counts @ neg:
                    break
            figures.append(
                [
                    figure_of_roc(*roc_of_sorted(sc, lab, counts[mod])[:2], key)
                    for sc, lab, mod in pools
                ]
            )
        out[i] = np.mean(figures, axis=0)
    return out
