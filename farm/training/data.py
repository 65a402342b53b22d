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
  parquet file, JSON lines (``.jsonl``, or ``.json``: JSON lines or one array of objects), a
  ``datasets.save_to_disk`` directory (a ``DatasetDict`` is read as train then validation, or as
  its only split), or a GLUE-style folder holding ``train.tsv`` and ``dev.tsv`` (read in that
  order, e.g. ``shared/data/sst2``). ``text_column`` / ``label_column`` name the columns (default:
  the first of ``sentence``, ``content``, ``text``; ``label``); labels are integers.
* ``{"source": "synthetic", "n": N, "seed": S}``: the project's own corpus
  (``farm.training.synthetic``).

Any source takes an optional ``"subset": {"n": K, "seed": S, "offset": O}``: positions
``O .. O+K-1`` of a seeded permutation, kept in population order (equal seeds and disjoint ranges
give disjoint subsets). A ``"canaries"`` block appends audit canaries after the subset
(``farm.attacks.canaries``).

Records may also carry ids (``load_population(..., id_column=...)``: a column's values as strings,
``Population.ids``); ids name records without changing them, so they are no part of a spec or key.
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
    """Ordered records: ``sentences[i]`` with ``labels[i]`` (int64, 1 = positive); ``ids[i]`` its
    id as a string when an id column was read, else ``ids`` is None."""

    sentences: tuple[str, ...]
    labels: np.ndarray
    spec: PopulationSpec | None = None
    ids: tuple[str, ...] | None = None

    def __len__(self) -> int:
        return len(self.sentences)


def load_population(
    spec: PopulationSpec, *, base_dir: str | Path | None = None, id_column: str | None = None
) -> Population:
    """Build the population a spec describes; relative file paths resolve against ``base_dir``.
    ``id_column``: also read that column's values as the records' ids (``Population.ids``; a
    canary's id is ``canary:<i>``). ``ConfigError`` naming the file and the column when a named
    column is missing or labels are not integers."""
    columns = Columns(text=spec.text_column, label=spec.label_column, id=id_column)
    if spec.source == "synthetic":
        assert spec.n is not None  # PopulationSpec checks it
        if id_column is not None:
            raise ConfigError(f"a synthetic population has no id column (asked for {id_column!r})")
        sentences, labels = synthetic_corpus(spec.n, spec.seed)
        table = Table(list(sentences), np.asarray(labels), None)
    elif spec.source == "glue-sst2":
        table = _load_glue_sst2(columns)
    elif spec.source == "file":
        path = Path(str(spec.path)).expanduser()
        path = path if path.is_absolute() or base_dir is None else Path(base_dir) / path
        table = _load_path(path, columns)
    else:
        raise ConfigError(
            f"population source must be synthetic, glue-sst2 or file, got {spec.source!r}"
        )
    keep = _subset(len(table.sentences), spec.subset)
    sentences = table.sentences if keep is None else [table.sentences[i] for i in keep]
    labels = np.asarray(table.labels, dtype=np.int64)
    labels = labels if keep is None else labels[keep]
    ids = table.ids if keep is None or table.ids is None else [table.ids[i] for i in keep]
    if spec.canaries is not None:
        extra, extra_labels, _ = make_canaries(sentences, labels, spec.canaries)
        sentences, labels = [*sentences, *extra], np.concatenate([labels, extra_labels])
        ids = None if ids is None else [*ids, *(f"canary:{i}" for i in range(len(extra)))]
    return Population(tuple(sentences), labels, spec, None if ids is None else tuple(ids))


@dataclass(frozen=True)
class Columns:
    """Which columns a table's records come from: ``text`` (None: the first of ``TEXT_COLUMNS``
    present), ``label`` (None: ``label``) and ``id`` (None: no ids read)."""

    text: str | None = None
    label: str | None = None
    id: str | None = None


@dataclass(frozen=True)
class Table:
    """Records as read from a source, before any subset: texts, labels, ids (None: not read)."""

    sentences: list[str]
    labels: np.ndarray
    ids: list[str] | None


def _subset(n_records: int, subset: Subset | None) -> np.ndarray | None:
    """The positions a ``subset`` keeps, in population order (None: every record)."""
    if subset is None:
        return None
    n, offset = subset.n, subset.offset
    if not 0 < n <= n_records - offset or offset < 0:
        raise ConfigError(
            f"population subset n={n} offset={offset} must fit in {n_records} records"
        )
    perm = np.random.default_rng(subset.seed).permutation(n_records)
    return np.sort(perm[offset : offset + n])


def _load_glue_sst2(columns: Columns) -> Table:
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
    return _from_dataset_dict(ds, "glue/sst2", columns)


