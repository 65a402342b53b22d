"""What a run will cost: model sizes, bytes stored, and a throughput table with its arithmetic.
Pure.

A *throughput table* holds sequences per second per model kind (``roberta-base``, ``tiny``) and mode
(``MODES``: training in each precision, DP training, inference in each precision) on one GPU (or on
the machine ``farm bench`` ran on). ``farm bench`` measures it and writes it as JSON
(``Table.to_json``); entries it did not measure fall back to ``DEFAULTS``.

**The defaults are ESTIMATES, not measurements**: no GPU machine was available when they were
written. They are derived from FLOPs for one NVIDIA H100 SXM as follows.

* roberta-base has N = 124,647,170 parameters (``ROBERTA_BASE.params``; 498.6 MB of float32
  weights).
* SST-2 sentences average about 25 roberta tokens; with dynamic padding in length-grouped batches
  (the farm's batches; MICO padded every input to 67) a sequence costs about T = 27 token positions.
* Training costs 6 N T FLOPs per sequence (forward 2 N T, backward 4 N T): 2.02e10. Inference costs
  2 N T: 6.73e9. (6 N over-counts the 39M embedding parameters, which cost no matmul; that slack
  stands for attention, softmax and layer norms, which 6 N leaves out.)
* H100 SXM dense peaks: bf16 989 TFLOP/s, TF32 495 TFLOP/s, plain float32 (no tensor cores) 67
  TFLOP/s.
* Assumed model FLOP utilisation (MFU): 15% for bf16 and TF32 training (a 125M model on batches of
  ~2,600 tokens is bound by kernel launches and the optimizer as much as by matmuls), 40% for
  float32 training (SIMT float32 GEMMs run closer to their much lower peak), 25% / 25% / 50% for
  bf16 / TF32 / float32 inference.
* So: training fp32 66.9e12 * 0.40 / 2.02e10 = 1,330 seq/s; bf16 989e12 * 0.15 / 2.02e10 = 7,350
  seq/s; tf32 495e12 * 0.15 / 2.02e10 = 3,680 seq/s. A 3-epoch fine-tune on SST-2's 67,349 sentences
  (202,047 sequences) takes ~27 s in bf16 at this MFU, ~4 s at 100% (the FLOP floor).
* DP-SGD with ghost clipping (MICO's hi/lo recipes: float32, logical batch 1024) adds about one
  backward pass for the per-example norms: half the float32 rate, 665 seq/s.
* Inference: fp32 66.9e12 * 0.50 / 6.73e9 = 4,970 seq/s; bf16 989e12 * 0.25 / 6.73e9 = 36,700 seq/s;
  tf32 495e12 * 0.25 / 6.73e9 = 18,400 seq/s.
* ``tiny`` (the mini challenge's 2-layer, 64-wide RoBERTa) does so few FLOPs that a GPU runs it at
  the speed of kernel launches and Python: ~5 ms per optimizer step of 32-96 sequences, so ~15,000
  seq/s training in any precision, ~5,000 seq/s with DP, ~100,000 seq/s inference (batches of 512).
  Rough guesses: measure them with ``farm bench``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

KINDS = ("roberta-base", "tiny")
MODES = (
    "train_fp32",
    "train_bf16",
    "train_tf32",
    "train_dp",
    "infer_fp32",
    "infer_bf16",
    "infer_tf32",
)
ESTIMATE = "estimate (H100 SXM, from FLOPs; see farm.spec.costs)"
TABLE_VERSION = 1


@dataclass(frozen=True, kw_only=True)
class Shape:
    """A RoBERTa sequence classifier's sizes (HF ``RobertaConfig`` names), for counting
    parameters."""

    vocab_size: int = 50_265
    hidden_size: int = 768
    num_hidden_layers: int = 12
    intermediate_size: int = 3_072
    max_position_embeddings: int = 514
    type_vocab_size: int = 1
    num_labels: int = 2

    @property
    def params(self) -> int:
        """Parameters of ``RobertaForSequenceClassification`` with these sizes (roberta-base:
        124,647,170)."""
        h, i = self.hidden_size, self.intermediate_size
        embeddings = (
            self.vocab_size + self.max_position_embeddings + self.type_vocab_size
        ) * h + 2 * h
        layer = 4 * (h * h + h) + (h * i + i) + (i * h + h) + 4 * h
        head = h * h + h + h * self.num_labels + self.num_labels
        return embeddings + self.num_hidden_layers * layer + head

    @property
    def kind(self) -> str:
        """``roberta-base`` for roberta-base's sizes (any vocabulary), else ``tiny``: the table row
        to use."""
        big = (self.hidden_size, self.num_hidden_layers, self.intermediate_size) == (768, 12, 3072)
        return "roberta-base" if big else "tiny"


ROBERTA_BASE = Shape()


def weights_bytes(shape: Shape) -> int:
    """Bytes of one trained model in the store: float32 weights (config and tokenizer files not
    counted)."""
    return 4 * shape.params


def logits_bytes(records: int) -> int:
    """Bytes of one inference pass in the store: float32 logits ``[records, 2]`` plus int64
    indices."""
    return records * (2 * 4 + 8)


def train_mode(precision: str, dp: bool) -> str:
    """The table mode of a training: ``train_dp`` for any DP recipe, else ``train_<precision>``."""
    return "train_dp" if dp else f"train_{precision}"


def infer_mode(precision: str) -> str:
    return f"infer_{precision}"


@dataclass(frozen=True)
class Rate:
    """Sequences per second of one (kind, mode), and where the number comes from."""

    seq_per_s: float
    source: str = ESTIMATE


def _estimates(**rates: float) -> dict[str, Rate]:
    return {mode: Rate(rates[mode]) for mode in MODES}


DEFAULTS: Mapping[str, Mapping[str, Rate]] = {
    "roberta-base": _estimates(
        train_fp32=1_330,
        train_bf16=7_350,
        train_tf32=3_680,
        train_dp=665,
        infer_fp32=4_970,
        infer_bf16=36_700,
        infer_tf32=18_400,
    ),
    "tiny": _estimates(
        train_fp32=15_000,
        train_bf16=15_000,
        train_tf32=15_000,
        train_dp=5_000,
        infer_fp32=100_000,
        infer_bf16=100_000,
        infer_tf32=100_000,
    ),
}


@dataclass(frozen=True)
class Table:
    """Measured rates (``rates[kind][mode]``) on ``device``; anything missing is looked up in
    ``DEFAULTS``."""

    device: str = "none (defaults only)"
    rates: Mapping[str, Mapping[str, Rate]] = field(default_factory=dict)

    def rate(self, kind: str, mode: str) -> Rate:
        """The measured rate, else the default estimate; ``KeyError`` for an unknown kind or
        mode."""
        measured = self.rates.get(kind, {}).get(mode)
        return measured if measured is not None else DEFAULTS[kind][mode]

    def seconds(self, kind: str, mode: str, sequences: int) -> float:
        """Seconds to process ``sequences`` (trained or inferred) at the table's rate."""
        return sequences / self.rate(kind, mode).seq_per_s

    def to_json(self) -> dict[str, Any]:
        return {
            "version": TABLE_VERSION,
            "device": self.device,
            "rates": {
                k: {m: {"seq_per_s": r.seq_per_s, "source": r.source} for m, r in modes.items()}
                for k, modes in self.rates.items()
            },
        }

    @classmethod
    def from_json(cls, data: Any) -> Table:
        """A table from ``to_json``'s data; ``ValueError`` naming what is wrong (unknown kind or
        mode, a rate that is not a positive number)."""
        if not isinstance(data, Mapping) or data.get("version") != TABLE_VERSION:
            raise ValueError(f"expected a throughput table of version {TABLE_VERSION}")
        rates: dict[str, dict[str, Rate]] = {}
        for kind, modes in dict(data.get("rates", {})).items():
            if kind not in KINDS:
                raise ValueError(f"rates.{kind}: unknown model kind (expected {', '.join(KINDS)})")
            for mode, entry in dict(modes).items():
                value = entry.get("seq_per_s") if isinstance(entry, Mapping) else None
                if mode not in MODES or not isinstance(value, int | float) or value <= 0:
                    raise ValueError(
                        f"rates.{kind}.{mode}: expected a mode among {', '.join(MODES)} with "
                        f"seq_per_s > 0, got {entry!r}"
                    )
                rates.setdefault(kind, {})[mode] = Rate(
                    float(value), str(entry.get("source", "measured"))
                )
        return cls(str(data.get("device", "unknown")), rates)


def wall_seconds(job_seconds: Sequence[float], gpus: int) -> float:
    """Wall time of independent jobs on ``gpus`` GPUs fed by one queue, one job per GPU: the larger
    of the perfectly packed time ``sum / gpus`` and the longest job (a lower bound; dependencies are
    not modelled)."""
    if not job_seconds:
        return 0.0
    return max(sum(job_seconds) / max(gpus, 1), max(job_seconds))
