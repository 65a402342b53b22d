"""RMIA (Zarifzadeh et al. 2024): the target's likelihood ratio on x against population points z,
with the offline a and gamma fitted on labelled models by cross-fitting; and InfoRMIA (Tao and
Shokri 2025), its continuous, information-theoretic score over the same parts. Pure."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from farm.attacks.references import cross_fit, mean_where, references
from farm.attacks.signals import IN, OUT, Signals
from farm.errors import SpecError
from farm.mico.scorer import score

RMIA_A_GRID = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)


RMIA_GAMMA_GRID = (1.0, 1.25, 1.5, 2.0, 4.0)


@dataclass(frozen=True, kw_only=True)
class _RmiaParts:
    """One target's inputs to RMIA: its log p(y|.) on its challenge points ``x [P]`` and population
    sample ``z [Z]``; mean reference p(y|.) over IN / OUT references there (NaN where a side has
    none); ``fill``: p_ref for points with no reference at all."""

    x: np.ndarray
    z: np.ndarray
    in_x: np.ndarray
    out_x: np.ndarray
    in_z: np.ndarray
    out_z: np.ndarray
    fill: float


def rmia(
    signals: Signals,
    targets: np.ndarray,
    *,
    gamma: float | Sequence[float] = 1.0,
    offline_a: float | Sequence[float] = 0.3,
    online: bool = True,
    in_from: str = "all",
    out_from: str = "all",
    max_population: int = 5000,
    seed: int = 0,
    objective: str = "TPR_FPR_1000",
    folds: int = 5,
) -> np.ndarray:
    """RMIA (Zarifzadeh et al. 2024): score(x) = Pr_z[ LR(x) / LR(z) > gamma ], LR(.) =
    p_target(y|.) / p(.).

    p(.) from references (``in_from``/``out_from``): online, where a point has IN and OUT
    references, the balanced mean (p_IN + p_OUT) / 2 (the paper averages half-IN, half-OUT
    references); with OUT references only (always, when ``online=False``) the offline approximation
    ((1 + a) p_OUT + (1 - a)) / 2, ``a = offline_a``; with IN only, the same linear model solved for
    p_OUT = (p_IN - 1 + a) / a; with none, the mean over all references. ``gamma`` / ``offline_a``
    given as sequences are grids: the pair maximizing ``objective`` (a ``farm.mico.scorer.score``
    key, ties by AUC) on the labelled models' pooled leave-one-out scores is chosen, cross-fitted in
    ``folds`` groups of labelled models; while a group is held out, its models are no reference of
    the models the pair is chosen on, so a labelled target's own membership never steers the pair it
    is scored by.

    Population points z: the records of the signals that are not the target's challenge points, at
    most ``max_population`` of them drawn with an rng seeded by ``(seed, target)`` (so a target's
    score does not depend on which other targets share the call). Which records those are depends on
    the other models' challenge seeds only, never on the target's training set or on its keep row: z
    is drawn independently of the target, as the paper draws it, and a target's score never changes
    with its own keep mask (its answers). The paper's z are moreover non-members; no record is known
    OUT of a target without its own answers, though: a record outside the target's challenge points
    is in its training set with probability (len_training - len_challenge) / (n_total - 2
    len_challenge), 98.7% in MICO, whichever other model it is a challenge point (or non-member) of;
    only a labelled target's own split (its keep row) names its few OUT records, and scoring it with
    those would use its answers and score train targets unlike dev/final ones, whose splits are
    secret. So z here are mostly members, equally so for every target: for one target the score is
    still a monotone function of LR(x) (the ranking of its points is unchanged), and targets stay
    comparable under one threshold. ``SpecError`` (a ``ValueError``) when a target has no population
    point (every record is one of its challenge points), rather than scores of 0 (issue 23).
    """
    a_grid, g_grid = _grid(offline_a), _grid(gamma)
    if min(g_grid) <= 0:
        raise SpecError(f"rmia: gamma must be > 0, got {gamma}", key="params.gamma")
    grid = [(a, g) for a in a_grid for g in g_grid]
    return _scores(
        signals,
        targets,
        grid,
        lambda parts, key: _rmia_score(parts, key[0], key[1], online),
        opts=_opts("rmia", in_from, out_from, max_population, seed),
        fit=(folds, seed, objective),
    )


def informia(
    signals: Signals,
    targets: np.ndarray,
    *,
    offline_a: float | Sequence[float] = 0.3,
    online: bool = True,
    in_from: str = "all",
    out_from: str = "all",
    max_population: int = 5000,
    seed: int = 0,
    objective: str = "TPR_FPR_1000",
    folds: int = 5,
) -> np.ndarray:
    """InfoRMIA (Tao and Shokri 2025, arXiv 2510.05582), as read here: RMIA's continuous score, in
    bits, score(x) = log2 LR(x) + D_KL(p(z) || p(z | target)), estimated over RMIA's population
    points z as log2 LR(x) - mean_z log2 LR(z) = mean_z log2 (LR(x) / LR(z)), LR(.) = p_target(y|.)
    / p(.).

    Which formula: the paper's text was not available here. What is documented (the paper's
    abstract and summaries: "a continuous, bit-based score" from a Bayes-factor formulation of
    RMIA's composite hypothesis test, the information gain log p(x|theta) / p(x) plus a term
    D_KL(p(z) || p(z|theta)) for the shift between population and target; and two public token-level
    implementations, which score log p_target / p_ref + KL(p_ref || p_target) over a vocabulary) is
    what this implements, with the KL's expectation over z ~ p(z) taken as the mean over the
    population sample (drawn from the population, as RMIA draws z). Weighting z by the references'
    normalized p(z) instead (the token form, the vocabulary replaced by the population sample) gives
    the same score plus a constant per target; that variant, temperature scaling and any other
    detail of the paper's own implementation are not implemented. So: where RMIA counts the fraction
    of z with LR(x) / LR(z) > gamma, InfoRMIA averages log2 (LR(x) / LR(z)); it needs no gamma,
    and within one target it ranks points exactly as log LR(x) does, i.e. as RMIA does (RMIA ties
    broken), while across targets the mean over z sets each target's offset.

    Everything else is RMIA's (``rmia``): p(.) from the references (online / offline with
    ``offline_a``, ``in_from`` / ``out_from``), the population points z (at most ``max_population``
    records outside the target's challenge points, seeded by ``(seed, target)``, never read through
    the target's keep row), an ``offline_a`` grid chosen on the labelled models by cross-fitting
    (``objective``, ``folds``). ``SpecError`` when a target has no population point.
    """
    return _scores(
        signals,
        targets,
        [(a,) for a in _grid(offline_a)],
        lambda parts, key: _info_score(parts, key[0], online),
        opts=_opts("informia", in_from, out_from, max_population, seed),
        fit=(folds, seed, objective),
    )


def _opts(
    name: str, in_from: str, out_from: str, max_population: int, seed: int
) -> dict[str, object]:
    if max_population < 1:
        raise SpecError(
            f"{name}: max_population must be >= 1, got {max_population}",
            key="params.max_population",
        )
    return dict(
        name=name, in_from=in_from, out_from=out_from, max_population=max_population, seed=seed
    )


def _scores(
    signals: Signals,
    targets: np.ndarray,
    grid: Sequence[tuple[float, ...]],
    score_of: Callable[[_RmiaParts, tuple[float, ...]], np.ndarray],
    *,
    opts: dict[str, object],
    fit: tuple[int, int, str],
) -> np.ndarray:
    """``[T, P]``: ``score_of(parts, key)`` of every target, with ``key`` the one point of
    ``grid`` or, for a longer grid, the point chosen by cross-fitting on the labelled models
    (``fit``: folds, seed, objective): while a group is held out, its models are no reference of
    the models the key is chosen on."""
    folds, seed, objective = fit
    parts = {int(t): _rmia_parts(signals, int(t), **opts) for t in targets}  # type: ignore[arg-type]
    if len(grid) == 1:
        return np.stack([score_of(parts[int(t)], grid[0]) for t in targets])
    out = np.zeros((len(targets), signals.challenge.shape[1]))
    labelled = np.flatnonzero(signals.labelled)
    for models, rows in cross_fit(signals, targets, folds, seed):
        held = np.setdiff1d(labelled, models)  # the group scored: no reference of those fitted on
        fit_parts = {
            int(m): _rmia_parts(signals, int(m), exclude=held, **opts)  # type: ignore[arg-type]
            for m in models
        }
        table = {key: {m: score_of(p, key) for m, p in fit_parts.items()} for key in grid}
        key = _best(table, signals, models, objective)
        out[rows] = [score_of(parts[int(targets[r])], key) for r in rows]
    return out


def _grid(value: float | Sequence[float]) -> list[float]:
    values = [float(v) for v in value] if isinstance(value, Sequence) else [float(value)]
    if not values:
        raise SpecError("an RMIA parameter grid is empty")
    return values


def _rmia_parts(
    signals: Signals,
    t: int,
    *,
    name: str,
    in_from: str,
    out_from: str,
    max_population: int,
    seed: int,
    exclude: np.ndarray | None = None,
) -> _RmiaParts:
    """Target ``t``'s inputs to RMIA (population as ``rmia`` says); ``exclude``: models that may
    not be references; ``name``: the attack, for the error."""
    cols = signals.challenge[t]
    others = np.setdiff1d(np.arange(signals.keep.shape[1]), cols)
    if not others.size:
        raise SpecError(
            f"{name}: model {t} has no population point: every record of the signals is one of its "
            f"challenge points, and {name} compares them with records beyond them (without any, "
            f"every score would be 0); give the signals records outside its challenge points"
        )
    if others.size > max_population:
        others = np.sort(
            np.random.default_rng([seed, t]).choice(others, max_population, replace=False)
        )
    both, p = np.r_[cols, others], cols.size
    p_in = mean_where(signals.prob, signals, t, both, side=IN, source=in_from, exclude=exclude)
    p_out = mean_where(signals.prob, signals, t, both, side=OUT, source=out_from, exclude=exclude)
    refs = np.flatnonzero(references(signals, t, "all", exclude))
    fill = float(signals.prob[np.ix_(refs, both)].mean()) if refs.size else 1.0
    lp = signals.logprob[t, both]
    return _RmiaParts(
        x=lp[:p],
        z=lp[p:],
        in_x=p_in[:p],
        out_x=p_out[:p],
        in_z=p_in[p:],
        out_z=p_out[p:],
        fill=fill,
    )


TIE_BREAK = 1e-6  # the tie-break's weight in units of one population point (``_rmia_score``)


def _rmia_score(parts: _RmiaParts, a: float, gamma: float, online: bool) -> np.ndarray:
    """``[P]``: fraction of population points z with log LR(x) - log LR(z) > log gamma, ties
    broken (``_tie_broken``)."""
    lr_x = parts.x - np.log(_p_ref(parts.in_x if online else None, parts.out_x, a, parts.fill))
    lr_z = np.sort(
        parts.z - np.log(_p_ref(parts.in_z if online else None, parts.out_z, a, parts.fill))
    )
    return _tie_broken(lr_x - np.log(gamma), lr_z)


def _tie_broken(v: np.ndarray, lr_z: np.ndarray) -> np.ndarray:
    """``(c + TIE_BREAK f) / (Z + TIE_BREAK)``: ``c`` the count of sorted ``lr_z`` below ``v``
    (RMIA's fraction c / Z, to within 1e-6 / Z), ``f`` in [0, 1] where ``v`` lies between its
    neighbours in ``lr_z`` (linear between two of them; ``exp(v - min)`` below all, ``1 - exp(max -
    v)`` above all; 0 where exp underflows or an LR is infinite). So points beating equally many z
    keep RMIA's order among the others and are ordered among themselves by how far they got,
    instead of tying: with gamma > 1 on a confident model nearly every x beats no z at all, and a
    tie of most scores at 0 leaves a threshold at 0.1 FPR nothing to separate (issue 21: rmia_fit's
    dev TPR fell to 0.004 on clickbait). In [0, 1]; non-decreasing in v."""
    z = lr_z.size
    c = np.searchsorted(lr_z, v, side="left")
    if not z:
        return np.zeros_like(v, dtype=float)
    lo, hi = lr_z[np.maximum(c - 1, 0)], lr_z[np.minimum(c, z - 1)]
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        between = np.where(hi > lo, (v - lo) / np.where(hi > lo, hi - lo, 1.0), 1.0)
        f = np.where(c == 0, np.exp(np.minimum(v - lr_z[0], 0.0)), between)
        f = np.where(c == z, 1.0 - np.exp(np.minimum(lr_z[-1] - v, 0.0)), f)
    f = np.nan_to_num(f, nan=0.0)  # infinite LRs: the count alone, as before the tie-break
    return (c + TIE_BREAK * np.clip(f, 0.0, 1.0)) / (z + TIE_BREAK)


def _info_score(parts: _RmiaParts, a: float, online: bool) -> np.ndarray:
    """``[P]``: log2 LR(x) - mean_z log2 LR(z), in bits (``informia``)."""
    log_lr_x = parts.x - np.log(_p_ref(parts.in_x if online else None, parts.out_x, a, parts.fill))
    log_lr_z = parts.z - np.log(_p_ref(parts.in_z if online else None, parts.out_z, a, parts.fill))
    return (log_lr_x - log_lr_z.mean()) / np.log(2.0)


def _p_ref(p_in: np.ndarray | None, p_out: np.ndarray, a: float, fill: float) -> np.ndarray:
    """RMIA's p(x) from mean IN / OUT reference probabilities (NaN = no reference of that side)."""
    p_in = np.full_like(p_out, np.nan) if p_in is None else p_in
    has_in, has_out = np.isfinite(p_in), np.isfinite(p_out)
    offline = ((1 + a) * p_out + 1 - a) / 2
    implied_out = np.clip((p_in - 1 + a) / a, 1e-6, 1.0) if a > 0 else p_in
    p = np.where(
        has_in & has_out, (p_in + p_out) / 2, np.where(has_out, offline, (p_in + implied_out) / 2)
    )
    return np.maximum(np.where(has_in | has_out, p, fill), 1e-12)


def _best(table: dict, signals: Signals, fit: np.ndarray, objective: str) -> tuple[float, ...]:
    """The grid key whose pooled scores on the models ``fit`` maximize ``(objective, AUC)``."""
    y = np.concatenate([signals.solution(int(m)) for m in fit])

    def key(k: tuple[float, float]) -> tuple[float, ...]:
        pooled = score(y, np.concatenate([table[k][int(m)] for m in fit]))
        return tuple(pooled[o] for o in (objective, "AUC"))

    return max(table, key=key)
