"""Canaries: records planted in a training set to audit it, and their independent inclusion. Pure.

A canary set is a config block (``CanarySpec``: ``kind``, ``count``, ``seed``) that a population
spec may carry (``farm.spec.population``, key ``canaries``); the loader appends the canaries to
the population's records, after any ``subset``, so they are records like any other: keyed by the
spec that made them, addressed by index, selected into training runs by ``Selection``. Kinds:

* ``mislabelled``: a copy of a seeded choice of real records with the label flipped (the
  memorization canary of Malek et al. 2021; the original record stays in the population);
* ``ood``: out-of-distribution text, a seeded string of made-up words absent from the corpus,
  with a random label;
* ``duplicated``: a copy of a real record repeated ``repeats`` times (one canary, several records).

Each canary goes into each training run independently with probability 1/2 (``inclusion``: a coin
per canary per run, from the set's seed and the run), which is what makes the one-run analysis
(``farm.attacks.one_run``) and per-canary trials across runs valid. A duplicated canary's copies go
in or out together.
"""

from __future__ import annotations

import numpy as np

from farm.errors import require
from farm.spec.population import CANARY_KINDS, CanarySpec

_CANARY, _INCLUDE = 0xCA7A, 0x1C1D
_SYLLABLES = "qua zix vor plim droth kel snu yarb fex gool trin wum obb skaz".split()


def canary_sources(n: int, spec: CanarySpec) -> np.ndarray:
    """The population records (of ``n``) the canaries are made from, one per canary (sorted), or
    ``[-1] * count`` for out-of-distribution canaries, made from none. A game keeps these records
    out of every run's training, so a mislabelled canary is never contradicted by its original."""
    if spec.kind == "ood":
        return np.full(spec.count, -1)
    require(spec.count <= n, "count", f"at most the population's {n} records", spec.count)
    rng = np.random.default_rng([spec.seed, _CANARY, CANARY_KINDS.index(spec.kind)])
    return np.sort(rng.choice(n, size=spec.count, replace=False))


def make_canaries(
    sentences: list[str], labels: np.ndarray, spec: CanarySpec
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """``(sentences, labels, source)`` of the canary records to append to a population of
    ``sentences``/``labels`` (binary labels): ``source[i]`` is the population record canary record
    ``i`` was made from, -1 for an out-of-distribution one. Deterministic in ``spec``."""
    labels = np.asarray(labels)
    chosen = canary_sources(len(sentences), spec)
    if spec.kind == "ood":
        rng = np.random.default_rng([spec.seed, _CANARY, CANARY_KINDS.index(spec.kind)])
        words = [
            " ".join(
                "".join(rng.choice(_SYLLABLES, size=int(rng.integers(2, 4))))
                for _ in range(int(rng.integers(4, 9)))
            )
            for _ in range(spec.count)
        ]
        return words, rng.integers(0, 2, spec.count).astype(labels.dtype), chosen
    if spec.kind == "mislabelled":
        return [sentences[i] for i in chosen], 1 - labels[chosen], chosen
    source = np.repeat(chosen, spec.repeats)
    return [sentences[i] for i in source], labels[source], source


def canary_records(n_base: int, spec: CanarySpec) -> list[np.ndarray]:
    """The population indices of each canary once appended after ``n_base`` records (one index
    each; ``repeats`` consecutive indices for a duplicated canary)."""
    size = spec.repeats if spec.kind == "duplicated" else 1
    return [n_base + np.arange(c * size, (c + 1) * size) for c in range(spec.count)]


def inclusion(spec: CanarySpec, *, run: int) -> np.ndarray:
    """``[count]`` 0/1: whether each canary is in training run ``run``, an independent fair coin
    per canary and run (the same for the same set seed and run)."""
    require(run >= 0, "run", "an integer >= 0", run)
    rng = np.random.default_rng([spec.seed, _INCLUDE, run])
    return rng.integers(0, 2, spec.count)


def included_records(n_base: int, spec: CanarySpec, *, run: int) -> np.ndarray:
    """The population indices of the canaries in run ``run`` (sorted), to add to its training
    selection."""
    chosen = [r for r, keep in zip(canary_records(n_base, spec), inclusion(spec, run=run)) if keep]
    return np.concatenate(chosen) if chosen else np.zeros(0, dtype=np.int64)
