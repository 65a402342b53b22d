"""The attack report: a Markdown table per scenario and phase with 95% intervals and the counts
behind them, the empirical epsilon audit, the compute used and log-log ROC PNGs; the same numbers as
``metrics.json``, and every raw score as ``scores.parquet``.

It formats ``farm.report.results.ScenarioResult``s, whose metrics and curves are pooled per phase
with ``farm.mico.scorer.pooled_scores`` (the farm's one NaN rule) and whose intervals are bootstraps
over models (``farm.attacks.intervals``). Metric names are ``farm.mico.scorer.READABLE_NAMES``
(``TPR@0.1FPR``) in the table and JSON.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import io
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from farm import __version__
from farm.attacks.audit import AUDIT_ADJACENCY, POOLED_VALIDITY, substitution_privacy
from farm.attacks.intervals import Interval
from farm.config.attack import AttackConfig
from farm.mico.scorer import READABLE_NAMES, readable
from farm.privacy.accounting import assumptions, describe_epsilon
from farm.report.plots import roc_png
from farm.report.results import LEVEL, N_BOOT, Audit, ScenarioResult, TargetPrivacy
from farm.shadows.scenario import Mechanism
from farm.store.atomic import atomic_write_bytes, atomic_write_text

COLUMNS = (
    "TPR_FPR_1000",
    "TPR_FPR_100",
    "TPR_FPR_10",
    "AUC",
    "MIA",
    "accuracy",
)  # scorer keys, in table order
COUNTS = ("models", "members", "non_members")
ASSUMPTION_KEYS = (
    "accountant",
    "sampling",
    "adjacency",
    "assumes",
)  # farm.privacy.accounting.assumptions
SCORE_COLUMNS = ("scenario", "phase", "attack", "model", "record", "score", "label")  # .parquet
PARQUET_METADATA_KEY = b"farm"  # scores.parquet's schema metadata: the provenance, as JSON


def config_digest(config: AttackConfig) -> str:
    """sha256 of the canonical JSON of a resolved ``AttackConfig`` (every field, keys sorted): two
    runs with the same digest attacked with the same configuration, however its YAML was written."""
    text = json.dumps(
        dataclasses.asdict(config), sort_keys=True, separators=(",", ":"), default=str
    )
    return hashlib.sha256(text.encode()).hexdigest()


def provenance(results: list[ScenarioResult]) -> dict[str, Any]:
    """Where a run's ``metrics.json`` and ``scores.parquet`` came from: ``farm_version``,
    ``created_utc`` (ISO 8601, seconds, ``Z``), ``config_digest`` (sha256 over the scenarios'
    ``config_digest``s, by scenario name) and ``attacks`` (scenario -> attack name). Computed once
    per run so both files carry the same."""
    digests = {r.name: config_digest(r.config) for r in results}
    overall = json.dumps(digests, sort_keys=True, separators=(",", ":"))
    return {
        "farm_version": __version__,
        "created_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "config_digest": hashlib.sha256(overall.encode()).hexdigest(),
        "attacks": {r.name: r.config.attack for r in results},
    }


def score_table(results: list[ScenarioResult]) -> str:
    """One row per scenario and phase (``train`` is leave-one-out over the labelled models), then
    the loss baseline: the models, members and non-members pooled, and each metric with its 95%
    interval where computed."""
    names = [READABLE_NAMES[c] for c in COLUMNS]
    lines = [
        "| scenario | phase | attack | plan | models | members | non-members | "
        + " | ".join(names)
        + " |",
        "|" + "---|" * (7 + len(COLUMNS)),
    ]
    for r in results:
        plan = r.config.plan.kind + (
            f" K={r.config.plan.shadows}" if r.config.plan.kind == "pool" else ""
        )
        for phase, metrics in r.phases.items():
            label = f"{phase} (leave-one-out)" if phase == "train" else phase
            n = " | ".join(str(r.counts[phase][k]) if phase in r.counts else "" for k in COUNTS)
            cells = _cells(metrics, r.intervals.get(phase, {}))
            lines.append(f"| {r.name} | {label} | {r.config.attack} | {plan} | {n} | {cells} |")
            if phase in r.baseline and r.config.attack != "loss":
                cells = _cells(r.baseline[phase], r.baseline_intervals.get(phase, {}))
                lines.append(f"| {r.name} | {label} | loss (baseline) | none | {n} | {cells} |")
    return "\n".join(lines)


def _cells(metrics: dict[str, float], intervals: dict[str, Interval]) -> str:
    return " | ".join(
        f"{metrics[c]:.3f}" + (f" {intervals[c].cell()}" if c in intervals else "") for c in COLUMNS
    )


def audit_table(results: list[ScenarioResult]) -> str:
    """One row per scenario: the epsilon the targets were trained with (and what it assumes), the
    same as a substitution epsilon, then the empirical lower bounds: one point per model
    (independent trials) and pooled (heuristic), with the counts behind each. Below the table, why
    each row's trials are (not) independent."""
    lines = [
        f"| scenario | targets trained with | as substitution (group privacy) | δ | ε lower "
        f"bound, one point per model ({LEVEL:.0%}) | its FP / non-members, FN / members | ε lower "
        f"bound, pooled (heuristic, {LEVEL:.0%}) | threshold chosen on | applied to | FP / "
        f"non-members | FN / members |",
        "|" + "---|" * 11,
    ]
    notes = []
    for r in results:
        a = r.audit
        if a is None:
            lines.append(f"| {r.name} | | | | not computed (too few labelled models) | | | | | | |")
            continue
        e, one = a.audit, a.independent
        bound = f"{one.epsilon_lb:.3f}" if one else "not computed"
        trials = f"{one.fp} / {one.negatives}, {one.fn} / {one.positives}" if one else ""
        lines.append(
            f"| {r.name} | {_target(a.target)} | {_substitution(a.target)} | {e.delta:g} | {bound} "
            f"| {trials} | {e.epsilon_lb:.3f} | {a.fit_on} | {a.held_out} | {e.fp} / {e.negatives} "
            f"| {e.fn} / {e.positives} |"
        )
        notes.append(f"- {r.name}, one point per model: {a.independent_validity}.")
    return "\n".join(lines + ([""] + notes if notes else []))


