"""The one-run audit (Steinke et al. 2023): its p-value by hand, its bound, and its validity."""

from __future__ import annotations

import math

import numpy as np
import pytest

from farm.attacks.one_run import (
    guesses_of,
    one_run_audit,
    one_run_epsilon,
    one_run_p_value,
    randomized_response_accuracy,
)


def test_p_value_without_delta_is_the_binomial_tail_by_hand():
    # 10 guesses, all right: under eps-DP each is right with probability q = e^eps / (1 + e^eps)
    for eps in (0.0, 0.5, 2.0):
        q = randomized_response_accuracy(eps)
        assert one_run_p_value(m=10, guesses=10, correct=10, epsilon=eps, delta=0) == pytest.approx(
            q**10
        )
    # 3 guesses, 2 right at eps = 0: P[Bin(3, 1/2) >= 2] = 4/8
    assert one_run_p_value(m=3, guesses=3, correct=2, epsilon=0, delta=0) == pytest.approx(0.5)


def test_p_value_with_delta_adds_the_papers_term_by_hand():
    # guesses = correct = 1, eps = 0: beta = 1/2; alpha = P[0 <= B < 1] / 1 = 1/2; + 2 m delta alpha
    assert one_run_p_value(m=10, guesses=1, correct=1, epsilon=0, delta=0.01) == pytest.approx(
        0.5 + 0.5 * 0.01 * 2 * 10
    )
    # guesses = correct = 2, eps = log 3 (q = 3/4): beta = 9/16; alpha = max(P[B=1], P[B<=1]/2)
    # = max(6/16, (6/16 + 1/16)/2) = 6/16
    p = one_run_p_value(m=5, guesses=2, correct=2, epsilon=math.log(3), delta=0.01)
    assert p == pytest.approx(9 / 16 + 6 / 16 * 0.01 * 2 * 5)


def test_the_bound_solves_the_tail_equation():
    # 10 of 10 right at 95%: q^10 = 0.05, eps = logit(0.05 ** 0.1)
    q = 0.05**0.1
    assert one_run_epsilon(m=10, guesses=10, correct=10, delta=0) == pytest.approx(
        math.log(q / (1 - q)), abs=1e-7
    )
    assert one_run_epsilon(m=100, guesses=10, correct=5, delta=0) == 0.0  # chance level: nothing


def test_delta_only_lowers_the_bound():
    for correct in (60, 80, 95):
        pure = one_run_epsilon(m=1000, guesses=100, correct=correct, delta=0)
        approx = one_run_epsilon(m=1000, guesses=100, correct=correct, delta=1e-5)
        assert approx <= pure
    assert one_run_epsilon(m=1000, guesses=100, correct=95, delta=1e-5) > 1


def test_guesses_take_the_extremes_and_abstain_in_between():
    scores = np.array([0.9, 0.1, 0.5, 0.8, 0.2])
    included = np.array([1, 0, 1, 0, 1])
    # in: 0.9 (right), 0.8 (wrong); out: 0.1 (right)
    assert guesses_of(scores, included, k_plus=2, k_minus=1) == (3, 2)


def test_randomized_response_at_eps_is_never_bounded_above_eps_more_than_5_percent():
    """An epsilon-DP mechanism at its worst (randomized response on each canary's membership):
    over 100 runs the 95% bound exceeds eps at most about 5% of the time (binomial test)."""
    eps, m, runs = 1.0, 1000, 100
    q = randomized_response_accuracy(eps)
    above = 0
    for seed in range(runs):
        rng = np.random.default_rng(seed)
        included = rng.integers(0, 2, m)
        report = np.where(rng.random(m) < q, included, 1 - included)  # the mechanism's output
        scores = report + rng.random(m) * 1e-3  # ties broken at random
        audit = one_run_audit(scores, included, delta=0, confidence=0.95)
        above += audit.epsilon > eps
    from scipy import stats

    assert stats.binomtest(above, runs, 0.05, alternative="greater").pvalue > 0.01
    assert above / runs < 0.1


def test_pure_noise_gives_no_bound_despite_the_grid_search():
    zero = 0
    for seed in range(50):
        rng = np.random.default_rng(seed)
        audit = one_run_audit(rng.random(500), rng.integers(0, 2, 500), delta=1e-5)
        zero += audit.epsilon == 0.0
        assert audit.tested > 1 and "Bonferroni" in audit.validity
    assert zero >= 45


def test_a_leaky_model_is_caught():
    rng = np.random.default_rng(0)
    included = rng.integers(0, 2, 1000)
    scores = included + rng.normal(0, 0.3, 1000)  # members score higher
    audit = one_run_audit(scores, included, delta=1e-5)
    assert audit.epsilon > 2 and audit.correct <= audit.guesses
