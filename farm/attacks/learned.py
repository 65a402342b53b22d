"""The learned attack (Shokri et al. 2017) and stacking: a classifier on per-point features and the
scores of other attacks, cross-fitted over labelled models. Pure."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from farm.attacks.base import BASE
from farm.attacks.baselines import in_calibration, loss, reference
from farm.attacks.lira import lira
from farm.attacks.references import cross_fit, holding_out
from farm.attacks.signals import Signals


def features(signals: Signals, targets: np.ndarray, *, stack: Sequence[str] = ()) -> np.ndarray:
    """``[T, P, F]`` per-point features for ``learned``: loss, margin and the calibrated attack
    scores; the white-box and several-query LiRA scores when the signals carry them; then the
    attacks named in ``stack`` (``farm.attacks.base.BASE`` names, default parameters)."""
    cols = [signals.challenge[t] for t in targets]
    parts = [
        np.stack([signals.logprob[t, c] for t, c in zip(targets, cols)]),
        np.stack([signals.margin[t, c] for t, c in zip(targets, cols)]),
        in_calibration(signals, targets, labelled_only=False),
        reference(signals, targets),
        lira(signals, targets, online=True),
        lira(signals, targets, online=False),
    ]
    if signals.grad_norm is not None:
        parts += [
            loss(signals, targets, statistic="grad_norm"),
            lira(signals, targets, statistic="grad_norm"),
        ]
    if signals.query_logits is not None:
        parts.append(lira(signals, targets, statistic="query_margin"))
    for name in stack:
        if name not in BASE:  # the learned attacks, or a name no attack has
            raise ValueError(
                f"stack holds only attacks that score from the signals alone ({', '.join(BASE)}), "
                f"got {name!r}"
            )
        parts.append(BASE[name](signals, targets))
    return np.nan_to_num(np.stack(parts, axis=-1), nan=0.0, posinf=50.0, neginf=-50.0)


def learned(
    signals: Signals,
    targets: np.ndarray,
    *,
    folds: int = 5,
    seed: int = 0,
    stack: Sequence[str] = (),
    classifier: str = "boosting",
) -> np.ndarray:
    """Shokri et al.'s learned attack, and stacking: a classifier on ``features`` (with the scores
    of the attacks in ``stack``) of labelled models' points; ``classifier``: ``boosting``
    (gradient-boosted trees) or ``logistic`` (standardized logistic regression, the usual stacker).

    A target is never scored by a classifier that saw it: labelled targets are cross-fitted in
    ``folds`` groups of models; other targets use a classifier fitted on every labelled model. While
    a group is held out, its models' keep rows are unknown to the features (``holding_out``): they
    are no reference of the models the classifier is fitted on, nor of the targets it scores, so a
    labelled target's own membership never enters its score. Targets that are not labelled are
    scored with every labelled model as a reference.
    """
    labelled = np.flatnonzero(signals.labelled)
    out = np.zeros((len(targets), signals.challenge.shape[1]))
    for fit, rows in cross_fit(signals, targets, folds, seed):
        seen = holding_out(signals, np.setdiff1d(labelled, fit))
        feats = features(seen, fit, stack=stack)
        labels = np.stack([signals.solution(int(m)) for m in fit])
        clf = _classifier(classifier, seed)
        clf.fit(feats.reshape(-1, feats.shape[-1]), labels.ravel())
        scored = features(seen, np.asarray(targets)[rows], stack=stack)
        proba = clf.predict_proba(scored.reshape(-1, feats.shape[-1]))[:, 1]
        out[rows] = proba.reshape(len(rows), -1)
    return out


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
