"""Label differential privacy by randomized response (Warner 1965; the label-DP baseline of PATE
comparisons), and what a recipe's ``label_noise`` hands the training loop (flipped labels, or
ALIBI's noisy one-hot vectors: ``farm.privacy.alibi``).

Each binary training label is kept with probability ``e^eps / (e^eps + 1)`` and flipped otherwise,
independently per record. For any two labels of a record, the probability of any released label
differs by a factor of at most ``e^eps``, so the released labels are ``eps``-label-DP exactly (pure
DP, ``delta = 0``), and training on them is too (post-processing). Pure (numpy only).
"""

from __future__ import annotations

import math

import numpy as np

from farm.errors import require
from farm.privacy.alibi import alibi_noise, alibi_sigma
from farm.spec.recipes import LabelNoise

_TAG = 0x1AB3D9


def flip_probability(epsilon: float) -> float:
    """``1 / (e^eps + 1)``: the chance that randomized response flips a binary label.

    >>> round(flip_probability(math.log(3)), 6)
    0.25
    """
    return 1.0 / (math.exp(epsilon) + 1.0) if epsilon < 700 else 0.0


def randomized_response(labels: np.ndarray, epsilon: float, seed: int) -> np.ndarray:
    """``labels`` (``[n]`` of 0/1, indexed by population record) with each flipped with probability
    ``flip_probability(epsilon)``. Record ``i``'s coin is the ``i``-th draw of a stream seeded by
    ``seed`` alone, so it does not depend on which other records are trained on. Returns a new int64
    array."""
    labels = np.asarray(labels, dtype=np.int64)
    require(
        bool(np.isin(labels, (0, 1)).all()),
        "labels",
        "binary labels (0 or 1) for randomized response",
    )
    flip = np.random.default_rng([seed & (2**63 - 1), _TAG]).random(labels.size) < flip_probability(
        epsilon
    )
    return np.where(flip, 1 - labels, labels)


def noisy_labels(labels: np.ndarray, noise: LabelNoise, seed: int) -> np.ndarray:
    """The training labels a recipe's randomized-response ``label_noise`` asks for (see
    ``randomized_response``). ALIBI's noisy labels are vectors: ``noisy_one_hot``."""
    require(
        noise.mechanism == "randomized_response",
        "label_noise.mechanism",
        "randomized_response (ALIBI's noisy labels are vectors: noisy_one_hot)",
        noise.mechanism,
    )
    return randomized_response(labels, noise.epsilon, seed)


def noisy_one_hot(labels: np.ndarray, noise: LabelNoise, seed: int) -> np.ndarray:
    """``[n, 2]``: ALIBI's noisy one-hot labels (``farm.privacy.alibi.alibi_noise`` at ``sigma =
    alibi_sigma(noise.epsilon)``) of binary ``labels`` indexed by population record, drawn once from
    a stream seeded by ``seed`` alone."""
    require(noise.mechanism == "alibi", "label_noise.mechanism", "alibi", noise.mechanism)
    labels = np.asarray(labels, dtype=np.int64)
    require(
        bool(np.isin(labels, (0, 1)).all()),
        "labels",
        "binary labels (0 or 1): the farm's classifiers have 2 labels",
    )
    return alibi_noise(labels, n_classes=2, sigma=alibi_sigma(noise.epsilon), seed=seed)
