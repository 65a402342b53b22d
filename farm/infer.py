"""Inference: a model's logits on population records, length-bucketed with dynamic padding, on GPU if any."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from farm.data import Tokenized, length_buckets, pad_batch
from farm.models import load_model
from farm.recipes import Perf
from farm.train import autocast, matmul_precision, resolve_device


@torch.inference_mode()
def model_logits(model: torch.nn.Module, tokens: Tokenized, indices: np.ndarray, *, perf: Perf = Perf(),
                 precision: str = "fp32") -> np.ndarray:
    """float32 logits ``[len(indices), n_labels]`` in the order of ``indices`` (model put in eval mode), computed
    in ``precision`` (``fp32``, ``bf16`` or ``tf32``, as ``farm.recipes.Recipe`` defines them)."""
    device = resolve_device(perf.device)
    model = model.to(device).eval()
    indices = np.asarray(indices, dtype=np.int64)
    n_labels = int(model.config.num_labels)  # type: ignore[union-attr, arg-type]
    out = np.zeros((indices.size, n_labels), dtype=np.float32)
    positions = np.arange(indices.size)
    with matmul_precision(precision):
        for batch in length_buckets(positions, tokens.lengths[indices], perf.infer_batch):
            ids, mask, _ = (torch.from_numpy(a).to(device) for a in pad_batch(tokens, indices[batch]))
            with autocast(device, precision):
                logits = model(input_ids=ids, attention_mask=mask).logits
            out[batch] = logits.float().cpu().numpy()
    return out


def logits_of(model_dir: str | Path, tokens: Tokenized, indices: np.ndarray, *, perf: Perf = Perf(),
              precision: str = "fp32", weights: dict | None = None) -> np.ndarray:
    """Load a saved classifier (safely; ``weights``: its state dict already read, e.g. prefetched) and return its
    logits on ``indices`` in ``precision``."""
    return model_logits(load_model(model_dir, weights=weights), tokens, indices, perf=perf, precision=precision)
