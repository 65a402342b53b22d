"""Job specs: small frozen dataclasses with content-addressed keys. Pure (no torch, no Ray).

A key is the sha256 of canonical JSON of the job's *semantic* fields plus a spec version
(``farm.spec.recipes``): the population, the exact record selection, the recipe with its seed, and
the identity of every input (tokenizer, base model, model to run). Performance settings travel
separately (``Perf``) and never enter a key. Inputs are references (``Ref``): ``StoreRef`` (an
artifact of the store), ``PathRef`` (a local directory pinned by its content fingerprint) or
``HubRef`` (a hub name). A reference enters a key through its ``token``, which holds only content
(store key, digest, hub name): where a directory lives never changes a key.
"""

from __future__ import annotations

import base64
import zlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from farm.errors import SpecError, require
from farm.privacy.pate import Aggregation
from farm.spec.population import PopulationSpec
from farm.spec.queries import QueryFamily
from farm.spec.recipes import PRECISIONS, Recipe, canonical_key, recipe_identity, to_dict


@dataclass(frozen=True)
class Selection:
    """A set of population indices (sorted, no repeats) as a packed bit mask: ~8.5 KB for 68,221
    records."""

    n_total: int
    bits: str

    @classmethod
    def of(cls, n_total: int, indices: np.ndarray) -> Selection:
        indices = np.asarray(indices, dtype=np.int64)
        if indices.size and (indices.min() < 0 or indices.max() >= n_total):
            raise SpecError(f"selection indices must lie in [0, {n_total})")
        mask = np.zeros(n_total, dtype=bool)
        mask[indices] = True
        return cls(
            int(n_total), base64.b64encode(zlib.compress(np.packbits(mask).tobytes(), 9)).decode()
        )

    def indices(self) -> np.ndarray:
        """Sorted int64 indices."""
        packed = np.frombuffer(zlib.decompress(base64.b64decode(self.bits)), dtype=np.uint8)
        return np.flatnonzero(np.unpackbits(packed)[: self.n_total]).astype(np.int64)


@dataclass(frozen=True)
class StoreRef:
    """An artifact of the store, by key."""

    key: str

    @property
    def token(self) -> str:
        """What enters a job key."""
        return f"store:{self.key}"


@dataclass(frozen=True)
class PathRef:
    """A local directory pinned by ``digest`` (its content fingerprint). ``path`` says where to read
    it and, like a job's ``label``, is neither compared nor part of any key: the same content
    elsewhere is the same input."""

    path: str = field(compare=False)
    digest: str

    @property
    def token(self) -> str:
        return f"sha256:{self.digest}"


@dataclass(frozen=True)
class HubRef:
    """A model or tokenizer by hub name (``roberta-base``), as the hub (or its local cache) serves
    it."""

    name: str

    @property
    def token(self) -> str:
        return self.name


Ref = StoreRef | PathRef | HubRef
REF_TYPES = (StoreRef, PathRef, HubRef)


def _check_population(job: Any) -> None:
    if not isinstance(job.population, PopulationSpec):
        raise SpecError(
            f"{type(job).__name__}.population must be a PopulationSpec "
            f"(PopulationSpec.of(mapping)), got {type(job.population).__name__}"
        )


def _check_refs(job: Any, *names: str) -> None:
    for name in names:
        value = getattr(job, name)
        if value is not None and not isinstance(value, REF_TYPES):
            raise SpecError(
                f"{type(job).__name__}.{name} must be a StoreRef, PathRef or HubRef, got "
                f"{type(value).__name__} {value!r}"
            )


@dataclass(frozen=True)
class TokenizerJob:
    """Train a byte-level BPE tokenizer on a population (the mini challenge's tokenizer)."""

    population: PopulationSpec
    vocab_size: int = 4096
    label: str = field(default="tokenizer", compare=False)

    def __post_init__(self) -> None:
        _check_population(self)

    @property
    def key(self) -> str:
        pop = self.population.identity()
        return canonical_key("tokenizer", {"population": pop, "vocab_size": self.vocab_size})


