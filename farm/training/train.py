"""The one training loop: AdamW (constant or linear LR) on dynamic-padded batches; DP-SGD is a wrap
of it.

``train(tokens, indices, recipe, out_dir=...)`` trains a 2-label classifier on population records
``indices`` and saves an HF directory with ``farm.json``: the recipe, the steps taken, the examples
seen, the wall time and, for DP, the noise multiplier, sample rate and the accountant's epsilon with
what it assumes. A recipe's ``label_noise`` changes the targets only: randomized response trains on
the flipped labels, ALIBI on soft labels (``AlibiTargets``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import itertools
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from farm.defences.seam import dp_assumptions
from farm.privacy.alibi import alibi_scale, alibi_sigma
from farm.privacy.label_dp import noisy_labels, noisy_one_hot
from farm.spec.recipes import DPConfig, Perf, Recipe, to_dict
from farm.training.data import Tokenized, pad_batch, shuffled_bucketed
from farm.training.models import init_model, save_model


@dataclass(frozen=True)
class DPSchedule:
    """The privacy side of a run: noise, sample rate ``q = batch / n`` and the number of noisy
    steps."""

    noise_multiplier: float
    sample_rate: float
    steps: int

    def epsilon(self, dp: DPConfig) -> float:
        """The accountant's (``dp.accountant``) epsilon at ``dp.delta`` for ``steps``
        Poisson-subsampled Gaussian steps at ``sample_rate``, for add/remove adjacency (what Opacus'
        accountants account)."""
        # lazy: loads torch
        from opacus.accountants import create_accountant

        if self.noise_multiplier == 0 or self.steps == 0:
            return math.inf if self.steps else 0.0
        accountant = create_accountant(dp.accountant)
        accountant.history = [(self.noise_multiplier, self.sample_rate, self.steps)]
        return float(accountant.get_epsilon(delta=dp.delta))


def steps_per_epoch(n: int, recipe: Recipe) -> int:
    """Optimizer steps in one epoch: ``ceil(n / batch)`` (last batch partial, as HF's Trainer)."""
    return math.ceil(n / recipe.batch_size)


def dp_schedule(n: int, recipe: Recipe) -> DPSchedule:
    """The DP-SGD schedule of ``recipe`` on ``n`` records: ``q = batch / n``,
    ``recipe.total_steps(n)``
    steps, and the noise multiplier given in ``recipe.dp`` or solved for its target epsilon at that
    ``q`` and step count."""
    assert recipe.dp is not None
    q = min(1.0, recipe.batch_size / n)
    steps = recipe.total_steps(n)
    sigma = recipe.dp.noise_multiplier
    if sigma is None:
        assert recipe.dp.target_epsilon is not None
        sigma = _noise_for(
            recipe.dp.target_epsilon, recipe.dp.delta, q, steps, recipe.dp.accountant
        )
    return DPSchedule(float(sigma), q, steps)


def matched_recipe(target: Recipe, n_target: int) -> Recipe:
    """The targets' mechanism, as a recipe a shadow on any number of records runs: ``target`` as the
    targets ran it on ``n_target`` records (the challenge's ``len_training``), with the step count
    fixed (``target.total_steps(n_target)``) and, for DP, the noise multiplier fixed to the one
    solved at the targets' ``q = batch / n_target`` and steps (no ``target_epsilon`` left). Clip
    (with its scale), logical batch, learning rate and schedule, sampling and everything else are
    the target's. Trained on fewer records, such a shadow spends more epsilon on its own data than
    the targets did (``DPSchedule.epsilon`` at ``q = batch / n_shadow``). Pure apart from the cached
    noise search (about 2 s with PRV).

    >>> matched_recipe(Recipe(epochs=3, batch_size=1024), 67_349).steps
    198
    """
    steps = target.total_steps(n_target)
    if target.dp is None:
        return dataclasses.replace(target, steps=steps)
    sigma = dp_schedule(n_target, target).noise_multiplier
    dp = dataclasses.replace(target.dp, target_epsilon=None, noise_multiplier=sigma)
    return dataclasses.replace(target, steps=steps, dp=dp)


@functools.lru_cache(maxsize=256)
def _noise_for(epsilon: float, delta: float, q: float, steps: int, accountant: str) -> float:
    """Opacus' noise search (about 2 s with PRV), cached per process: a pure function of its
    arguments."""
    # lazy: loads torch
    from opacus.accountants.utils import get_noise_multiplier

    return float(
        get_noise_multiplier(
            target_epsilon=epsilon,
            target_delta=delta,
            sample_rate=q,
            steps=steps,
            accountant=accountant,
        )
    )


def train(
    tokens: Tokenized,
    indices: np.ndarray,
    recipe: Recipe,
    *,
    out_dir: str | Path,
    tokenizer: Any,
    base: str | Path | None = None,
    perf: Perf = Perf(),
) -> Path:
    """Train on ``indices`` of ``tokens`` with ``recipe``; save to ``out_dir`` (atomically) and
    return it.

    Labels are ``tokens.labels`` (indexed by population record), unless the recipe has a
    ``label_noise``, whose noise is drawn once per population record from the recipe's seed before
    the first step and kept for every epoch:

    * randomized response: the loop trains on the flipped labels (hard-label cross-entropy);
    * ALIBI: the loop never sees a true label; each batch's target is the posterior over the true
      label given the record's noisy one-hot vector, with the model's current prediction as the
      prior (``AlibiTargets``), under soft-label cross-entropy. With a ``dp`` block too, DP-SGD
      clips and noises the per-example gradients of that same loss (Opacus' criterion takes
      probability targets as it takes labels): a record's loss reads its own sentence and noisy
      vector and the current model only, so the run is the recipe's (epsilon, delta)-DP on whole
      records, and ALIBI's epsilon-label-DP holds besides (training reads labels only through the
      noisy vectors: post-processing).

    ``base``: the directory that the model name ``base`` stands for (see
    ``farm.training.models.init_model``).
    """
    start = time.perf_counter()
    torch.manual_seed(recipe.seed)  # the training entry owns its model's seed (init, dropout)
    rng = np.random.default_rng([recipe.seed, 0xBA7C4])
    device = resolve_device(perf.device)
    indices = np.asarray(indices, dtype=np.int64)
    soft, noise = None, recipe.label_noise
    if noise is not None and noise.mechanism == "alibi":  # noised once; targets from the posterior
        soft = AlibiTargets(
            noisy=noisy_one_hot(tokens.labels, noise, recipe.seed), sigma=alibi_sigma(noise.epsilon)
        )
        tokens = dataclasses.replace(tokens, labels=np.full_like(tokens.labels, -1))  # unread
    elif noise is not None:  # randomized response: the loop sees only the noisy labels
        tokens = dataclasses.replace(tokens, labels=noisy_labels(tokens.labels, noise, recipe.seed))
    model = (
        init_model(recipe.model, tokenizer, max_length=recipe.max_length, base=base)
        .to(device)
        .train()
    )
    optimizer: Any = torch.optim.AdamW(
        model.parameters(), lr=recipe.learning_rate, weight_decay=recipe.weight_decay
    )
    criterion: Any = torch.nn.CrossEntropyLoss()
    dp_plan = dp_schedule(indices.size, recipe) if recipe.dp else None
    if recipe.dp and dp_plan:
        model, optimizer, criterion = _make_private(
            model, optimizer, indices.size, recipe, dp_plan, perf
        )
    schedule = _schedule(optimizer, recipe, recipe.total_steps(indices.size))
    seen = steps = 0
    with matmul_precision(recipe.precision):
        for batch in _batches(tokens, indices, recipe, rng):
            _step(
                model,
                optimizer,
                criterion,
                tokens,
                batch,
                perf,
                device,
                private=dp_plan is not None,
                precision=recipe.precision,
                grad_clip=recipe.grad_clip,
                soft=soft,
            )
            schedule.step()
            seen, steps = seen + batch.size, steps + 1
    module = getattr(model, "_module", model).eval()
    meta = _metadata(
        recipe, indices.size, steps, seen, time.perf_counter() - start, device, dp_plan
    )
    return save_model(module, out_dir, tokenizer=tokenizer, metadata=meta)


def _batches(
    tokens: Tokenized, indices: np.ndarray, recipe: Recipe, rng: np.random.Generator
) -> Iterator[np.ndarray]:
    """``recipe.total_steps(n)`` logical batches: Poisson (DP, ``q = batch / n``) or epochs of
    shuffled fixed-size batches (optionally length-grouped), each epoch ending with its partial
    batch; with ``recipe.steps`` set, the epochs continue until that many batches have been drawn
    (the last epoch cut short)."""
    total = recipe.total_steps(indices.size)
    if recipe.dp is not None and recipe.dp.sampling == "poisson":
        yield from poisson_batches(indices, min(1.0, recipe.batch_size / indices.size), total, rng)
        return
    yield from itertools.islice(_epochs(tokens, indices, recipe, rng), total)


def poisson_batches(
    indices: np.ndarray, q: float, steps: int, rng: np.random.Generator
) -> Iterator[np.ndarray]:
    """``steps`` Poisson-sampled batches of ``indices``: each batch holds each index independently
    with probability ``q`` (so batch sizes vary, and a batch may be empty), as the DP accountant
    assumes."""
    for _ in range(steps):
        yield indices[rng.random(indices.size) < q]


def _epochs(
    tokens: Tokenized, indices: np.ndarray, recipe: Recipe, rng: np.random.Generator
) -> Iterator[np.ndarray]:
    """Shuffled fixed-size batches, one epoch after another, without end."""
    while True:
        if recipe.group_by_length:
            yield from shuffled_bucketed(indices, tokens.lengths, recipe.batch_size, rng)
        else:
            perm = rng.permutation(indices)
            yield from (
                perm[i : i + recipe.batch_size] for i in range(0, perm.size, recipe.batch_size)
            )


def _step(
    model: Any,
    optimizer: Any,
    criterion: Any,
    tokens: Tokenized,
    batch: np.ndarray,
    perf: Perf,
    device: torch.device,
    *,
    private: bool,
    precision: str = "fp32",
    grad_clip: float | None = None,
    soft: AlibiTargets | None = None,
) -> None:
    """One optimizer step on a logical batch, accumulated over micro-batches of at most
    ``perf.micro_batch``.

    Plain: each micro-batch loss is weighted by its share so the update is the batch mean;
    ``grad_clip`` clips the global norm of that mean gradient before the update (HF's
    ``max_grad_norm``). DP: Opacus sums the clipped per-sample gradients over micro-batches (skipped
    steps) and adds noise once, on the last one. ``soft``: the targets are ALIBI's soft labels of
    the micro-batch, computed from its logits before the loss (``AlibiTargets``), else its labels.
    """
    micro = [batch[i : i + perf.micro_batch] for i in range(0, batch.size, perf.micro_batch)]
    if not micro:  # an empty Poisson batch: a noise-only DP step
        _zero_grads(model, per_sample=perf.grad_sample_mode == "hooks")
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return
    for j, mb in enumerate(micro):
        ids, mask, labels = (torch.from_numpy(a).to(device) for a in pad_batch(tokens, mb))
        with autocast(device, precision):
            logits = model(input_ids=ids, attention_mask=mask).logits
        target = labels if soft is None else soft(mb, logits)
        loss = criterion(logits.float(), target)  # outside the model: Opacus' criterion in DP mode
        if private:
            loss.backward()
            optimizer.signal_skip_step(do_skip=j < len(micro) - 1)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        else:
            (loss * (mb.size / batch.size)).backward()
    if not private:
        if grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)


