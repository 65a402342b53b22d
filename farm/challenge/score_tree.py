"""Scoring a predictions tree against a solutions tree: per scenario and phase, one pooled
threshold."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from farm.challenge.submission import ModelKey, group_keys
from farm.challenge.tree import Challenge
from farm.errors import SubmissionError
from farm.mico.scorer import FPR_BOUNDS, READABLE_NAMES, roc_curve, score
from farm.report.plots import roc_png


@dataclass(frozen=True, kw_only=True)
class PhaseScore:
    """The MICO score of one (scenario, phase): ``n_models`` models' points pooled under one
    threshold."""

    scenario: str
    phase: str
    n_models: int
    n_points: int
    n_negatives: int  # the non-members pooled: the ROC's smallest FPR step is 1 / n_negatives
    metrics: dict[str, float]
    fpr: np.ndarray
    tpr: np.ndarray


def score_tree(
    predictions: Mapping[ModelKey, np.ndarray], solutions: Challenge
) -> list[PhaseScore]:
    """Score every (scenario, phase) of ``predictions`` that ``solutions`` labels.

    Within a scored phase every labelled model must have a prediction of the right length; a missing
    or unlabelled one raises ``SubmissionError`` naming it. Phases without any labelled model are
    skipped.
    """
    labels = {
        (m.scenario, m.phase, m.model_id): m.solution
        for m in solutions.models
        if m.solution is not None
    }
    results: list[PhaseScore] = []
    problems: list[str] = []
    for (scenario, phase), keys in group_keys(predictions).items():
        wanted = sorted(k for k in labels if k[:2] == (scenario, phase))
        if not wanted:
            continue
        found = _coverage_problems(keys, wanted, labels, predictions)
        problems += [f"{scenario}/{phase}/model_{k[2]}: {p}" for k, p in found]
        if found:
            continue
        y = np.concatenate([labels[k] for k in wanted])
        s = np.concatenate([np.asarray(predictions[k], dtype=np.float64) for k in wanted])
        fpr, tpr, _ = roc_curve(y, s)
        results.append(
            PhaseScore(
                scenario=scenario,
                phase=phase,
                n_models=len(wanted),
                n_points=y.size,
                n_negatives=int(np.sum(y == 0)),
                metrics=score(y, s),
                fpr=fpr,
                tpr=tpr,
            )
        )
    if problems:
        raise SubmissionError(problems)
    return results


def _coverage_problems(
    keys: list[ModelKey],
    wanted: list[ModelKey],
    labels: Mapping[ModelKey, np.ndarray],
    predictions: Mapping[ModelKey, np.ndarray],
) -> list[tuple[ModelKey, str]]:
    found = [(k, "no solution for this model") for k in keys if k not in labels]
    for k in wanted:
        if k not in predictions:
            found.append((k, "prediction missing"))
        elif np.size(predictions[k]) != labels[k].size:
            found.append((k, f"{np.size(predictions[k])} values, expected {labels[k].size}"))
    return found


def format_table(rows: list[PhaseScore]) -> str:
    """A Markdown table: one line per (scenario, phase) with every MICO metric, under the readable
    names of ``report.md`` and ``metrics.json`` (``farm.mico.scorer.READABLE_NAMES``)."""
    keys = [*FPR_BOUNDS, "AUC", "MIA", "accuracy"]
    head = (
        "| scenario | phase | models | points | "
        + " | ".join(READABLE_NAMES[k] for k in keys)
        + " |"
    )
    rule = "|" + "---|" * (4 + len(keys))
    lines = [head, rule]
    for r in rows:
        values = " | ".join(f"{r.metrics[k]:.4f}" for k in keys)
        lines.append(f"| {r.scenario} | {r.phase} | {r.n_models} | {r.n_points} | {values} |")
    return "\n".join(lines)


def plot_roc(rows: list[PhaseScore], out_dir: str | Path) -> list[Path]:
    """One log-log ROC PNG per scenario (a curve per phase), written atomically as
    ``roc_<scenario>.png``."""

    written = []
    for scenario in sorted({r.scenario for r in rows}):
        mine = {
            f"{r.phase} (TPR@0.1FPR={r.metrics['TPR_FPR_1000']:.3f}, AUC={r.metrics['AUC']:.3f})": r
            for r in rows
            if r.scenario == scenario
        }
        curves = {label: (r.fpr, r.tpr) for label, r in mine.items()}
        negatives = {label: r.n_negatives for label, r in mine.items()}
        path = Path(out_dir) / f"roc_{scenario}.png"
        written.append(roc_png(curves, negatives, path, title=scenario))
    return written
