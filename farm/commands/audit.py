"""``farm audit`` (recipe mode): train a canary game's runs with a recipe on a dataset, then bound
the recipe's epsilon from below.

A run ``r`` trains ``recipe`` (its seed set to ``r``) on a seeded half of the data's records (less
the records the canaries were made from) plus the canaries whose coins put them in run ``r``
(``farm.attacks.canaries``: the canaries are records appended to the data by its population spec, so
every job is an ordinary keyed job). Each run's model then scores the canaries: the log-probability
it gives a canary's label (its flipped label for a mislabelled canary; the mean over the copies of a
duplicated one), higher = member. Trainings and the inference passes go through the ``JobRunner``
and its store, so a rerun reuses them.

Bounds: the one-run bound (``farm.attacks.one_run``) of run 0 -- the one-run analysis of one
training -- with the other runs' one-run bounds listed (each valid alone; their maximum is not),
and with four runs or more the multi-run bounds (``farm.attacks.multi_run``). Each sits beside
the recipe's theoretical epsilon and what it assumes; ``tradeoff.png`` draws the canaries' pooled
empirical trade-off against the claimed curve and the one-run bound's
(``farm.privacy.tradeoff``).
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from farm.attacks.audit import error_curve, substitution_privacy
from farm.attacks.canaries import (
    adjacency,
    canary_sources,
    included_records,
    inclusion,
    scored_records,
)
from farm.attacks.memorization import Memorization, label_memorization
from farm.attacks.multi_run import MultiRunAudit, multi_run_audit
from farm.attacks.one_run import OneRunAudit, one_run_audit
from farm.attacks.signals import true_label_logprob
from farm.defences.seam import TargetBuild, TargetSpec, build_target
from farm.errors import require
from farm.privacy.accounting import describe_epsilon
from farm.privacy.tradeoff import dp_tradeoff
from farm.report.plots import tradeoff_grid, tradeoff_png
from farm.shadows.plans import all_but
from farm.shadows.scenario import pin, pin_population
from farm.spec.audit import RecipeAudit
from farm.spec.jobs import InferJob, Job, Ref, Selection, StoreRef, TokenizerJob, TrainJob
from farm.spec.population import CanarySpec
from farm.store.atomic import atomic_write_text
from farm.store.runner import JobRunner
from farm.training.data import load_population

_HALF, _CONTROL = 0xA0D17, 0xC0E7


@dataclass(frozen=True, kw_only=True)
class AuditJobs:
    """The game's jobs: the tokenizer (None for a model that brings its own), each run's build (one
    training for a plain recipe, a defence's several: ``farm.defences.seam``) and one inference
    pass of its released model, each canary's scored records (``scored_records``) and, for a label
    game (``relabelled`` canaries), each run's held-out control records (base records it did not
    train on, as many as there are canaries; ``farm.attacks.memorization``), empty otherwise."""

    tokenizer: TokenizerJob | None
    builds: tuple[TargetBuild, ...]
    infers: tuple[InferJob, ...]
    records: tuple[np.ndarray, ...]
    controls: tuple[np.ndarray, ...] = ()

    @property
    def jobs(self) -> list[Job]:
        """Every job of every run's build."""
        return [job for build in self.builds for job in build.jobs]

    @property
    def trains(self) -> list[TrainJob]:
        """Every training of every run's build."""
        return [job for job in self.jobs if isinstance(job, TrainJob)]


@dataclass(frozen=True, kw_only=True)
class AuditResult:
    """Scores ``[runs, canaries]``, coins ``[runs, canaries]``, the bounds and the claim."""

    scores: np.ndarray
    included: np.ndarray
    one_run: tuple[OneRunAudit, ...]
    multi_run: MultiRunAudit | None
    privacy: dict[str, Any] = field(default_factory=dict)
    group: int = 1  # records per canary (a duplicated canary's copies)
    delta: float = 1e-5  # the bounds' delta
    adjacency: str = "add/remove"  # what a coin changes (farm.attacks.one_run.ADJACENCIES)
    memorization: tuple[Memorization, ...] = ()  # per run, label games only


