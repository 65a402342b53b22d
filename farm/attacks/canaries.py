"""Canaries: records planted in a training set to audit it, and their independent inclusion. Pure.

A canary set is a config block (``CanarySpec``: ``kind``, ``count``, ``seed``) that a population
spec may carry (``farm.spec.population``, key ``canaries``); the loader appends the canaries to
the population's records, after any ``subset``, so they are records like any other: keyed by the
spec that made them, addressed by index, selected into training runs by ``Selection``. Kinds:

* ``mislabelled``: a copy of a seeded choice of real records with the label flipped (the
  memorization canary of Malek et al. 2021; the original record stays in the population);
* ``ood``: out-of-distribution text, a seeded string of made-up words absent from the corpus,
  with a random label;
* ``duplicated``: a copy of a real record repeated ``repeats`` times (one canary, several records);
* ``relabelled``: the label-DP game (the pairwise design of Malek et al. 2021's memorization attack,
  for binary labels): a real record's text appended twice, under its own label and under the flipped
  one. Every run trains exactly one of the two, by the canary's coin: the flipped copy when the coin
  is 1. The neighbouring datasets differ in one record's label, so a bound from these coins is a
  label-DP bound (``adjacency="label"``).

Each canary's coin in each training run is an independent fair coin (``inclusion``, from the set's
seed and the run), which is what makes the one-run analysis (``farm.attacks.one_run``) and
per-canary trials across runs valid. For the membership kinds the coin puts the canary in or out (a
duplicated canary's copies go in or out together); for ``relabelled`` it picks the label.
``scored_records`` are the records whose label's log-probability is the canary's score (the
flipped copy for ``relabelled``: its text under the flipped label).
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
    if spec.kind == "relabelled":  # canary c: records 2c (own label) and 2c + 1 (flipped)
        source = np.repeat(chosen, 2)
        flipped = np.tile([0, 1], spec.count).astype(bool)
        texts = [sentences[i] for i in source]
        return texts, np.where(flipped, 1 - labels[source], labels[source]), source
    source = np.repeat(chosen, spec.repeats)
    return [sentences[i] for i in source], labels[source], source


def canary_records(n_base: int, spec: CanarySpec) -> list[np.ndarray]:
    """The population indices of each canary once appended after ``n_base`` records (one index
    each; ``repeats`` consecutive indices for a duplicated canary; own-label then flipped copy for a
    relabelled one)."""
    size = spec.records // spec.count
    return [n_base + np.arange(c * size, (c + 1) * size) for c in range(spec.count)]


def scored_records(n_base: int, spec: CanarySpec) -> list[np.ndarray]:
    """Per canary, the records whose label's log-probability (averaged) is its score: every copy of
    a duplicated canary, the flipped copy of a relabelled one, else its one record."""
    records = canary_records(n_base, spec)
    return [r[1:] for r in records] if spec.kind == "relabelled" else records


def inclusion(spec: CanarySpec, *, run: int) -> np.ndarray:
    """``[count]`` 0/1: whether each canary is in training run ``run``, an independent fair coin
    per canary and run (the same for the same set seed and run)."""
    require(run >= 0, "run", "an integer >= 0", run)
    rng = np.random.default_rng([spec.seed, _INCLUDE, run])
    return rng.integers(0, 2, spec.count)


def included_records(n_base: int, spec: CanarySpec, *, run: int) -> np.ndarray:
    """The population indices of the canary records in run ``run`` (sorted), to add to its training
    selection: the canaries whose coin is 1, or for ``relabelled`` canaries the copy each coin
    picks (flipped on 1, own label on 0)."""
    coins = inclusion(spec, run=run)
    records = canary_records(n_base, spec)
    if spec.kind == "relabelled":
        return np.array([r[int(coin)] for r, coin in zip(records, coins)], dtype=np.int64)
    chosen = [r for r, keep in zip(records, coins) if keep]
    return np.concatenate(chosen) if chosen else np.zeros(0, dtype=np.int64)


def adjacency(spec: CanarySpec) -> str:
    """What a canary's coin changes (``farm.attacks.one_run.ADJACENCIES``): ``label`` for
    relabelled canaries, else ``add/remove``."""
    return "label" if spec.kind == "relabelled" else "add/remove"
