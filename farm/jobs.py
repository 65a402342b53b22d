"""Job specs: small frozen dataclasses with content-addressed keys. Pure (no torch, no Ray).

A key is the sha256 of canonical JSON of the job's *semantic* fields plus a spec version (``farm.recipes``):
the population, the exact record selection, the recipe with its seed, and the identity of every input
(tokenizer, base model, model to run). Performance settings travel separately (``Perf``) and never enter a key.
References to inputs are strings: ``store:<key>`` for an artifact of the store, or ``path:<dir>@<sha256>`` for a
local directory pinned by its content fingerprint, or a hub name.
"""

from __future__ import annotations

import base64
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from farm.errors import SpecError
from farm.recipes import Recipe, canonical_key, to_dict


@dataclass(frozen=True)
class Selection:
    """A set of population indices (sorted, no repeats) as a packed bit mask: ~8.5 KB for 68,221 records."""

    n_total: int
    bits: str

    @classmethod
    def of(cls, n_total: int, indices: np.ndarray) -> Selection:
        indices = np.asarray(indices, dtype=np.int64)
        if indices.size and (indices.min() < 0 or indices.max() >= n_total):
            raise SpecError(f"selection indices must lie in [0, {n_total})")
        mask = np.zeros(n_total, dtype=bool)
        mask[indices] = True
        return cls(int(n_total), base64.b64encode(zlib.compress(np.packbits(mask).tobytes(), 9)).decode())

    def indices(self) -> np.ndarray:
        """Sorted int64 indices."""
        packed = np.frombuffer(zlib.decompress(base64.b64decode(self.bits)), dtype=np.uint8)
        return np.flatnonzero(np.unpackbits(packed)[: self.n_total]).astype(np.int64)


@dataclass(frozen=True)
class TokenizerJob:
    """Train a byte-level BPE tokenizer on a population (the mini challenge's tokenizer)."""

    population: Mapping[str, Any]
    vocab_size: int = 4096
    label: str = field(default="tokenizer", compare=False)

    @property
    def key(self) -> str:
        return canonical_key("tokenizer", {"population": dict(self.population), "vocab_size": self.vocab_size})


@dataclass(frozen=True)
class TrainJob:
    """Train one model with ``recipe`` on ``selection`` of ``population``. ``base`` stands for model name ``base``."""

    population: Mapping[str, Any]
    tokenizer: str
    selection: Selection
    recipe: Recipe
    base: str | None = None
    label: str = field(default="", compare=False)

    @property
    def key(self) -> str:
        return canonical_key("train", {"population": dict(self.population), "tokenizer": self.tokenizer,
                                       "selection": to_dict(self.selection), "recipe": to_dict(self.recipe),
                                       "base": self.base})


@dataclass(frozen=True)
class InferJob:
    """Logits of ``model`` on ``selection`` of ``population`` (rows in sorted index order)."""

    population: Mapping[str, Any]
    tokenizer: str
    model: str
    selection: Selection
    max_length: int = 67
    label: str = field(default="", compare=False)

    @property
    def key(self) -> str:
        return canonical_key("infer", {"population": dict(self.population), "tokenizer": self.tokenizer,
                                       "model": self.model, "selection": to_dict(self.selection),
                                       "max_length": self.max_length})


Job = TokenizerJob | TrainJob | InferJob


def store_ref(key: str) -> str:
    """A reference to a store artifact."""
    return f"store:{key}"


def path_ref(path: str, digest: str) -> str:
    """A reference to a local directory pinned by its content fingerprint."""
    return f"path:{path}@{digest}"
