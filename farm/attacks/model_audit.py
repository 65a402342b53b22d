"""Auditing one trained model against reference models (``farm audit --model``). Pure.

The target is one model whose training set the auditor knows as a member list. The farm trains K
reference models, each on a seeded random half of the population (drawn without reading the member
list), and runs every model over every record. ``audit_signals`` puts the logits into one
``Signals``: row 0 is the target, whose membership is unknown to the attacks (so it is nobody's
reference), rows 1..K the references, labelled, IN or OUT by their halves.

Scoring (``attack_scores``): the audited records (members and non-members) are dealt into
``FOLDS`` seeded folds, independently of membership; each fold in turn is every model's challenge
points, and the records outside it are what RMIA draws its population points z from. The per-point
attacks (LiRA, loss) see the folds only through LiRA's pooled variance (over the fold's points).

Which attack (``choose_attack``): the comparison protocol (``farm.attacks.protocol.choose``) on the
references' leave-one-out scores: each reference is scored as a target by the other references,
under its own threshold as the one target is, and the candidate of ``CANDIDATES`` with the best
mean TPR@0.1FPR wins (ties: the earlier one). The target's member list is never read, so the
choice cannot be tuned on it.

Figures (``audit_target``): TPR at 10%, 1% and 0.1% FPR and AUC of the target's scores on the
audited records (``farm.mico.scorer.score`` after ``pooled_scores``, the farm's NaN rule), with
percentile intervals from a bootstrap over records (``farm.attacks.intervals.bootstrap_by_record``):
one target model cannot be resampled, so the protocol's paired model bootstrap is not available.

Epsilon (``epsilon_bound``): the one-run bound (``farm.attacks.one_run``) takes each audited record
as a trial decided by its own fair coin. A member list is that only when the auditor says so (the
records were included by independent fair coins, the non-members being the coins' losers);
otherwise no bound is valid, and none is given, with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from farm.attacks.intervals import Interval, bootstrap_by_record
from farm.attacks.one_run import OneRunAudit, one_run_audit
from farm.attacks.protocol import KEY, Scored, choose
from farm.attacks.registry import run_attack
from farm.attacks.signals import UNKNOWN, Signals
from farm.errors import require
from farm.mico.scorer import READABLE_NAMES, pooled_scores, roc_curve

CANDIDATES = ("rmia", "lira", "lira_offline", "loss")
FOLDS = 2
FIGURES = ("TPR_FPR_1000", "TPR_FPR_100", "TPR_FPR_10", "AUC")  # TPR at 10%, 1%, 0.1% FPR; AUC
FIGURE_NAMES = {key: READABLE_NAMES[key] for key in FIGURES}
"""The audit's figures under the names every other output uses (``farm.mico.scorer.READABLE_NAMES``:
``TPR@0.1FPR``, ``TPR@0.01FPR``, ``TPR@0.001FPR``, ``AUC``)."""
CHOSEN = (
    "chosen by the comparison protocol on the reference models' leave-one-out scores (each "
    "reference scored by the others under its own threshold; best mean TPR@0.1FPR); the target's "
    "member list is never read"
)
NO_BOUND = (
    "no epsilon lower bound: a bound from one model needs each audited record's membership decided "
    "by its own independent fair coin (the one-run audit's trials, Steinke et al. 2023); a member "
    "list chosen any other way (a training set, a curated split) gives no valid bound, so none is "
    "printed. If the members and non-members were drawn by such coins, pass --non-members and "
    "--random-inclusion."
)


def audit_signals(
    target: np.ndarray, references: np.ndarray, keep: np.ndarray, labels: np.ndarray
) -> Signals:
    """Signals of the target (``target [R, C]`` logits, row 0, membership unknown, not labelled)
    and the references (``references [K, R, C]``, rows 1..K, ``keep [K, R]`` 0/1 by their halves,
    labelled) on ``R`` records with class ``labels [R]``. Challenge points are set per fold by
    ``attack_scores``."""
    target, references = np.asarray(target, np.float64), np.asarray(references, np.float64)
    keep = np.asarray(keep)
    k, r = keep.shape
    require(
        target.ndim == 2 and references.shape == (k, *target.shape) and labels.shape == (r,),
        "logits",
        f"target [R={r}, C], references [K={k}, R, C], labels [R]",
        (target.shape, references.shape, labels.shape),
    )
    require(bool(np.isin(keep, (0, 1)).all()), "keep", "0/1 for every reference and record")
    return Signals(
        logits=np.concatenate([target[None], references]),
        labels=np.asarray(labels, np.int64),
        keep=np.concatenate([np.full((1, r), UNKNOWN, np.int8), keep.astype(np.int8)]),
        challenge=np.zeros((k + 1, 0), np.int64),
        labelled=np.r_[False, np.ones(k, bool)],
    )


def folds_of(n: int, *, seed: int, folds: int = FOLDS) -> np.ndarray:
    """The fold of each of ``n`` audited records: a permutation seeded by ``seed`` alone, dealt
    round robin, so fold sizes differ by at most one and no fold depends on membership."""
    require(n >= folds, "records", f"at least {folds} audited records", n)
    return (np.random.default_rng([seed, 0xF01D]).permutation(n) % folds).astype(np.int64)


def attack_scores(
    signals: Signals,
    audited: np.ndarray,
    fold: np.ndarray,
    *,
    attack: str,
    targets: np.ndarray,
    params: dict | None = None,
) -> np.ndarray:
    """Raw scores ``[len(targets), len(audited)]`` (higher = member) of ``attack``
    (``farm.attacks.registry``) for the models ``targets`` on the records ``audited`` (columns of
    ``signals``), one fold at a time: a fold's records are every model's challenge points, so
    RMIA's population points come from the other records."""
    audited, fold = np.asarray(audited, np.int64), np.asarray(fold, np.int64)
    require(audited.shape == fold.shape, "fold", "one fold per audited record")
    out = np.full((len(targets), audited.size), np.nan)
    for f in np.unique(fold):
        where = fold == f
        challenge = np.tile(audited[where], (signals.keep.shape[0], 1))
        view = replace(signals, challenge=challenge)
        out[:, where] = run_attack(attack, view, np.asarray(targets), **(params or {}))
    return out


