"""ALIBI's mechanism against its analysis: neighbouring labels, the noise scale, the posterior."""

from __future__ import annotations

import math

import numpy as np
import pytest

from farm.privacy.alibi import (
    alibi_epsilon,
    alibi_log_likelihood,
    alibi_noise,
    alibi_scale,
    alibi_soft_labels,
)


def test_noise_scale_and_epsilon():
    assert alibi_scale(2.0) == pytest.approx(2 / math.sqrt(2))
    assert alibi_epsilon(2.0) == pytest.approx(2 * math.sqrt(2) / 2.0)
    noisy = alibi_noise(np.zeros(200_000, int), n_classes=2, sigma=2.0, seed=0)
    noise = noisy - np.array([1.0, 0.0])
    # Laplace(b): mean absolute deviation b, variance 2 b^2
    assert np.abs(noise).mean() == pytest.approx(alibi_scale(2.0), rel=0.01)
    assert noise.var(axis=0) == pytest.approx([2 * alibi_scale(2.0) ** 2] * 2, rel=0.02)


def test_noised_once_seeded():
    labels = np.array([0, 1, 1, 0])
    a = alibi_noise(labels, n_classes=2, sigma=1.0, seed=3)
    assert np.array_equal(a, alibi_noise(labels, n_classes=2, sigma=1.0, seed=3))
    assert not np.array_equal(a, alibi_noise(labels, n_classes=2, sigma=1.0, seed=4))


@pytest.mark.parametrize("sigma", [0.5, 1.0, 2.83])
def test_neighbouring_labels_change_the_output_density_by_at_most_e_to_the_eps(sigma):
    """Two datasets that differ in one record's label (0 vs 1): the log density ratio of that
    record's release is within [-eps, eps] everywhere, and reaches eps (the analysis is tight)."""
    rng = np.random.default_rng(0)
    z = np.concatenate([rng.normal(0.5, 3.0, size=(20_000, 2)), [[1.0, 0.0], [2.0, -1.0]]])
    loglik = alibi_log_likelihood(z, sigma=sigma)  # log p(z | y=k) up to one shared constant
    ratio = loglik[:, 0] - loglik[:, 1]
    eps = alibi_epsilon(sigma)
    assert np.abs(ratio).max() <= eps + 1e-9
    assert np.abs(ratio).max() == pytest.approx(eps)


def test_empirical_neighbouring_frequencies_respect_eps():
    """Sampled releases of label 0 and of label 1: any event's frequencies differ by e^eps at
    most (checked on the event "z_0 - z_1 > t" over thresholds, with sampling slack)."""
    sigma, n = 2.0, 400_000
    a = alibi_noise(np.zeros(n, int), n_classes=2, sigma=sigma, seed=1)
    b = alibi_noise(np.ones(n, int), n_classes=2, sigma=sigma, seed=2)
    da, db = a[:, 0] - a[:, 1], b[:, 0] - b[:, 1]
    eps = alibi_epsilon(sigma)
    for t in np.linspace(-2, 3, 11):
        pa, pb = (da > t).mean(), (db > t).mean()
        assert pa <= math.exp(eps) * pb * 1.05 + 1e-3


def test_soft_labels_are_the_posterior():
    noisy = np.array([[1.2, -0.1], [0.1, 0.9], [0.5, 0.5]])
    soft = alibi_soft_labels(noisy, np.array([0.5, 0.5]), sigma=1.0)
    assert np.allclose(soft.sum(axis=1), 1)
    assert soft[0, 0] > 0.5 and soft[1, 1] > 0.5 and soft[2, 0] == pytest.approx(0.5)
    # a confident prior moves the posterior toward it
    tilted = alibi_soft_labels(noisy, np.array([0.9, 0.1]), sigma=1.0)
    assert (tilted[:, 0] > soft[:, 0]).all()
    # by hand, the first row: p0 ∝ exp(-(0.2 + 0.1)/b), p1 ∝ exp(-(1.2 + 1.1)/b)
    b = alibi_scale(1.0)
    p0, p1 = math.exp(-0.3 / b), math.exp(-2.3 / b)
    assert soft[0, 0] == pytest.approx(p0 / (p0 + p1))
