"""Empirical epsilon: a lower bound on the DP epsilon of the targets' training, from a membership
test.

An (eps, delta)-DP mechanism bounds every test of "x was IN" against "x was OUT" (Kairouz et al.
2015; the hypothesis-testing region used by Jagielski et al. 2020, "Auditing Differentially Private
Machine Learning", and Nasr et al. 2021, "Adversary Instantiation"): FPR + e^eps FNR >= 1 - delta
and FNR + e^eps FPR >= 1 - delta. So from upper confidence bounds FPR_hi, FNR_hi of a fixed test,

    eps_lb = max(log((1 - delta - FPR_hi) / FNR_hi), log((1 - delta - FNR_hi) / FPR_hi), 0)

holds with the bounds' joint confidence. Convention (as in Jagielski et al.'s audit code): each rate
gets the upper end of a two-sided Clopper-Pearson interval at level ``confidence``, i.e. a one-sided
upper bound at level 1 - alpha/2 with alpha = 1 - confidence; by the union bound both hold together
with probability at least ``confidence``. A term whose numerator is not positive is dropped.

The threshold is chosen on one set of models (MICO's labelled ``train`` models) and the rates are
counted on others (held-out models): choosing it on the counted points would void the confidence.

Two bounds come from the same test (``farm.commands.attack.audit_scenario`` computes both):

* **pooled (heuristic)**: every challenge point of every held-out model is a trial. The points of
  one model share its training run, so they are not the independent trials Clopper-Pearson assumes;
  this is the figure the auditing literature reports for such pooled tests, not a certificate
  (``POOLED_VALIDITY``).
* **one point per model** (Jagielski et al. 2020's audit: one canary decision per trained model):
  each held-out model contributes the one point at ``pick_index`` -- an index drawn from a seed and
  the model's id alone, so whether it is a member is the model's own coin flip (MICO: a uniform
  shuffle of its challenge points puts half of them IN), independent of the pick and of the other
  models. Models trained independently and scored against a threshold (and score scale,
  ``scale_like``) fixed on other models give independent Bernoulli trials of one fixed test, which
  is what Clopper-Pearson needs. Few models give a weak bound (at most about 2.6 with 50 members and
  50 non-members at 95%); that is its honest size.

Adjacency. MICO's game (and a ``farm.commands.make_challenge`` tree's) swaps a member for a
non-member at a fixed training-set size: the worlds it separates are substitution neighbours
(``AUDIT_ADJACENCY``), so the bound is on a substitution epsilon. Opacus' accountants (the targets'
epsilon) are add/remove; by group privacy an add/remove (eps, delta)-DP mechanism is (2 eps, (1 +
e^eps) delta)-DP under substitution (``substitution_privacy``), the figure a substitution lower
bound can be held against.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from farm.errors import require
from farm.mico.scorer import check_scores

AUDIT_ADJACENCY = "substitution"
POOLED_VALIDITY = (
    "heuristic: every point of each held-out model pooled as one Clopper-Pearson trial, but the "
    "points of one model share its training run, so they are not independent; not a certificate"
)


@dataclass(frozen=True, kw_only=True)
class EpsilonAudit:
    """The bound and everything behind it: threshold (score >= threshold predicts member), counts on
    the held-out points, the rates' upper bounds, and the delta and confidence used."""

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
    """One-sided Clopper-Pearson upper bound at level ``1 - alpha`` on a rate seen ``k`` times in
    ``n`` trials: the ``1 - alpha`` quantile of Beta(k + 1, n - k); 1 when k = n; for k = 0 it is 1
    - alpha^(1/n)."""
    # scipy.stats takes ~0.5 s to import: loaded on first use so ``import farm.cli`` (every
    # command, ``farm plan`` included) does not pay it
    from scipy import stats

    k, n = np.asarray(k, dtype=np.float64), np.asarray(n, dtype=np.float64)
    if np.any(n <= 0) or np.any((k < 0) | (k > n)):
        raise ValueError(f"need 0 <= k <= n and n > 0, got k={k}, n={n}")
    with np.errstate(invalid="ignore"):
        upper = stats.beta.ppf(1 - alpha, k + 1, np.maximum(n - k, 1e-300))
    return np.where(k >= n, 1.0, upper)


