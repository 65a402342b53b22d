"""``farm bench``: measure the throughput table (``farm.spec.costs``) on this machine, with
``farm.training.train`` and ``farm.training.infer`` themselves.

Models have random weights built from ``RobertaConfig`` (no hub, no download): ``tiny`` (the mini
challenge's 2-layer, 64-wide RoBERTa, vocabulary 4,096) always, ``roberta-base`` (``RobertaConfig``
defaults) on request. Inputs are random token ids with SST-2-like lengths (mean ~25 tokens, at most
67), trained one epoch in batches of 96 (DP: noise multiplier 1, ghost clipping, the same batches)
and inferred four times over in batches of 512. Each mode runs once to warm up, then ``RUNS``
times: sequences / seconds of the fastest run (model set-up included, saving excluded).
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from farm.spec.costs import MODES, Rate, Shape, Table
from farm.spec.recipes import DPConfig, ModelSpec, Perf, Recipe
from farm.training.data import Tokenized

log = logging.getLogger(__name__)
SHAPES = {
    "tiny": Shape(
        vocab_size=4_096,
        hidden_size=64,
        num_hidden_layers=2,
        intermediate_size=256,
        max_position_embeddings=70,
    ),
    "roberta-base": Shape(),
}
HEADS = {"tiny": 2, "roberta-base": 12}
INFER_REPEATS = 4
RUNS = 2


def bench(kinds: Sequence[str], *, sequences: int = 384, device: str = "auto") -> Table:
    """A table of every mode of ``MODES`` for each model kind, measured on ``device`` over
    ``sequences``; logs (INFO) a line as each mode starts and one with its rate."""
    # lazy: loads torch
    from farm.training.train import resolve_device

    where = describe(resolve_device(device))
    rates: dict[str, dict[str, Rate]] = {}
    with tempfile.TemporaryDirectory(prefix="farm-bench-") as tmp:
        for kind in kinds:
            model_dir = _random_model(kind, Path(tmp) / kind)
            tokens = random_tokens(sequences, SHAPES[kind].vocab_size)
            rates[kind] = {}
            for i, mode in enumerate(MODES, 1):  # a line per mode: each takes seconds to minutes
                log.info(
                    "bench %s %s (%d/%d): 1 warm-up + %d runs of %d sequences on %s...",
                    kind,
                    mode,
                    i,
                    len(MODES),
                    RUNS,
                    sequences,
                    where,
                )
                rate = _measure(mode, model_dir, tokens, Path(tmp), device)
                rates[kind][mode] = Rate(round(rate, 1), f"measured on {where}")
                log.info("bench %s %s: %s sequences/s", kind, mode, f"{rate:,.0f}")
    return Table(where, rates)


def random_tokens(n: int, vocab: int, seed: int = 0) -> Tokenized:
    """``n`` records of random ids in ``[5, vocab)`` framed by ``<s>``/``</s>`` (0, 2), lengths like
    SST-2's."""
    rng = np.random.default_rng(seed)
    lengths = np.clip(np.round(rng.lognormal(np.log(22), 0.5, n)), 4, 67).astype(np.int64)
    ids = tuple(
        np.concatenate([[0], rng.integers(5, vocab, k - 2), [2]]).astype(np.int32) for k in lengths
    )
    return Tokenized(ids, lengths, rng.integers(0, 2, n), pad_id=1)


def describe(device: object) -> str:
    """``cuda (NVIDIA H100 80GB HBM3)`` or ``cpu (2 threads)``: the device a table was measured
    on."""
    # lazy: loads torch
    import torch

    if getattr(device, "type", "") == "cuda":
        return f"cuda ({torch.cuda.get_device_name()})"
    return f"cpu ({torch.get_num_threads()} threads)"


def _random_model(kind: str, out: Path) -> Path:
    return random_model(SHAPES[kind], HEADS[kind], out)


def random_model(shape: Shape, heads: int, out: Path) -> Path:
    """Save to ``out`` (and return it) a 2-label ``RobertaForSequenceClassification`` of ``shape``
    with ``heads`` attention heads, built from a ``RobertaConfig`` with random weights (seeded by
    the caller's torch seed; no hub, no download); its special ids are ``random_tokens``' (``<s>``
    0, ``<pad>`` 1, ``</s>`` 2), so ``shape.max_position_embeddings`` must exceed the longest input
    by 2."""
    # lazy: loads torch
    from transformers import RobertaConfig, RobertaForSequenceClassification

    config = RobertaConfig(
        vocab_size=shape.vocab_size,
        hidden_size=shape.hidden_size,
        num_hidden_layers=shape.num_hidden_layers,
        num_attention_heads=heads,
        intermediate_size=shape.intermediate_size,
        max_position_embeddings=shape.max_position_embeddings,
        type_vocab_size=shape.type_vocab_size,
        num_labels=shape.num_labels,
    )  # type: ignore[call-arg]
    RobertaForSequenceClassification(config).save_pretrained(out, safe_serialization=True)
    return out


def _measure(mode: str, model_dir: Path, tokens: Tokenized, tmp: Path, device: str) -> float:
    """Sequences per second of ``mode``: the fastest of ``RUNS`` runs after a warm-up (the least
    disturbed by other work on the machine)."""
    stage, _, variant = mode.partition("_")
    times = []
    for attempt in range(1 + RUNS):
        start = time.perf_counter()
        if stage == "train":
            times.append(_train(variant, model_dir, tokens, tmp / f"{mode}-{attempt}", device))
        else:
            _infer(variant, model_dir, tokens, device)
            times.append((time.perf_counter() - start) / INFER_REPEATS)
    return len(tokens) / min(times[1:])


def _train(variant: str, model_dir: Path, tokens: Tokenized, out: Path, device: str) -> float:

    # lazy: loads torch
    from farm.training.train import train

    dp = DPConfig(noise_multiplier=1.0, delta=1e-5) if variant == "dp" else None
    recipe = Recipe(
        model=ModelSpec(name=str(model_dir)),
        epochs=1,
        batch_size=96,
        dp=dp,
        precision="fp32" if variant == "dp" else variant,
    )
    trained = train(
        tokens,
        np.arange(len(tokens)),
        recipe,
        out_dir=out,
        tokenizer=None,
        perf=Perf(device=device),
    )
    return float(json.loads((trained / "farm.json").read_text())["seconds"])


def _infer(precision: str, model_dir: Path, tokens: Tokenized, device: str) -> None:
    # lazy: loads torch
    from farm.training.infer import logits_of

    indices = np.tile(np.arange(len(tokens)), INFER_REPEATS)  # inference is fast: time more of it
    logits_of(model_dir, tokens, indices, perf=Perf(device=device), precision=precision)
