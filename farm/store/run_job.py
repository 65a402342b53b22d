"""``run_job``: the unit of work. Runs one job idempotently against a store, with no Ray in sight.

If the job's key holds a valid entry, nothing runs. A present but corrupt entry (checksum mismatch,
truncated file) is removed and recomputed, never loaded. Results are written to a local temporary
directory and then put into the store, manifest last. A ``Context`` keeps expensive inputs
(populations, tokenizers, tokenized records, fetched models) across jobs of one worker.
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from farm.errors import SpecError
from farm.privacy.pate import vote_counts
from farm.spec.jobs import (
    HubRef,
    InferJob,
    Job,
    PathRef,
    Ref,
    StoreRef,
    TokenizerJob,
    TrainJob,
    VoteJob,
    job_inputs,
)
from farm.spec.population import PopulationSpec
from farm.spec.recipes import Perf
from farm.store.runner import RunReport
from farm.store.store import Store
from farm.training.data import Population, Tokenized, load_population, tokenize


@dataclass(kw_only=True)
class Context:
    """Per-worker caches keyed by canonical JSON of their inputs. ``perf`` applies to every job it
    runs."""

    perf: Perf = field(default_factory=Perf)
    _cache: tempfile.TemporaryDirectory | None = None
    _populations: dict[str, Population] = field(default_factory=dict)
    _tokenizers: dict[Ref, Any] = field(default_factory=dict)
    _tokens: dict[tuple[str, Ref, int], Tokenized] = field(default_factory=dict)
    _weights: dict[str, tuple[threading.Event, dict]] = field(
        default_factory=dict
    )  # model dir -> prefetched
    # one lock per cache entry being made: a prefetch and ``run_job`` make it once between them
    _making: dict[tuple[str, Any], threading.Lock] = field(default_factory=dict)
    _guard: threading.Lock = field(default_factory=threading.Lock)

    def prefetch(self, job: Job, store: Store, *, inputs: bool = True) -> None:
        """Read what ``job`` will need into memory: an inference job's weights (fetching a remote
        store entry first) and, with ``inputs``, a training's or inference's tokenized population
        (its tokenizer, and the population read) -- so that a worker streams jobs: the next job's
        inputs load while the current one computes. Safe to call from a second thread while
        ``run_job`` runs another job (each cache entry is made once; the other thread waits for
        it); a failure here only means ``run_job`` reads them itself. The same values as
        ``run_job`` would make itself: results are identical."""
        if not isinstance(job, (InferJob, TrainJob)) or store.complete(job.key):
            return
        if inputs:
            try:
                length = job.recipe.max_length if isinstance(job, TrainJob) else job.max_length
                self.tokens(job.population, job.tokenizer, length, store, own_tokenizer=True)
            except Exception:  # noqa: BLE001 -- run_job makes them (and reports) itself
                pass
        if not isinstance(job, InferJob):
            return
        model_dir = self.resolve(job.model, store)
        if model_dir in self._weights or not Path(model_dir).is_dir():
            return
        done, box = threading.Event(), dict[str, dict]()
        self._weights[model_dir] = (done, box)
        try:
            # lazy: loads torch
            from farm.training.models import read_weights

            box["state"] = read_weights(Path(model_dir))
        except Exception:  # noqa: BLE001 -- run_job reads (and reports) them itself
            pass
        finally:
            done.set()

    def take_weights(self, model_dir: str) -> dict | None:
        """The prefetched state dict of ``model_dir`` (waiting for a prefetch under way), or None;
        forgotten after."""
        entry = self._weights.pop(model_dir, None)
        if entry is None:
            return None
        entry[0].wait()
        return entry[1].get("state")

    def _once(self, cache: dict, kind: str, key: Any, make: Any) -> Any:
        """``cache[key]``, made by ``make()`` once even when two threads ask at once (the second
        waits for the first's)."""
        if key not in cache:
            with self._guard:
                lock = self._making.setdefault((kind, key), threading.Lock())
            with lock:
                if key not in cache:
                    cache[key] = make()
        return cache[key]

    def population(self, spec: PopulationSpec) -> Population:
        k = json.dumps(spec.mapping, sort_keys=True)
        return self._once(self._populations, "population", k, lambda: load_population(spec))

    def tokenizer(self, ref: Ref, store: Store) -> Any:
        def make() -> Any:
            # lazy: loads torch
            from farm.training.models import load_tokenizer

            return load_tokenizer(self.resolve(ref, store))

        return self._once(self._tokenizers, "tokenizer", ref, make)

    def tokens(
        self,
        population: PopulationSpec,
        tokenizer_ref: Ref,
        max_length: int,
        store: Store,
        *,
        own_tokenizer: bool = False,
    ) -> Tokenized:
        """``population`` tokenized. ``own_tokenizer``: with a tokenizer loaded for this call
        alone, not the cached one ``run_job`` may be using in another thread (a fast tokenizer
        refuses to be used from two threads at once); the same files, so the same tokens."""

        def make() -> Tokenized:
            if own_tokenizer:
                # lazy: loads torch
                from farm.training.models import load_tokenizer

                tokenizer = load_tokenizer(self.resolve(tokenizer_ref, store))
            else:
                tokenizer = self.tokenizer(tokenizer_ref, store)
            return tokenize(self.population(population), tokenizer, max_length)

        k = (json.dumps(population.mapping, sort_keys=True), tokenizer_ref, max_length)
        return self._once(self._tokens, "tokens", k, make)

    @property
    def cache_dir(self) -> Path:
        """A private folder for copies of remote store entries, made on first use and removed with
        the context (or at interpreter exit). Local stores are read in place and never need one."""
        if self._cache is None:
            self._cache = tempfile.TemporaryDirectory(prefix="farm-cache-")
        return Path(self._cache.name)

    def close(self) -> None:
        """Remove the cache folder now."""
        if self._cache is not None:
            self._cache.cleanup()
            self._cache = None

    def resolve(self, ref: Ref, store: Store) -> str:
        """Where to load ``ref`` from: a local directory (a store artifact fetched into the cache,
        or the pinned path) or a hub name."""
        if isinstance(ref, StoreRef):
            return str(store.get_dir(ref.key, self.cache_dir, check=False))
        if isinstance(ref, PathRef):
            return ref.path
        if isinstance(ref, HubRef):
            return ref.name
        raise SpecError(f"not a model or tokenizer reference: {ref!r}")


def run_job(job: Job, store: Store, ctx: Context | None = None) -> dict[str, Any]:
    """Make sure ``job``'s artifact is in ``store``; returns ``{"key", "ran", "seconds", "label"}``
    (small)."""
    ctx = ctx or Context()
    key = job.key
    if store.complete(key):  # metadata only: no artifact byte is read
        return {"key": key, "ran": False, "seconds": 0.0, "label": job.label}
    if store.exists(key):
        store.remove(key)  # truncated or corrupt: recompute, never load
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="farm-job-") as tmp:
        meta = _RUNNERS[type(job)](job, store, ctx, Path(tmp))
        meta.update(
            {"label": job.label, "kind": type(job).__name__, "seconds": time.perf_counter() - start}
        )
        if "arrays" in meta:  # inference and votes: arrays, stored as .npy files
            store.put_arrays(key, meta.pop("arrays"), meta)
        else:
            store.put_dir(key, Path(tmp) / "out", meta)
    return {"key": key, "ran": True, "seconds": time.perf_counter() - start, "label": job.label}


