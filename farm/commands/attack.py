"""``farm attack``: attack every scenario of a challenge tree, then write predictions, the
validated zip and the report.

``attack_challenge`` attacks every scenario of a challenge tree: ``farm.shadows.scenario`` loads
each scenario and collects its ``Signals`` under the config's shadow plan (shadows trained, every
model run over the union of the scenario's challenge points); this module scores the labelled
``train`` models leave-one-out (no target is its own reference) and the dev/final targets, puts 95%
bootstrap intervals over models on the pooled metrics (``farm.attacks.intervals``), audits an
empirical epsilon lower bound (``farm.attacks.audit``), and writes ``predictions/``,
``submission.zip``, ``report.md`` with ROC PNGs, ``metrics.json`` and ``scores.parquet`` under
``out``.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

import numpy as np

from farm.attacks.audit import EpsilonAudit, audit_epsilon, pick_index, scale_like
from farm.attacks.intervals import Interval, bootstrap_by_model, counts
from farm.attacks.registry import run_attack
from farm.challenge.submission import Expected, normalize, pack, write_predictions
from farm.challenge.tree import CHALLENGE_JSON, PHASES, read_constants
from farm.config.attack import AttackConfig
from farm.mico.scorer import pooled_scores, roc_curve
from farm.privacy.accounting import assumptions
from farm.report.attack_report import provenance, write_metrics, write_report, write_scores
from farm.report.results import LEVEL, N_BOOT, Audit, ScenarioResult, TargetPrivacy
from farm.shadows.scenario import (
    Collected,
    ModelId,
    Scenario,
    collect_many,
    collect_signals,
    load_scenarios,
    shadow_jobs,
    shadow_mechanism,
)
from farm.stopwatch import Stopwatch
from farm.store.atomic import atomic_write_text
from farm.store.runner import JobRunner, start_early

MICO_EPSILON = {"sst2_inf": math.inf, "sst2_hi": 10.0, "sst2_lo": 4.0}
MICO_DELTA = 1e-5
log = logging.getLogger(__name__)


def attack_scenario(
    scenario: Scenario,
    config: AttackConfig,
    executor: JobRunner,
    *,
    target: TargetPrivacy | None = None,
    collected: Collected | None = None,
) -> ScenarioResult:
    """Shadow plan -> train shadows -> infer -> signals -> attack; metrics with intervals on train
    (leave-one-out) and answered phases; the epsilon audit against ``target`` (default: unknown,
    MICO's delta). ``collected``: the scenario's signals when already collected
    (``attack_challenge`` collects every scenario's in one queue)."""
    n_target = scenario.inputs.len_training
    if collected is None:
        collected = collect_signals(
            scenario, config.plan, config.shadow_recipe(n_target), executor, extras=config.extras()
        )
    part, signals = collected.scenario, collected.signals
    rows = np.arange(len(part.ids))
    raw = dict(zip(part.ids, run_attack(config.attack, signals, rows, **config.params)))
    loss = dict(zip(part.ids, run_attack("loss", signals, rows)))
    phases = {p: r for p in PHASES if (r := part.score(p, raw))}
    curves, baseline_curves = {}, {}
    for phase in phases:
        if pool := part.pooled(phase, raw):
            fpr, tpr, _ = roc_curve(*pool)
            curves[phase] = (fpr, tpr)
        if pool := part.pooled(phase, loss):
            fpr, tpr, _ = roc_curve(*pool)
            baseline_curves[phase] = (fpr, tpr)
    baseline = {p: r for p in phases if (r := part.score(p, loss))}
    intervals, counts, baseline_intervals = {}, {}, {}
    for phase in phases:
        intervals[phase], counts[phase] = phase_intervals(part, phase, raw)
        baseline_intervals[phase] = phase_intervals(part, phase, loss)[0]
    return ScenarioResult(
        name=scenario.name,
        config=config,
        raw={m: v for m, v in raw.items() if m.phase != "train"},
        phases=phases,
        trainings=collected.trainings,
        job_seconds=collected.job_seconds,
        curves=curves,
        baseline=baseline,
        baseline_curves=baseline_curves if config.attack != "loss" else {},
        intervals=intervals,
        counts=counts,
        baseline_intervals=baseline_intervals,
        train_scores={m: v for m, v in raw.items() if m.phase == "train"},
        records={m: part.challenge(m) for m in part.ids},
        solutions=dict(part.solutions),
        audit=audit_scenario(part, raw, target or unknown_privacy()),
        mechanism=shadow_mechanism(
            executor.store,
            collected.train_keys,
            matched_n=n_target if config.match_targets else None,
        ),
    )


def phase_intervals(
    scenario: Scenario,
    phase: str,
    raw: dict[ModelId, np.ndarray],
    *,
    n_boot: int = N_BOOT,
    seed: int = 0,
) -> tuple[dict[str, Interval], dict[str, int]]:
    """``LEVEL`` bootstrap intervals over the labelled models of ``phase`` and their counts, on the
    scores ``Scenario.pooled`` pools (so each interval's value is the report's figure). The phase
    must be labelled."""
    ids = [m for m in scenario.phase(phase) if m in scenario.solutions]
    pool = scenario.pooled(phase, raw)
    if pool is None:
        raise ValueError(f"{scenario.name}/{phase}: no labelled model")
    labels = [scenario.solutions[m] for m in ids]
    scores = np.split(pool[1], np.cumsum([y.size for y in labels])[:-1])
    return bootstrap_by_model(labels, scores, n_boot=n_boot, level=LEVEL, seed=seed), counts(labels)


def audit_scenario(
    scenario: Scenario, raw: dict[ModelId, np.ndarray], target: TargetPrivacy, *, seed: int = 0
) -> Audit | None:
    """The empirical epsilon lower bound at ``LEVEL``: threshold chosen on the ``train`` models'
    leave-one-out scores, errors counted on held-out models -- the answered dev/final models when
    there are any, else a seeded held-out half of the train models (the threshold then comes from
    the other half). Scores of both sides are pooled together (``farm.mico.scorer.pooled_scores``:
    one monotone min-max, NaN -> 0.5), so a threshold means the same on both. None with fewer than 2
    labelled train models or a side lacking members or non-members."""
    train = [m for m in scenario.phase("train") if m in scenario.solutions]
    answered = [m for m in scenario.ids if m.phase != "train" and m in scenario.solutions]
    if answered:
        fit, held = train, answered
        fit_on = f"train ({len(fit)} models, leave-one-out)"
        phases = "/".join(sorted({m.phase for m in held}, key=PHASES.index))
        held_out = f"answered {phases} ({len(held)} models)"
        why = (
            f"independent trials: one point per held-out model at an index drawn from (seed "
            f"{seed}, model id) alone, so its membership is the model's own coin flip; held-out "
            f"models are trained independently and are no attack's references (their membership is "
            f"unknown to it), and the threshold and score scale are fixed on the train models alone"
        )
    else:
        if len(train) < 2:
            return None
        order = np.random.default_rng([seed, 0xA0D17]).permutation(len(train))
        half = set(order[: len(train) // 2].tolist())
        fit = [m for i, m in enumerate(train) if i not in half]
        held = [m for i, m in enumerate(train) if i in half]
        fit_on = f"train, seeded half ({len(fit)} models, leave-one-out)"
        held_out = f"train, the other half (seed {seed}, {len(held)} models, leave-one-out)"
        why = (
            f"heuristic: one point per held-out model at an index drawn from (seed {seed}, model "
            f"id), but held-out train models are references in each other's (and the fit half's) "
            f"leave-one-out scores, so the trials are not strictly independent; answers for "
            f"dev/final models give independent ones"
        )
    if not fit:
        return None
    y_fit = np.concatenate([scenario.solutions[m] for m in fit])
    y_held = np.concatenate([scenario.solutions[m] for m in held])
    if len(np.unique(y_fit)) < 2 or len(np.unique(y_held)) < 2:
        return None
    pooled = pooled_scores([raw[m] for m in fit + held])
    got = audit_epsilon(
        y_fit,
        pooled[: y_fit.size],
        y_held,
        pooled[y_fit.size :],
        delta=target.delta,
        confidence=LEVEL,
    )
    independent, why = one_point_audit(
        scenario, raw, fit, held, target=target, seed=seed, validity=why
    )
    return Audit(
        audit=got,
        fit_on=fit_on,
        held_out=held_out,
        target=target,
        independent=independent,
        independent_validity=why,
    )


def one_point_audit(
    scenario: Scenario,
    raw: dict[ModelId, np.ndarray],
    fit: list[ModelId],
    held: list[ModelId],
    *,
    target: TargetPrivacy,
    seed: int = 0,
    validity: str = "",
) -> tuple[EpsilonAudit | None, str]:
    """The one-point-per-model bound (``farm.attacks.audit``): the threshold chosen on the ``fit``
    models' points (scaled by their own min-max, ``farm.attacks.audit.scale_like``, so the held-out
    scores move neither the scale nor the threshold), then exactly one trial per ``held`` model, its
    point at ``farm.attacks.audit.pick_index(model_id)``. Returns ``(bound, validity)``; the bound
    is None, and ``validity`` says why, when the picked points lack members or non-members."""
    fit_raw = np.concatenate([raw[m] for m in fit])
    y_fit = np.concatenate([scenario.solutions[m] for m in fit])
    picks = [pick_index(m.model_id, scenario.solutions[m].size, seed=seed) for m in held]
    y = np.array([scenario.solutions[m][i] for m, i in zip(held, picks)], dtype=np.int64)
    s = scale_like(fit_raw, np.array([raw[m][i] for m, i in zip(held, picks)], dtype=np.float64))
    if len(np.unique(y)) < 2:
        side = "non-member" if y.size and y[0] == 1 else "member"
        return None, f"not computed: the {y.size} picked points hold no {side}"
    got = audit_epsilon(
        y_fit, scale_like(fit_raw, fit_raw), y, s, delta=target.delta, confidence=LEVEL
    )
    return got, validity


def unknown_privacy() -> TargetPrivacy:
    """Targets whose recipe the tree does not record: epsilon unknown, the audit at MICO's delta."""
    return TargetPrivacy(
        None, MICO_DELTA, "unknown: the tree records no target recipe (delta: MICO's 1e-5)"
    )


def target_privacy(challenge_root: str | Path, scenario: str) -> TargetPrivacy:
    """What the tree tells of the targets' training: a MICO tree (no ``challenge.json``) is MICO
    SST-2's (``sst2_inf``: no DP, ``sst2_hi``: epsilon 10, ``sst2_lo``: epsilon 4, delta 1e-5); a
    tree the project wrote (``farm.commands.make_challenge``) records its targets' epsilon and delta
    in ``challenge.json``; otherwise epsilon is unknown (the audit uses delta 1e-5)."""
    if not (Path(challenge_root) / CHALLENGE_JSON).exists() and scenario in MICO_EPSILON:
        return TargetPrivacy(
            MICO_EPSILON[scenario], MICO_DELTA, "MICO SST-2", mico_privacy(scenario)
        )
    recorded = read_constants(challenge_root).targets.get(scenario)
    if recorded and recorded.get("epsilon") is not None:
        epsilon = math.inf if recorded["epsilon"] == "inf" else float(recorded["epsilon"])
        return TargetPrivacy(
            epsilon, float(recorded.get("delta", MICO_DELTA)), "challenge.json", dict(recorded)
        )
    return unknown_privacy()


def mico_privacy(scenario: str) -> dict[str, Any]:
    """MICO SST-2's targets as a privacy record (``farm.defences.seam.recipe_privacy``'s shape):
    ``sst2_inf`` no DP; ``sst2_hi`` / ``sst2_lo`` accounted by Opacus' PRV accountant as
    Poisson-sampled at q = 1024 / 67,349 while the run drew shuffled fixed-size batches (add/remove
    adjacency; mico-sst2-facts.md)."""
    epsilon = MICO_EPSILON[scenario]
    if math.isinf(epsilon):
        return {"epsilon": "inf"}
    return {
        "epsilon": epsilon,
        "delta": MICO_DELTA,
        **assumptions(accountant="prv", sampling="shuffle", adjacency="add/remove"),
    }


def attack_challenge(
    challenge_root: str | Path,
    configs: dict[str, AttackConfig],
    executor: JobRunner,
    out: str | Path,
    *,
    answers_root: str | Path | None = None,
    watch: Stopwatch | None = None,
) -> list[ScenarioResult]:
    """Attack every scenario; write ``out/predictions``, ``out/submission.zip``, the report,
    ``out/metrics.json``, ``out/scores.parquet`` and, last, ``out/stages.json``: the seconds of each
    stage (``farm.stopwatch``)."""

    watch = watch or Stopwatch()
    start_early(executor)  # workers start while the scenarios are read and their jobs planned
    ch, scenarios = load_scenarios(
        challenge_root, answers_root=answers_root, assets=configs["*"].assets, watch=watch
    )
    chosen = {name: configs.get(name, configs["*"]) for name in scenarios}
    with watch.stage("scheduling"):
        planned = [
            shadow_jobs(
                s,
                chosen[name].plan,
                chosen[name].shadow_recipe(s.inputs.len_training),
                extras=chosen[name].extras(),
            )
            for name, s in scenarios.items()
        ]
    collected = collect_many(
        planned, executor, title="shadows and inference, all scenarios", watch=watch
    )
    with watch.stage("scoring"):
        results = [
            attack_scenario(
                s,
                chosen[name],
                executor,
                target=target_privacy(challenge_root, name),
                collected=got,
            )
            for (name, s), got in zip(scenarios.items(), collected)
        ]
    out = Path(out)
    with watch.stage("writing"):
        predictions = {}
        for r in results:
            predictions.update(
                normalize({m.as_tuple(): v for m, v in r.raw.items()}, mode=r.config.normalize)
            )
        write_predictions(out / "predictions", predictions)
        pack(out / "predictions", out / "submission.zip", Expected.from_challenge(ch))
        write_report(out, results, challenge_root)
        origin = provenance(results)  # one stamp for both files
        write_metrics(out, results, challenge_root, origin=origin)
        write_scores(out, results, origin=origin)
    atomic_write_text(out / "stages.json", json.dumps(watch.as_dict(), indent=2) + "\n")
    log.info("stages: %s", watch.line())
    return results
