"""The learned attack (Shokri et al. 2017) and stacking: a classifier on per-point features and the
scores of other attacks, cross-fitted over labelled models. Pure."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from farm.attacks.base import BASE
from farm.attacks.baselines import in_calibration, loss, reference
from farm.attacks.lira import lira
from farm.attacks.references import cross_fit, holding_out
from farm.attacks.signals import Signals

EXTRA_SIGNALS = ("query_logits", "grad_norm")  # the optional Signals fields features can name
FIT_ON = ("labelled", "known")  # which models a learned attack's classifier is fitted on


def features(
    signals: Signals,
    targets: np.ndarray,
    *,
    stack: Sequence[str] = (),
    extra_signals: Sequence[str] = (),
) -> np.ndarray:
    """``[T, P, F]`` per-point features for ``learned``: loss, margin and the calibrated attack
    scores; for each field named in ``extra_signals`` (``EXTRA_SIGNALS``), the attacks on it
    (``grad_norm``: the gradient-norm loss and LiRA; ``query_logits``: the several-query LiRA);
    then the attacks named in ``stack`` (``farm.attacks.base.BASE`` names, default parameters).
    The features are what the arguments name, whatever else ``signals`` carries."""
    check_extra_signals(extra_signals)
    cols = [signals.challenge[t] for t in targets]
    parts = [
        np.stack([signals.logprob[t, c] for t, c in zip(targets, cols)]),
        np.stack([signals.margin[t, c] for t, c in zip(targets, cols)]),
        in_calibration(signals, targets, labelled_only=False),
        reference(signals, targets),
        lira(signals, targets, online=True),
        lira(signals, targets, online=False),
    ]
    if "grad_norm" in extra_signals:
        parts += [
            loss(signals, targets, statistic="grad_norm"),
            lira(signals, targets, statistic="grad_norm"),
        ]
    if "query_logits" in extra_signals:
        parts.append(lira(signals, targets, statistic="query_margin"))
    for name in stack:
        if name not in BASE:  # the learned attacks, or a name no attack has
            raise ValueError(
                f"stack holds only attacks that score from the signals alone ({', '.join(BASE)}), "
                f"got {name!r}"
            )
        parts.append(BASE[name](signals, targets))
    return np.nan_to_num(np.stack(parts, axis=-1), nan=0.0, posinf=50.0, neginf=-50.0)


def check_extra_signals(extra_signals: Sequence[str]) -> None:
    """``ValueError`` unless every name of ``extra_signals`` is in ``EXTRA_SIGNALS``."""
    unknown = sorted(set(extra_signals) - set(EXTRA_SIGNALS))
    if unknown:
        raise ValueError(
            f"unknown extra signal(s) {unknown} (expected some of {', '.join(EXTRA_SIGNALS)})"
        )


def learned(
    signals: Signals,
    targets: np.ndarray,
    *,
    folds: int = 5,
    seed: int = 0,
    stack: Sequence[str] = (),
    classifier: str = "boosting",
    extra_signals: Sequence[str] = (),
    fit_on: str = "labelled",
) -> np.ndarray:
    """Shokri et al.'s learned attack, and stacking: a classifier on ``features`` (with the scores
    of the attacks in ``stack`` and the attacks on the optional signals ``extra_signals``) of
    models' points whose membership is known; ``classifier``: ``boosting`` (gradient-boosted
    trees) or ``logistic`` (standardized logistic regression, the usual stacker).

    ``fit_on``: ``labelled``: the labelled models' challenge points; ``known``: also every shadow
    (membership known on every record), on as many records per shadow as a target has challenge
    points (``with_shadow_points``), the way LT-MIA trains one attack across many models of known
    membership. Either way the classifier never sees a model it scores.

    A target is never scored by a classifier that saw it: labelled targets are cross-fitted in
    ``folds`` groups of models; other targets use a classifier fitted on every labelled model. While
    a group is held out, its models' keep rows are unknown to the features (``holding_out``): they
    are no reference of the models the classifier is fitted on, nor of the targets it scores, so a
    labelled target's own membership never enters its score. Targets that are not labelled are
    scored with every labelled model as a reference.
    """
    if fit_on not in FIT_ON:
        raise ValueError(f"fit_on: expected one of {', '.join(FIT_ON)}, got {fit_on!r}")
    check_extra_signals(extra_signals)
    shadows = np.flatnonzero(signals.known & ~signals.labelled) if fit_on == "known" else None
    if shadows is not None and shadows.size:
        signals = with_shadow_points(signals, shadows, seed=seed)
    kw = {"stack": stack, "extra_signals": extra_signals}
    labelled = np.flatnonzero(signals.labelled)
    out = np.zeros((len(targets), signals.challenge.shape[1]))
    for fit, rows in cross_fit(signals, targets, folds, seed):
        seen = holding_out(signals, np.setdiff1d(labelled, fit))
        if shadows is not None:
            fit = np.concatenate([fit, shadows])
        feats = features(seen, fit, **kw)
        labels = np.stack([seen.keep[m, seen.challenge[m]].astype(np.int64) for m in fit])
        clf = _classifier(classifier, seed)
        clf.fit(feats.reshape(-1, feats.shape[-1]), labels.ravel())
        scored = features(seen, np.asarray(targets)[rows], **kw)
        proba = clf.predict_proba(scored.reshape(-1, feats.shape[-1]))[:, 1]
        out[rows] = proba.reshape(len(rows), -1)
    return out


def with_shadow_points(signals: Signals, shadows: np.ndarray, *, seed: int) -> Signals:
    """``signals`` with challenge rows for ``shadows`` (which have none): ``P`` records of ``R``
    each (a target's number of challenge points), drawn without replacement by a generator seeded
    with ``seed`` and the shadow, so a classifier can be fitted on their known membership."""
    n_records, width = signals.keep.shape[1], signals.challenge.shape[1]
    challenge = signals.challenge.copy()
    for m in shadows:
        rng = np.random.default_rng([seed, 0x5AD0, int(m)])
        challenge[m] = np.sort(rng.choice(n_records, size=width, replace=False))
    return replace(signals, challenge=challenge)


def _classifier(name: str, seed: int) -> Any:
    # lazy: scikit-learn loads only for the fitted attacks
    from sklearn.ensemble import HistGradientBoostingClassifier

    # lazy: scikit-learn loads only for the fitted attacks
    from sklearn.linear_model import LogisticRegression

    # lazy: scikit-learn loads only for the fitted attacks
    from sklearn.pipeline import make_pipeline

    # lazy: scikit-learn loads only for the fitted attacks
    from sklearn.preprocessing import StandardScaler

    if name == "boosting":
        return HistGradientBoostingClassifier(max_iter=150, learning_rate=0.05, random_state=seed)
    if name == "logistic":
        return make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    raise ValueError(f"unknown classifier {name!r} (expected boosting or logistic)")
