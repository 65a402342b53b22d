"""Which models are a target's references: by membership side and source, never the target itself,
and held-out groups for cross-fitting. Pure."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from farm.attacks.signals import UNKNOWN, Signals


def cross_fit(
    signals: Signals, targets: np.ndarray, folds: int, seed: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(fit, rows)`` pairs: labelled models to fit on, and the rows of ``targets`` scored by that
    fit.

    Labelled models fall in ``max(2, folds)`` seeded groups; a labelled target is scored by the fit
    on the other groups, any other target by the fit on every labelled model. The groups do not
    depend on ``targets``.
    """
    labelled = np.flatnonzero(signals.labelled)
    if labelled.size < 2:
        raise ValueError(
            f"fitting an attack needs at least 2 labelled models, found {labelled.size}"
        )
    order = np.random.default_rng(seed).permutation(labelled.size)
    fold = {int(labelled[i]): int(rank % max(2, folds)) for rank, i in enumerate(order)}
    groups: dict[int, list[int]] = {}
    for row, t in enumerate(targets):
        groups.setdefault(fold.get(int(t), -1), []).append(row)
    return [
        (np.array([m for m in labelled if fold[int(m)] != g]), np.array(rows))
        for g, rows in sorted(groups.items())
    ]


def holding_out(signals: Signals, models: np.ndarray) -> Signals:
    """``signals`` with ``models`` as unlabelled targets: keep rows unknown (no model's reference,
    never read) and not labelled (no fit's training model); ``signals`` itself if ``models`` is
    empty."""
    if not len(models):
        return signals
    keep, labelled = signals.keep.copy(), signals.labelled.copy()
    keep[models], labelled[models] = UNKNOWN, False
    return replace(signals, keep=keep, labelled=labelled)


def references(
    signals: Signals, target: int, source: str, exclude: np.ndarray | None
) -> np.ndarray:
    """``Signals.reference_mask`` less the models ``exclude``."""
    mask = signals.reference_mask(target, source)
    if exclude is not None:
        mask[np.asarray(exclude, dtype=np.int64)] = False
    return mask


def mean_where(
    values: np.ndarray,
    signals: Signals,
    target: int,
    cols: np.ndarray,
    *,
    side: int,
    fallback: bool = False,
    source: str = "all",
    exclude: np.ndarray | None = None,
) -> np.ndarray:
    """Mean of ``values[r, cols]`` over references r of ``target`` (from ``source``, none of
    ``exclude``) with ``keep[r, col] == side`` (NaN if none); ``fallback``: the mean over every such
    reference there instead of NaN."""
    refs = np.flatnonzero(references(signals, target, source, exclude))
    v, k = values[np.ix_(refs, cols)], signals.keep[np.ix_(refs, cols)] == side
    count = k.sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(count > 0, (v * k).sum(0) / count, np.nan)
    if fallback and refs.size:
        mean = np.where(np.isnan(mean), v.mean(0), mean)
    return mean