@dataclass(frozen=True, kw_only=True)
class Choice:
    """The attack run on the target, how it was chosen (``rule``), and each candidate's pooled
    TPR@0.1FPR on the references' leave-one-out scores (empty when the attack was given)."""

    attack: str
    rule: str
    figures: dict[str, float] = field(default_factory=dict)


def choose_attack(
    signals: Signals, audited: np.ndarray, fold: np.ndarray, *, candidates: tuple = CANDIDATES
) -> Choice:
    """The candidate with the best mean TPR@0.1FPR over the labelled references' leave-one-out
    scores of the ``audited`` records, each reference under its own threshold as the target is
    scored (``farm.attacks.protocol.choose`` with one phase per reference: pooling references
    under one threshold would penalise an uncalibrated attack for the references' differing
    scales, which one target does not have). Reads no unlabelled row (the target's) of
    ``signals.keep``. Needs two references or more."""
    refs = np.flatnonzero(signals.labelled)
    require(refs.size >= 2, "references", "at least 2 reference models", int(refs.size))
    phases = [f"reference_{r}" for r in refs]
    labels = {p: [signals.keep[r, audited].astype(np.int64)] for p, r in zip(phases, refs)}
    scored = []
    for name in candidates:
        raw = attack_scores(signals, audited, fold, attack=name, targets=refs)
        scores = {p: [pooled_scores([row])] for p, row in zip(phases, raw)}
        scored.append(
            Scored(
                name=name, k=int(refs.size), trainings=int(refs.size), labels=labels, scores=scores
            )
        )
    best = choose(scored, on=phases)
    return Choice(
        attack=best.name, rule=CHOSEN, figures={s.name: s.headline(phases, KEY) for s in scored}
    )


