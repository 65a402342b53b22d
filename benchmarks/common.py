"""Shared pieces of the benchmarks: SST-2 location, a tokenizer trained on it, a Markdown table
printer."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from farm.spec.population import PopulationSpec

SST2 = Path(
    os.environ.get(
        "FARM_SST2_DIR", Path(__file__).resolve().parents[2] / "shared" / "data" / "sst2"
    )
)


def sst2_population():
    from farm.training.data import load_population

    if not (SST2 / "train.tsv").is_file():
        raise SystemExit(f"SST-2 not found at {SST2} (set FARM_SST2_DIR)")
    return load_population(PopulationSpec.of({"source": "file", "path": str(SST2)}))


def tokenizer_for(pop, cache: Path, vocab_size: int = 8192):
    from farm.training.models import load_tokenizer, train_tokenizer

    if not (cache / "tokenizer.json").is_file():
        train_tokenizer(list(pop.sentences), cache, vocab_size=vocab_size)
    return load_tokenizer(cache)


@contextmanager
def timer() -> Iterator[dict]:
    box: dict = {}
    start = time.perf_counter()
    yield box
    box["seconds"] = time.perf_counter() - start


def table(rows: list[dict]) -> str:
    keys = list(rows[0])
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    for r in rows:
        lines.append(
            "| "
            + " | ".join(f"{r[k]:.4g}" if isinstance(r[k], float) else str(r[k]) for k in keys)
            + " |"
        )
    return "\n".join(lines)
