"""Baseline attacks: the target's own loss, its gap to the references' mean, and calibration by the
IN references. Pure."""

from __future__ import annotations

import numpy as np

from farm.attacks.references import mean_where
from farm.attacks.signals import IN, OUT, Signals


def loss(signals: Signals, targets: np.ndarray, *, statistic: str = "logprob") -> np.ndarray:
    """Uncalibrated baseline: the target's own statistic on each point. ``logprob`` (-CE) is the
    starting kit's; ``grad_norm`` (-log of the per-example gradient norm) is its white-box
    counterpart."""
    values = signals.statistic(statistic)
    return np.stack([values[t, signals.challenge[t]] for t in targets])


def reference(signals: Signals, targets: np.ndarray) -> np.ndarray:
    """Runner-up: p_target(y|x) - mean p_ref(y|x) over OUT references (with the per-target plan: the
    one reference trained on the target's ``rest``). Points without an OUT reference get the
    all-reference mean."""
    out = []
    for t in targets:
        cols = signals.challenge[t]
        ref = mean_where(signals.prob, signals, t, cols, side=OUT, fallback=True)
        out.append(signals.prob[t, cols] - ref)
    return np.stack(out)


def in_calibration(
    signals: Signals, targets: np.ndarray, *, labelled_only: bool = True
) -> np.ndarray:
    """Winner: -CE_target(x) minus the mean -CE over references that had x IN (labelled models only,
    as the winner did, unless ``labelled_only=False``). Points with no IN reference are left
    uncalibrated."""
    source = "labelled" if labelled_only else "all"
    out = []
    for t in targets:
        cols = signals.challenge[t]
        ref = mean_where(signals.logprob, signals, t, cols, side=IN, source=source)
        out.append(signals.logprob[t, cols] - np.nan_to_num(ref, nan=0.0))
    return np.stack(out)
