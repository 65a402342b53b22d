"""Typed, frozen options: model, DP and training recipes. Pure (no torch), validated once in
``__post_init__``.

Fields that change results (*semantic*) are kept apart from fields that only change speed
(*performance*): only semantic fields enter a job's key. ``Recipe`` is semantic; ``Perf`` is
performance.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from farm.errors import require

SPEC_VERSION = 1
PRECISIONS = ("fp32", "bf16", "tf32")  # see ``Recipe``
LABEL_MECHANISMS = ("randomized_response", "alibi")  # see ``LabelNoise``


@dataclass(frozen=True)
class TinyModel:
    """A small RoBERTa built in code (the mini challenge); vocabulary comes from the population's
    tokenizer."""

    hidden_size: int = 64
    num_hidden_layers: int = 2
    num_attention_heads: int = 2
    intermediate_size: int = 256

    def __post_init__(self) -> None:
        for name, value in dataclasses.asdict(self).items():
            require(value > 0, name, "a positive integer", value)
        require(
            self.hidden_size % self.num_attention_heads == 0,
            "hidden_size",
            f"a multiple of num_attention_heads ({self.num_attention_heads})",
            self.hidden_size,
        )


@dataclass(frozen=True)
class ModelSpec:
    """``name``: where training starts: ``"base"`` (the challenge's base model: roberta-base for a
    release tree, or the local copy its assets name; a mini challenge's pre-trained tiny model),
    ``"tiny"`` (a small RoBERTa built in code), a local HF directory (loaded with
    ``local_files_only``) or a hub name.

    There is no tokenizer setting: every model of a challenge, shadows included, reads records
    through the challenge's own tokenizer (inference uses it for every model), so a recipe cannot
    choose another one.
    """

    name: str = "tiny"
    tiny: TinyModel = field(default_factory=TinyModel)
    dropout: float | None = None  # None: the model's default (MICO kept roberta-base's 0.1)

    def __post_init__(self) -> None:
        require(
            bool(self.name),
            "name",
            "a model name (roberta-base, tiny, base or a directory)",
            self.name,
        )
        require(
            self.dropout is None or 0.0 <= self.dropout < 1.0,
            "dropout",
            "a fraction in [0, 1)",
            self.dropout,
        )


@dataclass(frozen=True, kw_only=True)
class DPConfig:
    """DP-SGD with Opacus. Exactly one of ``target_epsilon`` / ``noise_multiplier``; ``delta`` is
    required.

    ``max_grad_norm * clip_scale`` is the clip on true per-example gradients. MICO clipped at 0.1
    the gradients of a loss divided by 64 (its accumulation steps):
    ``max_grad_norm=0.1, clip_scale=64`` reproduces it. ``sampling``: ``poisson`` (default: each
    step includes each record independently with ``q = batch_size / n_train``, what the accountant
    assumes) or ``shuffle`` (fixed-size shuffled batches, as MICO trained; accounted as if
    Poisson-sampled, as MICO accounted, which is not a proof for the run:
    ``farm.privacy.accounting.assumptions`` says so wherever its epsilon is written).
    ``accountant``: Opacus' ``prv`` (default), ``rdp`` or ``gdp``; all three account add/remove
    adjacency (neighbouring training sets differ by one record added or removed).
    """

    target_epsilon: float | None = None
    noise_multiplier: float | None = None
    delta: float = field(kw_only=True)  # no default: a DP guarantee is (epsilon, delta)
    max_grad_norm: float = 1.0
    clip_scale: float = 1.0
    sampling: str = "poisson"
    accountant: str = "prv"

    def __post_init__(self) -> None:
        require(
            (self.target_epsilon is None) != (self.noise_multiplier is None),
            "noise_multiplier",
            "exactly one of target_epsilon and noise_multiplier",
        )
        require(
            self.target_epsilon is None or self.target_epsilon > 0,
            "target_epsilon",
            "> 0",
            self.target_epsilon,
        )
        require(
            self.noise_multiplier is None or self.noise_multiplier >= 0,
            "noise_multiplier",
            ">= 0",
            self.noise_multiplier,
        )
        require(0 < self.delta < 1, "delta", "a probability in (0, 1), such as 1.0e-5", self.delta)
        require(self.max_grad_norm > 0, "max_grad_norm", "> 0", self.max_grad_norm)
        require(self.clip_scale > 0, "clip_scale", "> 0", self.clip_scale)
        require(
            self.sampling in ("shuffle", "poisson"), "sampling", "shuffle or poisson", self.sampling
        )
        require(
            self.accountant in ("prv", "rdp", "gdp"),
            "accountant",
            "prv, rdp or gdp",
            self.accountant,
        )

    @property
    def clip(self) -> float:
        """The clip applied to true per-example gradients."""
        return self.max_grad_norm * self.clip_scale


@dataclass(frozen=True)
class LabelNoise:
    """Noise on training labels (a recipe's ``label_noise``) at label-DP ``epsilon`` (pure: delta
    0; neighbouring datasets differ in one record's label), drawn once per population record from
    a stream seeded by the recipe's seed, so a record's noise does not depend on which other records
    are trained on and stays fixed for every epoch. ``mechanism``:

    * ``randomized_response``: each binary label flipped with probability ``1 / (e^eps + 1)``
      (``farm.privacy.label_dp``); the loop trains on the flipped labels;
    * ``alibi`` (Malek et al. 2021): ``onehot(y) + Laplace(sigma / sqrt 2)`` per coordinate,
      ``sigma = 2 sqrt(2) / epsilon`` (``farm.privacy.alibi``); each step's target is the
      posterior over the true label given that noisy vector, with the model's current prediction
      as the prior (``farm.training.train``), under soft-label cross-entropy. It combines with a
      ``dp`` block (DP-SGD clips the per-example gradients of that loss; both guarantees hold).

    Only ``epsilon`` and ``mechanism`` are fields: a recipe's key holds both, so adding a mechanism
    moved no key of a recipe written before it (``recipe_identity``)."""

    epsilon: float
    mechanism: str = "randomized_response"

    def __post_init__(self) -> None:
        require(
            self.mechanism in LABEL_MECHANISMS,
            "mechanism",
            " or ".join(LABEL_MECHANISMS),
            self.mechanism,
        )
        require(self.epsilon > 0, "epsilon", "a number > 0 (label-DP epsilon)", self.epsilon)


@dataclass(frozen=True, kw_only=True)
class Recipe:
    """How one model is trained (all fields semantic). AdamW (torch's defaults, as HF's Trainer:
    betas (0.9, 0.999), eps 1e-8), no warm-up.

    ``steps``: optimizer steps in all, overriding ``epochs`` (``None``:
    ``epochs x ceil(n / batch_size)``). Batches then come from consecutive epochs, each a fresh
    shuffle of the training set ending with its partial batch, until ``steps`` have been taken: a
    DP-matched shadow (``farm.training.train.matched_recipe``) takes the targets' step count on its
    own, smaller training set, so it makes slightly more passes over it. ``grad_clip``: clip the
    global gradient norm of each (non-DP) step to this value, as HF's Trainer did by default
    (``max_grad_norm=1.0``); ``None``: no clip. DP-SGD clips per example (``dp.max_grad_norm``)
    instead, so a recipe cannot have both. ``group_by_length``: batches drawn at random, then
    grouped by length within windows of 50 batches (HF's ``group_by_length``): far less padding (the
    main CPU speed-up) for slightly less random batch composition. It trades fidelity for speed:
    MICO's Trainer did not group (HF's default), so set it false to reproduce the targets' training
    exactly. With a ``dp`` block it must be false (refused otherwise): length-grouped batches are
    data-dependent, and no DP accountant covers them. Omitted (``None``), it is true without ``dp``
    and false with it, so a recipe without DP keeps the key it had.

    ``precision`` (semantic: it changes the weights, so it is part of a training's key):

    * ``fp32`` (default, as MICO trained): float32 throughout; on CUDA, matmuls at full float32
      precision (no TF32);
    * ``bf16``: autocast to bfloat16 for the forward pass (weights, gradients and AdamW stay
      float32), on CUDA and on CPU alike (torch autocasts on both);
    * ``tf32``: float32 with CUDA matmuls in TF32 (``torch.set_float32_matmul_precision("high")``).
      TF32 is a CUDA matmul mode only: on CPU a ``tf32`` job computes exactly what ``fp32`` does,
      yet is stored under its ``tf32`` key (TF32 *allows* reduced matmul precision; full precision
      is one admissible result).

    ``label_noise``: train on noisy labels (``LabelNoise``: randomized response or ALIBI,
    label-DP); ``None``: true labels. A recipe without it has the key it had before the field
    existed (``recipe_identity``).
    """

    model: ModelSpec = field(default_factory=ModelSpec)
    epochs: int = 3
    learning_rate: float = 5e-5
    schedule: str = "constant"
    batch_size: int = 96
    max_length: int = 67
    weight_decay: float = 0.0
    group_by_length: bool | None = None  # resolved in __post_init__: true without dp, false with it
    seed: int = 0
    dp: DPConfig | None = None
    precision: str = "fp32"
    steps: int | None = None
    grad_clip: float | None = None
    label_noise: LabelNoise | None = None

    def __post_init__(self) -> None:
        require(self.precision in PRECISIONS, "precision", " or ".join(PRECISIONS), self.precision)
        require(self.epochs >= 1, "epochs", "an integer >= 1", self.epochs)
        require(self.learning_rate > 0, "learning_rate", "a number > 0", self.learning_rate)
        require(
            self.schedule in ("constant", "linear"), "schedule", "constant or linear", self.schedule
        )
        require(self.batch_size >= 1, "batch_size", "an integer >= 1", self.batch_size)
        require(self.max_length >= 4, "max_length", "an integer >= 4", self.max_length)
        require(self.weight_decay >= 0, "weight_decay", "a number >= 0", self.weight_decay)
        require(
            self.steps is None or self.steps >= 1,
            "steps",
            "an integer >= 1 (or null: epochs decide)",
            self.steps,
        )
        require(
            self.grad_clip is None or self.grad_clip > 0,
            "grad_clip",
            "a number > 0 (or null: no clip)",
            self.grad_clip,
        )
        require(
            self.grad_clip is None or self.dp is None,
            "grad_clip",
            "null with a dp block (DP-SGD clips per example: dp.max_grad_norm)",
            self.grad_clip,
        )
        if self.group_by_length is None:
            object.__setattr__(self, "group_by_length", self.dp is None)
        require(
            not (self.group_by_length and self.dp is not None),
            "group_by_length",
            "false with a dp block: length-grouped batches are data-dependent, and no DP "
            "accountant covers them",
            self.group_by_length,
        )

    def total_steps(self, n: int) -> int:
        """Optimizer steps on ``n`` records: ``steps`` when set, else ``epochs x ceil(n /
        batch_size)`` (the last batch of an epoch partial, as HF's Trainer)."""
        return (
            self.steps if self.steps is not None else self.epochs * math.ceil(n / self.batch_size)
        )


@dataclass(frozen=True)
class Perf:
    """Performance-only options: never part of a key. ``micro_batch``: largest physical batch
    (gradient accumulation above it); ``device``: ``auto`` picks CUDA when present. Numeric
    precision changes results, so it is not here: it is ``Recipe.precision`` (training) and
    ``InferJob.precision`` (inference)."""

    micro_batch: int = 256
    infer_batch: int = 512
    device: str = "auto"
    grad_sample_mode: str = "ghost"

    def __post_init__(self) -> None:
        require(self.micro_batch >= 1, "micro_batch", "an integer >= 1", self.micro_batch)
        require(self.infer_batch >= 1, "infer_batch", "an integer >= 1", self.infer_batch)
        require(
            self.grad_sample_mode in ("ghost", "hooks"),
            "grad_sample_mode",
            "ghost or hooks",
            self.grad_sample_mode,
        )


def to_dict(obj: Any) -> dict[str, Any]:
    """A frozen dataclass as plain JSON-ready data."""
    return dataclasses.asdict(obj)


def recipe_identity(recipe: Recipe) -> dict[str, Any]:
    """What a recipe contributes to a job key: its fields, without ``label_noise`` when unset (keys
    of recipes written before that field existed stay as they were)."""
    data = to_dict(recipe)
    if data["label_noise"] is None:
        del data["label_noise"]
    return data


def canonical_key(kind: str, payload: Mapping[str, Any]) -> str:
    """sha256 of canonical JSON of ``payload`` with the kind and spec version (never ``hash()``)."""
    text = json.dumps(
        {"kind": kind, "v": SPEC_VERSION, **payload}, sort_keys=True, separators=(",", ":")
    )
    return hashlib.sha256(text.encode()).hexdigest()