def audit_jobs(audit: RecipeAudit, *, n_total: int) -> AuditJobs:
    """The keyed jobs of the game on a population of ``n_total`` records (canaries included)."""
    canaries = audit.population.canaries
    assert canaries is not None
    n_base = n_total - canaries.records
    population = audit.population
    name = audit.tokenizer_model
    tokenizer_job = (
        TokenizerJob(population=population, label="tokenizer") if name == "tiny" else None
    )
    tokenizer: Ref = StoreRef(tokenizer_job.key) if tokenizer_job else pin(name)
    records = scored_records(n_base, canaries)
    sources = canary_sources(n_base, canaries)
    scored = np.concatenate(records)
    builds, infers, controls = [], [], []
    for run in range(audit.runs):
        half = np.flatnonzero(np.random.default_rng([audit.seed, _HALF, run]).random(n_base) < 0.5)
        half = np.setdiff1d(half, sources)  # a canary's original never trains as itself
        control = _controls(
            n_base, canaries, unavailable=np.union1d(half, sources), seed=(audit.seed, run)
        )
        controls.append(control)
        members = np.concatenate([half, included_records(n_base, canaries, run=run)])
        build = build_target(
            audit.recipe,
            TargetSpec(
                population=population,
                tokenizer=tokenizer,
                selection=Selection.of(n_total, members),
                seed=run,
                label=f"audit/run_{run}",
                public=audit.public,
                public_n=audit.public.size or 0 if audit.public else 0,
            ),
        )
        released = _released(build)
        builds.append(build)
        infers.append(
            InferJob(
                population=population,
                tokenizer=tokenizer,
                model=StoreRef(released.key),
                selection=Selection.of(n_total, np.concatenate([control, scored])),
                max_length=released.recipe.max_length,
                label=f"audit/run_{run}/canaries",
            )
        )
    return AuditJobs(
        tokenizer=tokenizer_job,
        builds=tuple(builds),
        infers=tuple(infers),
        records=tuple(records),
        controls=tuple(controls),
    )


def _released(build: TargetBuild) -> TrainJob:
    """The one model a run releases (a plain recipe's training, PATE's student). ``SpecError`` for
    an ensemble (SISA): the game scores one model."""
    require(
        build.aggregate == "single",
        "recipe",
        "a recipe or a defence that releases one model (PATE); SISA's ensembles are not audited",
        build.aggregate,
    )
    (model,) = [job for job in build.jobs if job.key == build.members[0]]
    assert isinstance(model, TrainJob)
    return model


def _controls(
    n_base: int, canaries: CanarySpec, *, unavailable: np.ndarray, seed: tuple[int, int]
) -> np.ndarray:
    """A label game's held-out records of one run (sorted): a seeded sample of the base records
    not ``unavailable`` (the run's training half and the canaries' sources), up to one per canary;
    none for other games."""
    if canaries.kind != "relabelled":
        return np.zeros(0, dtype=np.int64)
    free = all_but(n_base, unavailable)
    rng = np.random.default_rng([*seed, _CONTROL])
    return np.sort(rng.choice(free, size=min(canaries.count, free.size), replace=False))


def audit_recipe(audit: RecipeAudit, runner: JobRunner) -> AuditResult:
    """Run (or reuse) the game's jobs and compute its bounds."""
    population = pin_population(audit.population)
    audit = dataclasses.replace(audit, population=population)
    data = load_population(population)
    jobs = audit_jobs(audit, n_total=len(data))
    first = [jobs.tokenizer] if jobs.tokenizer else []
    runner.run([*first, *jobs.jobs, *jobs.infers], title="audit")
    canaries = population.canaries
    assert canaries is not None
    rows, memorized = [], []
    included = np.stack([inclusion(canaries, run=r) for r in range(audit.runs)])
    for run, job in enumerate(jobs.infers):
        rows_of = job.selection.indices()  # the logits' rows, in sorted index order
        logits = runner.store.get_arrays(job.key)["logits"]
        logprob = true_label_logprob(logits, data.labels[rows_of])
        rows.append([logprob[np.searchsorted(rows_of, r)].mean() for r in jobs.records])
        if canaries.kind == "relabelled":
            predicted = logits.argmax(axis=1)
            flipped = np.searchsorted(rows_of, np.concatenate(jobs.records))
            unseen = np.searchsorted(rows_of, jobs.controls[run])
            memorized.append(
                label_memorization(
                    flipped_predicted=predicted[flipped] == data.labels[rows_of[flipped]],
                    coins=included[run],
                    unseen_wrong=predicted[unseen] != data.labels[rows_of[unseen]],
                )
            )
    scores = np.asarray(rows)
    adjacent, confidence = adjacency(canaries), audit.confidence
    privacy = dict(jobs.builds[0].privacy)
    group = canaries.repeats if canaries.kind == "duplicated" else 1
    delta = bound_delta(audit.delta, claim_for(privacy, group=group, adjacency=adjacent))
    one = tuple(
        one_run_audit(s, i, delta=delta, confidence=confidence, adjacency=adjacent)
        for s, i in zip(scores, included)
    )
    multi = None
    if audit.runs >= 4:
        multi = multi_run_audit(
            scores,
            included,
            delta=delta,
            confidence=confidence,
            seed=audit.seed,
            adjacency=adjacent,
        )
    return AuditResult(
        scores=scores,
        included=included,
        one_run=one,
        multi_run=multi,
        privacy=privacy,
        group=group,
        delta=delta,
        adjacency=adjacent,
        memorization=tuple(memorized),
    )


