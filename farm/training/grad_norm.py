"""White-box signals: the per-example gradient norm of a model's loss, for
``Signals.grad_norm [M, R]``.

MICO hands out the targets' weights, so an attack may use more than logits. A member's loss is near
a local minimum of training, so its gradient w.r.t. the parameters tends to be small;
``farm.attacks.registry`` consumes the norm as the statistic -log ||g|| (``loss``/``lira`` with
``statistic="grad_norm"``: attacks ``gradient`` and ``lira_grad``, and a feature of ``learned``).
Effects ring: torch is imported inside the functions, so ``import farm.training.grad_norm`` stays
light.

The norm is of d CE(f_theta(x), y) / d theta over every trainable parameter, with the model in eval
mode (no dropout), so it depends only on the weights and the record; float64 on the way out. The
method (``ghost`` by default, ``vmap``, ``loop``) and the batch size change only the float error, so
neither is part of an inference job's key (``farm.spec.jobs.InferJob``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from farm.training.data import length_buckets, pad_batch

METHODS = ("ghost", "vmap", "loop")
BATCH = 16  # records per ghost-norm pass (length-sorted, padded to the longest; CPU-measured)


def per_example_grad_norms(
    model: Any, input_ids: Any, attention_mask: Any, labels: Any, *, method: str = "ghost"
) -> np.ndarray:
    """``[B]`` L2 norms of the per-example loss gradients of a right-padded batch of ``B`` records.

    ``method``: ``ghost`` (default: the padded batch in one forward and one backward with its
    attention mask, norms from each layer's inputs and output gradients without forming a
    per-example gradient, ``_ghost_norms``; Linear, LayerNorm and Embedding parameters only, which
    is all of a RoBERTa classifier's), ``vmap`` (``torch.func``: records regrouped by length and
    run unpadded, since Hugging Face's mask code branches on the mask's values, which ``vmap``
    cannot trace; one vectorized pass per length, memory ~ group size x the gradient) or ``loop``
    (one backward per unpadded record: slow, small memory; the reference the tests compare the
    others against).
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r} (expected one of {', '.join(METHODS)})")
    model.eval()
    if method == "ghost":
        return _ghost_norms(model, input_ids, attention_mask, labels)
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
    batch_size: int = BATCH,
    method: str = "ghost",
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
    batch_size: int = BATCH,
    method: str = "ghost",
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


def _ghost_norms(model: Any, ids: Any, mask: Any, y: Any) -> np.ndarray:
    """Norms for a right-padded batch ``ids [B, T]`` in one forward and one backward, without
    per-sample gradients: every trainable parameter must belong to an ``nn.Linear``,
    ``nn.LayerNorm`` or ``nn.Embedding`` called once per forward (``ValueError`` otherwise).

    The loss is the sum of the records' losses, so the gradient w.r.t. a module's output at record
    ``b`` is record ``b``'s alone; with its input ``a`` it gives the record's parameter gradient.
    Linear: ``||g_b^T a_b||^2 = sum_{t,s} (a_t.a_s)(g_t.g_s)`` (the ghost norm, used when cheaper
    than forming ``g_b^T a_b``), bias ``||sum_t g_t||^2``; LayerNorm: ``||sum_t g_t * xhat_t||^2``
    and ``||sum_t g_t||^2``; Embedding: ``sum_{t,s} [i_t = i_s] (g_t.g_s)`` over non-padding ids.
    Padded positions influence no logit (the attention mask hides them), so their output gradients
    are zero; they are masked anyway. Only gradients w.r.t. module outputs are computed
    (``torch.autograd.grad``), never the parameters' own.
    """
    # lazy: loads torch
    import torch

    kinds = (torch.nn.Linear, torch.nn.LayerNorm, torch.nn.Embedding)
    covered: set[int] = set()
    modules = []
    for module in model.modules():
        own = [p for p in module.parameters(recurse=False) if p.requires_grad]
        flat_norm = not isinstance(module, torch.nn.LayerNorm) or len(module.normalized_shape) == 1
        if own and isinstance(module, kinds) and flat_norm:
            modules.append(module)
            covered.update(id(p) for p in own)
    missing = [n for n, p in model.named_parameters() if p.requires_grad and id(p) not in covered]
    if missing:
        raise ValueError(
            f"method='ghost' covers Linear, LayerNorm and Embedding parameters only, not {missing} "
            "(use method='loop')"
        )
    seen: list[tuple[Any, Any, Any]] = []  # (module, its input, its output)

    def keep(module: Any, args: tuple, output: Any) -> None:
        if not args:
            raise ValueError(f"method='ghost': {type(module).__name__} called without its input")
        seen.append((module, args[0].detach(), output))

    handles = [m.register_forward_hook(keep) for m in modules]
    try:
        logits = model(input_ids=ids, attention_mask=mask).logits
    finally:
        for h in handles:
            h.remove()
    if len(seen) != len(modules) or len({id(m) for m, _, _ in seen}) != len(modules):
        raise ValueError("method='ghost' needs every parameterised module called once per forward")
    loss = torch.nn.functional.cross_entropy(logits.float(), y, reduction="sum")
    grads = torch.autograd.grad(loss, [out for _, _, out in seen], allow_unused=True)
    b, width = ids.shape
    keep_t = mask.to(torch.float32)
    total = torch.zeros(b, dtype=torch.float64, device=ids.device)
    for (module, x, _), g in zip(seen, grads, strict=True):
        if g is None:
            continue
        g = g.float().reshape(b, -1, g.shape[-1])
        if g.shape[1] == width:  # per-token output: padded positions contribute nothing
            g = g * keep_t[:, :, None]
        total += _module_sq_norms(module, x, g).double()
    return total.sqrt().cpu().numpy()


def _module_sq_norms(module: Any, x: Any, g: Any) -> Any:
    """``[B]`` squared norms of the per-record gradients of ``module``'s trainable parameters,
    from its input ``x`` and the gradient ``g [B, T, d_out]`` w.r.t. its output."""
    # lazy: loads torch
    import torch

    b = g.shape[0]
    out = torch.zeros(b, dtype=torch.float32, device=g.device)
    if isinstance(module, torch.nn.Embedding):
        i = x.reshape(b, -1)
        same = i[:, :, None] == i[:, None, :]
        if module.padding_idx is not None:  # nn.Embedding gives the padding row no gradient
            real = i != module.padding_idx
            same = same & real[:, :, None] & real[:, None, :]
        return out + (same * (g @ g.transpose(1, 2))).sum((1, 2))
    if module.bias is not None and module.bias.requires_grad:
        out += g.sum(1).pow(2).sum(1)
    if module.weight is None or not module.weight.requires_grad:
        return out
    a = x.float().reshape(b, -1, x.shape[-1])
    if isinstance(module, torch.nn.LayerNorm):
        xhat = torch.nn.functional.layer_norm(a, module.normalized_shape, eps=module.eps)
        return out + (g * xhat).sum(1).pow(2).sum(1)
    t, d_in, d_out = a.shape[1], a.shape[2], g.shape[2]
    if t * t * (d_in + d_out) < t * d_in * d_out:  # the ghost norm is cheaper
        return out + ((a @ a.transpose(1, 2)) * (g @ g.transpose(1, 2))).sum((1, 2))
    return out + (g.transpose(1, 2) @ a).pow(2).sum((1, 2))


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
