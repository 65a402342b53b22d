"""The quantile-regression attack (Bertran et al., "Scalable Membership Inference Attacks via
Quantile Regression", NeurIPS 2023): a regressor fitted on known non-members predicts, per record,
the (1 - alpha) quantile of a model's non-member score; a point scores by how far the target's
score exceeds it. No shadow model is trained for it. Pure (scikit-learn, loaded lazily)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from farm.attacks.signals import OUT, SOURCES, Signals
from farm.errors import SpecError

QUANTILE_FEATURES = ("references", "label")
QUANTILE_STATISTICS = ("margin", "logprob", "grad_norm")  # one value per model and record


def quantile(
    signals: Signals,
    targets: np.ndarray,
    *,
    alpha: float = 0.1,
    statistic: str = "margin",
    features: str = "references",
    nonmembers: Sequence[int] | None = None,
    source: str = "all",
    max_fit: int = 20000,
    seed: int = 0,
) -> np.ndarray:
    """Quantile regression (Bertran et al. 2023): score(x) = s_target(x) - q(x), with s the
    ``statistic`` (default the logit margin, the paper's score) and q(x) a gradient-boosted
    regressor's (1 - ``alpha``) quantile (pinball loss) of s on non-members with x's features, so
    that thresholding the score at 0 flags about ``alpha`` of the non-members.

    Which non-members the regressor is fitted on:

    - ``nonmembers`` given (columns of records in the signals known to be no target's member, e.g.
      public records outside every training set): the paper's attack. Per target, q is fitted on
      the target's own statistic on those records; no other model's membership is read. They may
      not include a scored point (``SpecError``): a point is never scored by a fit that saw it.
    - ``nonmembers`` absent: in MICO no record is known OUT of a dev/final target (outside its
      challenge points a record is in its training set with probability 98.7%, see ``rmia``), so the
      paper's fit set does not exist; instead q is fitted on the known-OUT pairs (model, record) of
      the target's references (models of ``source`` with known membership, never the target), i.e.
      on the non-member scores of models like the target (at most ``max_fit`` pairs, seeded). It
      trains no shadow model but uses those the signals hold (with ``source="labelled"``, only the
      provided models); a target's own keep row is never read.

    ``features`` (the signals hold model outputs only, no input features such as the text or an
    embedding of it, which the paper's regressor reads): ``references``, the record's label and the
    mean and standard deviation of the statistic over the target's references on the record
    (membership never read; a pooled fit's pair leaves its own model out of both), a per-record
    difficulty seen through other models; ``label``, the label alone (a class-conditional
    quantile: no other model is read at all, the attack's cheapest form). The target's own outputs
    are no feature: s is a function of them, so the fitted quantile would follow s itself.
    """
    _check(alpha, statistic, features, source)
    if max_fit < 1:
        raise SpecError(f"expected at least 1 row to fit on, got {max_fit}", key="params.max_fit")
    opts: dict[str, Any] = {"alpha": alpha, "max_fit": max_fit, "seed": seed}
    stat = signals.statistic(statistic)
    given = None if nonmembers is None else np.unique(np.asarray(nonmembers, dtype=np.int64))
    if given is not None and (
        not given.size or given.min() < 0 or given.max() >= signals.keep.shape[1]
    ):
        raise SpecError(
            f"expected record columns in [0, {signals.keep.shape[1]}), at least one",
            key="params.nonmembers",
        )
    fitted: dict[tuple[int, ...], Any] = {}
    out = []
    for t in (int(t) for t in targets):
        refs = np.flatnonzero(signals.reference_mask(t, source))
        if features == "references" and not refs.size:
            raise SpecError(
                f"quantile: model {t} has no reference model of source {source!r} to take record "
                f"features from (use features: label)"
            )
        cols = signals.challenge[t]
        if given is not None:
            scored = np.intersect1d(given, cols)
            if scored.size:
                raise SpecError(
                    f"quantile: {scored.size} of the non-member records are challenge points of "
                    f"model {t} (e.g. column {scored[0]}); the fit may not see a scored point",
                    key="params.nonmembers",
                )
            x, y = _features(signals, stat, refs, given, features), stat[t, given]
            model = _fit(x, y, **opts)
        else:
            key = tuple(int(r) for r in refs)
            if key not in fitted:
                x, y = _pooled(signals, stat, refs, features)
                if not y.size:
                    raise SpecError(
                        f"quantile: the references of model {t} (source {source!r}) have no record "
                        f"known OUT to fit on; give params.nonmembers or more references"
                    )
                fitted[key] = _fit(x, y, **opts)
            model = fitted[key]
        out.append(stat[t, cols] - model.predict(_features(signals, stat, refs, cols, features)))
    return np.stack(out)


def _check(alpha: float, statistic: str, features: str, source: str) -> None:
    if not 0.0 < alpha < 1.0:
        raise SpecError(f"expected a level in (0, 1), got {alpha}", key="params.alpha")
    if statistic not in QUANTILE_STATISTICS:
        raise SpecError(
            f"expected one of {', '.join(QUANTILE_STATISTICS)}, got {statistic!r}",
            key="params.statistic",
        )
    if features not in QUANTILE_FEATURES:
        raise SpecError(
            f"expected one of {', '.join(QUANTILE_FEATURES)}, got {features!r}",
            key="params.features",
        )
    if source not in SOURCES:
        raise SpecError(
            f"expected one of {', '.join(SOURCES)}, got {source!r}", key="params.source"
        )


def _features(
    signals: Signals, stat: np.ndarray, refs: np.ndarray, cols: np.ndarray, features: str
) -> np.ndarray:
    """``[len(cols), F]``: the label, then (``references``) the mean and standard deviation of
    ``stat`` over the models ``refs`` on each record."""
    label = signals.labels[cols].astype(np.float64)[:, None]
    if features == "label":
        return label
    v = stat[np.ix_(refs, cols)]
    return np.column_stack([label, v.mean(0), v.std(0)])


def _pooled(
    signals: Signals, stat: np.ndarray, refs: np.ndarray, features: str
) -> tuple[np.ndarray, np.ndarray]:
    """Features and statistic of every known-OUT pair (model of ``refs``, record); the reference
    features of a pair leave its own model out (std 0 with fewer than 2 others)."""
    ref_row, col = np.nonzero(signals.keep[refs] == OUT)
    y = stat[refs[ref_row], col]
    label = signals.labels[col].astype(np.float64)[:, None]
    if features == "label":
        return label, y
    v = stat[refs]
    n = refs.size - 1
    mean = (v.sum(0)[col] - y) / max(n, 1)
    var = ((v**2).sum(0)[col] - y**2) / max(n, 1) - mean**2
    std = np.sqrt(np.maximum(var, 0.0)) if n >= 2 else np.zeros_like(y)
    return np.column_stack([label, mean, std]), y


def _fit(x: np.ndarray, y: np.ndarray, *, alpha: float, max_fit: int, seed: int) -> Any:
    """A gradient-boosted regressor of the (1 - alpha) quantile of ``y`` given ``x``, fitted on at
    most ``max_fit`` rows (drawn with an rng seeded by ``seed``)."""
    # lazy: scikit-learn loads only for the fitted attacks
    from sklearn.ensemble import GradientBoostingRegressor

    if y.size > max_fit:
        keep = np.random.default_rng(seed).choice(y.size, max_fit, replace=False)
        x, y = x[keep], y[keep]
    model = GradientBoostingRegressor(  # single-threaded: no OpenMP contention on shared CPUs
        loss="quantile", alpha=1.0 - alpha, n_estimators=100, max_depth=3, random_state=seed
    )
    return model.fit(x, y)