def _run_tokenizer(job: TokenizerJob, store: Store, ctx: Context, tmp: Path) -> dict:
    # lazy: loads torch
    from farm.training.models import train_tokenizer

    train_tokenizer(
        list(ctx.population(job.population).sentences), tmp / "out", vocab_size=job.vocab_size
    )
    return {}


def _run_train(job: TrainJob, store: Store, ctx: Context, tmp: Path) -> dict:
    # lazy: loads torch
    from farm.training.train import train

    tokens = ctx.tokens(job.population, job.tokenizer, job.recipe.max_length, store)
    if job.recipe.model.name == "base" and job.base is None:
        raise SpecError(
            f"{job.label or job.key}: recipe uses model 'base' but the job names no base model"
        )
    base = ctx.resolve(job.base, store) if job.base else None
    indices = job.selection.indices()
    if job.labels is not None:  # PATE's student: the ensemble's answers are its labels
        tokens, indices = given_labels(tokens, indices, store.get_arrays(job.labels.key))
    out = train(
        tokens,
        indices,
        job.recipe,
        out_dir=tmp / "out",
        tokenizer=ctx.tokenizer(job.tokenizer, store),
        base=base,
        perf=ctx.perf,
    )
    return {"train": json.loads((out / "farm.json").read_text())}


def given_labels(
    tokens: Tokenized, indices: np.ndarray, votes: dict[str, np.ndarray]
) -> tuple[Tokenized, np.ndarray]:
    """``tokens`` labelled by a vote job's entry (``indices``, ``labels``; ``-1``: unanswered), and
    the records of ``indices`` that were answered. ``SpecError`` when the vote covers none of
    them."""
    answered = votes["indices"][votes["labels"] >= 0]
    labels = tokens.labels.copy()
    labels[answered] = votes["labels"][votes["labels"] >= 0]
    keep = np.intersect1d(indices, answered)
    if keep.size == 0:
        raise SpecError("the vote job answered none of the student's records: nothing to train on")
    return dataclasses.replace(tokens, labels=labels), keep