def _target(t: TargetPrivacy) -> str:
    """The targets' epsilon, what it assumes (``farm.privacy.accounting.describe_epsilon``), its
    source."""
    if t.epsilon is None:
        return t.source
    if math.isinf(t.epsilon):
        return f"inf (no DP) ({t.source})"
    return f"ε = {describe_epsilon(t.record or {'epsilon': t.epsilon})} ({t.source})"


def _substitution(t: TargetPrivacy) -> str:
    """The targets' guarantee under substitution, the audit's adjacency
    (``farm.attacks.audit.substitution_privacy``)."""
    if t.epsilon is None:
        return "unknown"
    if math.isinf(t.epsilon):
        return "inf"
    if t.adjacency == "substitution":
        return f"ε = {t.epsilon:g}, δ = {t.delta:g} (recorded as substitution)"
    eps, delta = substitution_privacy(t.epsilon, t.delta)
    recorded = "" if t.adjacency == "add/remove" else " if add/remove (adjacency not recorded)"
    return f"ε = {eps:g}, δ = {delta:.2g}{recorded}"


def mechanism_lines(results: list[ScenarioResult]) -> list[str]:
    """One line per scenario: how its shadows were trained (``farm.shadows.scenario.Mechanism``) and
    the epsilon they spent on their own records."""
    return [
        f"- {r.name}: {mechanism_text(r.mechanism)}" for r in results if r.mechanism is not None
    ]