@dataclass(frozen=True)
class AlibiTargets:
    """ALIBI's training targets (Malek et al. 2021). ``noisy``: ``[n_population, 2]`` noisy one-hot
    labels indexed by population record, drawn once (``farm.privacy.label_dp.noisy_one_hot``);
    ``sigma``: their noise (``farm.privacy.alibi``).

    Called with a batch of record indices and the model's logits on it, it returns the posterior
    over the true label given each record's noisy vector ``z``, with the model's current prediction
    ``softmax(logits)`` as the prior, as in the paper (its ``mapwithprior``):
    ``P(y = k | z) ∝ softmax(logits)_k exp(-||z - e_k||_1 / b)``, ``b = sigma / sqrt 2``
    (``farm.privacy.alibi.alibi_soft_labels``, here in torch on the logits' device). The prior is
    detached: the target is a constant of the step, and cross-entropy against it is the loss.
    """

    noisy: np.ndarray
    sigma: float

    def __call__(self, batch: np.ndarray, logits: torch.Tensor) -> torch.Tensor:
        z = torch.from_numpy(self.noisy[batch]).to(device=logits.device, dtype=torch.float32)
        return alibi_posterior(z, logits, self.sigma)


def alibi_posterior(noisy: torch.Tensor, logits: torch.Tensor, sigma: float) -> torch.Tensor:
    """``[B, C]`` ALIBI soft labels: the posterior over the true label given ``noisy`` (``[B, C]``
    noisy one-hot vectors at noise ``sigma``), with prior ``softmax(logits)`` (detached); rows sum
    to 1. Equals ``farm.privacy.alibi.alibi_soft_labels(noisy, softmax(logits), sigma=sigma)``."""
    log_prior = torch.log_softmax(logits.detach().float(), dim=-1)
    eye = torch.eye(noisy.shape[-1], device=noisy.device, dtype=noisy.dtype)
    dist = (noisy[:, None, :] - eye[None, :, :]).abs().sum(-1)  # ||z - e_k||_1
    return torch.softmax(log_prior - dist / alibi_scale(sigma), dim=-1)


