"""The MICO scorer, pure numpy.

``roc_curve`` reproduces scikit-learn's ``roc_curve`` (default ``drop_intermediate=True``) exactly,
because the MICO scoring program takes its TPR@FPR from those points: the largest TPR among ROC
points whose FPR is *strictly* below the bound, ties sharing one threshold. Score direction: higher
= member.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TypeVar

import numpy as np

T = TypeVar("T")

FPR_BOUNDS = {
    "TPR_FPR_10": 0.001,
    "TPR_FPR_100": 0.01,
    "TPR_FPR_500": 0.05,
    "TPR_FPR_1000": 0.1,
    "TPR_FPR_1500": 0.15,
    "TPR_FPR_2000": 0.2,
}

READABLE_NAMES = {
    "TPR_FPR_10": "TPR@0.001FPR",
    "TPR_FPR_100": "TPR@0.01FPR",
    "TPR_FPR_500": "TPR@0.05FPR",
    "TPR_FPR_1000": "TPR@0.1FPR",
    "TPR_FPR_1500": "TPR@0.15FPR",
    "TPR_FPR_2000": "TPR@0.2FPR",
    "AUC": "AUC",
    "MIA": "MIA advantage",
    "accuracy": "balanced accuracy",
}
"""The scorer's keys (``score``'s dict, MICO's scoring program's names, used inside the code) ->
the names every output uses: ``report.md``, ``metrics.json``, ``farm score``'s table and ``--json``,
the ROC legends (one vocabulary; ``docs/design.md``)."""


def readable(metrics: Mapping[str, T]) -> dict[str, T]:
    """``metrics`` keyed by ``READABLE_NAMES`` (``TPR_FPR_1000`` -> ``TPR@0.1FPR``); a key without a
    readable name is kept as it is."""
    return {READABLE_NAMES.get(k, k): v for k, v in metrics.items()}


def roc_curve(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(fpr, tpr, thresholds)`` exactly as ``sklearn.metrics.roc_curve(labels, scores)`` returns
    them.

    ``labels`` are 0/1 (1 = member) and must contain both classes; ``scores`` are finite, shape
    ``[n]``.
    """
    labels, scores = check_scores(labels, scores)
    order = np.argsort(scores, kind="mergesort")[::-1]
    return roc_of_sorted(scores[order], labels[order].astype(np.int64))


