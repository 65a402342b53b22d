"""The attack report: a Markdown table per scenario and phase, the compute used, and log-log ROC PNGs.

It formats ``farm.driver.ScenarioResult``s, whose metrics and curves are pooled per phase with
``farm.metrics.pooled_scores`` (the farm's one NaN rule).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from farm.fsutil import atomic_write_text
from farm.plots import roc_png

COLUMNS = ("TPR_FPR_1000", "TPR_FPR_100", "TPR_FPR_10", "AUC", "MIA", "accuracy")


def score_table(results: list[Any]) -> str:
    """One row per scenario and phase: ``train`` is leave-one-out over the labelled models."""
    lines = ["| scenario | phase | attack | plan | " + " | ".join(COLUMNS) + " |", "|" + "---|" * (4 + len(COLUMNS))]
    for r in results:
        plan = r.config.plan.kind + (f" K={r.config.plan.shadows}" if r.config.plan.kind == "pool" else "")
        for phase, metrics in r.phases.items():
            label = f"{phase} (leave-one-out)" if phase == "train" else phase
            cells = " | ".join(f"{metrics[c]:.3f}" for c in COLUMNS)
            lines.append(f"| {r.name} | {label} | {r.config.attack} | {plan} | {cells} |")
            if phase in r.baseline and r.config.attack != "loss":
                cells = " | ".join(f"{r.baseline[phase][c]:.3f}" for c in COLUMNS)
                lines.append(f"| {r.name} | {label} | loss (baseline) | none | {cells} |")
    return "\n".join(lines)


def mechanism_lines(results: list[Any]) -> list[str]:
    """One line per scenario: how its shadows were trained (``farm.scenario.Mechanism``) and the epsilon they
    spent on their own records."""
    return [f"- {r.name}: {mechanism_text(r.mechanism)}" for r in results if getattr(r, "mechanism", None)]


def mechanism_text(m: Any) -> str:
    """``Mechanism`` in words: ``12 shadows on 52,001 records: sigma 0.502, clip 6.4, batch 1024, 198 steps, ...``."""
    def span(v: tuple, f: str) -> str:
        low, high = format(v[0], f), format(v[1], f)
        return low if low == high else f"{low}-{high}"

    shadows = f"{m.shadows} shadow{'' if m.shadows == 1 else 's'}"
    text = f"{shadows} on {span(m.n_train, ',')} records: "
    if m.matched_n:
        text = f"{shadows} running the targets' mechanism (targets: {m.matched_n:,} records, " \
               f"q = {m.batch_size / m.matched_n:.4f}) on {span(m.n_train, ',')} records: "
    if m.noise_multiplier is None:
        return text + f"no DP, batch {m.batch_size}, {span(m.steps, 'd')} steps"
    return text + (f"DP-SGD sigma {span(m.noise_multiplier, '.3f')}, clip {m.clip:g}, batch {m.batch_size} "
                   f"({m.sampling}), {span(m.steps, 'd')} steps; on their own records "
                   f"q = {span(m.sample_rate, '.4f')}, epsilon spent {span(m.epsilon, '.2f')} (delta {m.delta:g})")


def write_report(out: Path, results: list[Any], challenge_root: str | Path) -> Path:
    """``out/report.md`` plus ``out/roc_<scenario>.png``; returns the report path."""
    pngs = []
    for r in results:
        curves = {f"{phase} (TPR@0.1FPR={r.phases[phase]['TPR_FPR_1000']:.3f})": c for phase, c in r.curves.items()}
        if curves:
            pngs.append(roc_png(curves, out / f"roc_{r.name}.png", title=f"{r.name}: {r.config.attack}"))
    compute = ["| scenario | shadow trainings | job CPU/GPU-seconds (trainings + inference) |", "|---|---|---|"]
    compute += [f"| {r.name} | {r.trainings} | {r.job_seconds:.1f} |" for r in results]
    text = [f"# Attack report: {challenge_root}", "", "TPR@0.1FPR is the MICO score (FPR strictly below 0.1, "
            "all models of a phase pooled under one threshold; raw scores min-max scaled per phase with NaN as 0.5, "
            "as `normalize: global` writes them).", "", score_table(results), "", "## Compute", "",
            *compute, "", "## Shadows", "", *(mechanism_lines(results) or ["(none trained)"]), "",
            "## ROC curves", "", *[f"![{p.stem}]({p.name})" for p in pngs], ""]
    return atomic_write_text(out / "report.md", "\n".join(text))