def write_audit(result: AuditResult, out: str | Path) -> dict[str, Path]:
    """``audit.json``, ``audit.md`` and ``canary_scores.csv`` under ``out``; their paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    claim = describe_epsilon(result.privacy)
    head = result.one_run[0]
    lines = [
        "# farm audit",
        "",
        f"Theoretical epsilon: {claim}"
        + (f", delta {result.privacy['delta']:g}" if result.privacy.get("delta") else ""),
        *_label_lines(result),
        f"Bounds at delta {result.delta:g} (at least the claim's delta for the game's neighbouring "
        "datasets). The figures below share runs: each is a bound at its confidence alone, their "
        "maximum is not.",
        *_group_lines(result),
        "",
        "| bound | epsilon | what it rests on |",
        "|---|---|---|",
        f"| one-run (run 0) | {head.epsilon:.3f} | {head.validity} |",
    ]
    if result.multi_run is not None:
        m = result.multi_run
        for name, value in (
            ("multi-run, Clopper-Pearson", m.clopper_pearson),
            ("multi-run, joint beta", m.joint_beta),
            ("multi-run, Gaussian-DP fit", m.gdp),
        ):
            lines.append(f"| {name} | {value:.3f} | {m.validity} |")
    if len(result.one_run) > 1:
        others = ", ".join(f"{a.epsilon:.3f}" for a in result.one_run[1:])
        lines += [
            "",
            f"One-run bounds of the other runs (each valid alone, not their maximum): {others}",
        ]
    lines += _memorization_lines(result)
    paths = {
        "report": out / "audit.md",
        "json": out / "audit.json",
        "scores": out / "canary_scores.csv",
        "tradeoff": out / "tradeoff.png",
    }
    lines += ["", f"Trade-off curve: {paths['tradeoff'].name} ({tradeoff_caption(result)})"]
    tradeoff_plot(result, paths["tradeoff"])
    atomic_write_text(paths["report"], "\n".join(lines) + "\n")
    data = {
        "theoretical": dict(result.privacy),
        "one_run": [asdict(a) | {"validity": a.validity} for a in result.one_run],
        "memorization": [asdict(m) for m in result.memorization],
        "multi_run": (
            asdict(result.multi_run) | {"validity": result.multi_run.validity}
            if result.multi_run
            else None
        ),
    }
    atomic_write_text(paths["json"], json.dumps(data, indent=2, default=float) + "\n")
    rows = ["run,canary,included,score"] + [
        f"{r},{c},{int(result.included[r, c])},{result.scores[r, c]:.6g}"
        for r in range(result.scores.shape[0])
        for c in range(result.scores.shape[1])
    ]
    atomic_write_text(paths["scores"], "\n".join(rows) + "\n")
    return paths


def tradeoff_curves(result: AuditResult) -> dict[str, np.ndarray]:
    """``label -> fnr`` on ``tradeoff_grid()``: the recipe's theoretical (epsilon, delta) curve
    when it claims a finite epsilon, and the curve of run 0's one-run lower bound at the bounds'
    delta. The claim is the one for the game's neighbouring datasets (``unit_claim``)."""
    grid = tradeoff_grid()
    curves = {}
    claim = unit_claim(result)
    if claim is not None:
        eps, delta = claim
        curves[f"claim: epsilon {eps:.3g}, delta {delta:.2g}"] = dp_tradeoff(
            grid, epsilon=eps, delta=min(delta, 1.0)
        )
    bound = result.one_run[0].epsilon
    curves[f"one-run lower bound: epsilon {bound:.3g}"] = dp_tradeoff(
        grid, epsilon=bound, delta=result.delta
    )
    return curves


def tradeoff_caption(result: AuditResult) -> str:
    """What the empirical curve in ``tradeoff.png`` is: every run's canaries pooled."""
    runs, count = result.scores.shape
    return (
        f"empirical FPR/FNR of the canary score over {runs} run(s) x {count} canaries pooled, a "
        "description without confidence; the bounds above are what is claimed"
    )


def tradeoff_plot(result: AuditResult, path: Path) -> Path:
    """Write the trade-off PNG: the pooled empirical curve against ``tradeoff_curves``."""
    empirical = error_curve(result.included.ravel().astype(int), result.scores.ravel())
    return tradeoff_png(
        empirical, tradeoff_curves(result), path, title="farm audit: trade-off (canaries)"
    )


