"""The multi-run audit: one canary set, K training runs, a lower bound on epsilon whose trials are
independent training runs. Pure.

Each canary is in each run on its own coin (``farm.attacks.canaries``), and a run's scores of its
canaries share that run's training, so canaries of one run are not independent trials. The
trials here are runs: the runs are split once (seeded) into a *fit* half and a *count* half. On
the fit half, each canary gets the threshold that best separates its IN runs from its OUT runs,
and the canary whose threshold separates best is chosen. On the count half, that canary in that
threshold gives one trial per run (a false positive when it is OUT and scored above, a false
negative when it is IN and scored below). Nothing is chosen on the runs that are counted, so no
correction for the search is owed.

From the counts, three bounds at one ``confidence``, each for ``delta`` and beside the claim it
tests: Clopper-Pearson on each rate (``farm.attacks.audit.epsilon_lower_bound``), the Bayesian
joint posterior (``joint_beta_epsilon``) and a Gaussian-DP fit (the mu whose trade-off curve
passes through the counted rates' Clopper-Pearson corner, converted to epsilon at ``delta``). The
GDP figure assumes the mechanism's trade-off curve is Gaussian (as DP-SGD's is, asymptotically):
it is a parametric estimate, not a bound for every mechanism, and ``validity`` says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from farm.attacks.audit import clopper_pearson_upper, epsilon_lower_bound, joint_beta_epsilon
from farm.attacks.one_run import ADJACENCIES, adjacency_text
from farm.errors import require

_SPLIT = 0x5B17


@dataclass(frozen=True, kw_only=True)
class MultiRunAudit:
    """The counts of the chosen canary on the counted runs and the bounds they give."""

    canary: int
    threshold: float
    fit_runs: int
    tp: int
    fp: int
    tn: int
    fn: int
    confidence: float
    delta: float
    clopper_pearson: float
    joint_beta: float
    gdp: float
    gdp_mu: float
    adjacency: str = "add/remove"

    @property
    def validity(self) -> str:
        """What the bounds rest on, one line for a report."""
        return (
            f"multi-run audit at {self.confidence:.0%}, delta={self.delta:g}, "
            f"{adjacency_text(self.adjacency)}: canary and threshold chosen on {self.fit_runs} "
            f"runs, counted on {self.tp + self.fp + self.tn + self.fn} others, one trial per run "
            f"(runs are independent trainings); joint beta is a posterior credible bound "
            f"(Jeffreys prior); the GDP figure assumes a Gaussian trade-off curve"
        )


def split_runs(runs: int, *, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(fit, count)`` run indices: a seeded half each (sorted)."""
    require(runs >= 4, "runs", "at least 4 runs (2 to fit, 2 to count)", runs)
    order = np.random.default_rng([seed, _SPLIT]).permutation(runs)
    return np.sort(order[: runs // 2]), np.sort(order[runs // 2 :])


def best_threshold(scores: np.ndarray, included: np.ndarray) -> tuple[float, float]:
    """``(threshold, TPR - FPR)`` of the threshold (predict IN when score >= it) that separates a
    canary's IN runs from its OUT runs best; ``(inf, 0)`` when one side is empty."""
    scores, included = np.asarray(scores, float), np.asarray(included)
    pos, neg = scores[included == 1], scores[included == 0]
    if not pos.size or not neg.size:
        return math.inf, 0.0
    cuts = np.unique(scores)
    tpr = (pos[None, :] >= cuts[:, None]).mean(axis=1)
    fpr = (neg[None, :] >= cuts[:, None]).mean(axis=1)
    best = int(np.argmax(tpr - fpr))
    return float(cuts[best]), float(tpr[best] - fpr[best])


def gdp_mu(*, fpr: float, fnr: float) -> float:
    """The mu of the Gaussian-DP trade-off curve through ``(fpr, fnr)``:
    ``Phi^-1(1 - fpr) - Phi^-1(fnr)`` (0 when the point is no better than chance)."""
    # scipy.stats takes ~0.5 s to import: loaded on first use so ``import farm.cli`` (every
    # command, ``farm plan`` included) does not pay it
    from scipy import stats

    fpr, fnr = min(max(fpr, 1e-12), 1.0), min(max(fnr, 1e-12), 1.0)
    return max(0.0, float(stats.norm.ppf(1 - fpr) - stats.norm.ppf(fnr)))


def gdp_epsilon(mu: float, *, delta: float) -> float:
    """The epsilon at ``delta`` of mu-GDP (Dong, Roth and Su 2019, Corollary 2.13):
    ``delta = Phi(-eps/mu + mu/2) - e^eps Phi(-eps/mu - mu/2)``.

    >>> round(gdp_epsilon(1.0, delta=1e-5), 3)
    4.377
    """
    # scipy.stats takes ~0.5 s to import: loaded on first use so ``import farm.cli`` (every
    # command, ``farm plan`` included) does not pay it
    from scipy import optimize, stats

    require(0 < delta < 1, "delta", "a probability in (0, 1)", delta)
    if mu <= 0:
        return 0.0

    def excess(eps: float) -> float:
        return (
            float(
                stats.norm.cdf(-eps / mu + mu / 2)
                - math.exp(eps) * stats.norm.cdf(-eps / mu - mu / 2)
            )
            - delta
        )

    if excess(0.0) <= 0:
        return 0.0
    top = 1.0
    while excess(top) > 0:
        top *= 2
    return float(optimize.brentq(excess, 0.0, top, xtol=1e-9))


def multi_run_audit(
    scores: np.ndarray,
    included: np.ndarray,
    *,
    delta: float,
    confidence: float = 0.95,
    seed: int = 0,
    adjacency: str = "add/remove",
) -> MultiRunAudit:
    """The multi-run bounds (see the module docstring) from ``scores [runs, canaries]`` (higher
    = member) and ``included [runs, canaries]`` (0/1, each canary's coin in each run);
    ``adjacency`` as in ``farm.attacks.one_run.ADJACENCIES``."""
    require(adjacency in ADJACENCIES, "adjacency", " or ".join(ADJACENCIES), adjacency)
    scores, included = np.asarray(scores, float), np.asarray(included)
    require(
        scores.ndim == 2 and scores.shape == included.shape,
        "scores",
        "[runs, canaries] scores matching the inclusion mask",
        scores.shape,
    )
    require(bool(np.isin(included, (0, 1)).all()), "included", "0/1 per run and canary")
    fit, count = split_runs(scores.shape[0], seed=seed)
    fitted = [best_threshold(scores[fit, c], included[fit, c]) for c in range(scores.shape[1])]
    canary = int(np.argmax([gap for _, gap in fitted]))
    threshold = fitted[canary][0]
    s, y = scores[count, canary], included[count, canary]
    guess = s >= threshold
    tp, fn = int((guess & (y == 1)).sum()), int((~guess & (y == 1)).sum())
    fp, tn = int((guess & (y == 0)).sum()), int((~guess & (y == 0)).sum())
    cp = 0.0  # a side without a trial bounds nothing
    if fp + tn and fn + tp:
        cp = float(
            epsilon_lower_bound(fp, fp + tn, fn, fn + tp, delta=delta, confidence=confidence)
        )
    jb = joint_beta_epsilon(tp=tp, fp=fp, tn=tn, fn=fn, delta=delta, confidence=confidence)
    alpha = (1 - confidence) / 2
    fpr_hi = float(clopper_pearson_upper(fp, fp + tn, alpha)) if fp + tn else 1.0
    fnr_hi = float(clopper_pearson_upper(fn, fn + tp, alpha)) if fn + tp else 1.0
    mu = gdp_mu(fpr=fpr_hi, fnr=fnr_hi)
    return MultiRunAudit(
        canary=canary,
        threshold=threshold,
        fit_runs=len(fit),
        tp=tp,
        fp=fp,
        tn=tn,
        fn=fn,
        confidence=confidence,
        delta=delta,
        clopper_pearson=cp,
        joint_beta=jb,
        gdp=gdp_epsilon(mu, delta=delta),
        gdp_mu=mu,
        adjacency=adjacency,
    )