def epsilon_lower_bound(
    fp: np.ndarray | int,
    negatives: int,
    fn: np.ndarray | int,
    positives: int,
    *,
    delta: float,
    confidence: float = 0.95,
) -> np.ndarray:
    """eps_lb (natural log units, >= 0) from ``fp`` false positives among ``negatives`` non-members
    and ``fn`` false negatives among ``positives`` members (arrays broadcast: one bound per
    threshold)."""
    alpha = (1 - confidence) / 2
    fpr_hi = clopper_pearson_upper(fp, negatives, alpha)
    fnr_hi = clopper_pearson_upper(fn, positives, alpha)
    return _eps(fpr_hi, fnr_hi, delta)


def joint_beta_epsilon(
    *, tp: int, fp: int, tn: int, fn: int, delta: float, confidence: float = 0.95
) -> float:
    """A Bayesian eps lower bound (Zanella-Béguelin et al. 2023; the ``joint-beta`` method of the
    ``privacy-estimates`` package): with Jeffreys priors the attack's rates have independent
    posteriors FNR ~ Beta(1/2 + fn, 1/2 + tp) and FPR ~ Beta(1/2 + fp, 1/2 + tn), and the bound
    is the epsilon whose (epsilon, ``delta``)-DP region holds ``1 - confidence`` of their joint
    posterior: the targets' epsilon is at least it with posterior probability ``confidence``.
    Tighter than Clopper-Pearson's two separate intervals (``epsilon_lower_bound``), which spend
    the error on each rate apart. Trials must be independent, as for any bound here.

    The posterior mass of the region is one integral over the FNR's quantiles of the FPR's
    posterior mass between the region's two boundaries.
    """
    # scipy.stats takes ~0.5 s to import: loaded on first use so ``import farm.cli`` (every
    # command, ``farm plan`` included) does not pay it
    from scipy import optimize, stats

    require(min(tp, fp, tn, fn) >= 0, "counts", "non-negative counts", (tp, fp, tn, fn))
    require(0 < confidence < 1, "confidence", "a probability in (0, 1)", confidence)
    fnr_post = stats.beta(0.5 + fn, 0.5 + tp)
    fpr_post = stats.beta(0.5 + fp, 0.5 + tn)
    nodes, weights = np.polynomial.legendre.leggauss(400)
    u = (nodes + 1) / 2  # quantiles of the FNR posterior, Gauss-Legendre on (0, 1)
    fnr = fnr_post.ppf(u)

    def private(eps: float) -> float:
        e = math.exp(eps)
        lo = np.maximum(0, np.maximum(1 - delta - fnr * e, (1 - delta - fnr) / e))
        hi = np.minimum(1, np.minimum(1 + (delta - fnr) / e, delta + (1 - fnr) * e))
        mass = np.clip(fpr_post.cdf(hi) - fpr_post.cdf(lo), 0, 1)
        return float(np.dot(weights, mass) / 2)

    alpha = 1 - confidence
    if private(0.0) >= alpha:
        return 0.0
    top = 1.0
    while private(top) < alpha and top < 64:
        top *= 2
    if private(top) < alpha:
        return top
    return float(optimize.brentq(lambda eps: private(eps) - alpha, 0.0, top, xtol=1e-6))


def choose_threshold(
    labels: np.ndarray, scores: np.ndarray, *, delta: float, confidence: float = 0.95
) -> float:
    """The score threshold (predict member when score >= it) with the largest
    ``epsilon_lower_bound`` on these points; ties go to the highest threshold. ``labels`` 0/1 (1 =
    member), ``scores`` finite, higher = member."""
    y, s = _check(labels, scores)
    cand = np.unique(s)[::-1]
    fp, fn = _errors(y, s, cand)
    eps = epsilon_lower_bound(
        fp, int((y == 0).sum()), fn, int(y.sum()), delta=delta, confidence=confidence
    )
    return float(cand[int(np.argmax(eps))])