def unit_claim(result: AuditResult) -> tuple[float, float] | None:
    """``claim_for`` the result's claim, group and adjacency."""
    return claim_for(result.privacy, group=result.group, adjacency=result.adjacency)


def claim_for(
    privacy: Mapping[str, Any], *, group: int, adjacency: str
) -> tuple[float, float] | None:
    """The recipe's (epsilon, delta) for the neighbouring datasets the game's coins make, or None
    when it claims no finite epsilon there:

    * add/remove of a canary of k records (k > 1: a duplicated canary): group privacy,
      (k eps, delta (e^(k eps) - 1) / (e^eps - 1)), delta capped at 1;
    * a canary's label replaced (``label`` adjacency): the recipe's label-DP epsilon when it noises
      labels (randomized response, ALIBI; pure), else its record-level claim for a substitution:
      as stated when it is made for substitution adjacency (a PATE config may be), else for a
      removal then an addition (``farm.attacks.audit.substitution_privacy``);
    * else the recipe's (epsilon, delta).
    """
    if adjacency == "label" and isinstance(privacy.get("label_epsilon"), int | float):
        return float(privacy["label_epsilon"]), 0.0
    eps = privacy.get("epsilon")
    if not isinstance(eps, int | float) or math.isinf(eps):
        return None
    delta = float(privacy.get("delta") or 0.0)
    if adjacency == "label" and privacy.get("adjacency") != "substitution":
        return substitution_privacy(float(eps), delta)
    if adjacency == "label":  # the claim is already for a substitution
        return float(eps), delta
    k = group
    if k == 1:
        return float(eps), delta
    spread = sum(math.exp(i * eps) for i in range(k))  # (e^(k eps) - 1) / (e^eps - 1)
    return k * eps, min(1.0, delta * spread)


def bound_delta(requested: float, claim: tuple[float, float] | None) -> float:
    """The delta the bounds are computed at: ``requested``, or the claim's own delta for the game's
    neighbouring datasets when that is larger (and below 1). A bound at a smaller delta than the
    claim's assumes more than the claim promises, so it could not refute it."""
    if claim is None or claim[1] >= 1:
        return requested
    return max(requested, claim[1])


def _memorization_lines(result: AuditResult) -> list[str]:
    """The label-memorization table of a label game (``farm.attacks.memorization``)."""
    if not result.memorization:
        return []
    lines = [
        "",
        "Label memorization (Malek et al. 2021, pairwise for binary labels): how often each run's "
        "model outputs the flipped label of canaries trained with it, of canaries trained with "
        "their own label, and the wrong label of held-out records (what a model trained without "
        "them shows).",
        "",
        "| run | trained flipped | trained own | unseen (held out) | excess |",
        "|---|---|---|---|---|",
    ]
    for run, m in enumerate(result.memorization):
        lines.append(
            f"| {run} | {m.trained_flipped:.1%} of {m.n_flipped} | {m.trained_own:.1%} of "
            f"{m.n_own} | {m.unseen:.1%} of {m.n_unseen} | {m.excess:+.1%} |"
        )
    return lines


def _label_lines(result: AuditResult) -> list[str]:
    """What the claim is in a label game: the bounds are label-DP bounds."""
    if result.adjacency != "label":
        return []
    claim = unit_claim(result)
    if claim is None:
        return [
            "Label game (relabelled canaries): the bounds are on label DP; the recipe claims no "
            "finite epsilon for a label change."
        ]
    how = (
        "the recipe's label noise"
        if "label_epsilon" in result.privacy
        else "its record-level claim for a substitution (remove, then add) of one record"
    )
    return [
        f"Label game (relabelled canaries): the bounds are on label DP; the claim they test is "
        f"label-DP epsilon {claim[0]:.3g}, delta {claim[1]:.3g} ({how})."
    ]


def _group_lines(result: AuditResult) -> list[str]:
    """What a canary of several records means for the claim: the bounds are on a group's epsilon,
    and a per-record (eps, delta) claim allows a group of k up to (k eps, delta (e^(k eps) - 1) /
    (e^eps - 1)) (``claim_for``)."""
    k = result.group
    if k == 1:
        return []
    line = f"Each canary is a group of {k} records: the bounds are on the group's epsilon"
    claim = unit_claim(result)
    if claim is not None and claim[1] >= 1:
        line += f"; the recipe's claim for such a group is vacuous (delta {claim[1]:.3g} >= 1)"
    elif claim is not None and result.privacy.get("delta"):
        line += f"; the recipe's claim for such a group is ({claim[0]:.3g}, {claim[1]:.3g})"
    return [line + " (group privacy)."]
