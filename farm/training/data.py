"""Populations (the ordered records a challenge is drawn from), tokenization and length-bucketed
batches.

A record's identity is its position in the population. Sources (the ``population`` entry of
``challenge.json`` or a config):

* ``{"source": "glue-sst2"}``: Hugging Face GLUE SST-2 train then validation (68,221 records, MICO's
  order) from the hub through the ``datasets`` cache (only the cache with
  ``HF_HUB_OFFLINE``/``HF_DATASETS_OFFLINE``); a clear error when it is neither cached nor
  reachable. A release tree's default; an ``assets.population`` of source ``file`` (GLUE's
  ``train.tsv`` and ``dev.tsv``) reads a local copy instead and reaches no hub.
* ``{"source": "file", "path": P}``: a TSV with a header (``label``/``sentence`` columns), a CSV, a
  parquet file, a saved HF dataset directory (a ``DatasetDict`` is read as train then validation),
  or a GLUE-style folder holding ``train.tsv`` and ``dev.tsv`` (read in that order, e.g.
  ``shared/data/sst2``).
* ``{"source": "synthetic", "n": N, "seed": S}``: the project's own corpus
  (``farm.training.synthetic``).

Any source takes an optional ``"subset": {"n": K, "seed": S, "offset": O}``: positions
``O .. O+K-1`` of a seeded permutation, kept in population order (equal seeds and disjoint ranges
give disjoint subsets). A ``"canaries"`` block appends audit canaries after the subset
(``farm.attacks.canaries``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from farm.attacks.canaries import make_canaries
from farm.errors import ConfigError
from farm.spec.population import PopulationSpec, Subset
from farm.training.synthetic import synthetic_corpus

TEXT_COLUMNS = ("sentence", "content", "text")  # GLUE's SST-2 dev.tsv names it "content"


@dataclass(frozen=True)
class Population:
    """Ordered records: ``sentences[i]`` with ``labels[i]`` (int64, 1 = positive)."""

    sentences: tuple[str, ...]
    labels: np.ndarray
    spec: PopulationSpec | None = None

    def __len__(self) -> int:
        return len(self.sentences)


def load_population(spec: PopulationSpec, *, base_dir: str | Path | None = None) -> Population:
    """Build the population a spec describes; relative file paths resolve against ``base_dir``."""
    if spec.source == "synthetic":
        assert spec.n is not None  # PopulationSpec checks it
        sentences, labels = synthetic_corpus(spec.n, spec.seed)
    elif spec.source == "glue-sst2":
        sentences, labels = _load_glue_sst2()
    elif spec.source == "file":
        path = Path(str(spec.path)).expanduser()
        path = path if path.is_absolute() or base_dir is None else Path(base_dir) / path
        sentences, labels = _load_path(path)
    else:
        raise ConfigError(
            f"population source must be synthetic, glue-sst2 or file, got {spec.source!r}"
        )
    sentences, labels = _subset(list(sentences), np.asarray(labels, dtype=np.int64), spec.subset)
    if spec.canaries is not None:
        extra, extra_labels, _ = make_canaries(sentences, labels, spec.canaries)
        sentences, labels = [*sentences, *extra], np.concatenate([labels, extra_labels])
    return Population(tuple(sentences), labels, spec)


def _subset(
    sentences: list[str], labels: np.ndarray, subset: Subset | None
) -> tuple[list[str], np.ndarray]:
    if subset is None:
        return sentences, labels
    n, offset = subset.n, subset.offset
    if not 0 < n <= len(sentences) - offset or offset < 0:
        raise ConfigError(
            f"population subset n={n} offset={offset} must fit in {len(sentences)} records"
        )
    perm = np.random.default_rng(subset.seed).permutation(len(sentences))
    keep = np.sort(perm[offset : offset + n])
    return [sentences[i] for i in keep], labels[keep]


def _load_glue_sst2() -> tuple[list[str], np.ndarray]:
    # lazy: datasets loads pyarrow and its hub client only when a dataset is read
    import datasets

    try:
        ds = datasets.load_dataset("glue", "sst2")
    except Exception as exc:  # noqa: BLE001 - datasets raises many types for "not cached and offline"
        raise ConfigError(
            f"GLUE SST-2 is neither in the local datasets cache nor reachable "
            f"({type(exc).__name__}: "
            f"{str(exc).strip().splitlines()[0][:160] if str(exc).strip() else ''}); use a "
            f"population of source 'file' "
            "pointing at a local copy instead (for a release tree: assets: {population: {source: "
            "file, path: ...}})"
        ) from exc
    return _from_dataset_dict(ds, "glue/sst2")


def _from_dataset_dict(ds: Any, where: str) -> tuple[list[str], np.ndarray]:
    if hasattr(ds, "keys"):
        missing = [s for s in ("train", "validation") if s not in ds]
        if missing:
            raise ConfigError(f"{where}: dataset lacks split(s) {missing}")
        parts = [ds["train"], ds["validation"]]
    else:
        parts = [ds]
    sentences = [s for part in parts for s in part["sentence"]]
    labels = np.asarray([y for part in parts for y in part["label"]], dtype=np.int64)
    return sentences, labels


def _load_path(path: Path) -> tuple[list[str], np.ndarray]:
    if path.is_dir() and (path / "train.tsv").is_file():
        s1, y1 = _load_table(path / "train.tsv")
        s2, y2 = (
            _load_table(path / "dev.tsv")
            if (path / "dev.tsv").is_file()
            else ([], np.zeros(0, np.int64))
        )
        return s1 + s2, np.concatenate([y1, y2])
    if path.is_dir():
        # lazy: datasets loads pyarrow and its hub client only when a dataset is read
        import datasets

        try:
            return _from_dataset_dict(datasets.load_from_disk(str(path)), str(path))
        except (FileNotFoundError, ValueError) as exc:
            raise ConfigError(f"{path}: not a saved Hugging Face dataset ({exc})") from exc
    if not path.is_file():
        raise ConfigError(f"{path}: population file not found")
    return _load_table(path)


def _load_table(path: Path) -> tuple[list[str], np.ndarray]:
    # lazy: pandas loads only to write or read a table
    import pandas as pd

    readers = {
        ".tsv": lambda p: pd.read_csv(p, sep="\t", quoting=3, dtype=str, keep_default_na=False),
        ".csv": lambda p: pd.read_csv(p, dtype=str, keep_default_na=False),
        ".parquet": pd.read_parquet,
    }
    if path.suffix not in readers:
        raise ConfigError(
            f"{path}: unsupported population file type (expected .tsv, .csv or .parquet)"
        )
    frame = readers[path.suffix](path)
    text = next((c for c in TEXT_COLUMNS if c in frame.columns), None)
    if text is None or "label" not in frame.columns:
        raise ConfigError(
            f"{path}: needs a 'label' column and a text column ({', '.join(TEXT_COLUMNS)}), found "
            f"{list(frame.columns)}"
        )
    try:
        labels = frame["label"].astype(np.int64).to_numpy()
    except ValueError as exc:
        raise ConfigError(f"{path}: labels must be integers ({exc})") from exc
    return [str(s) for s in frame[text]], labels


@dataclass(frozen=True)
class Tokenized:
    """Token ids of every record (no padding), ``lengths`` and ``labels`` aligned with the
    population."""

    ids: tuple[np.ndarray, ...]
    lengths: np.ndarray
    labels: np.ndarray
    pad_id: int

    def __len__(self) -> int:
        return len(self.ids)


def tokenize(population: Population, tokenizer: Any, max_length: int) -> Tokenized:
    """Tokenize with special tokens, truncating at ``max_length`` (MICO: 67, which truncates no
    SST-2 record)."""
    enc = tokenizer(list(population.sentences), truncation=True, max_length=max_length)["input_ids"]
    ids = tuple(np.asarray(x, dtype=np.int32) for x in enc)
    lengths = np.asarray([x.size for x in ids], dtype=np.int64)
    return Tokenized(ids, lengths, population.labels, int(tokenizer.pad_token_id))


def length_buckets(indices: np.ndarray, lengths: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """Deterministic batches of similar length (for inference): sort by length, cut into
    ``batch_size`` pieces."""
    order = indices[np.argsort(lengths[indices], kind="stable")]
    return [order[i : i + batch_size] for i in range(0, order.size, batch_size)]


def shuffled_bucketed(
    indices: np.ndarray,
    lengths: np.ndarray,
    batch_size: int,
    rng: np.random.Generator,
    *,
    window: int = 50,
) -> Iterator[np.ndarray]:
    """One epoch of random fixed-size batches that are grouped by length.

    Indices are shuffled, cut into windows of ``window * batch_size``, sorted by length inside a
    window, cut into batches, and the batches shuffled (HF's ``group_by_length`` scheme). Every
    index appears exactly once.
    """
    perm = rng.permutation(indices)
    span = window * batch_size
    batches = []
    for start in range(0, perm.size, span):
        chunk = perm[start : start + span]
        chunk = chunk[np.argsort(-lengths[chunk], kind="stable")]
        batches += [chunk[i : i + batch_size] for i in range(0, chunk.size, batch_size)]
    for b in rng.permutation(len(batches)):
        yield batches[b]


def pad_batch(tokens: Tokenized, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Dynamic padding: ``(input_ids, attention_mask, labels)`` padded to the longest record of the
    batch."""
    width = int(tokens.lengths[batch].max())
    input_ids = np.full((batch.size, width), tokens.pad_id, dtype=np.int64)
    mask = np.zeros((batch.size, width), dtype=np.int64)
    for row, i in enumerate(batch):
        seq = tokens.ids[i]
        input_ids[row, : seq.size] = seq
        mask[row, : seq.size] = 1
    return input_ids, mask, tokens.labels[batch]
