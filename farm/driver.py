"""The driver: attack configs, attack, normalization, predictions, validated zip and report.

``attack_challenge`` attacks every scenario of a challenge tree: ``farm.scenario`` loads each scenario and
collects its ``Signals`` under the config's shadow plan (shadows trained, every model run over the union of the
scenario's challenge points); the driver scores the labelled ``train`` models leave-one-out (no target is its
own reference) and the dev/final targets, and writes ``predictions/``, ``submission.zip`` and ``report.md``
with ROC PNGs under ``out``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from farm.attacks import run_attack
from farm.challenge import PHASES
from farm.config import AttackConfig
from farm.metrics import roc_curve
from farm.scenario import Mechanism, ModelId, Scenario, collect_signals, load_scenarios, shadow_mechanism


@dataclass
class ScenarioResult:
    """Scores of one scenario: raw dev/final scores per model, metrics per phase (pooled with
    ``farm.metrics.pooled_scores``), ROC curves per phase, compute spent."""

    name: str
    config: AttackConfig
    raw: dict[ModelId, np.ndarray]
    phases: dict[str, dict[str, float]]
    trainings: int
    job_seconds: float
    curves: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    baseline: dict[str, dict[str, float]] = field(default_factory=dict)  # the loss attack on the same phases
    mechanism: Mechanism | None = None  # how the shadows were trained (None: no shadows)


def attack_scenario(scenario: Scenario, config: AttackConfig, executor: Any) -> ScenarioResult:
    """Plan -> train shadows -> infer -> signals -> attack; metrics on train (leave-one-out) and answered phases."""
    n_target = scenario.inputs.len_training
    collected = collect_signals(scenario, config.plan, config.shadow_recipe(n_target), executor)
    part, signals = collected.scenario, collected.signals
    rows = np.arange(len(part.ids))
    raw = dict(zip(part.ids, run_attack(config.attack, signals, rows, **config.params)))
    loss = dict(zip(part.ids, run_attack("loss", signals, rows)))
    phases = {p: r for p in PHASES if (r := part.score(p, raw))}
    curves = {}
    for phase in phases:
        if pool := part.pooled(phase, raw):
            fpr, tpr, _ = roc_curve(*pool)
            curves[phase] = (fpr, tpr)
    baseline = {p: r for p in phases if (r := part.score(p, loss))}
    mechanism = shadow_mechanism(executor.store, collected.train_keys,
                                 matched_n=n_target if config.match_targets else None)
    return ScenarioResult(scenario.name, config, {m: v for m, v in raw.items() if m.phase != "train"}, phases,
                          collected.trainings, collected.job_seconds, curves, baseline, mechanism)


def attack_challenge(challenge_root: str | Path, configs: dict[str, AttackConfig], executor: Any, out: str | Path,
                     *, answers_root: str | Path | None = None) -> list[ScenarioResult]:
    """Attack every scenario; write ``out/predictions``, ``out/submission.zip`` and the report."""
    from farm.report import write_report
    from farm.submission import Expected, normalize, pack, write_predictions

    ch, scenarios = load_scenarios(challenge_root, answers_root=answers_root, assets=configs["*"].assets)
    results = [attack_scenario(s, configs.get(name, configs["*"]), executor) for name, s in scenarios.items()]
    out = Path(out)
    predictions = {}
    for r in results:
        predictions.update(normalize({m.as_tuple(): v for m, v in r.raw.items()}, mode=r.config.normalize))
    write_predictions(out / "predictions", predictions)
    pack(out / "predictions", out / "submission.zip", Expected.from_challenge(ch))
    write_report(out, results, challenge_root)
    return results