def mechanism_text(m: Mechanism) -> str:
    """``Mechanism`` in words: ``12 shadows on 52,001 records: sigma 0.502, clip 6.4, batch 1024,
    198 steps, ...``."""

    def span(v: tuple, f: str) -> str:
        low, high = format(v[0], f), format(v[1], f)
        return low if low == high else f"{low}-{high}"

    shadows = f"{m.shadows} shadow{'' if m.shadows == 1 else 's'}"
    text = f"{shadows} on {span(m.n_train, ',')} records: "
    if m.matched_n:
        text = (
            f"{shadows} running the targets' mechanism (targets: {m.matched_n:,} records, q = "
            f"{m.batch_size / m.matched_n:.4f}) on {span(m.n_train, ',')} records: "
        )
    if m.noise_multiplier is None or m.sample_rate is None or m.epsilon is None:
        return text + f"no DP, batch {m.batch_size}, {span(m.steps, 'd')} steps"
    assumed = assumptions(
        accountant=m.accountant or "unrecorded", sampling=m.sampling, adjacency="add/remove"
    )
    return text + (
        f"DP-SGD sigma {span(m.noise_multiplier, '.3f')}, clip {m.clip:g}, batch {m.batch_size} "
        f"({m.sampling}), {span(m.steps, 'd')} steps; on their own records q = "
        f"{span(m.sample_rate, '.4f')}, epsilon spent {span(m.epsilon, '.2f')} (delta "
        f"{m.delta:g}), {assumed['assumes']}"
    )


def write_report(out: Path, results: list[ScenarioResult], challenge_root: str | Path) -> Path:
    """``out/report.md`` plus ``out/roc_<scenario>.png``, one plot per scenario holding the
    attack's curve of each phase and the loss baseline's (dashed); returns the report path."""
    pngs = []
    for r in results:
        curves, negatives, dashed = {}, {}, []
        for phase, curve in r.curves.items():
            label = _curve_label(r, phase)
            curves[label], negatives[label] = curve, r.counts[phase]["non_members"]
        for phase, curve in r.baseline_curves.items():
            label = _curve_label(r, phase, baseline=True)
            curves[label], negatives[label] = curve, r.counts[phase]["non_members"]
            dashed.append(label)
        if curves:
            path = out / f"roc_{r.name}.png"
            title = f"{r.name}: {r.config.attack}" + (" and loss baseline" if dashed else "")
            pngs.append(roc_png(curves, negatives, path, title=title, dashed=dashed))
    compute = [
        "| scenario | shadow trainings | job CPU/GPU-seconds (trainings + inference) |",
        "|---|---|---|",
    ]
    compute += [f"| {r.name} | {r.trainings} | {r.job_seconds:.1f} |" for r in results]
    text = [
        f"# Attack report: {challenge_root}",
        "",
        f"TPR@0.1FPR is the MICO score (FPR strictly below 0.1, all models of a phase pooled "
        f"under one threshold; raw scores min-max scaled per phase with NaN as 0.5, as "
        f"`normalize: global` writes them). Brackets: {LEVEL:.0%} percentile bootstrap intervals "
        f"over models (models drawn with replacement, their points pooled, {N_BOOT} resamples); "
        f"models, members and non-members: what each row pools.",
        "",
        score_table(results),
        "",
        "## Empirical ε lower bound",
        "",
        f"A threshold on the scores (chosen to maximize the bound) is fixed on labelled models' "
        f"leave-one-out scores and applied to held-out models; Clopper-Pearson upper bounds on "
        f"its FPR and FNR there give, through the (ε, δ)-DP hypothesis-testing region, an ε every "
        f"mechanism with that δ must exceed ({LEVEL:.0%} confidence, both rates jointly; "
        f"`farm.attacks.audit`). *One point per model*: each held-out model contributes one "
        f"trial, the point at an index drawn from a seed and its model id alone (so its "
        f"membership is that model's own coin flip); independently trained models give "
        f"independent trials, as Clopper-Pearson needs (Jagielski et al. 2020). It is weak with "
        f"few models. *Pooled*: every held-out point a trial; the points of one model share its "
        f"training run, so they are not independent: a heuristic figure, not a certificate. "
        f"Adjacency: the membership game swaps a member for a non-member at a fixed training-set "
        f"size, so both bounds are on a **substitution** ε; the targets' ε (Opacus' accountants) "
        f"is add/remove, and by group privacy an add/remove (ε, δ) guarantee is (2ε, (1 + e^ε)δ) "
        f"under substitution: the column a bound can be held against.",
        "",
        audit_table(results),
        "",
        "## Compute",
        "",
        *compute,
        "",
        "## Shadows",
        "",
        *(mechanism_lines(results) or ["(none trained)"]),
        "",
        "## ROC curves",
        "",
        *[f"![{p.stem}]({p.name})" for p in pngs],
        "",
    ]
    return atomic_write_text(out / "report.md", "\n".join(text))


