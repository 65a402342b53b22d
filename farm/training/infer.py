"""Inference: a model's logits on population records, length-bucketed with dynamic padding, on GPU
if any.

``infer_arrays`` is one inference job's pass: the model loaded once, its logits, and when asked the
logits on each record's queries (``farm.spec.queries``) and the per-example gradient norms
(``farm.training.grad_norm``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from farm.spec.queries import QueryFamily, queries_of, word_starts_from_tokens
from farm.spec.recipes import Perf
from farm.training.data import Tokenized, length_buckets, pad_batch
from farm.training.grad_norm import model_grad_norms
from farm.training.models import load_model
from farm.training.train import autocast, matmul_precision, resolve_device


@torch.inference_mode()
def model_logits(
    model: torch.nn.Module,
    tokens: Tokenized,
    indices: np.ndarray,
    *,
    perf: Perf = Perf(),
    precision: str = "fp32",
) -> np.ndarray:
    """float32 logits ``[len(indices), n_labels]`` in the order of ``indices`` (model put in eval
    mode), computed in ``precision`` (``fp32``, ``bf16`` or ``tf32``, as
    ``farm.spec.recipes.Recipe`` defines them)."""
    device = resolve_device(perf.device)
    model = model.to(device).eval()
    indices = np.asarray(indices, dtype=np.int64)
    n_labels = int(model.config.num_labels)  # type: ignore[union-attr, arg-type]
    out = np.zeros((indices.size, n_labels), dtype=np.float32)
    positions = np.arange(indices.size)
    with matmul_precision(precision):
        for batch in length_buckets(positions, tokens.lengths[indices], perf.infer_batch):
            ids, mask, _ = (
                torch.from_numpy(a).to(device) for a in pad_batch(tokens, indices[batch])
            )
            with autocast(device, precision):
                logits = model(input_ids=ids, attention_mask=mask).logits
            out[batch] = logits.float().cpu().numpy()
    return out


def logits_of(
    model_dir: str | Path,
    tokens: Tokenized,
    indices: np.ndarray,
    *,
    perf: Perf = Perf(),
    precision: str = "fp32",
    weights: dict | None = None,
) -> np.ndarray:
    """Load a saved classifier (safely; ``weights``: its state dict already read, e.g. prefetched)
    and return its logits on ``indices`` in ``precision``."""
    return model_logits(
        load_model(model_dir, weights=weights), tokens, indices, perf=perf, precision=precision
    )


def query_logits(
    model: torch.nn.Module,
    tokens: Tokenized,
    indices: np.ndarray,
    family: QueryFamily,
    *,
    word_starts: Sequence[np.ndarray] | None = None,
    logits: np.ndarray | None = None,
    perf: Perf = Perf(),
    precision: str = "fp32",
) -> np.ndarray:
    """float32 ``[len(indices), Q, n_labels]`` logits on the ``family.n_queries`` queries of each
    record (``farm.spec.queries.queries_of``; record ``indices[i]`` is perturbed as population index
    ``indices[i]``, so every model sees the same queries). ``word_starts[i]``: the word starts of
    record ``indices[i]``'s tokens (None: every token is a word). All non-identity queries of all
    records go through ``model_logits`` as one batch set (length-bucketed together); ``identity``
    queries are the records themselves and take ``logits`` (their plain logits, when the caller has
    them) instead of being run again."""
    indices = np.asarray(indices, dtype=np.int64)
    groups = queries_of([tokens.ids[i] for i in indices], indices.tolist(), family, word_starts)
    run = [q for q, kind in enumerate(family.kinds) if kind != "identity" or logits is None]
    ids = tuple(x for q in run for x in groups[q])
    flat = Tokenized(
        ids,
        np.array([x.size for x in ids], np.int64),
        np.tile(tokens.labels[indices], len(run)),
        tokens.pad_id,
    )
    got = model_logits(model, flat, np.arange(len(ids)), perf=perf, precision=precision)
    n_labels = got.shape[-1] if got.size else int(model.config.num_labels)  # type: ignore[union-attr, arg-type]
    out = np.zeros((indices.size, family.n_queries, n_labels), dtype=np.float32)
    out[:, run] = got.reshape(len(run), indices.size, n_labels).transpose(1, 0, 2)
    if logits is not None:
        out[:, [q for q, kind in enumerate(family.kinds) if kind == "identity"]] = logits[:, None]
    return out


def word_starts_of(tokenizer: Any, tokens: Tokenized, indices: np.ndarray) -> list[np.ndarray]:
    """Word starts (``farm.spec.queries.word_starts_from_tokens``) of records ``indices``, from
    their token strings."""
    return [
        word_starts_from_tokens(tokenizer.convert_ids_to_tokens(tokens.ids[i].tolist()))
        for i in indices
    ]


def infer_arrays(
    model_dir: str | Path,
    tokens: Tokenized,
    indices: np.ndarray,
    *,
    perf: Perf = Perf(),
    precision: str = "fp32",
    weights: dict | None = None,
    queries: QueryFamily | None = None,
    tokenizer: Any = None,
    grad_norm: bool = False,
) -> dict[str, np.ndarray]:
    """One inference pass over records ``indices`` with the model at ``model_dir`` loaded once
    (``weights``: its state dict already read): ``logits [R, n_labels]`` float32 in ``precision``;
    with ``queries``, ``query_logits [R, Q, n_labels]`` (word starts from ``tokenizer``'s token
    strings, None: every token a word); with ``grad_norm``, ``grad_norm [R]`` float64
    (``farm.training.grad_norm``, fp32, eval mode)."""

    model = load_model(model_dir, weights=weights)
    indices = np.asarray(indices, dtype=np.int64)
    out = {"logits": model_logits(model, tokens, indices, perf=perf, precision=precision)}
    if queries is not None:
        starts = word_starts_of(tokenizer, tokens, indices) if tokenizer is not None else None
        out["query_logits"] = query_logits(
            model,
            tokens,
            indices,
            queries,
            word_starts=starts,
            logits=out["logits"],
            perf=perf,
            precision=precision,
        )
    if grad_norm:
        out["grad_norm"] = model_grad_norms(model, tokens, indices, device=perf.device)
    return out
