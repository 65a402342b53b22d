"""Per-record signals: logits of a model on population records, and pure transforms of cached logits.

``compute_logits`` runs a model (it loads torch lazily through ``farm.infer``); everything else here is numpy
on arrays of logits ``[..., n_records, 2]`` and labels ``[n_records]``. Higher = more confident in the label.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def compute_logits(model_dir: str | Path, tokens: Any, indices: np.ndarray, *, perf: Any = None) -> np.ndarray:
    """float32 logits ``[len(indices), 2]`` of the saved model at ``model_dir`` on population ``indices``."""
    from farm.infer import logits_of
    from farm.recipes import Perf

    return logits_of(model_dir, tokens, indices, perf=perf or Perf())


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