def _curve_label(r: ScenarioResult, phase: str, *, baseline: bool = False) -> str:
    """``dev: rmia (TPR@0.1FPR=0.210 [0.15, 0.27])``: the phase, the attack (or ``loss
    baseline``), its figure and interval."""
    metrics, intervals = (r.baseline, r.baseline_intervals) if baseline else (r.phases, r.intervals)
    value = metrics[phase]["TPR_FPR_1000"]
    iv = intervals.get(phase, {}).get("TPR_FPR_1000")
    name = "loss baseline" if baseline else r.config.attack
    figure = f"TPR@0.1FPR={value:.3f}" + (f" {iv.cell()}" if iv and iv.known else "")
    return f"{phase}: {name} ({figure})"


def metrics_json(
    results: list[ScenarioResult],
    challenge_root: str | Path,
    *,
    origin: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Every number of the report as plain JSON data: ``provenance`` (``origin``, else
    ``provenance(results)``), per scenario its attack and ``config_digest``, per phase the counts,
    metrics and intervals (``{value, lo, hi}``) under readable names, the loss baseline likewise,
    the epsilon audit beside the targets' privacy (``epsilon``: a number, ``"inf"`` without DP, null
    when unknown) and the compute. Non-finite numbers become null."""
    scenarios = {}
    for r in results:
        phases = {
            p: _phase_json(m, r.intervals.get(p, {}), r.counts.get(p), p)
            for p, m in r.phases.items()
        }
        baseline = {
            p: _phase_json(m, r.baseline_intervals.get(p, {}), r.counts.get(p), p)
            for p, m in r.baseline.items()
        }
        scenarios[r.name] = {
            "attack": r.config.attack,
            "config_digest": config_digest(r.config),
            "params": dict(r.config.params),
            "plan": dataclasses.asdict(r.config.plan),
            "normalize": r.config.normalize,
            "phases": phases,
            "baseline": {"attack": "loss", "phases": baseline},
            "epsilon_audit": _audit_json(r.audit) if r.audit else None,
            "compute": {"shadow_trainings": r.trainings, "job_seconds": r.job_seconds},
        }
    return _clean(
        {
            "provenance": origin or provenance(results),
            "challenge": str(challenge_root),
            "level": LEVEL,
            "bootstrap": {"unit": "model", "resamples": N_BOOT, "seed": 0},
            "pooling": "farm.mico.scorer.pooled_scores: one min-max per scenario and phase, NaN -> "
            "0.5",
            "scenarios": scenarios,
            "compute": {
                "shadow_trainings": sum(r.trainings for r in results),
                "job_seconds": sum(r.job_seconds for r in results),
            },
        }
    )


def _phase_json(
    metrics: dict[str, float],
    intervals: dict[str, Interval],
    counts: dict[str, int] | None,
    phase: str,
) -> dict[str, Any]:
    return {
        "leave_one_out": phase == "train",
        **(counts or {}),
        "metrics": readable(metrics),
        "intervals": readable({k: iv.to_dict() for k, iv in intervals.items()}),
    }


def _audit_json(a: Audit) -> dict[str, Any]:
    """The audit block: the pooled bound's fields at the top (``epsilon_lb`` kept, equal to
    ``epsilon_lb_heuristic``, for readers of older files), its ``validity``;
    ``one_point_per_model``: the bound from independent trials with its own ``validity``;
    ``adjacency``; the targets' privacy with its assumptions."""
    t, eps = a.target, a.target.epsilon
    one = {
        **(a.independent.to_dict() if a.independent else {"epsilon_lb": None}),
        "trials": a.independent.negatives + a.independent.positives if a.independent else 0,
        "validity": a.independent_validity,
    }
    target = {
        "epsilon": "inf" if eps is not None and math.isinf(eps) else eps,
        "delta": t.delta,
        "source": t.source,
        **{k: t.record[k] for k in ASSUMPTION_KEYS if k in t.record},
    }
    if eps is not None and math.isfinite(eps) and "assumes" not in target:
        target["assumes"] = "assumptions not recorded"
    as_sub = None
    if eps is not None and math.isfinite(eps):
        sub = (
            (eps, t.delta) if t.adjacency == "substitution" else substitution_privacy(eps, t.delta)
        )
        as_sub = {"epsilon": sub[0], "delta": sub[1]}
    adjacency = {
        "audit": AUDIT_ADJACENCY,
        "targets": t.adjacency or "not recorded",
        "targets_as_substitution": as_sub,
    }
    return {
        **a.audit.to_dict(),
        "epsilon_lb_heuristic": a.audit.epsilon_lb,
        "validity": POOLED_VALIDITY,
        "one_point_per_model": one,
        "adjacency": adjacency,
        "fit_on": a.fit_on,
        "held_out": a.held_out,
        "target": target,
    }


