"""Several queries per record: deterministic text perturbations of a tokenized record, pure numpy.

LiRA queries a model on several augmentations of each example and combines the per-query likelihood
ratios; for text the augmentations are small edits of the token sequence: ``dropout`` drops words,
``swap`` swaps adjacent words, ``identity`` is the record itself. A query depends only on the
record's tokens, its population index and the family (its seed included), never on the model or the
batch, so every model -- target, labelled, shadow -- sees exactly the same queries: that is what
makes per-query IN/OUT Gaussians meaningful (``farm.attacks.lira.lira`` with
``statistic="query_margin"`` on ``Signals.query_logits [M, R, Q, 2]``).

A "word" is a token that starts a word plus the tokens that continue it (``word_starts``, e.g. from
``word_starts_from_tokens`` for RoBERTa's byte-level BPE); without it every token is a word.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

KINDS = ("identity", "dropout", "swap")


@dataclass(frozen=True, kw_only=True)
class QueryFamily:
    """The queries every record gets: ``kinds[q]`` for query ``q`` (keep ``identity`` first so that
    query 0 is the record itself); ``drop_rate``: chance a word is dropped by ``dropout`` (at least
    one word stays); ``swaps``: adjacent word pairs swapped by ``swap``; ``special``: tokens kept in
    place at each end (the tokenizer's ``<s>`` and ``</s>``); ``seed``: with the record index and
    ``q``, seeds each perturbation."""

    kinds: tuple[str, ...] = (
        "identity",
        "dropout",
        "swap",
        "dropout",
        "swap",
        "dropout",
        "swap",
        "dropout",
    )
    drop_rate: float = 0.1
    swaps: int = 1
    special: int = 1
    seed: int = 0

    def __post_init__(self) -> None:
        bad = [k for k in self.kinds if k not in KINDS]
        if not self.kinds or bad:
            raise ValueError(
                f"QueryFamily.kinds must be a non-empty tuple of {KINDS}, got {self.kinds!r}"
            )
        if not 0 <= self.drop_rate < 1 or self.swaps < 1 or self.special < 0 or self.seed < 0:
            raise ValueError(
                "QueryFamily needs 0 <= drop_rate < 1, swaps >= 1, special >= 0 and seed >= 0"
            )

    @property
    def n_queries(self) -> int:
        return len(self.kinds)


def perturb(
    ids: Sequence[int] | np.ndarray,
    family: QueryFamily,
    *,
    record: int,
    word_starts: np.ndarray | None = None,
) -> list[np.ndarray]:
    """The ``family.n_queries`` queries (int32 token-id arrays) of the record ``ids`` at population
    index ``record``; query ``q`` draws from ``numpy.random.default_rng([family.seed, record, q])``,
    so the result is the same in every call and process. ``word_starts`` (bool, like ``ids``) marks
    tokens that begin a word."""
    ids = np.asarray(ids, dtype=np.int32)
    k = family.special
    head, body, tail = ids[:k], ids[k : max(k, ids.size - k)], ids[max(k, ids.size - k) :]
    starts = (
        np.ones(body.size, bool)
        if word_starts is None
        else np.asarray(word_starts, bool)[k : k + body.size]
    )
    words = np.split(body, np.flatnonzero(starts)[1:]) if body.size else []
    out = []
    for q, kind in enumerate(family.kinds):
        rng = np.random.default_rng([family.seed, int(record), q])
        edited = _edit(words, kind, family, rng)
        out.append(np.concatenate([head, *edited, tail]).astype(np.int32))
    return out


def queries_of(
    ids: Sequence[np.ndarray],
    records: Sequence[int],
    family: QueryFamily,
    word_starts: Sequence[np.ndarray] | None = None,
) -> list[list[np.ndarray]]:
    """Queries of many records, grouped by query: ``out[q][i]`` is query ``q`` of record
    ``records[i]`` (whose tokens are ``ids[i]``), ready to be batched as one tokenized population
    per query."""
    per_record = [
        perturb(x, family, record=r, word_starts=None if word_starts is None else word_starts[i])
        for i, (x, r) in enumerate(zip(ids, records))
    ]
    return [[qs[q] for qs in per_record] for q in range(family.n_queries)]


def word_starts_from_tokens(tokens: Sequence[str], *, marker: str = "\u0120") -> np.ndarray:
    """Word starts of a byte-level BPE token list (RoBERTa/GPT-2 mark a preceding space with ``Ġ``);
    the first token after the leading special token always starts a word."""
    starts = np.array([t.startswith(marker) for t in tokens], bool)
    starts[: min(2, starts.size)] = True
    return starts


def _edit(
    words: list[np.ndarray], kind: str, family: QueryFamily, rng: np.random.Generator
) -> list[np.ndarray]:
    if kind == "identity" or not words:
        return words
    if kind == "dropout":
        keep = rng.random(len(words)) >= family.drop_rate
        if not keep.any():
            keep[rng.integers(len(words))] = True
        return [w for w, k in zip(words, keep) if k]
    words = list(words)
    for _ in range(family.swaps if len(words) > 1 else 0):
        i = int(rng.integers(len(words) - 1))
        words[i], words[i + 1] = words[i + 1], words[i]
    return words
