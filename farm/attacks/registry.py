"""Membership attacks: pure, keyword-only functions of cached signals with one signature and one direction.

Every attack is ``attack(signals, targets, **params) -> scores`` with ``scores[t, j]`` the membership score of
target ``targets[t]`` on its ``j``-th challenge point (challenge order); higher = member. References of a target
are models of ``signals`` with known membership (labelled models and shadows) *except the target itself*,
so a labelled target is never its own reference; ``in_from`` / ``out_from`` (``SOURCES``) narrow where IN and
OUT references come from. Variants are parameters (see ``ATTACKS``), not copies. Attacks with fitted parameters
(``learned``, ``rmia`` with grids) cross-fit: a labelled target is scored only by a fit that did not
see it, neither as a model fitted on nor as a reference of one.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from scipy import stats

from farm.attacks.signals import logit_margin, true_label_logprob
from farm.mico.scorer import score

IN, OUT, UNKNOWN = 1, 0, -1
SOURCES = ("all", "labelled", "shadows")
STATISTICS = ("margin", "logprob", "query_margin", "grad_norm")
RMIA_A_GRID = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
RMIA_GAMMA_GRID = (1.0, 1.25, 1.5, 2.0, 4.0)


@dataclass(frozen=True)
class Signals:
    """Cached signals of every model of a scenario on the records ``R`` it needs (the union of challenge points).

    ``logits [M, R, 2]`` float; ``labels [R]``; ``keep [M, R]`` int8: 1 IN, 0 OUT, -1 unknown (dev/final
    targets); ``challenge [M, P]``: column of each of a model's ``P`` challenge points in ``R`` (-1 rows for
    shadows, which have none); ``labelled [M]``: provided models with known membership (MICO's ``train``).
    Optional: ``query_logits [M, R, Q, 2]``: logits on ``Q`` deterministic queries of each record (the same
    queries for every model, ``farm.spec.queries``; query 0 is the record itself by convention); ``grad_norm [M, R]``:
    the L2 norm of the per-example gradient of the loss w.r.t. all parameters (``farm.training.grad_norm``).
    """

    logits: np.ndarray
    labels: np.ndarray
    keep: np.ndarray
    challenge: np.ndarray
    labelled: np.ndarray
    query_logits: np.ndarray | None = None
    grad_norm: np.ndarray | None = None

    def __post_init__(self) -> None:
        m, r = self.keep.shape
        q = self.query_logits
        if q is not None and (q.ndim != 4 or q.shape[:2] != (m, r) or q.shape[-1] != self.logits.shape[-1]):
            raise ValueError(f"Signals.query_logits must be [M={m}, R={r}, Q, {self.logits.shape[-1]}], got {q.shape}")
        if self.grad_norm is not None and self.grad_norm.shape != (m, r):
            raise ValueError(f"Signals.grad_norm must be [M={m}, R={r}], got {self.grad_norm.shape}")

    @functools.cached_property
    def logprob(self) -> np.ndarray:
        """log p(y|x) = -CE, ``[M, R]``."""
        return true_label_logprob(self.logits, self.labels)

    @functools.cached_property
    def prob(self) -> np.ndarray:
        """p(y|x), ``[M, R]``."""
        return np.exp(self.logprob)

    @functools.cached_property
    def margin(self) -> np.ndarray:
        """LiRA's statistic z_y - z_other, ``[M, R]``."""
        return logit_margin(self.logits, self.labels)

    def statistic(self, name: str) -> np.ndarray:
        """A per-record statistic, higher = more member-like: ``margin`` / ``logprob`` ``[M, R]``,
        ``query_margin`` ``[M, R, Q]`` (margin of each query), ``grad_norm``: -log ||grad|| ``[M, R]``."""
        if name in ("margin", "logprob"):
            return self.margin if name == "margin" else self.logprob
        if name == "query_margin":
            return logit_margin(_need(self.query_logits, "query_logits"), self.labels[:, None])
        if name == "grad_norm":
            return -np.log(np.maximum(_need(self.grad_norm, "grad_norm").astype(np.float64), 1e-30))
        raise ValueError(f"unknown statistic {name!r} (expected one of {STATISTICS})")

    @functools.cached_property
    def known(self) -> np.ndarray:
        """``[M]``: models whose membership is known on every record (labelled models and shadows)."""
        return (self.keep != UNKNOWN).all(axis=1)

    def reference_mask(self, target: int, source: str = "all") -> np.ndarray:
        """``[M]``: models usable as references for ``target`` (known membership, not the target), restricted to
        ``source``: ``all``, ``labelled`` (the provided models) or ``shadows`` (the farm's own models)."""
        if source not in SOURCES:
            raise ValueError(f"unknown reference source {source!r} (expected one of {SOURCES})")
        mask = self.known.copy()
        if source != "all":
            mask &= self.labelled if source == "labelled" else ~self.labelled
        mask[target] = False
        return mask

    def solution(self, model: int) -> np.ndarray:
        """0/1 membership of a labelled model on its challenge points."""
        return self.keep[model, self.challenge[model]].astype(np.int64)


Attack = Callable[..., np.ndarray]


def _need(value: np.ndarray | None, field: str) -> np.ndarray:
    if value is None:
        raise ValueError(f"this attack needs Signals.{field}, which these signals do not carry")
    return value


def loss(signals: Signals, targets: np.ndarray, *, statistic: str = "logprob") -> np.ndarray:
    """Uncalibrated baseline: the target's own statistic on each point. ``logprob`` (-CE) is the starting kit's;
    ``grad_norm`` (-log of the per-example gradient norm) is its white-box counterpart."""
    values = signals.statistic(statistic)
    return np.stack([values[t, signals.challenge[t]] for t in targets])


def reference(signals: Signals, targets: np.ndarray) -> np.ndarray:
    """Runner-up: p_target(y|x) - mean p_ref(y|x) over OUT references (with the per-target plan: the one
    reference trained on the target's ``rest``). Points without an OUT reference get the all-reference mean."""
    out = []
    for t in targets:
        cols = signals.challenge[t]
        ref = _mean_where(signals.prob, signals, t, cols, OUT, fallback=True)
        out.append(signals.prob[t, cols] - ref)
    return np.stack(out)


def in_calibration(signals: Signals, targets: np.ndarray, *, labelled_only: bool = True) -> np.ndarray:
    """Winner: -CE_target(x) minus the mean -CE over references that had x IN (labelled models only, as the
    winner did, unless ``labelled_only=False``). Points with no IN reference are left uncalibrated."""
    source = "labelled" if labelled_only else "all"
    out = []
    for t in targets:
        cols = signals.challenge[t]
        ref = _mean_where(signals.logprob, signals, t, cols, IN, source=source)
        out.append(signals.logprob[t, cols] - np.nan_to_num(ref, nan=0.0))
    return np.stack(out)


def lira(signals: Signals, targets: np.ndarray, *, online: bool = True, fixed_variance: bool = True,
         min_count: int = 2, in_from: str = "all", out_from: str = "all", statistic: str = "margin") -> np.ndarray:
    """LiRA (Carlini et al. 2022): Gaussians of ``statistic`` (default the logit margin) under IN and OUT references.

    Online: log N(phi; mu_in, s_in) - log N(phi; mu_out, s_out). Offline: log Phi((phi - mu_out) / s_out), a
    one-sided test against OUT only. IN references come from ``in_from``, OUT ones from ``out_from``
    (``SOURCES``; e.g. IN from the labelled models, OUT from the farm's shadows). ``fixed_variance``: one pooled
    standard deviation per side; otherwise per example where that side has at least ``min_count`` observations,
    pooled elsewhere. A point lacking IN (OUT) references takes mu_out + gap (mu_in - gap), the gap being the
    mean IN-OUT difference over the points that have both. With several queries per record (``query_margin``,
    ``[M, R, Q]``) each query gets its own Gaussians and the log-likelihood ratios are summed over queries, as
    LiRA combines augmentations.
    """
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


@dataclass(frozen=True)
class _RmiaParts:
    """One target's inputs to RMIA: its log p(y|.) on its challenge points ``x [P]`` and population sample
    ``z [Z]``; mean reference p(y|.) over IN / OUT references there (NaN where a side has none); ``fill``: p_ref
    for points with no reference at all."""

    x: np.ndarray
    z: np.ndarray
    in_x: np.ndarray
    out_x: np.ndarray
    in_z: np.ndarray
    out_z: np.ndarray
    fill: float


def rmia(signals: Signals, targets: np.ndarray, *, gamma: float | Sequence[float] = 1.0,
         offline_a: float | Sequence[float] = 0.3, online: bool = True, in_from: str = "all",
         out_from: str = "all", max_population: int = 5000, seed: int = 0, objective: str = "TPR_FPR_1000",
         folds: int = 5) -> np.ndarray:
    """RMIA (Zarifzadeh et al. 2024): score(x) = Pr_z[ LR(x) / LR(z) > gamma ], LR(.) = p_target(y|.) / p(.).

    p(.) from references (``in_from``/``out_from``): online, where a point has IN and OUT references, the
    balanced mean (p_IN + p_OUT) / 2 (the paper averages half-IN, half-OUT references); with OUT references only
    (always, when ``online=False``) the offline approximation ((1 + a) p_OUT + (1 - a)) / 2, ``a = offline_a``;
    with IN only, the same linear model solved for p_OUT = (p_IN - 1 + a) / a; with none, the mean over all
    references. ``gamma`` / ``offline_a`` given as sequences are grids: the pair maximizing
    ``objective`` (a ``farm.mico.scorer.score`` key, ties by AUC) on the labelled models' pooled
    leave-one-out scores is chosen, cross-fitted in ``folds`` groups of labelled models; while a
    group is held out, its models are no reference of the models the pair is chosen on, so a
    labelled target's own membership never steers the pair it is scored by.

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
    comparable under one threshold. ``ValueError`` when a target has no population point (every
    record is one of its challenge points), rather than scores of 0.
    """
    a_grid, g_grid = _grid(offline_a), _grid(gamma)
    if max_population < 1:
        raise ValueError(f"rmia: max_population must be >= 1, got {max_population}")
    opts = dict(in_from=in_from, out_from=out_from, max_population=max_population, seed=seed)
    parts = {int(t): _rmia_parts(signals, int(t), **opts) for t in targets}  # type: ignore[arg-type]
    if len(a_grid) == len(g_grid) == 1:
        return np.stack([_rmia_score(parts[int(t)], a_grid[0], g_grid[0], online) for t in targets])
    out = np.zeros((len(targets), signals.challenge.shape[1]))
    labelled = np.flatnonzero(signals.labelled)
    for fit, rows in _cross_fit(signals, targets, folds, seed):
        held = np.setdiff1d(labelled, fit)  # the group scored: no reference of the models fitted on
        fit_parts = {int(m): _rmia_parts(signals, int(m), exclude=held,
                                         **opts)  # type: ignore[arg-type]
                     for m in fit}
        table = {(a, g): {m: _rmia_score(p, a, g, online) for m, p in fit_parts.items()}
                 for a in a_grid for g in g_grid}
        a, g = _best(table, signals, fit, objective)
        out[rows] = [_rmia_score(parts[int(targets[r])], a, g, online) for r in rows]
    return out


def features(signals: Signals, targets: np.ndarray, *, stack: Sequence[str] = ()) -> np.ndarray:
    """``[T, P, F]`` per-point features for ``learned``: loss, margin and the calibrated attack scores; the
    white-box and several-query LiRA scores when the signals carry them; then the attacks named in ``stack``
    (``ATTACKS`` names, default parameters)."""
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
        parts += [loss(signals, targets, statistic="grad_norm"), lira(signals, targets, statistic="grad_norm")]
    if signals.query_logits is not None:
        parts.append(lira(signals, targets, statistic="query_margin"))
    for name in stack:
        if name in ("learned", "stacked"):
            raise ValueError(f"stack cannot hold the learned attack itself ({name!r})")
        parts.append(run_attack(name, signals, targets))
    return np.nan_to_num(np.stack(parts, axis=-1), nan=0.0, posinf=50.0, neginf=-50.0)


def learned(signals: Signals, targets: np.ndarray, *, folds: int = 5, seed: int = 0, stack: Sequence[str] = (),
            classifier: str = "boosting") -> np.ndarray:
    """Shokri et al.'s learned attack, and stacking: a classifier on ``features`` (with the scores of the attacks
    in ``stack``) of labelled models' points; ``classifier``: ``boosting`` (gradient-boosted trees) or
    ``logistic`` (standardized logistic regression, the usual stacker).

    A target is never scored by a classifier that saw it: labelled targets are cross-fitted in ``folds`` groups
    of models; other targets use a classifier fitted on every labelled model. While a group is held
    out, its models' keep rows are unknown to the features (``_holding_out``): they are no reference
    of the models the classifier is fitted on, nor of the targets it scores, so a labelled target's
    own membership never enters its score. Targets that are not labelled are scored with every
    labelled model as a reference.
    """
    labelled = np.flatnonzero(signals.labelled)
    out = np.zeros((len(targets), signals.challenge.shape[1]))
    for fit, rows in _cross_fit(signals, targets, folds, seed):
        seen = _holding_out(signals, np.setdiff1d(labelled, fit))
        feats = features(seen, fit, stack=stack)
        labels = np.stack([signals.solution(int(m)) for m in fit])
        clf = _classifier(classifier, seed)
        clf.fit(feats.reshape(-1, feats.shape[-1]), labels.ravel())
        scored = features(seen, np.asarray(targets)[rows], stack=stack)
        proba = clf.predict_proba(scored.reshape(-1, feats.shape[-1]))[:, 1]
        out[rows] = proba.reshape(len(rows), -1)
    return out


ATTACKS: dict[str, Attack] = {
    "loss": loss,
    "gradient": functools.partial(loss, statistic="grad_norm"),
    "reference": reference,
    "in_calibration": in_calibration,
    "lira_online": functools.partial(lira, online=True),
    "lira_offline": functools.partial(lira, online=False),
    "lira": lira,
    # LiRA online with what the farm has: IN from the labelled models (~99 per MICO point: per-example
    # variance), OUT from the shadows (pooled variance until a point has 16 OUT shadows).
    "lira_farm": functools.partial(lira, online=True, in_from="labelled", out_from="shadows",
                                   fixed_variance=False, min_count=16),
    "lira_queries": functools.partial(lira, statistic="query_margin"),
    "lira_grad": functools.partial(lira, statistic="grad_norm"),
    "rmia": rmia,
    "rmia_offline": functools.partial(rmia, online=False),
    "rmia_fit": functools.partial(rmia, offline_a=RMIA_A_GRID, gamma=RMIA_GAMMA_GRID),
    "learned": learned,
    "stacked": functools.partial(learned, stack=("rmia", "lira_farm"), classifier="logistic"),
}


# The optional ``Signals`` field each statistic reads; everything else reads the logits alone.
NEEDS: dict[str, str] = {"query_margin": "query_logits", "grad_norm": "grad_norm"}


def needs(name: str, params: Mapping[str, Any] | None = None) -> frozenset[str]:
    """The optional ``Signals`` fields (``query_logits``, ``grad_norm``) attack ``name`` with ``params`` cannot
    run without: those of its ``statistic`` (``NEEDS``; a variant's fixed one or a param), and for ``learned`` /
    ``stacked`` those of every attack in its ``stack``. ``learned``'s own features use the optional fields only
    when the signals carry them, so they add nothing here.

    >>> sorted(needs("lira_queries")), sorted(needs("stacked", {"stack": ["lira_grad", "rmia"]}))
    (['query_logits'], ['grad_norm'])
    """
    if name not in ATTACKS:
        raise KeyError(f"unknown attack {name!r} (expected one of {sorted(ATTACKS)})")
    fn = ATTACKS[name]
    bound = {**(fn.keywords if isinstance(fn, functools.partial) else {}), **(params or {})}
    out = {NEEDS[bound["statistic"]]} if bound.get("statistic") in NEEDS else set()
    for inner in bound.get("stack", ()):
        out |= needs(str(inner))
    return frozenset(out)


def run_attack(name: str, signals: Signals, targets: np.ndarray, **params: object) -> np.ndarray:
    """Look up ``name`` in ``ATTACKS`` and apply it with ``params``."""
    if name not in ATTACKS:
        raise KeyError(f"unknown attack {name!r} (expected one of {sorted(ATTACKS)})")
    return ATTACKS[name](signals, targets, **params)


def _cross_fit(signals: Signals, targets: np.ndarray, folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(fit, rows)`` pairs: labelled models to fit on, and the rows of ``targets`` scored by that fit.

    Labelled models fall in ``max(2, folds)`` seeded groups; a labelled target is scored by the fit on the other
    groups, any other target by the fit on every labelled model. The groups do not depend on ``targets``.
    """
    labelled = np.flatnonzero(signals.labelled)
    if labelled.size < 2:
        raise ValueError(f"fitting an attack needs at least 2 labelled models, found {labelled.size}")
    order = np.random.default_rng(seed).permutation(labelled.size)
    fold = {int(labelled[i]): int(rank % max(2, folds)) for rank, i in enumerate(order)}
    groups: dict[int, list[int]] = {}
    for row, t in enumerate(targets):
        groups.setdefault(fold.get(int(t), -1), []).append(row)
    return [(np.array([m for m in labelled if fold[int(m)] != g]), np.array(rows))
            for g, rows in sorted(groups.items())]


def _holding_out(signals: Signals, models: np.ndarray) -> Signals:
    """``signals`` with ``models`` as unlabelled targets: keep rows unknown (no model's reference,
    never read) and not labelled (no fit's training model); ``signals`` itself if ``models`` is
    empty."""
    if not len(models):
        return signals
    keep, labelled = signals.keep.copy(), signals.labelled.copy()
    keep[models], labelled[models] = UNKNOWN, False
    return replace(signals, keep=keep, labelled=labelled)


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


def _grid(value: float | Sequence[float]) -> list[float]:
    values = [float(v) for v in value] if isinstance(value, Sequence) else [float(value)]
    if not values:
        raise ValueError("an RMIA parameter grid is empty")
    return values


def _rmia_parts(signals: Signals, t: int, *, in_from: str, out_from: str, max_population: int,
                seed: int, exclude: np.ndarray | None = None) -> _RmiaParts:
    """Target ``t``'s inputs to RMIA (population as ``rmia`` says); ``exclude``: models that may
    not be references."""
    cols = signals.challenge[t]
    others = np.setdiff1d(np.arange(signals.keep.shape[1]), cols)
    if not others.size:
        raise ValueError(f"rmia: model {t} has no population point (every record of the signals "
                         "is one of its challenge points); RMIA needs records beyond them")
    if others.size > max_population:
        others = np.sort(np.random.default_rng([seed, t]).choice(others, max_population, replace=False))
    both, p = np.r_[cols, others], cols.size
    p_in = _mean_where(signals.prob, signals, t, both, IN, source=in_from, exclude=exclude)
    p_out = _mean_where(signals.prob, signals, t, both, OUT, source=out_from, exclude=exclude)
    refs = np.flatnonzero(_references(signals, t, "all", exclude))
    fill = float(signals.prob[np.ix_(refs, both)].mean()) if refs.size else 1.0
    lp = signals.logprob[t, both]
    return _RmiaParts(lp[:p], lp[p:], p_in[:p], p_out[:p], p_in[p:], p_out[p:], fill)


def _rmia_score(parts: _RmiaParts, a: float, gamma: float, online: bool) -> np.ndarray:
    """``[P]``: fraction of population points z with log LR(x) - log LR(z) > log gamma."""
    lr_x = parts.x - np.log(_p_ref(parts.in_x if online else None, parts.out_x, a, parts.fill))
    lr_z = np.sort(parts.z - np.log(_p_ref(parts.in_z if online else None, parts.out_z, a, parts.fill)))
    return np.searchsorted(lr_z, lr_x - np.log(gamma), side="left") / max(lr_z.size, 1)


def _p_ref(p_in: np.ndarray | None, p_out: np.ndarray, a: float, fill: float) -> np.ndarray:
    """RMIA's p(x) from mean IN / OUT reference probabilities (NaN = no reference of that side)."""
    p_in = np.full_like(p_out, np.nan) if p_in is None else p_in
    has_in, has_out = np.isfinite(p_in), np.isfinite(p_out)
    offline = ((1 + a) * p_out + 1 - a) / 2
    implied_out = np.clip((p_in - 1 + a) / a, 1e-6, 1.0) if a > 0 else p_in
    p = np.where(has_in & has_out, (p_in + p_out) / 2, np.where(has_out, offline, (p_in + implied_out) / 2))
    return np.maximum(np.where(has_in | has_out, p, fill), 1e-12)


def _best(table: dict, signals: Signals, fit: np.ndarray, objective: str) -> tuple[float, float]:
    """The grid key whose pooled scores on the models ``fit`` maximize ``(objective, AUC)``."""
    y = np.concatenate([signals.solution(int(m)) for m in fit])
    key = lambda k: tuple(score(y, np.concatenate([table[k][int(m)] for m in fit]))[o]  # noqa: E731
                          for o in (objective, "AUC"))
    return max(table, key=key)


def _references(signals: Signals, target: int, source: str,
                exclude: np.ndarray | None) -> np.ndarray:
    """``Signals.reference_mask`` less the models ``exclude``."""
    mask = signals.reference_mask(target, source)
    if exclude is not None:
        mask[np.asarray(exclude, dtype=np.int64)] = False
    return mask


def _mean_where(values: np.ndarray, signals: Signals, target: int, cols: np.ndarray, side: int, *,
                fallback: bool = False, source: str = "all",
                exclude: np.ndarray | None = None) -> np.ndarray:
    """Mean of ``values[r, cols]`` over references r of ``target`` (from ``source``, none of
    ``exclude``) with ``keep[r, col] == side`` (NaN if none); ``fallback``: the mean over every such
    reference there instead of NaN."""
    refs = np.flatnonzero(_references(signals, target, source, exclude))
    v, k = values[np.ix_(refs, cols)], signals.keep[np.ix_(refs, cols)] == side
    count = k.sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(count > 0, (v * k).sum(0) / count, np.nan)
    if fallback and refs.size:
        mean = np.where(np.isnan(mean), v.mean(0), mean)
    return mean


def _gauss(phi: np.ndarray, signals: Signals, target: int, cols: np.ndarray, side: int, source: str, fixed: bool,
           min_count: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation of ``phi[r, cols(, q)]`` over ``side`` references: ``[P]`` or ``[P, Q]``
    (NaN mean where none). The pooled deviation is per query, over points; 1 where it cannot be estimated."""
    refs = np.flatnonzero(signals.reference_mask(target, source))
    v = phi[np.ix_(refs, cols)]
    k = (signals.keep[np.ix_(refs, cols)] == side).reshape(refs.size, cols.size, *([1] * (v.ndim - 2)))
    count = k.sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mu = np.where(count > 0, (v * k).sum(0) / count, np.nan)
        dev2 = np.where(count > 0, (np.where(k, v - mu, 0.0) ** 2).sum(0), 0.0)
        dof = count.sum(0) - np.isfinite(mu).sum(0)
        pooled = np.sqrt(dev2.sum(0) / np.maximum(dof, 1))
        per = np.sqrt(dev2 / np.maximum(count - 1, 1))
    pooled = np.where(np.isfinite(pooled) & (pooled > 0), pooled, 1.0)
    sd = np.broadcast_to(pooled, mu.shape) if fixed else np.where(count >= min_count, np.maximum(per, 1e-3), pooled)
    return mu, sd


def _fill_means(mu_in: np.ndarray, mu_out: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Fill missing IN (OUT) means from the other side and the mean gap per query (1 if no point has both);
    points with neither get the mean of all means (0 if none)."""
    both = np.isfinite(mu_in) & np.isfinite(mu_out)
    n_both = both.sum(0)
    gap = np.where(n_both > 0, np.where(both, mu_in - mu_out, 0.0).sum(0) / np.maximum(n_both, 1), 1.0)
    filled_in = np.where(np.isfinite(mu_in), mu_in, mu_out + gap)
    mu_out = np.where(np.isfinite(mu_out), mu_out, mu_in - gap)
    mu_in = filled_in
    known = np.isfinite(mu_out)
    fill = np.where(known.any(0), np.where(known, mu_out, 0.0).sum(0) / np.maximum(known.sum(0), 1), 0.0)
    return np.where(np.isfinite(mu_in), mu_in, fill + gap), np.where(known, mu_out, fill)
