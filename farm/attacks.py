"""Membership attacks: pure, keyword-only functions of cached signals with one signature and one direction.

Every attack is ``attack(signals, targets, **params) -> scores`` with ``scores[t, j]`` the membership score of
target ``targets[t]`` on its ``j``-th challenge point (challenge order); higher = member. References of a target
are every model of ``signals`` with known membership (labelled models and shadows) *except the target itself*,
so a labelled target is never its own reference. Variants are parameters (see ``ATTACKS``), not copies.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import stats

from farm.signals import logit_margin, true_label_logprob

IN, OUT, UNKNOWN = 1, 0, -1


@dataclass(frozen=True)
class Signals:
    """Cached logits of every model of a scenario on the records ``R`` it needs (the union of challenge points).

    ``logits [M, R, 2]`` float; ``labels [R]``; ``keep [M, R]`` int8: 1 IN, 0 OUT, -1 unknown (dev/final
    targets); ``challenge [M, P]``: column of each of a model's ``P`` challenge points in ``R`` (-1 rows for
    shadows, which have none); ``labelled [M]``: provided models with known membership (MICO's ``train``).
    """

    logits: np.ndarray
    labels: np.ndarray
    keep: np.ndarray
    challenge: np.ndarray
    labelled: np.ndarray

    @functools.cached_property
    def logprob(self) -> np.ndarray:
        """log p(y|x) = -CE, ``[M, R]``."""
        return true_label_logprob(self.logits, self.labels)

    @functools.cached_property
    def margin(self) -> np.ndarray:
        """LiRA's statistic z_y - z_other, ``[M, R]``."""
        return logit_margin(self.logits, self.labels)

    def reference_mask(self, target: int) -> np.ndarray:
        """``[M]``: models usable as references for ``target`` (known membership, not the target)."""
        mask = (self.keep != UNKNOWN).all(axis=1)
        mask[target] = False
        return mask

    def solution(self, model: int) -> np.ndarray:
        """0/1 membership of a labelled model on its challenge points."""
        return self.keep[model, self.challenge[model]].astype(np.int64)


Attack = Callable[..., np.ndarray]


def loss(signals: Signals, targets: np.ndarray) -> np.ndarray:
    """Starting-kit baseline: -CE of the target on each point."""
    return np.stack([signals.logprob[t, signals.challenge[t]] for t in targets])


def reference(signals: Signals, targets: np.ndarray) -> np.ndarray:
    """Runner-up: p_target(y|x) - mean p_ref(y|x) over OUT references (with the per-target plan: the one
    reference trained on the target's ``rest``). Points without an OUT reference get the all-reference mean."""
    prob = np.exp(signals.logprob)
    out = []
    for t in targets:
        cols = signals.challenge[t]
        ref = _mean_where(prob, signals, t, cols, OUT, fallback=True)
        out.append(prob[t, cols] - ref)
    return np.stack(out)


def in_calibration(signals: Signals, targets: np.ndarray, *, labelled_only: bool = True) -> np.ndarray:
    """Winner: -CE_target(x) minus the mean -CE over references that had x IN (labelled models only, as the
    winner did, unless ``labelled_only=False``). Points with no IN reference are left uncalibrated."""
    out = []
    for t in targets:
        cols = signals.challenge[t]
        extra = None if not labelled_only else signals.labelled
        ref = _mean_where(signals.logprob, signals, t, cols, IN, restrict=extra)
        out.append(signals.logprob[t, cols] - np.nan_to_num(ref, nan=0.0))
    return np.stack(out)


def lira(signals: Signals, targets: np.ndarray, *, online: bool = True, fixed_variance: bool = True,
         min_count: int = 2) -> np.ndarray:
    """LiRA (Carlini et al. 2022) on the logit margin, IN/OUT Gaussians from all references (labelled and shadows).

    Online: log N(phi; mu_in, s_in) - log N(phi; mu_out, s_out). Offline: log Phi((phi - mu_out) / s_out), a
    one-sided test against OUT only. ``fixed_variance``: one pooled standard deviation per side (better with few
    references); otherwise per example where at least ``min_count`` observations exist. A point lacking IN (OUT)
    references takes mu_out + gap (mu_in - gap), the gap being the mean IN-OUT difference over all points.
    """
    phi = signals.margin
    out = []
    for t in targets:
        cols = signals.challenge[t]
        stats_in = _gauss(phi, signals, t, cols, IN, fixed_variance, min_count)
        stats_out = _gauss(phi, signals, t, cols, OUT, fixed_variance, min_count)
        mu_in, sd_in, mu_out, sd_out = _fill_means(*stats_in, *stats_out)
        x = phi[t, cols]
        if online:
            out.append(stats.norm.logpdf(x, mu_in, sd_in) - stats.norm.logpdf(x, mu_out, sd_out))
        else:
            out.append(stats.norm.logcdf(x, mu_out, sd_out))
    return np.stack(out)


def rmia(signals: Signals, targets: np.ndarray, *, gamma: float = 1.0, max_population: int = 5000,
         seed: int = 0) -> np.ndarray:
    """RMIA (Zarifzadeh et al. 2024): score(x) = Pr_z[ LR(x) / LR(z) > gamma ], LR = p_target(y|.) / p_ref(y|.).

    p_ref is the average of the IN-mean and the OUT-mean over references (balanced, as RMIA's online variant).
    Population points z: in MICO only records whose logits the farm holds and that are not the target's own
    challenge points -- the other challenge points of the scenario. For a dev/final target these are about
    98.7% members of its training set (non-members outside the challenge set, its evaluation split, are
    unknown without ``seed_training``); RMIA only needs z to be fixed across x, not to be non-members.
    """
    prob = np.exp(signals.logprob)
    rng = np.random.default_rng(seed)
    out = []
    for t in targets:
        ref_in = _mean_where(prob, signals, t, np.arange(prob.shape[1]), IN)
        ref_out = _mean_where(prob, signals, t, np.arange(prob.shape[1]), OUT)
        p_ref = np.where(np.isnan(ref_in), ref_out, np.where(np.isnan(ref_out), ref_in, (ref_in + ref_out) / 2))
        p_ref = np.nan_to_num(p_ref, nan=np.nanmean(prob[signals.reference_mask(t)]))
        ratio = prob[t] / np.maximum(p_ref, 1e-12)
        cols = signals.challenge[t]
        others = np.setdiff1d(np.arange(prob.shape[1]), cols)
        if others.size > max_population:
            others = rng.choice(others, max_population, replace=False)
        z = np.sort(ratio[others] * gamma)
        out.append(np.searchsorted(z, ratio[cols], side="left") / max(z.size, 1))
    return np.stack(out)


def features(signals: Signals, targets: np.ndarray) -> np.ndarray:
    """``[T, P, F]`` per-point features for ``learned``: loss, margin and the calibrated attack scores."""
    cols = [signals.challenge[t] for t in targets]
    parts = [
        np.stack([signals.logprob[t, c] for t, c in zip(targets, cols)]),
        np.stack([signals.margin[t, c] for t, c in zip(targets, cols)]),
        in_calibration(signals, targets, labelled_only=False),
        reference(signals, targets),
        lira(signals, targets, online=True),
        lira(signals, targets, online=False),
    ]
    return np.nan_to_num(np.stack(parts, axis=-1), nan=0.0, posinf=50.0, neginf=-50.0)


def learned(signals: Signals, targets: np.ndarray, *, folds: int = 5, seed: int = 0) -> np.ndarray:
    """Shokri et al.'s learned attack: a gradient-boosted classifier on ``features`` of labelled models' points.

    A target is never scored by a classifier that saw it: labelled targets are cross-fitted in ``folds`` groups;
    other targets use a classifier fitted on every labelled model.
    """
    from sklearn.ensemble import HistGradientBoostingClassifier

    labelled = np.flatnonzero(signals.labelled)
    feats = features(signals, labelled)
    labels = np.stack([signals.solution(int(m)) for m in labelled])
    order = np.random.default_rng(seed).permutation(labelled.size)
    fold = {int(labelled[i]): int(rank % max(2, folds)) for rank, i in enumerate(order)}
    target_feats = features(signals, targets)
    out = np.zeros(target_feats.shape[:2])
    for g in {fold.get(int(t), -1) for t in targets}:
        fit = np.array([fold[int(m)] != g for m in labelled])
        rows = [i for i, t in enumerate(targets) if fold.get(int(t), -1) == g]
        clf = HistGradientBoostingClassifier(max_iter=150, learning_rate=0.05, random_state=seed)
        clf.fit(feats[fit].reshape(-1, feats.shape[-1]), labels[fit].ravel())
        proba = clf.predict_proba(target_feats[rows].reshape(-1, feats.shape[-1]))[:, 1]
        out[rows] = proba.reshape(len(rows), -1)
    return out


ATTACKS: dict[str, Attack] = {
    "loss": loss,
    "reference": reference,
    "in_calibration": in_calibration,
    "lira_online": functools.partial(lira, online=True),
    "lira_offline": functools.partial(lira, online=False),
    "lira": lira,
    "rmia": rmia,
    "learned": learned,
}


def run_attack(name: str, signals: Signals, targets: np.ndarray, **params: object) -> np.ndarray:
    """Look up ``name`` in ``ATTACKS`` and apply it with ``params``."""
    if name not in ATTACKS:
        raise KeyError(f"unknown attack {name!r} (expected one of {sorted(ATTACKS)})")
    return ATTACKS[name](signals, targets, **params)


def _mean_where(values: np.ndarray, signals: Signals, target: int, cols: np.ndarray, side: int, *,
                fallback: bool = False, restrict: np.ndarray | None = None) -> np.ndarray:
    """Mean of ``values[r, cols]`` over references r of ``target`` with ``keep[r, col] == side`` (NaN if none)."""
    refs = signals.reference_mask(target) & (True if restrict is None else restrict)
    v, k = values[refs][:, cols], signals.keep[refs][:, cols] == side
    count = k.sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(count > 0, (v * k).sum(0) / count, np.nan)
    if fallback and refs.any():
        mean = np.where(np.isnan(mean), v.mean(0), mean)
    return mean


def _gauss(phi: np.ndarray, signals: Signals, target: int, cols: np.ndarray, side: int, fixed: bool,
           min_count: int) -> tuple[np.ndarray, np.ndarray]:
    refs = signals.reference_mask(target)
    v, k = phi[refs][:, cols], signals.keep[refs][:, cols] == side
    count = k.sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mu = np.where(count > 0, (v * k).sum(0) / count, np.nan)
        dev2 = ((v - mu) ** 2 * k).sum(0)
        pooled = np.sqrt(dev2.sum() / max(count.sum() - np.isfinite(mu).sum(), 1))
        per = np.sqrt(dev2 / np.maximum(count - 1, 1))
    pooled = pooled if np.isfinite(pooled) and pooled > 0 else 1.0
    sd = np.full(cols.size, pooled) if fixed else np.where(count >= min_count, np.maximum(per, 1e-3), pooled)
    return mu, sd


def _fill_means(mu_in: np.ndarray, sd_in: np.ndarray, mu_out: np.ndarray, sd_out: np.ndarray) -> tuple:
    both = np.isfinite(mu_in) & np.isfinite(mu_out)
    gap = float(np.mean(mu_in[both] - mu_out[both])) if both.any() else 1.0
    mu_in = np.where(np.isfinite(mu_in), mu_in, mu_out + gap)
    mu_out = np.where(np.isfinite(mu_out), mu_out, mu_in - gap)
    fill = float(np.nanmean(np.r_[mu_in, mu_out])) if np.isfinite(np.r_[mu_in, mu_out]).any() else 0.0
    return np.nan_to_num(mu_in, nan=fill + gap), sd_in, np.nan_to_num(mu_out, nan=fill), sd_out