def audit_epsilon(
    train_labels: np.ndarray,
    train_scores: np.ndarray,
    test_labels: np.ndarray,
    test_scores: np.ndarray,
    *,
    delta: float,
    confidence: float = 0.95,
) -> EpsilonAudit:
    """Choose the threshold on the train points, count errors on the test points, bound epsilon
    there."""
    threshold = choose_threshold(train_labels, train_scores, delta=delta, confidence=confidence)
    y, s = _check(test_labels, test_scores)
    fp, fn = (int(v[0]) for v in _errors(y, s, np.array([threshold])))
    neg, pos = int((y == 0).sum()), int(y.sum())
    alpha = (1 - confidence) / 2
    fpr_hi, fnr_hi = (
        float(clopper_pearson_upper(fp, neg, alpha)),
        float(clopper_pearson_upper(fn, pos, alpha)),
    )
    return EpsilonAudit(
        epsilon_lb=float(_eps(fpr_hi, fnr_hi, delta)),
        threshold=threshold,
        fp=fp,
        negatives=neg,
        fn=fn,
        positives=pos,
        fpr_hi=fpr_hi,
        fnr_hi=fnr_hi,
        delta=delta,
        confidence=confidence,
    )


def pick_index(key: int, n_points: int, *, seed: int = 0) -> int:
    """The one challenge point (an index in ``[0, n_points)``, challenge order) a model with id
    ``key`` contributes to the one-point-per-model bound: drawn from ``(seed, key)`` alone, never
    from scores or answers, so the pick is independent of the point's membership."""
    if n_points < 1:
        raise ValueError(f"model {key} has no challenge point to pick")
    return int(np.random.default_rng([seed, 0x0E9C, key]).integers(n_points))


def scale_like(reference: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """``scores`` under the min-max of ``reference``'s finite values
    (``farm.mico.scorer.pooled_scores``' rule: NaN -> 0.5, +inf -> 1, -inf -> 0, a constant
    reference -> 0.5; not clipped): a threshold set on ``reference`` means the same on ``scores``
    and does not move with them."""
    ref, raw = np.asarray(reference, np.float64).ravel(), np.asarray(scores, np.float64).ravel()
    finite = ref[np.isfinite(ref)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
    with np.errstate(invalid="ignore", over="ignore"):
        scaled = (raw - lo) / (hi - lo) if hi > lo else np.full_like(raw, 0.5)
    scaled = np.where(np.isposinf(raw), 1.0, np.where(np.isneginf(raw), 0.0, scaled))
    return np.where(np.isnan(raw), 0.5, scaled)


def substitution_privacy(epsilon: float, delta: float) -> tuple[float, float]:
    """The substitution (eps', delta') an add/remove (``epsilon``, ``delta``)-DP mechanism meets by
    group privacy over the two add/remove steps of a substitution: (2 eps, (1 + e^eps) delta);
    delta' is capped at 1 (vacuous).

    >>> [round(v, 10) for v in substitution_privacy(1.0, 1e-5)]
    [2.0, 3.71828e-05]
    """
    if math.isinf(epsilon):
        return math.inf, delta
    return 2 * epsilon, min(1.0, (1 + math.exp(epsilon)) * delta)


def _eps(fpr_hi: np.ndarray | float, fnr_hi: np.ndarray | float, delta: float) -> np.ndarray:
    fpr_hi, fnr_hi = np.asarray(fpr_hi, dtype=np.float64), np.asarray(fnr_hi, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        a = np.where(1 - delta - fpr_hi > 0, np.log((1 - delta - fpr_hi) / fnr_hi), -np.inf)
        b = np.where(1 - delta - fnr_hi > 0, np.log((1 - delta - fnr_hi) / fpr_hi), -np.inf)
    return np.maximum(np.maximum(a, b), 0.0)


def error_curve(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(fpr, fnr)`` of the test "member iff score >= t" at every threshold t among the scores
    (and one above them all), FPR ascending. Descriptive: no confidence is attached.

    >>> [v.tolist() for v in error_curve(np.array([0, 1]), np.array([0.0, 1.0]))]
    [[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]
    """
    y, s = _check(labels, scores)
    thresholds = np.concatenate([[np.inf], np.unique(s)[::-1]])
    fp, fn = _errors(y, s, thresholds)
    return fp / max(int((y == 0).sum()), 1), fn / max(int((y == 1).sum()), 1)


def _errors(y: np.ndarray, s: np.ndarray, thresholds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """False positives (non-members with s >= t) and false negatives (members with s < t) per
    threshold t."""
    neg, pos = np.sort(s[y == 0]), np.sort(s[y == 1])
    fp = neg.size - np.searchsorted(neg, thresholds, side="left")
    fn = np.searchsorted(pos, thresholds, side="left")
    return fp, fn


def _check(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y, s = check_scores(labels, scores)
    return y.astype(np.int64), s
