"""Per-record signals: pure numpy transforms of cached logits (the logits themselves come from ``farm.training.infer``).

Arrays of logits are ``[..., n_records, 2]`` and labels ``[n_records]``. Higher = more confident in the label.
"""

from __future__ import annotations

import numpy as np


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Numerically stable log-probabilities along the last axis (float64)."""
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def true_label_logprob(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """log p(y|x) = -cross-entropy, shape ``logits.shape[:-1]``."""
    logp = log_softmax(logits)
    return np.take_along_axis(logp, np.broadcast_to(labels[..., None], logp.shape[:-1] + (1,)), axis=-1)[..., 0]


def true_label_prob(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """p(y|x), shape ``logits.shape[:-1]``."""
    return np.exp(true_label_logprob(logits, labels))


def logit_margin(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """LiRA's statistic for classifiers: z_y - max_{y' != y} z_{y'} (for 2 labels, z_y - z_other)."""
    z = np.asarray(logits, dtype=np.float64)
    idx = np.broadcast_to(labels[..., None], z.shape[:-1] + (1,))
    true = np.take_along_axis(z, idx, axis=-1)[..., 0]
    others = z.copy()
    np.put_along_axis(others, idx, -np.inf, axis=-1)
    return true - others.max(axis=-1)
