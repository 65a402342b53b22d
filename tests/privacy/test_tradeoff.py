"""Trade-off curves checked against mechanisms run on neighbouring datasets, not only algebra."""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

from farm.attacks.audit import error_curve
from farm.privacy.tradeoff import dp_tradeoff, gdp_tradeoff


def test_randomized_response_meets_its_curve_at_the_kink():
    # Neighbouring datasets: one binary label, 0 or 1; the release is that label through
    # epsilon-randomized response. The test "say 1" has FPR = FNR = 1 / (1 + e^eps), on the curve.
    eps = math.log(3)
    rng = np.random.default_rng(0)
    n = 200_000
    keep = 1 - 1 / (math.exp(eps) + 1)
    out0 = np.where(rng.random(n) < keep, 0, 1)  # released labels when the record's label is 0
    out1 = np.where(rng.random(n) < keep, 1, 0)
    fpr, fnr = (out0 == 1).mean(), (out1 == 0).mean()
    curve = dp_tradeoff(np.array([fpr]), epsilon=eps)[0]
    assert abs(fnr - curve) < 0.005 and abs(fpr - 0.25) < 0.005


def test_gaussian_mechanism_traces_the_gdp_curve_and_stays_above_its_dp_curve():
    # Sensitivity-1 query, noise sigma: the release on neighbouring datasets is N(0, s^2) vs
    # N(1, s^2); its optimal tests trace mu = 1/sigma Gaussian DP.
    sigma, n = 0.8, 100_000
    rng = np.random.default_rng(1)
    scores = np.concatenate([rng.normal(0, sigma, n), rng.normal(1, sigma, n)])
    labels = np.repeat([0, 1], n)
    fpr, fnr = error_curve(labels, scores)
    inner = (fpr > 0.01) & (fpr < 0.99)
    np.testing.assert_allclose(fnr[inner], gdp_tradeoff(fpr[inner], mu=1 / sigma), atol=0.01)
    # mu-GDP is (eps, delta(eps))-DP for every eps (Dong, Roth and Su 2019, Corollary 2.13): the
    # mechanism's tests stay above that (eps, delta) curve.
    eps, mu = 2.0, 1 / sigma
    delta = stats.norm.cdf(-eps / mu + mu / 2) - math.exp(eps) * stats.norm.cdf(-eps / mu - mu / 2)
    assert (fnr[inner] >= dp_tradeoff(fpr[inner], epsilon=eps, delta=delta) - 0.01).all()


def test_curve_corners():
    grid = np.linspace(0, 1, 11)
    assert (dp_tradeoff(grid, epsilon=math.inf) == 0).all()
    np.testing.assert_allclose(dp_tradeoff(grid, epsilon=0.0), 1 - grid)
    assert dp_tradeoff(np.array([0.0]), epsilon=1.0, delta=0.1)[0] == 0.9