def _make_private(
    model: Any, optimizer: Any, n: int, recipe: Recipe, plan: DPSchedule, perf: Perf
) -> tuple:
    """Wrap model, optimizer and criterion with Opacus; batches are drawn by ``_batches``, not
    Opacus."""
    # lazy: loads torch
    from opacus import PrivacyEngine

    # lazy: loads torch
    from torch.utils.data import DataLoader, TensorDataset

    assert recipe.dp is not None
    loader = DataLoader(
        TensorDataset(torch.arange(n)), batch_size=recipe.batch_size
    )  # sets expected batch
    engine = PrivacyEngine(accountant=recipe.dp.accountant)
    wrapped = engine.make_private(
        module=model,
        optimizer=optimizer,
        criterion=torch.nn.CrossEntropyLoss(),
        data_loader=loader,
        noise_multiplier=plan.noise_multiplier,
        max_grad_norm=recipe.dp.clip,
        poisson_sampling=False,
        grad_sample_mode=perf.grad_sample_mode,
    )
    model, optimizer = wrapped[0], wrapped[1]
    criterion = wrapped[2] if perf.grad_sample_mode == "ghost" else torch.nn.CrossEntropyLoss()
    optimizer.expected_batch_size = (
        recipe.batch_size
    )  # Opacus derives int(n / len(loader)); use the true B
    return model, optimizer, criterion