def roc_of_sorted(
    scores: np.ndarray, labels: np.ndarray, counts: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``roc_curve`` of points already sorted by ``scores`` descending (int 0/1 ``labels``).
    ``counts``: how many times each point is in the pool (non-negative ints; None: once each), so a
    bootstrap resample is a weighting of one sorted array: the result equals ``roc_curve`` of the
    pool with each point repeated ``counts`` times (exactly: integer cumulative sums, and thresholds
    of points counted 0 times are not thresholds of the pool). The pool must hold both classes."""
    cut = np.r_[np.where(np.diff(scores))[0], labels.size - 1]
    if counts is None:
        tps = np.cumsum(labels)[cut]
        fps = 1 + cut - tps
    else:
        w = np.asarray(counts, dtype=np.int64)
        tps, fps = np.cumsum(labels * w)[cut], np.cumsum((1 - labels) * w)[cut]
        present = np.diff(np.r_[0, tps + fps]) > 0
        cut, tps, fps = cut[present], tps[present], fps[present]
    thresholds = scores[cut]
    if fps.size > 2:
        keep = np.where(np.r_[True, np.logical_or(np.diff(fps, 2), np.diff(tps, 2)), True])[0]
        fps, tps, thresholds = fps[keep], tps[keep], thresholds[keep]
    tps, fps = np.r_[0, tps], np.r_[0, fps]
    thresholds = np.r_[np.inf, thresholds]
    return fps / fps[-1], tps / tps[-1], thresholds


def tpr_at_fpr(fpr: np.ndarray, tpr: np.ndarray, max_fpr: float) -> float:
    """Largest TPR among ROC points with FPR strictly below ``max_fpr`` (the point (0, 0) always
    counts)."""
    return float(np.max(tpr[fpr < max_fpr]))


def auc(fpr: np.ndarray, tpr: np.ndarray) -> float:
    """Trapezoidal area under the ROC points."""
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2.0))


def score(solutions: np.ndarray, predictions: np.ndarray) -> dict[str, float]:
    """MICO's score dict for one pool of points (all models of a phase concatenated, one threshold).

    Keys: ``TPR_FPR_{10,100,500,1000,1500,2000}`` (TPR at FPR < 0.001 ... 0.2), ``AUC``, ``MIA``
    (max TPR - FPR) and ``accuracy`` (max balanced accuracy).
    """
    fpr, tpr, _ = roc_curve(np.ravel(solutions), np.ravel(predictions))
    return score_roc(fpr, tpr)


def score_roc(fpr: np.ndarray, tpr: np.ndarray) -> dict[str, float]:
    """``score``'s dict from ROC points (``roc_curve``'s)."""
    return {key: figure_of_roc(fpr, tpr, key) for key in (*FPR_BOUNDS, "AUC", "MIA", "accuracy")}


def figure_of_roc(fpr: np.ndarray, tpr: np.ndarray, key: str) -> float:
    """One of ``score``'s figures (``key``) from ROC points: what a bootstrap replicate needs,
    without the others. ``KeyError`` for a key ``score`` does not give."""
    if key in FPR_BOUNDS:
        return tpr_at_fpr(fpr, tpr, FPR_BOUNDS[key])
    if key == "AUC":
        return auc(fpr, tpr)
    if key == "MIA":
        return float(np.max(tpr - fpr))
    if key == "accuracy":
        return float(np.max(1 - (fpr + (1 - tpr)) / 2))
    raise KeyError(key)


def pooled_scores(scores: Sequence[np.ndarray]) -> np.ndarray:
    """One pool of scores in [0, 1] from the raw scores of the models of one (scenario, phase),
    concatenated in order (pair it with their solutions concatenated the same way), ready for
    ``score`` and ``roc_curve``.

    The one NaN rule of the farm (the report, Tune and the benchmarks score through it): raw scores
    are min-max scaled over the pool's finite values, **NaN -> 0.5** (uninformative: the middle of
    the range), +inf -> 1, -inf -> 0, and a pool whose finite scores are all equal -> 0.5. This is
    exactly ``farm.challenge.submission.normalize`` in its default ``global`` mode (one min-max per
    scenario and phase), so a pool scores what the submitted predictions of the same models score:
    Tune ranks attacks by the rule the report and MICO score them with.
    """
    parts = [np.asarray(x, dtype=np.float64).ravel() for x in scores]
    raw = np.concatenate(parts) if parts else np.zeros(0)
    finite = raw[np.isfinite(raw)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
    with np.errstate(invalid="ignore", over="ignore"):
        scaled = (raw - lo) / (hi - lo) if hi > lo else np.full_like(raw, 0.5)
    scaled = np.where(np.isposinf(raw), 1.0, np.where(np.isneginf(raw), 0.0, scaled))
    return np.clip(np.where(np.isnan(raw), 0.5, scaled), 0.0, 1.0)


def check_scores(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Flat 0/1 ``labels`` (both classes present) and finite float64 ``scores`` of the same length,
    else ``ValueError`` saying which."""
    labels = np.asarray(labels).ravel()
    scores = np.asarray(scores, dtype=np.float64).ravel()
    if labels.shape != scores.shape:
        raise ValueError(f"labels and scores differ in length: {labels.size} != {scores.size}")
    if not np.isin(labels, (0, 1)).all():
        raise ValueError("labels must be 0 or 1")
    if labels.min(initial=1) == labels.max(initial=0):
        raise ValueError("labels must contain both members and non-members")
    if not np.isfinite(scores).all():
        raise ValueError("scores must be finite")
    return labels.astype(np.int64), scores
