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
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from farm.attacks.audit import error_curve
from farm.attacks.canaries import canary_records, canary_sources, included_records, inclusion
from farm.attacks.multi_run import MultiRunAudit, multi_run_audit
from farm.attacks.one_run import OneRunAudit, one_run_audit
from farm.attacks.signals import true_label_logprob
from farm.defences.seam import recipe_privacy
from farm.privacy.accounting import describe_epsilon
from farm.privacy.tradeoff import dp_tradeoff
from farm.report.plots import tradeoff_grid, tradeoff_png
from farm.shadows.scenario import pin, pin_population
from farm.spec.audit import RecipeAudit
from farm.spec.jobs import InferJob, Ref, Selection, StoreRef, TokenizerJob, TrainJob
from farm.store.atomic import atomic_write_text
from farm.store.runner import JobRunner
from farm.training.data import load_population

_HALF = 0xA0D17


@dataclass(frozen=True, kw_only=True)
class AuditJobs:
    """The game's jobs: the tokenizer (None for a model that brings its own), one training and one
    inference pass per run, and each canary's records."""

    tokenizer: TokenizerJob | None
    trains: tuple[TrainJob, ...]
    infers: tuple[InferJob, ...]
    records: tuple[np.ndarray, ...]


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


def audit_jobs(audit: RecipeAudit, *, n_total: int) -> AuditJobs:
    """The keyed jobs of the game on a population of ``n_total`` records (canaries included)."""
    canaries = audit.population.canaries
    assert canaries is not None
    n_base = n_total - canaries.records
    population = audit.population
    name = audit.recipe.model.name
    tokenizer_job = (
        TokenizerJob(population=population, label="tokenizer") if name == "tiny" else None
    )
    tokenizer: Ref = StoreRef(tokenizer_job.key) if tokenizer_job else pin(name)
    records = canary_records(n_base, canaries)
    sources = canary_sources(n_base, canaries)
    every_canary = Selection.of(n_total, np.concatenate(records))
    trains, infers = [], []
    for run in range(audit.runs):
        half = np.flatnonzero(np.random.default_rng([audit.seed, _HALF, run]).random(n_base) < 0.5)
        half = np.setdiff1d(half, sources)  # a canary's original never trains as itself
        members = np.concatenate([half, included_records(n_base, canaries, run=run)])
        train = TrainJob(
            population=population,
            tokenizer=tokenizer,
            selection=Selection.of(n_total, members),
            recipe=dataclasses.replace(audit.recipe, seed=run),
            label=f"audit/run_{run}",
        )
        trains.append(train)
        infers.append(
            InferJob(
                population=population,
                tokenizer=tokenizer,
                model=StoreRef(train.key),
                selection=every_canary,
                max_length=audit.recipe.max_length,
                label=f"audit/run_{run}/canaries",
            )
        )
    return AuditJobs(
        tokenizer=tokenizer_job, trains=tuple(trains), infers=tuple(infers), records=tuple(records)
    )


def audit_recipe(audit: RecipeAudit, runner: JobRunner) -> AuditResult:
    """Run (or reuse) the game's jobs and compute its bounds."""
    population = pin_population(audit.population)
    audit = dataclasses.replace(audit, population=population)
    data = load_population(population)
    jobs = audit_jobs(audit, n_total=len(data))
    first = [jobs.tokenizer] if jobs.tokenizer else []
    runner.run([*first, *jobs.trains, *jobs.infers], title="audit")
    canaries = population.canaries
    assert canaries is not None
    every = np.concatenate(jobs.records)
    labels = data.labels[every]
    rows = []
    for job in jobs.infers:
        logits = runner.store.get_arrays(job.key)["logits"]  # rows in sorted index order
        logprob = true_label_logprob(logits, labels)
        rows.append([logprob[np.isin(every, r)].mean() for r in jobs.records])
    scores = np.asarray(rows)
    included = np.stack([inclusion(canaries, run=r) for r in range(audit.runs)])
    one = tuple(
        one_run_audit(s, i, delta=audit.delta, confidence=audit.confidence)
        for s, i in zip(scores, included)
    )
    multi = None
    if audit.runs >= 4:
        multi = multi_run_audit(
            scores, included, delta=audit.delta, confidence=audit.confidence, seed=audit.seed
        )
    return AuditResult(
        scores=scores,
        included=included,
        one_run=one,
        multi_run=multi,
        privacy=recipe_privacy(audit.recipe),
        group=canaries.records // canaries.count,
        delta=audit.delta,
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
        f"Bounds at delta {result.delta:g}. The figures below share runs: each is a bound at its "
        "confidence alone, their maximum is not.",
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
    delta. A canary that is a group of k records is held to its group's claim (``_group_claim``)."""
    grid = tradeoff_grid()
    curves = {}
    claim = _group_claim(result)
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


def _group_claim(result: AuditResult) -> tuple[float, float] | None:
    """The recipe's (epsilon, delta) for one canary (a group of ``result.group`` records, by group
    privacy), or None when it claims no finite epsilon."""
    eps = result.privacy.get("epsilon")
    if not isinstance(eps, int | float) or math.isinf(eps):
        return None
    k, delta = result.group, float(result.privacy.get("delta") or 0.0)
    return k * eps, k * math.exp((k - 1) * eps) * delta


def _group_lines(result: AuditResult) -> list[str]:
    """What a canary of several records means for the claim: the bounds are on a group's epsilon,
    and a per-record (eps, delta) claim allows a group of k up to (k eps, k e^((k-1) eps) delta)."""
    k = result.group
    if k == 1:
        return []
    line = f"Each canary is a group of {k} records: the bounds are on the group's epsilon"
    claim = _group_claim(result)
    if claim is not None and result.privacy.get("delta"):
        line += f"; the recipe's claim for such a group is ({claim[0]:.3g}, {claim[1]:.3g})"
    return [line + " (group privacy)."]
