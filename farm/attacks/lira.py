"""LiRA (Carlini et al. 2022): Gaussian likelihood ratios of a target's statistic under IN and OUT
references, online or offline. Pure."""

from __future__ import annotations

import numpy as np

from farm.attacks.signals import IN, OUT, Signals


def lira(
    signals: Signals,
    targets: np.ndarray,
    *,
    online: bool = True,
    fixed_variance: bool = True,
    min_count: int = 2,
    in_from: str = "all",
    out_from: str = "all",
    statistic: str = "margin",
) -> np.ndarray:
    """LiRA (Carlini et al. 2022): Gaussians of ``statistic`` (default the logit margin) under IN
    and OUT references.

    Online: log N(phi; mu_in, s_in) - log N(phi; mu_out, s_out). Offline: log Phi((phi - mu_out) /
    s_out), a one-sided test against OUT only. IN references come from ``in_from``, OUT ones from
    ``out_from`` (``SOURCES``; e.g. IN from the labelled models, OUT from the farm's shadows).
    ``fixed_variance``: one pooled standard deviation per side; otherwise per example where that
    side has at least ``min_count`` observations, pooled elsewhere. A point lacking IN (OUT)
    references takes mu_out + gap (mu_in - gap), the gap being the mean IN-OUT difference over the
    points that have both. With several queries per record (``query_margin``, ``[M, R, Q]``) each
    query gets its own Gaussians and the log-likelihood ratios are summed over queries, as LiRA
    combines augmentations.
    """
    # scipy.stats takes ~0.5 s to import: loaded on the first score, not with the registry, so
    # ``farm plan`` and ``import farm.cli`` never pay it
    from scipy import stats

    phi = signals.statistic(statistic)
    out = []
    for t in targets:
        cols = signals.challenge[t]
        mu_in, sd_in = _gauss(phi, signals, t, cols, IN, in_from, fixed_variance, min_count)
        mu_out, sd_out = _gauss(phi, signals, t, cols, OUT, out_from, fixed_variance, min_count)
        mu_in, mu_out = _fill_means(mu_in, mu_out)
        x = phi[t, cols]
        if online:
            llr = stats.norm.logpdf(x, mu_in, sd_in) - stats.norm.logpdf(x, mu_out, sd_out)
        else:
            llr = stats.norm.logcdf(x, mu_out, sd_out)
        out.append(llr.reshape(cols.size, -1).sum(axis=1))
    return np.stack(out)


def _gauss(
    phi: np.ndarray,
    signals: Signals,
    target: int,
    cols: np.ndarray,
    side: int,
    source: str,
    fixed: bool,
    min_count: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation of ``phi[r, cols(, q)]`` over ``side`` references: ``[P]`` or
    ``[P, Q]`` (NaN mean where none). The pooled deviation is per query, over points; 1 where it
    cannot be estimated."""
    refs = np.flatnonzero(signals.reference_mask(target, source))
    v = phi[np.ix_(refs, cols)]
    k = (signals.keep[np.ix_(refs, cols)] == side).reshape(
        refs.size, cols.size, *([1] * (v.ndim - 2))
    )
    count = k.sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mu = np.where(count > 0, (v * k).sum(0) / count, np.nan)
        dev2 = np.where(count > 0, (np.where(k, v - mu, 0.0) ** 2).sum(0), 0.0)
        dof = count.sum(0) - np.isfinite(mu).sum(0)
        pooled = np.sqrt(dev2.sum(0) / np.maximum(dof, 1))
        per = np.sqrt(dev2 / np.maximum(count - 1, 1))
    pooled = np.where(np.isfinite(pooled) & (pooled > 0), pooled, 1.0)
    sd = (
        np.broadcast_to(pooled, mu.shape)
        if fixed
        else np.where(count >= min_count, np.maximum(per, 1e-3), pooled)
    )
    return mu, sd


def _fill_means(mu_in: np.ndarray, mu_out: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Fill missing IN (OUT) means from the other side and the mean gap per query (1 if no point has
    both); points with neither get the mean of all means (0 if none)."""
    both = np.isfinite(mu_in) & np.isfinite(mu_out)
    n_both = both.sum(0)
    gap = np.where(
        n_both > 0, np.where(both, mu_in - mu_out, 0.0).sum(0) / np.maximum(n_both, 1), 1.0
    )
    filled_in = np.where(np.isfinite(mu_in), mu_in, mu_out + gap)
    mu_out = np.where(np.isfinite(mu_out), mu_out, mu_in - gap)
    mu_in = filled_in
    known = np.isfinite(mu_out)
    fill = np.where(
        known.any(0), np.where(known, mu_out, 0.0).sum(0) / np.maximum(known.sum(0), 1), 0.0
    )
    return np.where(np.isfinite(mu_in), mu_in, fill + gap), np.where(known, mu_out, fill)
