"""Shadow plans: which reference models a scenario needs, as record selections. Pure numpy.

* ``none``: provided models only (the winner's approach).
* ``per-target``: one reference per target, trained on its ``rest`` (population minus its 2m
  challenge points; the runner-up's approach), so every challenge point of a target is OUT for its
  reference.
* ``pool``: K shadows serving every target of the scenario. Shadows come in groups of ``group``: a
  group partitions the union U of all challenge points of the scenario into ``group`` random parts
  and shadow j of the group leaves part j out (and keeps everything else). So every point of U is
  OUT in exactly K / group shadows and IN in the rest, shadows train on ``N - |U| / group`` records
  (close to the targets' 97-99%), and adding groups later leaves existing shadows unchanged (their
  selections, hence their keys, depend only on their own index).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from farm.errors import SpecError

PLANS = ("none", "per-target", "pool")


@dataclass(frozen=True, kw_only=True)
class PlanSpec:
    """``kind`` in ``PLANS``; ``shadows`` (pool size, a multiple of ``group``); ``seed`` of the
    pool's partitions; ``targets`` for per-target: the phases whose models get a reference."""

    kind: str = "none"
    shadows: int = 0
    group: int = 2
    seed: int = 0
    phases: tuple[str, ...] = ("dev", "final")

    def __post_init__(self) -> None:
        if self.kind not in PLANS:
            raise SpecError(f"expected one of {', '.join(PLANS)}, got {self.kind!r}", key="kind")
        if self.kind == "pool" and (
            self.shadows < self.group or self.shadows % self.group or self.group < 2
        ):
            raise SpecError(
                f"expected a positive multiple of group ({self.group}, itself >= 2), got "
                f"{self.shadows}",
                key="shadows",
            )


@dataclass(frozen=True)
class Shadow:
    """One reference model to train: its name and the sorted population indices it trains on."""

    name: str
    indices: np.ndarray
    target: int | None = None  # per-target plan: the model id it serves


def union_of_challenges(challenges: list[np.ndarray]) -> np.ndarray:
    """Sorted distinct population indices of all challenge points."""
    return np.unique(np.concatenate(challenges)) if challenges else np.zeros(0, np.int64)


def all_but(n_total: int, out: np.ndarray) -> np.ndarray:
    """Sorted ``arange(n_total)`` without the indices in ``out`` (any order, repeats allowed, each
    in ``[0, n_total)``, else ``ValueError``): ``np.setdiff1d(np.arange(n_total), out)``, same
    values and dtype, by a boolean mask in O(n_total) instead of sorting (72 pool shadows of a
    MICO-scale plan took 2.4 s through ``setdiff1d``)."""
    out = np.asarray(out)
    if out.size and (out.min() < 0 or out.max() >= n_total):
        raise ValueError(f"indices outside [0, {n_total}): {out.min()}..{out.max()}")
    keep = np.ones(n_total, dtype=bool)
    keep[out] = False
    return np.arange(n_total)[keep]


def pool_shadows(n_total: int, union: np.ndarray, spec: PlanSpec) -> list[Shadow]:
    """The pool's shadows; shadow ``g * group + j`` leaves out part ``j`` of group ``g``'s partition
    of ``union`` (population indices in ``[0, n_total)``)."""
    shadows = []
    for g in range(spec.shadows // spec.group):
        parts = np.random.default_rng([spec.seed, g]).permutation(union.size) % spec.group
        for j in range(spec.group):
            out = union[parts == j]
            shadows.append(Shadow(f"pool{spec.seed}_s{g * spec.group + j}", all_but(n_total, out)))
    return shadows


def per_target_shadows(n_total: int, targets: dict[int, np.ndarray]) -> list[Shadow]:
    """One shadow per target id, trained on its ``rest`` (every record but its challenge points,
    population indices in ``[0, n_total)``)."""
    return [
        Shadow(f"ref_model_{i}", all_but(n_total, ch), target=i)
        for i, ch in sorted(targets.items())
    ]


def keep_row(indices: np.ndarray, records: np.ndarray) -> np.ndarray:
    """int8 ``[len(records)]``: 1 where a record is in the (sorted) training ``indices``, else 0."""
    return np.isin(records, indices).astype(np.int8)
