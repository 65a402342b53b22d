"""White-box signals: the per-example gradient norm of a model's loss, for
``Signals.grad_norm [M, R]``.

MICO hands out the targets' weights, so an attack may use more than logits. A member's loss is near
a local minimum of training, so its gradient w.r.t. the parameters tends to be small;
``farm.attacks.registry`` consumes the norm as the statistic -log ||g|| (``loss``/``lira`` with
``statistic="grad_norm"``: attacks ``gradient`` and ``lira_grad``, and a feature of ``learned``).
Effects ring: torch is imported inside the functions, so ``import farm.training.grad_norm`` stays
light.

The norm is of d CE(f_theta(x), y) / d theta over every trainable parameter, with the model in eval
mode (no dropout), so it depends only on the weights and the record; float64 on the way out.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from farm.training.data import length_buckets, pad_batch


def per_example_grad_norms(
    model: Any, input_ids: Any, attention_mask: Any, labels: Any, *, method: str = "vmap"
) -> np.ndarray:
    """``[B]`` L2 norms of the per-example loss gradients of a right-padded batch of ``B`` records.

    Records are regrouped by length and run unpadded (so no attention mask is needed: Hugging Face's
    mask code branches on the mask's values, which ``torch.func.vmap`` cannot trace). ``method``:
    ``vmap`` (``torch.func``: one vectorized pass per length; memory ~ group size x the gradient) or
    ``loop`` (one backward per record: slow, small memory; the reference the test compares ``vmap``
    against).
    """
    if method not in ("vmap", "loop"):
        raise ValueError(f"unknown method {method!r} (expected vmap or loop)")
    model.eval()
    lengths = attention_mask.sum(1).cpu().numpy()
    out = np.zeros(lengths.size, dtype=np.float64)
    for n in np.unique(lengths):
        rows = np.flatnonzero(lengths == n)
        ids, y = input_ids[rows, : int(n)], labels[rows]
        if not bool(attention_mask[rows, : int(n)].all()):
            raise ValueError(
                "per_example_grad_norms needs right-padded batches (mask 1...1 0...0 per row)"
            )
        out[rows] = (
            _vmap_norms(model, ids, y)
            if method == "vmap"
            else [_one_norm(model, ids[i : i + 1], y[i : i + 1]) for i in range(rows.size)]
        )
    return out


def grad_norms_of(
    model_dir: str | Path,
    tokens: Any,
    indices: np.ndarray,
    *,
    device: str = "auto",
    batch_size: int = 8,
    method: str = "vmap",
) -> np.ndarray:
    """float64 ``[len(indices)]`` per-example gradient norms of the saved classifier at
    ``model_dir`` on population ``indices`` (``tokens``: a ``farm.training.data.Tokenized``),
    length-bucketed like inference."""
    # lazy: loads torch
    from farm.training.models import load_model

    return model_grad_norms(
        load_model(model_dir), tokens, indices, device=device, batch_size=batch_size, method=method
    )


def model_grad_norms(
    model: Any,
    tokens: Any,
    indices: np.ndarray,
    *,
    device: str = "auto",
    batch_size: int = 8,
    method: str = "vmap",
) -> np.ndarray:
    """``grad_norms_of`` for a classifier already loaded (moved to ``device``, put in eval mode)."""
    # lazy: loads torch
    import torch

    # lazy: loads torch
    from farm.training.train import resolve_device

    dev = resolve_device(device)
    model = model.to(dev)
    indices = np.asarray(indices, dtype=np.int64)
    out = np.zeros(indices.size, dtype=np.float64)
    for batch in length_buckets(np.arange(indices.size), tokens.lengths[indices], batch_size):
        ids, mask, y = (torch.from_numpy(a).to(dev) for a in pad_batch(tokens, indices[batch]))
        out[batch] = per_example_grad_norms(model, ids, mask, y, method=method)
    return out


def _vmap_norms(model: Any, ids: Any, y: Any) -> np.ndarray:
    """Norms for unpadded records of one length, ``ids [B, n]``, with ``torch.func``."""
    # lazy: loads torch
    import torch

    # lazy: loads torch
    from torch.func import functional_call, grad, vmap

    params = {k: p.detach() for k, p in model.named_parameters() if p.requires_grad}
    buffers = dict(model.named_buffers())

    def loss(p: dict, one_ids: Any, one_y: Any) -> Any:
        logits = functional_call(
            model, (p, buffers), args=(), kwargs={"input_ids": one_ids[None]}
        ).logits
        return torch.nn.functional.cross_entropy(logits.float(), one_y[None])

    grads = vmap(grad(loss), in_dims=(None, 0, 0))(params, ids, y)
    squared = sum(g.flatten(1).double().pow(2).sum(1) for g in grads.values())
    return squared.sqrt().cpu().numpy()  # type: ignore[union-attr]


def _one_norm(model: Any, ids: Any, y: Any) -> float:
    # lazy: loads torch
    import torch

    model.zero_grad(set_to_none=True)
    logits = model(input_ids=ids).logits
    torch.nn.functional.cross_entropy(logits.float(), y).backward()
    total = sum(
        float(p.grad.double().pow(2).sum()) for p in model.parameters() if p.grad is not None
    )
    model.zero_grad(set_to_none=True)
    return float(np.sqrt(total))
