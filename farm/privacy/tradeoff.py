"""Trade-off functions (Dong, Roth and Su 2019): the least false-negative rate a test between two
neighbouring datasets can have at a given false-positive rate, under a privacy claim. Pure.

An (epsilon, delta)-DP mechanism allows no test below

    f(alpha) = max(0, 1 - delta - e^eps alpha, e^-eps (1 - delta - alpha))

(Kairouz, Oh and Viswanath 2015), and mu-Gaussian DP none below ``Phi(Phi^-1(1 - alpha) - mu)``.
An audit plots its empirical (FPR, FNR) pairs against these curves: a point below the claimed
curve, beyond sampling noise, refutes the claim.
"""

from __future__ import annotations

import math

import numpy as np

from farm.errors import require


def dp_tradeoff(fpr: np.ndarray, *, epsilon: float, delta: float = 0.0) -> np.ndarray:
    """The least FNR at each ``fpr`` under (epsilon, delta)-DP.

    >>> dp_tradeoff(np.array([0.0, 0.5, 1.0]), epsilon=0.0).tolist()
    [1.0, 0.5, 0.0]
    """
    require(epsilon >= 0, "epsilon", "a number >= 0", epsilon)
    require(0 <= delta <= 1, "delta", "a number in [0, 1]", delta)
    alpha = np.clip(np.asarray(fpr, dtype=np.float64), 0.0, 1.0)
    if math.isinf(epsilon):
        return np.zeros_like(alpha)
    one = 1 - delta - math.exp(epsilon) * alpha
    two = math.exp(-epsilon) * (1 - delta - alpha)
    return np.maximum(0.0, np.maximum(one, two))


def gdp_tradeoff(fpr: np.ndarray, *, mu: float) -> np.ndarray:
    """The least FNR at each ``fpr`` under mu-Gaussian DP.

    >>> gdp_tradeoff(np.array([0.5]), mu=0.0).round(6).tolist()
    [0.5]
    """
    # scipy.stats takes ~0.5 s to import: loaded on first use so ``import farm.cli`` (every
    # command, ``farm plan`` included) does not pay it
    from scipy import stats

    require(mu >= 0, "mu", "a number >= 0", mu)
    alpha = np.clip(np.asarray(fpr, dtype=np.float64), 0.0, 1.0)
    return stats.norm.cdf(stats.norm.ppf(1 - alpha) - mu)