def _zero_grads(model: torch.nn.Module, *, per_sample: bool) -> None:
    """Zero gradients for a noise-only step; hooks mode also needs one zero per-sample gradient to
    clip."""
    for p in model.parameters():
        if p.requires_grad:
            p.grad = torch.zeros_like(p)
            if per_sample:
                p.grad_sample = torch.zeros((1, *p.shape), device=p.device, dtype=p.dtype)  # type: ignore[attr-defined]


def _schedule(optimizer: Any, recipe: Recipe, total_steps: int) -> Any:
    inner = getattr(optimizer, "original_optimizer", optimizer)
    if recipe.schedule == "linear":
        return torch.optim.lr_scheduler.LambdaLR(inner, lambda s: max(0.0, 1 - s / total_steps))
    return torch.optim.lr_scheduler.LambdaLR(inner, lambda s: 1.0)


def autocast(device: torch.device, precision: str) -> Any:
    """The forward pass's context for ``precision`` (``farm.spec.recipes.Recipe``): bfloat16
    autocast on ``device`` (CUDA or CPU) for ``bf16``, nothing otherwise."""
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


@contextlib.contextmanager
def matmul_precision(precision: str) -> Iterator[None]:
    """float32 matmuls in TF32 for ``tf32``, at full precision otherwise (CUDA; CPU matmuls are
    always full float32), restored on exit: a worker that runs jobs of both precisions one after
    another stays exact."""
    before = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("high" if precision == "tf32" else "highest")
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(before)


def resolve_device(name: str) -> torch.device:
    """``auto``: CUDA when available, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _metadata(
    recipe: Recipe,
    n: int,
    steps: int,
    seen: int,
    seconds: float,
    device: torch.device,
    plan: DPSchedule | None,
) -> dict:
    """``farm.json``: the recipe, what the run took, and for DP its mechanism (noise multiplier,
    clip, logical batch, sampling, steps) with the epsilon it spends on its own ``n`` records
    (``q = batch / n``, the steps taken) and what that epsilon rests on
    (``farm.defences.seam.dp_assumptions``: accountant, sampling, add/remove adjacency)."""
    meta = {
        "recipe": to_dict(recipe),
        "n_train": n,
        "steps": steps,
        "examples_seen": seen,
        "seconds": round(seconds, 3),
        "sequences_per_second": round(seen / max(seconds, 1e-9), 2),
        "device": device.type,
    }
    if plan is not None and recipe.dp is not None:
        meta["dp"] = {
            "noise_multiplier": plan.noise_multiplier,
            "sample_rate": plan.sample_rate,
            "accounted_steps": plan.steps,
            "clip": recipe.dp.clip,
            "batch_size": recipe.batch_size,
            "sampling": recipe.dp.sampling,
            "accountant": recipe.dp.accountant,
            "epsilon": DPSchedule(plan.noise_multiplier, plan.sample_rate, steps).epsilon(
                recipe.dp
            ),
            "delta": recipe.dp.delta,
            **dp_assumptions(recipe),
        }
    return meta
