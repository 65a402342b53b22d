"""ALIBI's mechanism against its analysis: neighbouring labels, the noise scale, the posterior."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from farm.errors import SpecError
from farm.privacy.alibi import (
    alibi_epsilon,
    alibi_log_likelihood,
    alibi_noise,
    alibi_scale,
    alibi_sigma,
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


@pytest.mark.parametrize("sigma", [0.3, 1.0, 2 * math.sqrt(2)])
def test_noise_std_is_sigma_and_epsilon_is_two_root_two_over_sigma(sigma):
    """Laplace(b = sigma / sqrt 2) per coordinate has variance 2 b^2 = sigma^2, so sigma is the
    noise's standard deviation, as in the paper; eps = 2 sqrt 2 / sigma and alibi_sigma inverts
    it."""
    noise = alibi_noise(np.ones(400_000, int), n_classes=2, sigma=sigma, seed=11) - [0.0, 1.0]
    assert noise.std(axis=0) == pytest.approx([sigma, sigma], rel=0.01)
    assert np.abs(noise.mean(axis=0)).max() < 0.01 * sigma
    assert alibi_epsilon(sigma) == pytest.approx(2 * math.sqrt(2) / sigma)
    assert alibi_sigma(alibi_epsilon(sigma)) == pytest.approx(sigma)
    assert alibi_sigma(1.0) == pytest.approx(2.828427, abs=1e-6)


def test_a_records_noise_depends_on_its_position_only():
    """Row i is the i-th draw of the seed's stream whatever the labels or the number of records:
    a record's noisy label does not depend on which other records are trained on."""
    labels = np.random.default_rng(0).integers(0, 2, 1000)
    full = alibi_noise(labels, n_classes=2, sigma=1.0, seed=9)
    assert np.array_equal(alibi_noise(labels[:300], n_classes=2, sigma=1.0, seed=9), full[:300])
    flipped = alibi_noise(1 - labels, n_classes=2, sigma=1.0, seed=9)
    eye = np.eye(2)
    assert np.allclose(flipped - eye[1 - labels], full - eye[labels])  # the same noise
    # seeded like randomized response: any int64 seed, negative ones included
    assert alibi_noise(labels, n_classes=2, sigma=1.0, seed=-5).shape == (1000, 2)


def test_empirical_releases_reach_but_do_not_pass_e_to_the_eps():
    """Histogram test on sampled releases of one record with label 0 and with label 1: on every
    well-filled cell of a 2-D grid the frequencies differ by at most e^eps (sampling slack), and on
    the event {z_0 > 1, z_1 < 0}, where the density ratio is e^eps exactly, they differ by e^eps:
    the analysis is tight."""
    sigma, n = 2 * math.sqrt(2), 1_000_000  # eps = 1
    eps = alibi_epsilon(sigma)
    a = alibi_noise(np.zeros(n, int), n_classes=2, sigma=sigma, seed=21)
    b = alibi_noise(np.ones(n, int), n_classes=2, sigma=sigma, seed=22)
    edges = np.linspace(-6, 7, 27)
    ha, _, _ = np.histogram2d(a[:, 0], a[:, 1], bins=[edges, edges])
    hb, _, _ = np.histogram2d(b[:, 0], b[:, 1], bins=[edges, edges])
    full = (ha >= 2000) & (hb >= 2000)  # a cell's ratio has a relative sampling error of ~3%
    assert full.sum() > 50
    ratio = np.maximum(ha[full] / hb[full], hb[full] / ha[full])
    assert ratio.max() <= math.exp(eps) * 1.1  # seeded; 1.04-1.05 over seeds (110 cells)
    assert ratio.max() >= math.exp(eps) * 0.9  # some cells sit where the ratio is e^eps
    corner_a = ((a[:, 0] > 1) & (a[:, 1] < 0)).mean()
    corner_b = ((b[:, 0] > 1) & (b[:, 1] < 0)).mean()
    assert corner_a / corner_b == pytest.approx(math.exp(eps), rel=0.03)


def test_soft_labels_at_the_extremes_of_sigma():
    """Uniform prior: at huge sigma the noisy vector says nothing (the posterior is uniform); at
    tiny sigma it says everything (the posterior is the one-hot of the noisy vector's argmax)."""
    labels = np.random.default_rng(3).integers(0, 2, 2000)
    uniform = np.array([0.5, 0.5])
    vague = alibi_soft_labels(
        alibi_noise(labels, n_classes=2, sigma=1e4, seed=1), uniform, sigma=1e4
    )
    assert np.abs(vague - 0.5).max() < 1e-3
    noisy = alibi_noise(labels, n_classes=2, sigma=0.05, seed=1)
    sharp = alibi_soft_labels(noisy, uniform, sigma=0.05)
    assert np.abs(sharp - np.eye(2)[noisy.argmax(axis=1)]).max() < 1e-9
    assert np.array_equal(noisy.argmax(axis=1), labels)  # at sigma 0.05 nothing flips
    # three classes, by hand: z = (0.9, 0.3, -0.2), b = sigma / sqrt 2, prior (0.2, 0.3, 0.5)
    z, prior, sigma = np.array([[0.9, 0.3, -0.2]]), np.array([0.2, 0.3, 0.5]), 1.0
    b = alibi_scale(sigma)
    dist = [0.1 + 0.3 + 0.2, 0.9 + 0.7 + 0.2, 0.9 + 0.3 + 1.2]
    want = prior * np.exp(-np.array(dist) / b)
    assert alibi_soft_labels(z, prior, sigma=sigma)[0] == pytest.approx(want / want.sum())


