"""ALIBI (Malek et al. 2021, "Antipodes of Label Differential Privacy"): Laplace noise on the
one-hot label, then Bayesian post-processing into a soft label. Pure.

Each training label ``y`` of ``n_classes`` becomes ``z = onehot(y) + Laplace(b)`` per coordinate,
``b = sigma / sqrt(2)``, drawn once per record (seeded) and kept: two labels' one-hot vectors differ
by 1 in two coordinates (L1 sensitivity 2), so releasing ``z`` is
``epsilon = 2 / b = 2 sqrt(2) / sigma`` label-DP, and anything computed from ``z`` alone is too
(post-processing). Training uses the posterior over the true label given ``z``, with a prior the
caller chooses (the paper: the model's current prediction), as a soft label:

    P(y = k | z) ∝ prior_k * exp(-||z - onehot(k)||_1 / b).
"""

from __future__ import annotations

import math

import numpy as np

from farm.errors import require

_ALIBI = 0xA11B1


def alibi_scale(sigma: float) -> float:
    """The Laplace scale ``b = sigma / sqrt(2)`` of each coordinate."""
    require(sigma > 0, "sigma", "a number > 0", sigma)
    return sigma / math.sqrt(2)


def alibi_sigma(epsilon: float) -> float:
    """The noise ``sigma = 2 sqrt(2) / epsilon`` that makes ALIBI ``epsilon``-label-DP (the inverse
    of ``alibi_epsilon``).

    >>> round(alibi_sigma(1.0), 6)
    2.828427
    """
    require(epsilon > 0, "epsilon", "a number > 0 (label-DP epsilon)", epsilon)
    return 2 * math.sqrt(2) / epsilon


def alibi_epsilon(sigma: float) -> float:
    """The label-DP epsilon of ALIBI's noise, ``2 sqrt(2) / sigma`` (pure: delta 0).

    >>> round(alibi_epsilon(math.sqrt(2)), 12)
    2.0
    """
    return 2 / alibi_scale(sigma)


def alibi_noise(labels: np.ndarray, *, n_classes: int, sigma: float, seed: int) -> np.ndarray:
    """``[N, n_classes]`` noisy one-hot labels, the same for the same seed (noised once).

    ``labels`` are indexed by population record: row ``i``'s noise is the ``i``-th row of a stream
    seeded by ``seed`` alone (independent of the labels), so a record's noisy label does not depend
    on which other records are trained on, nor on its own label beyond the one-hot it is added to.
    """
    labels = np.asarray(labels)
    require(
        labels.ndim == 1 and bool(np.isin(labels, np.arange(n_classes)).all()),
        "labels",
        f"integer labels in 0..{n_classes - 1}",
    )
    onehot = np.eye(n_classes)[labels]
    rng = np.random.default_rng([seed & (2**63 - 1), _ALIBI])
    return onehot + rng.laplace(0.0, alibi_scale(sigma), size=onehot.shape)


def alibi_log_likelihood(noisy: np.ndarray, *, sigma: float) -> np.ndarray:
    """``[N, n_classes]``: log p(z | y = k) up to a constant shared by every k."""
    noisy = np.asarray(noisy, float)
    n_classes = noisy.shape[-1]
    dist = np.abs(noisy[:, None, :] - np.eye(n_classes)[None, :, :]).sum(-1)  # ||z - e_k||_1
    return -dist / alibi_scale(sigma)


def alibi_soft_labels(noisy: np.ndarray, prior: np.ndarray, *, sigma: float) -> np.ndarray:
    """``[N, n_classes]`` posterior over the true label given the noisy one (rows sum to 1);
    ``prior``: ``[N, n_classes]`` or ``[n_classes]``, positive."""
    prior = np.broadcast_to(np.asarray(prior, float), np.shape(noisy))
    require(bool((prior > 0).all()), "prior", "positive probabilities")
    logits = alibi_log_likelihood(noisy, sigma=sigma) + np.log(prior)
    logits -= logits.max(axis=1, keepdims=True)
    post = np.exp(logits)
    return post / post.sum(axis=1, keepdims=True)