@dataclass(frozen=True, kw_only=True)
class TargetAudit:
    """The target's audit over ``P`` audited records: the attack ``choice``; ``raw`` scores and
    ``scores`` (``pooled_scores`` of them, in [0, 1], what is ranked and scored); ``member`` 0/1;
    ``rank`` (1 = the most exposed record: the highest score, ties by position); ``figures`` (keys
    ``FIGURES``, each with its interval) and how the intervals were made; the ROC (``fpr``,
    ``tpr``)."""

    choice: Choice
    raw: np.ndarray
    scores: np.ndarray
    member: np.ndarray
    rank: np.ndarray
    figures: dict[str, Interval]
    intervals: str
    fpr: np.ndarray
    tpr: np.ndarray


def audit_target(
    signals: Signals,
    audited: np.ndarray,
    member: np.ndarray,
    *,
    attack: str = "auto",
    seed: int = 0,
    n_boot: int = 1000,
) -> TargetAudit:
    """Score the target (row 0 of ``audit_signals``) on the ``audited`` records (columns) with
    ``attack`` (``auto``: ``choose_attack``, which never reads ``member``), and its figures against
    ``member`` (0/1 per audited record, both present) with 95% bootstrap-over-records intervals
    (``n_boot`` resamples, seeded by ``seed``). Folds are seeded by ``seed`` too."""
    audited, member = np.asarray(audited, np.int64), np.asarray(member, np.int64)
    require(member.shape == audited.shape, "member", "one 0/1 per audited record")
    require(
        bool(np.isin(member, (0, 1)).all()) and 0 < member.sum() < member.size,
        "member",
        "0/1 with members and non-members both present",
    )
    fold = folds_of(audited.size, seed=seed)
    choice = (
        choose_attack(signals, audited, fold)
        if attack == "auto"
        else Choice(attack=attack, rule="given (--attack)")
    )
    raw = attack_scores(signals, audited, fold, attack=choice.attack, targets=np.array([0]))[0]
    scores = pooled_scores([raw])
    figures = bootstrap_by_record(member, scores, keys=FIGURES, n_boot=n_boot, seed=seed)
    fpr, tpr, _ = roc_curve(member, scores)
    rank = np.empty(scores.size, np.int64)
    rank[np.argsort(-scores, kind="stable")] = np.arange(1, scores.size + 1)
    return TargetAudit(
        choice=choice,
        raw=raw,
        scores=scores,
        member=member,
        rank=rank,
        figures=figures,
        intervals=(
            f"95% percentile bootstrap over records ({n_boot} resamples, seed {seed}): the one "
            "target model is held fixed, so the intervals show the sampling of records only, not "
            "how another training run would score them (the protocol's paired model bootstrap "
            "needs several target models)"
        ),
        fpr=fpr,
        tpr=tpr,
    )


@dataclass(frozen=True, kw_only=True)
class EpsilonBound:
    """The one-run bound when one is valid (``bound``), else None; ``reason`` says which and
    why."""

    bound: OneRunAudit | None
    reason: str


def epsilon_bound(
    audit: TargetAudit, *, random_inclusion: bool, delta: float, confidence: float = 0.95
) -> EpsilonBound:
    """The one-run bound (``farm.attacks.one_run``) of the target's scores, each audited record a
    trial, when ``random_inclusion`` (the auditor's word that every audited record was included by
    its own independent fair coin); otherwise no bound (``NO_BOUND``)."""
    if not random_inclusion:
        return EpsilonBound(bound=None, reason=NO_BOUND)
    bound = one_run_audit(audit.scores, audit.member, delta=delta, confidence=confidence)
    return EpsilonBound(
        bound=bound,
        reason=bound.validity + "; valid only if, as asserted (--random-inclusion), each audited "
        "record was included by its own independent fair coin",
    )