def _run_votes(job: VoteJob, store: Store, ctx: Context, tmp: Path) -> dict:
    """Each teacher votes its argmax class; ``job.aggregation`` turns the counts into labels
    (``farm.privacy.pate``)."""

    entries = [store.get_arrays(ref.key) for ref in job.logits]
    indices = entries[0]["indices"]
    if any(not np.array_equal(e["indices"], indices) for e in entries):
        raise SpecError(f"{job.label or job.key}: the teachers' logits cover different records")
    counts = vote_counts(
        np.stack([e["logits"].argmax(axis=1) for e in entries]), entries[0]["logits"].shape[1]
    )
    labels = job.aggregation.labels(counts)
    answered = int((labels >= 0).sum())
    return {
        "arrays": {"indices": indices, "labels": labels, "counts": counts},
        "queries": int(indices.size),
        "answered": answered,
        "delta": job.aggregation.delta,
        "adjacency": job.aggregation.adjacency,
        "epsilon": job.aggregation.epsilon(queries=int(indices.size), answered=answered),
        "epsilon_kind": "data-dependent tally of the answered queries, not a guarantee (which "
        "answered depends on the data); the guarantee charges every query: challenge.json",
    }


def _run_infer(job: InferJob, store: Store, ctx: Context, tmp: Path) -> dict:
    """``indices.npy`` and ``logits.npy``, plus ``query_logits.npy`` / ``grad_norm.npy`` when the
    job asks."""
    # lazy: loads torch
    from farm.training.infer import infer_arrays

    tokens = ctx.tokens(job.population, job.tokenizer, job.max_length, store)
    indices = job.selection.indices()
    model_dir = ctx.resolve(job.model, store)
    tokenizer = ctx.tokenizer(job.tokenizer, store) if job.queries is not None else None
    arrays = infer_arrays(
        model_dir,
        tokens,
        indices,
        perf=ctx.perf,
        precision=job.precision,
        weights=ctx.take_weights(model_dir),
        queries=job.queries,
        tokenizer=tokenizer,
        grad_norm=job.grad_norm,
    )
    return {"arrays": {**arrays, "indices": indices}, "n": int(indices.size)}


_RUNNERS: dict[type, Any] = {
    TokenizerJob: _run_tokenizer,
    TrainJob: _run_train,
    InferJob: _run_infer,
    VoteJob: _run_votes,
}


def logits_from_store(store: Store, job: InferJob) -> tuple[np.ndarray, np.ndarray]:
    """``(indices, logits)`` of a finished inference job (each file checked against its checksum as
    it is read)."""
    arrays = store.get_arrays(job.key)
    return arrays["indices"], arrays["logits"]


def job_seconds(store: Store, jobs: list[Any]) -> float:
    """Seconds the stored results of ``jobs`` took to compute (as recorded in their manifests)."""
    return float(sum(store.manifest(job.key)["meta"].get("seconds", 0.0) for job in jobs))


class InProcessRunner:
    """A ``farm.store.runner.JobRunner`` that runs each job here, in this process, one at a time
    (no Ray): for tests, debugging, and benchmarks that change a job's code in process (an audit
    of a deliberately broken mechanism). Jobs run in dependency order (``job_inputs``), whatever
    order they come in; ``ran`` and ``reused`` count over the runner's life, as the executor's
    do."""

    def __init__(self, store: Store) -> None:
        self._store, self.ran, self.reused = store, 0, 0
        self._ctx = Context()

    @property
    def store(self) -> Store:
        return self._store

    def run(self, jobs: Sequence[Job], *, title: str = "jobs") -> RunReport:
        """Bring every job's artifact into the store; ``SpecError`` when a job reads a key that
        neither the store nor another job of ``jobs`` provides."""
        report = RunReport()
        start = time.perf_counter()
        pending = {job.key: job for job in jobs}
        while pending:
            ready = [
                job
                for job in pending.values()
                if all(k not in pending and self._provided(k) for k in job_inputs(job))
            ]
            if not ready:
                missing = next(iter(pending.values()))
                raise SpecError(f"{title}: {missing.label} reads a key no job provides")
            for job in ready:
                result = run_job(job, self._store, self._ctx)
                report.results[job.key] = result
                report.ran += bool(result["ran"])
                report.skipped += not result["ran"]
                del pending[job.key]
        self.ran, self.reused = self.ran + report.ran, self.reused + report.skipped
        report.wall_seconds, report.workers = time.perf_counter() - start, 1
        return report

    def _provided(self, key: str) -> bool:
        return self._store.complete(key)