@dataclass(frozen=True, kw_only=True)
class TrainJob:
    """Train one model with ``recipe`` on ``selection`` of ``population``. ``base`` stands for model
    name ``base``.

    ``labels``: a ``VoteJob``'s entry (PATE's student): train on its labels instead of the
    population's, and only on the records of ``selection`` it answered. ``None``: the population's
    labels. Enters the key only when set.
    """

    population: PopulationSpec
    tokenizer: Ref
    selection: Selection
    recipe: Recipe
    base: Ref | None = None
    labels: StoreRef | None = None
    label: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        _check_population(self)
        _check_refs(self, "tokenizer", "base")
        if self.labels is not None and not isinstance(self.labels, StoreRef):
            raise SpecError(
                f"TrainJob.labels must be a StoreRef (a vote job's entry), got {self.labels!r}"
            )

    @property
    def key(self) -> str:
        pop = self.population.identity()
        payload = {
            "population": pop,
            "tokenizer": self.tokenizer.token,
            "selection": to_dict(self.selection),
            "recipe": recipe_identity(self.recipe),
            "base": self.base.token if self.base else None,
        }
        if self.labels is not None:
            payload["labels"] = self.labels.token
        return canonical_key("train", payload)


@dataclass(frozen=True, kw_only=True)
class InferJob:
    """Logits of ``model`` on ``selection`` of ``population`` (rows in sorted index order).

    ``precision``: ``fp32`` (default), ``bf16`` or ``tf32``, as ``Recipe.precision`` defines them
    (on CPU ``tf32`` computes ``fp32``); part of the key, since it changes the logits.

    Signals beyond the logits, computed in the same pass over the same loaded model: ``queries``
    (logits on each record's ``farm.spec.queries`` perturbations, ``query_logits [R, Q, 2]``, in
    ``precision``) and ``grad_norm`` (per-example loss-gradient norms, ``farm.training.grad_norm``,
    ``[R]``, always fp32). Each enters the key only when set, so the key of a plain inference job
    (logits only) is what it always was.
    """

    population: PopulationSpec
    tokenizer: Ref
    model: Ref
    selection: Selection
    max_length: int = 67
    precision: str = "fp32"
    label: str = field(default="", compare=False)
    queries: QueryFamily | None = None
    grad_norm: bool = False

    def __post_init__(self) -> None:
        _check_population(self)
        _check_refs(self, "tokenizer", "model")
        require(self.precision in PRECISIONS, "precision", " or ".join(PRECISIONS), self.precision)
        require(
            self.queries is None or isinstance(self.queries, QueryFamily),
            "queries",
            "a QueryFamily or None",
            self.queries,
        )

    @property
    def key(self) -> str:
        pop = self.population.identity()
        extra: dict[str, Any] = (
            {"queries": to_dict(self.queries)} if self.queries is not None else {}
        )
        if self.grad_norm:
            extra["grad_norm"] = True
        return canonical_key(
            "infer",
            {
                "population": pop,
                "tokenizer": self.tokenizer.token,
                "model": self.model.token,
                "selection": to_dict(self.selection),
                "max_length": self.max_length,
                "precision": self.precision,
                **extra,
            },
        )


@dataclass(frozen=True)
class VoteJob:
    """PATE's noisy vote: labels for the records the teachers were queried on, from the teachers'
    logits.

    ``logits``: the entries of the teachers' ``InferJob``s, all over the same selection (one per
    teacher, in teacher order). Each teacher votes for its argmax class; ``aggregation`` turns the
    vote counts into labels (``farm.privacy.pate.Aggregation``). The entry holds ``indices`` (the
    queried records, sorted), ``labels`` (int64, ``-1`` where confident-GNMax did not answer) and
    ``counts`` (``[n_queries, n_classes]``); its manifest's meta the number of queries and answers
    and the epsilon spent at ``aggregation.delta``, for neighbouring datasets of
    ``aggregation.adjacency`` (also recorded there).
    """

    logits: tuple[StoreRef, ...]
    aggregation: Aggregation
    label: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if not self.logits or not all(isinstance(r, StoreRef) for r in self.logits):
            raise SpecError(
                f"VoteJob.logits must be a non-empty tuple of StoreRef, got {self.logits!r}"
            )

    @property
    def key(self) -> str:
        return canonical_key(
            "votes",
            {"logits": [r.token for r in self.logits], "aggregation": to_dict(self.aggregation)},
        )


Job = TokenizerJob | TrainJob | InferJob | VoteJob


def job_inputs(job: Job) -> list[str]:
    """Store keys a job reads (its ``StoreRef`` inputs: tokenizer, base model, model to run, labels,
    logits)."""
    refs = [getattr(job, name, None) for name in ("tokenizer", "base", "model", "labels")]
    refs += list(getattr(job, "logits", ()))  # a VoteJob's teachers
    return [r.key for r in refs if isinstance(r, StoreRef)]
