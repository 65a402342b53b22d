"""Per-record signals: pure numpy transforms of cached logits (the logits themselves come from
``farm.training.infer``).

Arrays of logits are ``[..., n_records, 2]`` and labels ``[n_records]``. Higher = more confident in
the label.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

IN, OUT, UNKNOWN = 1, 0, -1  # membership of a model's record: known IN, known OUT, unknown


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Numerically stable log-probabilities along the last axis (float64)."""
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def true_label_logprob(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """log p(y|x) = -cross-entropy, shape ``logits.shape[:-1]``."""
    logp = log_softmax(logits)
    return np.take_along_axis(
        logp, np.broadcast_to(labels[..., None], logp.shape[:-1] + (1,)), axis=-1
    )[..., 0]


def true_label_prob(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """p(y|x), shape ``logits.shape[:-1]``."""
    return np.exp(true_label_logprob(logits, labels))


def logit_margin(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """LiRA's statistic for classifiers: z_y - max_{y' != y} z_{y'} (for 2 labels, z_y -
    z_other)."""
    z = np.asarray(logits, dtype=np.float64)
    idx = np.broadcast_to(labels[..., None], z.shape[:-1] + (1,))
    true = np.take_along_axis(z, idx, axis=-1)[..., 0]
    others = z.copy()
    np.put_along_axis(others, idx, -np.inf, axis=-1)
    return true - others.max(axis=-1)


SOURCES = ("all", "labelled", "shadows")


STATISTICS = ("margin", "logprob", "query_margin", "grad_norm")


@dataclass(frozen=True, kw_only=True)
class Signals:
    """Cached signals of every model of a scenario on the records ``R`` it needs (the union of
    challenge points).

    ``logits [M, R, 2]`` float; ``labels [R]``; ``keep [M, R]`` int8: 1 IN, 0 OUT, -1 unknown
    (dev/final targets); ``challenge [M, P]``: column of each of a model's ``P`` challenge points in
    ``R`` (-1 rows for shadows, which have none); ``labelled [M]``: provided models with known
    membership (MICO's ``train``). Optional: ``query_logits [M, R, Q, 2]``: logits on ``Q``
    deterministic queries of each record (the same queries for every model, ``farm.spec.queries``;
    query 0 is the record itself by convention); ``grad_norm [M, R]``: the L2 norm of the
    per-example gradient of the loss w.r.t. all parameters (``farm.training.grad_norm``).
    """

    logits: np.ndarray
    labels: np.ndarray
    keep: np.ndarray
    challenge: np.ndarray
    labelled: np.ndarray
    query_logits: np.ndarray | None = None
    grad_norm: np.ndarray | None = None

    def __post_init__(self) -> None:
        _check_shapes(self)
        m, r = self.keep.shape
        q = self.query_logits
        if q is not None and (
            q.ndim != 4 or q.shape[:2] != (m, r) or q.shape[-1] != self.logits.shape[-1]
        ):
            raise ValueError(
                f"Signals.query_logits must be [M={m}, R={r}, Q, {self.logits.shape[-1]}], got "
                f"{q.shape}"
            )
        if self.grad_norm is not None and self.grad_norm.shape != (m, r):
            raise ValueError(
                f"Signals.grad_norm must be [M={m}, R={r}], got {self.grad_norm.shape}"
            )

    @functools.cached_property
    def logprob(self) -> np.ndarray:
        """log p(y|x) = -CE, ``[M, R]``."""
        return true_label_logprob(self.logits, self.labels)

    @functools.cached_property
    def prob(self) -> np.ndarray:
        """p(y|x), ``[M, R]``."""
        return np.exp(self.logprob)

    @functools.cached_property
    def margin(self) -> np.ndarray:
        """LiRA's statistic z_y - z_other, ``[M, R]``."""
        return logit_margin(self.logits, self.labels)

    def statistic(self, name: str) -> np.ndarray:
        """A per-record statistic, higher = more member-like: ``margin`` / ``logprob`` ``[M, R]``,
        ``query_margin`` ``[M, R, Q]`` (margin of each query), ``grad_norm``: -log ||grad||
        ``[M, R]``."""
        if name in ("margin", "logprob"):
            return self.margin if name == "margin" else self.logprob
        if name == "query_margin":
            return logit_margin(_need(self.query_logits, "query_logits"), self.labels[:, None])
        if name == "grad_norm":
            return -np.log(np.maximum(_need(self.grad_norm, "grad_norm").astype(np.float64), 1e-30))
        raise ValueError(f"unknown statistic {name!r} (expected one of {STATISTICS})")

    @functools.cached_property
    def known(self) -> np.ndarray:
        """``[M]``: models whose membership is known on every record (labelled models and
        shadows)."""
        return (self.keep != UNKNOWN).all(axis=1)

    def reference_mask(self, target: int, source: str = "all") -> np.ndarray:
        """``[M]``: models usable as references for ``target`` (known membership, not the target),
        restricted to ``source``: ``all``, ``labelled`` (the provided models) or ``shadows`` (the
        farm's own models)."""
        if source not in SOURCES:
            raise ValueError(f"unknown reference source {source!r} (expected one of {SOURCES})")
        mask = self.known.copy()
        if source != "all":
            mask &= self.labelled if source == "labelled" else ~self.labelled
        mask[target] = False
        return mask

    def solution(self, model: int) -> np.ndarray:
        """0/1 membership of a labelled model on its challenge points."""
        return self.keep[model, self.challenge[model]].astype(np.int64)


def _check_shapes(signals: Signals) -> None:
    """``ValueError`` naming the field, its shape and the shape expected, for the required fields
    of ``Signals`` (M models, R records, P challenge points, C classes)."""
    keep = np.asarray(signals.keep)
    if keep.ndim != 2:
        raise ValueError(f"Signals.keep must be [M, R] (models x records), got shape {keep.shape}")
    m, r = keep.shape
    logits, labels = np.asarray(signals.logits), np.asarray(signals.labels)
    challenge, labelled = np.asarray(signals.challenge), np.asarray(signals.labelled)
    checks = (
        (
            "logits",
            logits.shape,
            logits.ndim == 3 and logits.shape[:2] == (m, r),
            f"[M={m}, R={r}, C]",
        ),
        ("labels", labels.shape, labels.shape == (r,), f"[R={r}]"),
        (
            "challenge",
            challenge.shape,
            challenge.ndim == 2 and challenge.shape[0] == m,
            f"[M={m}, P]",
        ),
        ("labelled", labelled.shape, labelled.shape == (m,), f"[M={m}]"),
    )
    for field, shape, ok, expected in checks:
        if not ok:
            raise ValueError(
                f"Signals.{field} must be {expected} (keep is [M={m}, R={r}]), got shape {shape}"
            )
    if challenge.size and (challenge.max() >= r or challenge.min() < -1):
        raise ValueError(
            f"Signals.challenge holds columns of the R={r} records (or -1), got values in "
            f"[{challenge.min()}, {challenge.max()}]"
        )
    if labels.size and (labels.min() < 0 or labels.max() >= logits.shape[-1]):
        raise ValueError(
            f"Signals.labels must be classes 0..{logits.shape[-1] - 1} of the logits, got "
            f"values in [{labels.min()}, {labels.max()}]"
        )


def _need(value: np.ndarray | None, field: str) -> np.ndarray:
    if value is None:
        raise ValueError(f"this attack needs Signals.{field}, which these signals do not carry")
    return value
