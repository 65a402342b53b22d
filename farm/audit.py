"""Empirical epsilon: a lower bound on the DP epsilon of the targets' training, from a membership test.

An (eps, delta)-DP mechanism bounds every test of "x was IN" against "x was OUT" (Kairouz et al. 2015; the
hypothesis-testing region used by Jagielski et al. 2020, "Auditing Differentially Private Machine Learning",
and Nasr et al. 2021, "Adversary Instantiation"): FPR + e^eps FNR >= 1 - delta and FNR + e^eps FPR >= 1 - delta.
So from upper confidence bounds FPR_hi, FNR_hi of a fixed test,

    eps_lb = max(log((1 - delta - FPR_hi) / FNR_hi), log((1 - delta - FNR_hi) / FPR_hi), 0)

holds with the bounds' joint confidence. Convention (as in Jagielski et al.'s audit code): each rate gets the
upper end of a two-sided Clopper-Pearson interval at level ``confidence``, i.e. a one-sided upper bound at
level 1 - alpha/2 with alpha = 1 - confidence; by the union bound both hold together with probability at least
``confidence``. A term whose numerator is not positive is dropped.

The threshold is chosen on one set of models (MICO's labelled ``train`` models) and the rates are counted on
others (held-out models): choosing it on the counted points would void the confidence. Caveat: the points of
one model share a training run, so they are not the independent trials Clopper-Pearson assumes; the bound is
the one the auditing literature reports for such pooled tests, not a certificate.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats

from farm.metrics import check_scores


@dataclass(frozen=True)
class EpsilonAudit:
    """The bound and everything behind it: threshold (score >= threshold predicts member), counts on the
    held-out points, the rates' upper bounds, and the delta and confidence used."""

    epsilon_lb: float
    threshold: float
    fp: int
    negatives: int
    fn: int
    positives: int
    fpr_hi: float
    fnr_hi: float
    delta: float
    confidence: float

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def clopper_pearson_upper(k: np.ndarray | int, n: np.ndarray | int, alpha: float) -> np.ndarray:
    """One-sided Clopper-Pearson upper bound at level ``1 - alpha`` on a rate seen ``k`` times in ``n`` trials:
    the ``1 - alpha`` quantile of Beta(k + 1, n - k); 1 when k = n; for k = 0 it is 1 - alpha^(1/n)."""
    k, n = np.asarray(k, dtype=np.float64), np.asarray(n, dtype=np.float64)
    if np.any(n <= 0) or np.any((k < 0) | (k > n)):
        raise ValueError(f"need 0 <= k <= n and n > 0, got k={k}, n={n}")
    with np.errstate(invalid="ignore"):
        upper = stats.beta.ppf(1 - alpha, k + 1, np.maximum(n - k, 1e-300))
    return np.where(k >= n, 1.0, upper)


def epsilon_lower_bound(fp: np.ndarray | int, negatives: int, fn: np.ndarray | int, positives: int, *,
                        delta: float, confidence: float = 0.95) -> np.ndarray:
    """eps_lb (natural log units, >= 0) from ``fp`` false positives among ``negatives`` non-members and ``fn``
    false negatives among ``positives`` members (arrays broadcast: one bound per threshold)."""
    alpha = (1 - confidence) / 2
    fpr_hi = clopper_pearson_upper(fp, negatives, alpha)
    fnr_hi = clopper_pearson_upper(fn, positives, alpha)
    return _eps(fpr_hi, fnr_hi, delta)


def choose_threshold(labels: np.ndarray, scores: np.ndarray, *, delta: float, confidence: float = 0.95) -> float:
    """The score threshold (predict member when score >= it) with the largest ``epsilon_lower_bound`` on these
    points; ties go to the highest threshold. ``labels`` 0/1 (1 = member), ``scores`` finite, higher = member."""
    y, s = _check(labels, scores)
    cand = np.unique(s)[::-1]
    fp, fn = _errors(y, s, cand)
    eps = epsilon_lower_bound(fp, int((y == 0).sum()), fn, int(y.sum()), delta=delta, confidence=confidence)
    return float(cand[int(np.argmax(eps))])


def audit_epsilon(train_labels: np.ndarray, train_scores: np.ndarray, test_labels: np.ndarray,
                  test_scores: np.ndarray, *, delta: float, confidence: float = 0.95) -> EpsilonAudit:
    """Choose the threshold on the train points, count errors on the test points, bound epsilon there."""
    threshold = choose_threshold(train_labels, train_scores, delta=delta, confidence=confidence)
    y, s = _check(test_labels, test_scores)
    fp, fn = (int(v[0]) for v in _errors(y, s, np.array([threshold])))
    neg, pos = int((y == 0).sum()), int(y.sum())
    alpha = (1 - confidence) / 2
    fpr_hi, fnr_hi = float(clopper_pearson_upper(fp, neg, alpha)), float(clopper_pearson_upper(fn, pos, alpha))
    return EpsilonAudit(float(_eps(fpr_hi, fnr_hi, delta)), threshold, fp, neg, fn, pos, fpr_hi, fnr_hi, delta,
                        confidence)


def _eps(fpr_hi: np.ndarray | float, fnr_hi: np.ndarray | float, delta: float) -> np.ndarray:
    fpr_hi, fnr_hi = np.asarray(fpr_hi, dtype=np.float64), np.asarray(fnr_hi, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        a = np.where(1 - delta - fpr_hi > 0, np.log((1 - delta - fpr_hi) / fnr_hi), -np.inf)
        b = np.where(1 - delta - fnr_hi > 0, np.log((1 - delta - fnr_hi) / fpr_hi), -np.inf)
    return np.maximum(np.maximum(a, b), 0.0)


def _errors(y: np.ndarray, s: np.ndarray, thresholds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """False positives (non-members with s >= t) and false negatives (members with s < t) per threshold t."""
    neg, pos = np.sort(s[y == 0]), np.sort(s[y == 1])
    fp = neg.size - np.searchsorted(neg, thresholds, side="left")
    fn = np.searchsorted(pos, thresholds, side="left")
    return fp, fn


def _check(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y, s = check_scores(labels, scores)
    return y.astype(np.int64), s