def _clean(value: Any) -> Any:
    """JSON-ready: tuples as lists, numpy scalars as Python numbers, NaN and +-inf as None."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, str):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_metrics(
    out: Path,
    results: list[ScenarioResult],
    challenge_root: str | Path,
    *,
    origin: dict[str, Any] | None = None,
) -> Path:
    """``out/metrics.json`` (``metrics_json``), written atomically; returns its path."""
    data = metrics_json(results, challenge_root, origin=origin)
    text = json.dumps(data, indent=2, allow_nan=False)
    return atomic_write_text(out / "metrics.json", text + "\n")


def scores_frame(results: list[ScenarioResult]) -> Any:
    """A pandas DataFrame, one row per model and challenge point (``SCORE_COLUMNS``): ``record`` is
    the point's population index, ``score`` the raw attack score (train models: leave-one-out; NaN
    kept), ``label`` the 0/1 membership where known (train models; dev/final with answers), else
    null (nullable ``Int8``)."""
    # lazy: pandas loads only to write or read a table
    import pandas as pd

    frames = []
    for r in results:
        scores = {**r.train_scores, **r.raw}
        for m, records in r.records.items():
            known = r.solutions.get(m)
            frames.append(
                pd.DataFrame(
                    {
                        "scenario": m.scenario,
                        "phase": m.phase,
                        "attack": r.config.attack,
                        "model": np.full(records.size, m.model_id, np.int64),
                        "record": records.astype(np.int64),
                        "score": np.asarray(scores[m], np.float64),
                        "label": pd.array(
                            known if known is not None else [None] * records.size, dtype="Int8"
                        ),
                    }
                )
            )
    if not frames:
        return pd.DataFrame({c: [] for c in SCORE_COLUMNS})
    return pd.concat(frames, ignore_index=True)[list(SCORE_COLUMNS)]


def write_scores(
    out: Path, results: list[ScenarioResult], *, origin: dict[str, Any] | None = None
) -> Path:
    """``out/scores.parquet`` (``scores_frame``, pyarrow), written atomically, its schema metadata
    holding the provenance (``origin``, else ``provenance(results)``) as JSON under
    ``PARQUET_METADATA_KEY`` (``read_provenance``); returns its path."""
    # lazy: pyarrow loads only to write or read a table
    import pyarrow as pa

    # lazy: as above
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(scores_frame(results), preserve_index=False)
    stamp = json.dumps(origin or provenance(results), sort_keys=True).encode()
    table = table.replace_schema_metadata(
        {**(table.schema.metadata or {}), PARQUET_METADATA_KEY: stamp}
    )
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return atomic_write_bytes(out / "scores.parquet", buffer.getvalue())


def read_provenance(path: str | Path) -> dict[str, Any]:
    """The provenance ``write_scores`` stored in a ``scores.parquet`` (``{}`` for a file written
    before it did); reads the schema only."""
    # lazy: pyarrow loads only to write or read a table
    import pyarrow.parquet as pq

    stamp = (pq.read_schema(path).metadata or {}).get(PARQUET_METADATA_KEY)
    return json.loads(stamp) if stamp else {}
