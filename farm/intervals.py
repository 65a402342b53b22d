"""Error bars for pooled MICO metrics: a percentile bootstrap over *models*, pure numpy.

The MICO score pools every model's points under one threshold, and points of one model are not independent
(they share the model's training run), so the resampling unit is the model: draw ``len(models)`` models with
replacement, pool their points, recompute the metric; the interval is the ``(1-level)/2`` and ``(1+level)/2``
percentiles of the replicates. Deterministic given ``seed``. Replicates whose pool lacks members or non-members
are redrawn (they have no ROC curve).

No interval from fewer than ``MIN_MODELS`` (5) models: a bootstrap over 2 models has at most 3 distinct
resamples and prints intervals such as [0.080, 0.080] that look like certainty. Below that the interval's ends
are NaN (``Interval.known`` is False) and tables print the point alone, with the model count beside it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from farm.metrics import roc_of_sorted, score, score_roc

INTERVAL_KEYS = ("TPR_FPR_1000", "TPR_FPR_100", "AUC")
MIN_MODELS = 5  # no interval from fewer models (see the module docstring)


@dataclass(frozen=True)
class Interval:
    """A point estimate on all models and its bootstrap interval ``[lo, hi]`` (same units as the metric)."""

    value: float
    lo: float
    hi: float

    @property
    def known(self) -> bool:
        """False when no interval was computed (fewer than ``MIN_MODELS`` models): ``lo``/``hi`` are NaN."""
        return bool(np.isfinite(self.lo) and np.isfinite(self.hi))

    def cell(self, digits: int = 3) -> str:
        """``[lo, hi]`` for a table cell, or ``[n<5 models]`` where no interval was computed."""
        return f"[{self.lo:.{digits}f}, {self.hi:.{digits}f}]" if self.known else f"[n<{MIN_MODELS} models]"

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def counts(labels: Sequence[np.ndarray]) -> dict[str, int]:
    """``{"models", "members", "non_members"}`` behind a pooled figure; ``labels`` are 0/1 arrays, one per model."""
    y = np.concatenate([np.ravel(a) for a in labels]) if len(labels) else np.zeros(0, np.int64)
    return {"models": len(labels), "members": int((y == 1).sum()), "non_members": int((y == 0).sum())}


def bootstrap_by_model(labels: Sequence[np.ndarray], scores: Sequence[np.ndarray], *,
                       keys: Sequence[str] = INTERVAL_KEYS, n_boot: int = 1000, level: float = 0.95,
                       seed: int = 0) -> dict[str, Interval]:
    """95% (``level``) bootstrap intervals over models for the ``score`` keys ``keys``.

    ``labels[m]`` (0/1, 1 = member) and ``scores[m]`` (finite, higher = member) are model ``m``'s points; the
    point estimate pools all models once, exactly as ``farm.metrics.score`` does. With fewer than ``MIN_MODELS``
    models the intervals' ends are NaN (no interval; see the module docstring).
    """
    if len(labels) != len(scores) or not labels:
        raise ValueError(f"need one score array per label array and at least one model, got "
                         f"{len(labels)} labels and {len(scores)} scores")
    y = [np.ravel(a).astype(np.int64) for a in labels]
    s = [np.ravel(a).astype(np.float64) for a in scores]
    point = score(np.concatenate(y), np.concatenate(s))
    if len(y) < MIN_MODELS:
        return {k: Interval(float(point[k]), math.nan, math.nan) for k in keys}
    reps = _replicates(y, s, keys, n_boot, np.random.default_rng([seed, 0xB007]))
    tail = (1 - level) / 2
    lo, hi = np.quantile(reps, [tail, 1 - tail], axis=0) if reps.size else (np.full(len(keys), np.nan),) * 2
    return {k: Interval(float(point[k]), float(lo[i]), float(hi[i])) for i, k in enumerate(keys)}


def _replicates(y: list[np.ndarray], s: list[np.ndarray], keys: Sequence[str], n_boot: int,
                rng: np.random.Generator) -> np.ndarray:
    """``[n_boot, len(keys)]`` metrics of resampled model pools (at most ``10 * n_boot`` draws). The points are
    sorted once; a resample is a count per model (``roc_of_sorted`` weights each point by its model's count),
    which gives exactly the metrics of the concatenated resample, without concatenating or sorting it."""
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
