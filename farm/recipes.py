"""Typed, frozen options: model, DP and training recipes. Pure (no torch), validated once in ``__post_init__``.

Fields that change results (*semantic*) are kept apart from fields that only change speed (*performance*):
only semantic fields enter a job's key. ``Recipe`` is semantic; ``Perf`` is performance.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from farm.errors import SpecError

T = TypeVar("T")
SPEC_VERSION = 1


@dataclass(frozen=True)
class TinyModel:
    """A small RoBERTa built in code (the mini challenge); vocabulary comes from the population's tokenizer."""

    hidden_size: int = 64
    num_hidden_layers: int = 2
    num_attention_heads: int = 2
    intermediate_size: int = 256

    def __post_init__(self) -> None:
        _require(self.hidden_size % self.num_attention_heads == 0, "tiny.hidden_size must divide by heads")
        _require(min(dataclasses.astuple(self)) > 0, "tiny sizes must be positive")


@dataclass(frozen=True)
class ModelSpec:
    """``name``: a hub name or local HF directory to start from (``roberta-base``), or ``"tiny"``.

    ``tokenizer``: a hub name or local directory; ``None`` means the challenge's own tokenizer (mini) or ``name``.
    """

    name: str = "tiny"
    tokenizer: str | None = None
    tiny: TinyModel = field(default_factory=TinyModel)
    dropout: float | None = None  # None: the model's default (MICO kept roberta-base's 0.1)

    def __post_init__(self) -> None:
        _require(bool(self.name), "model.name must be set")
        _require(self.dropout is None or 0.0 <= self.dropout < 1.0, "model.dropout must be in [0, 1)")


@dataclass(frozen=True)
class DPConfig:
    """DP-SGD with Opacus. Exactly one of ``target_epsilon`` / ``noise_multiplier``.

    ``max_grad_norm * clip_scale`` is the clip on true per-example gradients. MICO clipped at 0.1 the gradients
    of a loss divided by 64 (its accumulation steps): ``max_grad_norm=0.1, clip_scale=64`` reproduces it.
    ``sampling``: ``shuffle`` (fixed-size shuffled batches, as MICO trained) or ``poisson``; either way the
    accountant assumes Poisson sampling with ``q = batch_size / n_train`` (as MICO accounted).
    """

    target_epsilon: float | None = None
    noise_multiplier: float | None = None
    delta: float = 1e-5
    max_grad_norm: float = 1.0
    clip_scale: float = 1.0
    sampling: str = "shuffle"
    accountant: str = "prv"

    def __post_init__(self) -> None:
        _require((self.target_epsilon is None) != (self.noise_multiplier is None),
                 "dp needs exactly one of target_epsilon and noise_multiplier")
        _require(self.target_epsilon is None or self.target_epsilon > 0, "dp.target_epsilon must be > 0")
        _require(self.noise_multiplier is None or self.noise_multiplier >= 0, "dp.noise_multiplier must be >= 0")
        _require(0 < self.delta < 1, "dp.delta must be in (0, 1)")
        _require(self.max_grad_norm > 0 and self.clip_scale > 0, "dp.max_grad_norm and clip_scale must be > 0")
        _require(self.sampling in ("shuffle", "poisson"), "dp.sampling must be shuffle or poisson")
        _require(self.accountant in ("prv", "rdp", "gdp"), "dp.accountant must be prv, rdp or gdp")

    @property
    def clip(self) -> float:
        """The clip applied to true per-example gradients."""
        return self.max_grad_norm * self.clip_scale


@dataclass(frozen=True)
class Recipe:
    """How one model is trained (all fields semantic). AdamW, HF defaults unless set; no warm-up.

    ``group_by_length``: batches drawn at random, then grouped by length within windows of 50 batches (HF's
    ``group_by_length``); far less padding, slightly less random batch composition.
    """

    model: ModelSpec = field(default_factory=ModelSpec)
    epochs: int = 3
    learning_rate: float = 5e-5
    schedule: str = "constant"
    batch_size: int = 96
    max_length: int = 67
    weight_decay: float = 0.0
    group_by_length: bool = True
    seed: int = 0
    dp: DPConfig | None = None

    def __post_init__(self) -> None:
        _require(self.epochs >= 1, "epochs must be >= 1")
        _require(self.learning_rate > 0, "learning_rate must be > 0")
        _require(self.schedule in ("constant", "linear"), "schedule must be constant or linear")
        _require(self.batch_size >= 1 and self.max_length >= 4, "batch_size >= 1 and max_length >= 4")


@dataclass(frozen=True)
class Perf:
    """Performance-only options: never part of a key. ``micro_batch``: largest physical batch (gradient
    accumulation above it); ``device``: ``auto`` picks CUDA when present; ``bf16`` autocast on CUDA only."""

    micro_batch: int = 256
    infer_batch: int = 512
    device: str = "auto"
    bf16: bool = True
    grad_sample_mode: str = "ghost"

    def __post_init__(self) -> None:
        _require(self.micro_batch >= 1 and self.infer_batch >= 1, "micro_batch and infer_batch must be >= 1")
        _require(self.grad_sample_mode in ("ghost", "hooks"), "grad_sample_mode must be ghost or hooks")


def from_dict(cls: type[T], data: Mapping[str, Any] | None, where: str = "") -> T:
    """Build a (nested) frozen dataclass from a plain dict, naming ``where`` and the key on any error."""
    data = dict(data or {})
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise SpecError(f"{where or cls.__name__}: unknown key(s) {unknown} (expected {sorted(fields)})")
    kwargs = {}
    for name, value in data.items():
        sub = _nested_type(cls, name)
        nested_where = f"{where}.{name}" if where else name
        kwargs[name] = from_dict(sub, value, nested_where) if sub and value is not None else value
    try:
        return cls(**kwargs)
    except (SpecError, TypeError, ValueError) as exc:
        raise SpecError(f"{where or cls.__name__}: {exc}") from exc


def to_dict(obj: Any) -> dict[str, Any]:
    """A frozen dataclass as plain JSON-ready data."""
    return dataclasses.asdict(obj)


def canonical_key(kind: str, payload: Mapping[str, Any]) -> str:
    """sha256 of canonical JSON of ``payload`` with the kind and spec version (never ``hash()``)."""
    text = json.dumps({"kind": kind, "v": SPEC_VERSION, **payload}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


_NESTED = {("Recipe", "model"): ModelSpec, ("Recipe", "dp"): DPConfig, ("ModelSpec", "tiny"): TinyModel}


def _nested_type(cls: type, name: str) -> type | None:
    return _NESTED.get((cls.__name__, name))


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise SpecError(message)