def test_recipe_option_keys_and_noisy_one_hot():
    """``label_noise: {mechanism: alibi}``: typed, keyed apart from randomized response at the same
    epsilon, with no new field (so no randomized-response or plain key moved); its noisy labels
    are ``alibi_noise`` at sigma = 2 sqrt 2 / eps, per population record."""
    from farm.privacy.label_dp import noisy_labels, noisy_one_hot
    from farm.spec.coerce import from_dict
    from farm.spec.jobs import HubRef, Selection, TrainJob
    from farm.spec.population import PopulationSpec
    from farm.spec.recipes import LabelNoise, Recipe, recipe_identity, to_dict

    recipe = from_dict(Recipe, {"label_noise": {"mechanism": "alibi", "epsilon": 1}})
    assert recipe.label_noise == LabelNoise(epsilon=1.0, mechanism="alibi")
    assert to_dict(LabelNoise(epsilon=1.0)) == {"epsilon": 1.0, "mechanism": "randomized_response"}
    assert recipe_identity(recipe)["label_noise"] == {"epsilon": 1.0, "mechanism": "alibi"}
    with pytest.raises(SpecError, match="randomized_response or alibi"):
        from_dict(Recipe, {"label_noise": {"mechanism": "laplace", "epsilon": 1}})

    def key(r):
        pop, sel = {"source": "synthetic", "n": 10}, Selection.of(10, np.arange(5))
        return TrainJob(
            population=PopulationSpec.of(pop), tokenizer=HubRef("t"), selection=sel, recipe=r
        ).key

    rr = dataclasses.replace(recipe, label_noise=LabelNoise(epsilon=1.0))
    assert len({key(recipe), key(rr), key(Recipe())}) == 3

    labels = np.random.default_rng(0).integers(0, 2, 500)
    noise = LabelNoise(epsilon=2.0, mechanism="alibi")
    got = noisy_one_hot(labels, noise, seed=4)
    assert np.array_equal(got, alibi_noise(labels, n_classes=2, sigma=math.sqrt(2), seed=4))
    with pytest.raises(SpecError, match="alibi"):
        noisy_one_hot(labels, LabelNoise(epsilon=2.0), seed=4)
    with pytest.raises(SpecError, match="vectors"):
        noisy_labels(labels, noise, seed=4)  # ALIBI's labels are not flipped labels


def test_privacy_record_and_its_description():
    """What challenge.json records of ALIBI targets and how describe_epsilon prints it: the
    record-level epsilon stays inf (labels only), the label-DP epsilon is pure and noised once;
    randomized response's record is what it was."""
    from farm.config.recipes import load_recipe
    from farm.defences.seam import recipe_privacy
    from farm.privacy.accounting import describe_epsilon

    record = recipe_privacy(load_recipe("def-alibi-e1"))
    assert record == {
        "epsilon": "inf",
        "label_dp": "label-DP",
        "label_epsilon": 1.0,
        "mechanism": "alibi",
        "label_delta": 0.0,
        "noised": "once",
    }
    text = describe_epsilon(record)
    assert text.startswith("inf; label-DP 1 (ALIBI, Laplace noise on the one-hot label")
    assert "drawn once per record" in text and "pure (delta 0)" in text
    assert text.endswith("labels only)")
    rr = recipe_privacy(load_recipe("def-rr-e1"))
    assert set(rr) == {"epsilon", "label_dp", "label_epsilon", "mechanism"}
    assert describe_epsilon(rr).startswith("inf; label-DP 1 (randomized response")
    assert describe_epsilon({"epsilon": 4.0, "assumes": "x"}) == "4 (x)"  # unchanged without


def test_shipped_alibi_recipes_mirror_randomized_response():
    """def-alibi-e1 is def-rr-e1 with the mechanism changed, nothing else."""
    from farm.config.recipes import load_recipe
    from farm.spec.recipes import LabelNoise

    rr, alibi = load_recipe("def-rr-e1"), load_recipe("def-alibi-e1")
    assert alibi == dataclasses.replace(rr, label_noise=LabelNoise(epsilon=1.0, mechanism="alibi"))
    e4 = load_recipe("def-alibi-e4")
    assert e4 == dataclasses.replace(alibi, label_noise=LabelNoise(epsilon=4.0, mechanism="alibi"))
