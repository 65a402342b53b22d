"""The one-run audit (Steinke, Nasr and Jagielski 2023): an epsilon lower bound from one training
run in which each of ``m`` canaries was included independently with probability 1/2. Pure.

The auditor ranks the canaries by score, guesses "in" for the ``k_plus`` highest and "out" for
the ``k_minus`` lowest, and abstains on the rest; ``correct`` of its ``guesses`` are right. Under
(epsilon, delta)-DP, the paper's Theorem 3.1 bounds the chance of that many correct guesses:

    p = P[Binomial(guesses, q) >= correct] + 2 m delta alpha,    q = e^eps / (1 + e^eps),

where ``alpha`` = max over i in 1..correct of P[correct - i <= Binomial(guesses, q) < correct] / i.
The bound at confidence ``1 - beta`` is the largest epsilon whose p is at most ``beta``: a model
trained (epsilon, delta)-DP gives a bound above its epsilon with probability at most ``beta``.
The ``2 m delta alpha`` term is what makes the bound valid for approximate DP; without it
(``delta = 0``) the bound holds for pure epsilon-DP only, which several public ports silently
assume. The trials are independent because each canary's inclusion is an independent coin flip;
that is the whole of the analysis, so it pools every canary of the run.

Choosing ``(k_plus, k_minus)`` after seeing the scores is a multiple test: ``one_run_audit`` tries
a fixed grid and spends ``beta / len(grid)`` on each pair (Bonferroni), so the reported maximum is
still a ``1 - beta`` bound.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from farm.errors import require

EPS_MAX = 100.0  # bounds are searched in [0, EPS_MAX]

# What a canary's coin changes between the neighbouring datasets an audit tests: a record added or
# not (membership), or one record's label replaced (label DP; ``relabelled`` canaries).
ADJACENCIES = {
    "add/remove": "add/remove adjacency (a canary is added or not)",
    "label": "label adjacency (a canary's label is replaced: label DP)",
}


def one_run_p_value(*, m: int, guesses: int, correct: int, epsilon: float, delta: float) -> float:
    """The chance, under (``epsilon``, ``delta``)-DP, that an auditor making ``guesses`` guesses
    about ``m`` independently included canaries gets at least ``correct`` right (see the module
    docstring).

    >>> one_run_p_value(m=10, guesses=10, correct=10, epsilon=0.0, delta=0.0) == 0.5**10
    True
    """
    # scipy.stats takes ~0.5 s to import: loaded on first use so ``import farm.cli`` (every
    # command, ``farm plan`` included) does not pay it
    from scipy import special, stats

    require(
        0 <= correct <= guesses <= m,
        "guesses",
        "0 <= correct <= guesses <= m",
        (correct, guesses, m),
    )
    require(epsilon >= 0, "epsilon", "a number >= 0", epsilon)
    require(0 <= delta <= 1, "delta", "a probability", delta)
    q = float(special.expit(epsilon))
    beta = float(stats.binom.sf(correct - 1, guesses, q))  # P[Binomial >= correct]
    if delta == 0 or correct == 0:
        return beta
    i = np.arange(1, correct + 1)
    within = stats.binom.sf(correct - i - 1, guesses, q) - beta  # P[correct - i <= B < correct]
    alpha = float(np.max(within / i))
    return min(beta + alpha * delta * 2 * m, 1.0)


def one_run_epsilon(
    *, m: int, guesses: int, correct: int, delta: float, confidence: float = 0.95
) -> float:
    """The largest epsilon that ``correct`` of ``guesses`` right rejects at ``confidence``: the
    one-run lower bound (0 when even epsilon = 0 is not rejected).

    >>> round(one_run_epsilon(m=10, guesses=10, correct=10, delta=0.0), 4)
    1.0519
    """
    # scipy.optimize takes ~0.1 s to import: loaded on first use so ``import farm.cli`` (every
    # command, ``farm plan`` included) does not pay it
    from scipy import optimize

    require(0 < confidence < 1, "confidence", "a probability in (0, 1)", confidence)
    beta = 1 - confidence

    def excess(eps: float) -> float:  # > 0 where (eps, delta) is rejected
        return beta - one_run_p_value(
            m=m, guesses=guesses, correct=correct, epsilon=eps, delta=delta
        )

    if excess(0.0) <= 0:
        return 0.0
    if excess(EPS_MAX) > 0:
        return EPS_MAX
    return float(optimize.brentq(excess, 0.0, EPS_MAX, xtol=1e-9))


def guesses_of(
    scores: np.ndarray, included: np.ndarray, *, k_plus: int, k_minus: int
) -> tuple[int, int]:
    """``(guesses, correct)`` of guessing "in" for the ``k_plus`` highest scores and "out" for the
    ``k_minus`` lowest (ties broken by position, as a stable sort does). ``included``: 0/1 per
    canary, its coin flip."""
    scores, included = np.asarray(scores, float), np.asarray(included)
    require(
        scores.shape == included.shape and scores.ndim == 1,
        "scores",
        "one score per canary",
        scores.shape,
    )
    require(bool(np.isin(included, (0, 1)).all()), "included", "0/1 per canary")
    require(
        k_plus >= 0 and k_minus >= 0 and k_plus + k_minus <= scores.size,
        "k_plus",
        "k_plus + k_minus <= number of canaries",
        (k_plus, k_minus),
    )
    order = np.argsort(scores, kind="stable")
    low, high = order[:k_minus], order[scores.size - k_plus :]
    correct = int(included[high].sum()) + int((1 - included[low]).sum())
    return k_plus + k_minus, correct


@dataclass(frozen=True, kw_only=True)
class OneRunAudit:
    """A one-run bound: ``epsilon`` at ``confidence`` for (``delta``)-approximate DP, from
    ``correct`` of ``guesses`` right on ``m`` canaries with the chosen ``k_plus``/``k_minus``;
    ``tested``: how many (k_plus, k_minus) pairs shared the confidence (Bonferroni)."""

    epsilon: float
    confidence: float
    delta: float
    m: int
    guesses: int
    correct: int
    k_plus: int
    k_minus: int
    tested: int
    adjacency: str = "add/remove"

    @property
    def validity(self) -> str:
        """What the bound rests on, one line for a report."""
        kind = "approximate" if self.delta > 0 else "pure (valid only for pure epsilon-DP)"
        return (
            f"one-run audit (Steinke et al. 2023), {self.confidence:.0%} confidence, "
            f"{kind} DP at delta={self.delta:g}, {adjacency_text(self.adjacency)}; "
            f"trials independent by each canary's own coin flip; best of {self.tested} (k+, k-) "
            "pairs, Bonferroni-corrected"
        )


def one_run_audit(
    scores: np.ndarray,
    included: np.ndarray,
    *,
    delta: float,
    confidence: float = 0.95,
    k_plus: Sequence[int] | None = None,
    k_minus: Sequence[int] | None = None,
    adjacency: str = "add/remove",
) -> OneRunAudit:
    """The best one-run bound over the grid ``k_plus`` x ``k_minus`` (default: 1%, 2%, 5%, 10%,
    20% and 50% of the canaries for ``k_plus``, and 0 and the same values for ``k_minus``), each
    pair tested at ``(1 - confidence) / grid size``, so the maximum is a ``confidence`` bound.
    ``adjacency``: what a canary's coin changes (``ADJACENCIES``), as the report states it."""
    require(adjacency in ADJACENCIES, "adjacency", " or ".join(ADJACENCIES), adjacency)
    m = int(np.asarray(scores).size)
    require(m >= 1, "scores", "at least one canary", m)
    fractions = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5)
    plus = sorted({max(1, int(m * f)) for f in fractions}) if k_plus is None else list(k_plus)
    minus = [0, *plus] if k_minus is None else list(k_minus)
    grid = [(p, n) for p in plus for n in minus if p + n <= m]
    require(bool(grid), "k_plus", "at least one (k_plus, k_minus) pair that fits m", m)
    each = 1 - (1 - confidence) / len(grid)
    best: OneRunAudit | None = None
    for p, n in grid:
        guesses, correct = guesses_of(scores, included, k_plus=p, k_minus=n)
        eps = one_run_epsilon(m=m, guesses=guesses, correct=correct, delta=delta, confidence=each)
        if best is None or eps > best.epsilon:
            best = OneRunAudit(
                epsilon=eps,
                confidence=confidence,
                delta=delta,
                m=m,
                guesses=guesses,
                correct=correct,
                k_plus=p,
                k_minus=n,
                tested=len(grid),
                adjacency=adjacency,
            )
    assert best is not None
    return best


def adjacency_text(adjacency: str) -> str:
    """How a report states ``adjacency`` (``ADJACENCIES``)."""
    return ADJACENCIES[adjacency]


def randomized_response_accuracy(epsilon: float) -> float:
    """The accuracy of epsilon-DP randomized response, ``e^eps / (1 + e^eps)``: the best any
    auditor's guess can be under pure epsilon-DP (what the analysis compares against)."""
    return 1 / (1 + math.exp(-epsilon))