def _from_dataset_dict(ds: Any, where: str, columns: Columns) -> Table:
    if hasattr(ds, "keys"):
        names = list(ds.keys())
        if len(names) == 1:
            parts = [ds[names[0]]]
        else:
            missing = [s for s in ("train", "validation") if s not in ds]
            if missing:
                raise ConfigError(f"{where}: dataset lacks split(s) {missing}")
            parts = [ds["train"], ds["validation"]]
    else:
        parts = [ds]
    text, label, id_ = _columns_of(list(parts[0].column_names), columns, where)
    sentences = [str(s) for part in parts for s in part[text]]
    labels = _integer_labels([y for part in parts for y in part[label]], where, label)
    ids = [_id(v) for part in parts for v in part[id_]] if id_ else None
    return Table(sentences, labels, ids)


def _load_path(path: Path, columns: Columns) -> Table:
    if path.is_dir() and (path / "train.tsv").is_file():
        tables = [_load_table(path / "train.tsv", columns)]
        if (path / "dev.tsv").is_file():
            tables.append(_load_table(path / "dev.tsv", columns))
        ids = [i for t in tables for i in t.ids or ()] if columns.id else None
        return Table(
            [s for t in tables for s in t.sentences],
            np.concatenate([t.labels for t in tables]),
            ids,
        )
    if path.is_dir():
        # lazy: datasets loads pyarrow and its hub client only when a dataset is read
        import datasets

        try:
            data = datasets.load_from_disk(str(path))
        except (FileNotFoundError, ValueError) as exc:
            raise ConfigError(f"{path}: not a saved Hugging Face dataset ({exc})") from exc
        return _from_dataset_dict(data, str(path), columns)
    if not path.is_file():
        raise ConfigError(f"{path}: population file not found")
    return _load_table(path, columns)


TABLE_SUFFIXES = (".tsv", ".csv", ".parquet", ".jsonl", ".json")


def _load_table(path: Path, columns: Columns) -> Table:
    # lazy: pandas loads only to write or read a table
    import pandas as pd

    readers = {
        ".tsv": lambda p: pd.read_csv(p, sep="\t", quoting=3, dtype=str, keep_default_na=False),
        ".csv": lambda p: pd.read_csv(p, dtype=str, keep_default_na=False),
        ".parquet": pd.read_parquet,
        ".jsonl": lambda p: pd.read_json(p, lines=True, dtype=False),
        ".json": lambda p: pd.read_json(p, lines=not _json_array(p), dtype=False),
    }
    if path.suffix not in readers:
        raise ConfigError(
            f"{path}: unsupported population file type (expected {', '.join(TABLE_SUFFIXES)})"
        )
    try:
        frame = readers[path.suffix](path)
    except ValueError as exc:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        raise ConfigError(f"{path}: unreadable as {path.suffix[1:]} ({reason})") from exc
    text, label, id_ = _columns_of([str(c) for c in frame.columns], columns, str(path))
    labels = _integer_labels(frame[label].tolist(), str(path), label)
    ids = [_id(v) for v in frame[id_]] if id_ else None
    return Table([str(s) for s in frame[text]], labels, ids)


def _json_array(path: Path) -> bool:
    """Whether a ``.json`` file holds one JSON array (else it is read as JSON lines)."""
    with path.open("rb") as handle:
        head = handle.read(4096).lstrip()
    return head.startswith(b"[")


def _columns_of(found: list[str], columns: Columns, where: str) -> tuple[str, str, str | None]:
    """``(text, label, id)`` column names of a table with columns ``found``; ``ConfigError`` naming
    ``where`` and the missing column."""
    if (
        columns.text is None
        and columns.label is None
        and ("label" not in found or not any(c in found for c in TEXT_COLUMNS))
    ):
        raise ConfigError(
            f"{where}: needs a 'label' column and a text column ({', '.join(TEXT_COLUMNS)}), found "
            f"{found}"
        )
    text = columns.text or next((c for c in TEXT_COLUMNS if c in found), None)
    if text is None or text not in found:
        wanted = repr(text) if text else f"one of {', '.join(TEXT_COLUMNS)}"
        raise ConfigError(f"{where}: no text column {wanted} (text_column); columns: {found}")
    label = columns.label or "label"
    if label not in found:
        raise ConfigError(f"{where}: no label column {label!r} (label_column); columns: {found}")
    if columns.id is not None and columns.id not in found:
        raise ConfigError(f"{where}: no id column {columns.id!r}; columns: {found}")
    return text, label, columns.id


def _integer_labels(values: list[Any], where: str, column: str) -> np.ndarray:
    """``values`` as int64 (integers, integral floats, or strings of integers); ``ConfigError``
    naming ``where`` and ``column`` at the first other value."""
    out = np.empty(len(values), dtype=np.int64)
    for i, value in enumerate(values):
        try:
            out[i] = _integer(value)
        except (TypeError, ValueError, OverflowError):
            raise ConfigError(
                f"{where}: labels must be integers (label_column {column!r}), found {value!r}"
            ) from None
    return out


def _integer(value: Any) -> int:
    if isinstance(value, bool | int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return int(value)
    return int(str(value).strip())


def _id(value: Any) -> str:
    """A record id as a string (an integer id ``3`` reads ``"3"``, as a member list writes it)."""
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value)


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
