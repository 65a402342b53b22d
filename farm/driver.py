"""The driver: plan, executor, signals, attack, normalization, predictions, validated zip and report.

``attack_challenge`` attacks every scenario of a challenge tree: it trains the plan's shadows, runs every model
(provided and shadow) over the union of the scenario's challenge points, builds ``Signals``, scores the labelled
``train`` models leave-one-out (no target is its own reference) and the dev/final targets, and writes
``predictions/``, ``submission.zip`` and ``report.md`` with ROC PNGs under ``out``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from farm.attacks import UNKNOWN, Signals, run_attack
from farm.challenge import Challenge, ModelEntry, read_challenge
from farm.config import config_path, load_recipe, read_yaml, typed
from farm.errors import ConfigError
from farm.jobs import InferJob, Selection, TrainJob, path_ref, store_ref
from farm.metrics import score
from farm.plans import PlanSpec, Shadow, keep_row, per_target_shadows, pool_shadows, union_of_challenges
from farm.recipes import Recipe
from farm.store import fingerprint


@dataclass(frozen=True)
class AttackConfig:
    """How one scenario is attacked: the shadow plan and recipe, the attack and its parameters, normalization.

    ``recipe``: a shipped recipe name (``farm/configs/recipes``) or an inline recipe mapping.
    """

    attack: str = "loss"
    params: dict[str, Any] = field(default_factory=dict)
    plan: PlanSpec = field(default_factory=PlanSpec)
    recipe: str | dict[str, Any] = "mini-inf"
    normalize: str = "global"

    def shadow_recipe(self) -> Recipe:
        if isinstance(self.recipe, str):
            return load_recipe(self.recipe)
        return typed(Recipe, self.recipe, "attack config", "recipe")


def load_attack_config(path: str | Path) -> dict[str, AttackConfig]:
    """``{scenario or "*": AttackConfig}`` from YAML: top-level keys are the default, ``scenarios.<name>`` overrides
    them per scenario (a ``best.yaml`` written by ``farm tune`` has the same shape). ``path`` may be a shipped name."""
    path = config_path(path)
    data = read_yaml(path)
    overrides = data.pop("scenarios", {}) or {}
    configs = {"*": _attack_config(data, path, "config")}
    for name, extra in overrides.items():
        configs[name] = _attack_config({**data, **(extra or {})}, path, f"scenarios.{name}")
    return configs


def _attack_config(data: dict, path: str | Path, where: str) -> AttackConfig:
    data = dict(data)
    plan = typed(PlanSpec, {**data.pop("plan", {})}, path, f"{where}.plan")
    if "phases" in data:
        raise ConfigError(f"{path}: {where}.phases belongs under plan")
    config = typed(AttackConfig, {k: v for k, v in data.items() if k != "plan"}, path, where)
    return dataclasses.replace(config, plan=dataclasses.replace(plan, phases=tuple(plan.phases)))


@dataclass
class ScenarioData:
    """What the driver knows about one scenario: its models, their splits and the records they need."""

    name: str
    models: list[ModelEntry]
    challenges: list[np.ndarray]
    train_sets: list[np.ndarray | None]
    records: np.ndarray


@dataclass
class Inputs:
    """References shared by every job of one challenge."""

    population: dict
    tokenizer: str
    base: str | None
    n_total: int


def scenario_data(ch: Challenge, name: str) -> ScenarioData:
    models = ch.select(name)
    splits = [m.split(ch.constants) for m in models]
    challenges = [s.challenge for s in splits]
    train_sets = [np.sort(s.train_set()) if s.member is not None and s.training is not None else None for s in splits]
    return ScenarioData(name, models, challenges, train_sets, union_of_challenges(challenges))


def challenge_inputs(ch: Challenge) -> Inputs:
    c = ch.constants
    tok, base = c.locate(ch.root, c.tokenizer), c.locate(ch.root, c.base_model)
    pin = lambda ref: path_ref(ref, fingerprint(ref)) if Path(ref).exists() else ref  # noqa: E731
    return Inputs(dict(c.population), pin(tok), pin(base), c.n_total)


def shadows_for(data: ScenarioData, config: AttackConfig, n_total: int) -> list[Shadow]:
    plan = config.plan
    if plan.kind == "pool":
        return pool_shadows(n_total, data.records, plan)
    if plan.kind == "per-target":
        wanted = {m.model_id: c for m, c in zip(data.models, data.challenges) if m.phase in plan.phases}
        return per_target_shadows(n_total, wanted)
    return []


def train_jobs(data: ScenarioData, config: AttackConfig, inputs: Inputs, shadows: list[Shadow]) -> list[TrainJob]:
    recipe = config.shadow_recipe()
    return [TrainJob(inputs.population, inputs.tokenizer, Selection.of(inputs.n_total, s.indices),
                     dataclasses.replace(recipe, seed=recipe.seed * 100_003 + i),
                     inputs.base if recipe.model.name == "base" else None, label=f"{data.name}/{s.name}")
            for i, s in enumerate(shadows)]


def infer_jobs(data: ScenarioData, inputs: Inputs, trains: list[TrainJob]) -> list[InferJob]:
    sel = Selection.of(inputs.n_total, data.records)
    refs = [(f"{data.name}/{m.phase}/model_{m.model_id}", _model_ref(m)) for m in data.models]
    refs += [(f"infer {t.label}", store_ref(t.key)) for t in trains]
    return [InferJob(inputs.population, inputs.tokenizer, ref, sel, label=label) for label, ref in refs]


def _model_ref(m: ModelEntry) -> str:
    assert m.weights is not None and m.config is not None
    digest = fingerprint(m.weights) + fingerprint(m.config)
    return path_ref(str(m.path), digest)


def build_signals(data: ScenarioData, shadows: list[Shadow], infers: list[InferJob], store: Any,
                  labels: np.ndarray) -> Signals:
    """Stack the cached logits of the scenario's models then shadows into ``Signals``."""
    from farm.run import logits_from_store

    logits = np.stack([logits_from_store(store, j)[1] for j in infers])
    rows = [keep_row(ts, data.records) if ts is not None else np.full(data.records.size, UNKNOWN, np.int8)
            for ts in data.train_sets]
    rows += [keep_row(s.indices, data.records) for s in shadows]
    p = data.challenges[0].size
    cols = [np.searchsorted(data.records, c) for c in data.challenges] + [np.full(p, -1)] * len(shadows)
    labelled = np.array([m.phase == "train" for m in data.models] + [False] * len(shadows))
    return Signals(logits, labels[data.records], np.stack(rows), np.stack(cols), labelled)


@dataclass
class Collected:
    """Signals of a scenario (or part of it) under a plan, and what producing them cost."""

    signals: Signals
    trainings: int
    job_seconds: float
    train_keys: list[str]


def collect_signals(data: ScenarioData, config: AttackConfig, inputs: Inputs, executor: Any, labels: np.ndarray,
                    *, part: ScenarioData | None = None, title: str = "") -> Collected:
    """Plan's shadows (over all of ``data``'s records) -> train -> infer ``part`` (default: every model) and the
    shadows -> ``Signals``. Jobs already in the store are not run again."""
    from farm.run import job_seconds

    part = part or data
    shadows = shadows_for(data, config, inputs.n_total)
    trains = train_jobs(data, config, inputs, shadows)
    infers = infer_jobs(part, inputs, trains)
    executor.run(trains, title=f"{title or data.name} shadows")
    executor.run(infers, title=f"{title or data.name} inference")
    signals = build_signals(part, shadows, infers, executor.store, labels)
    return Collected(signals, len(trains), job_seconds(executor.store, [*trains, *infers]), [t.key for t in trains])


def pooled(data: ScenarioData, phase: str, raw: dict, solutions: dict) -> tuple[np.ndarray, np.ndarray] | None:
    """Labels and finite scores of every labelled model of ``phase`` concatenated (one threshold, as MICO scores);
    NaN counts as the lowest score, infinities as the extremes. None when the phase has no labelled model."""
    ids = [m.model_id for m in data.models if m.phase == phase and m.model_id in solutions]
    if not ids:
        return None
    s = np.concatenate([raw[i] for i in ids]).astype(np.float64)
    finite = s[np.isfinite(s)]
    lo, hi = (finite.min(), finite.max()) if finite.size else (0.0, 0.0)
    return np.concatenate([solutions[i] for i in ids]), np.nan_to_num(s, nan=lo, posinf=hi + 1, neginf=lo - 1)


def score_phase(data: ScenarioData, phase: str, raw: dict, solutions: dict) -> dict | None:
    """MICO metrics of one phase from raw scores and solutions keyed by model id (None if unlabelled)."""
    got = pooled(data, phase, raw, solutions)
    return score(*got) if got else None


def read_inputs(challenge_root: str | Path) -> tuple[Challenge, Inputs]:
    ch = read_challenge(challenge_root)
    return ch, challenge_inputs(ch)


@dataclass
class ScenarioResult:
    """Scores of one scenario: raw dev/final scores per model id, metrics per phase, compute spent."""

    name: str
    config: AttackConfig
    raw: dict[int, np.ndarray]
    phases: dict[str, dict[str, float]]
    trainings: int
    job_seconds: float
    curves: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    baseline: dict[str, dict[str, float]] = field(default_factory=dict)  # the loss attack on the same phases


def attack_scenario(ch: Challenge, inputs: Inputs, name: str, config: AttackConfig, executor: Any,
                    answers: Challenge | None, labels: np.ndarray) -> ScenarioResult:
    """Plan -> train shadows -> infer -> signals -> attack; metrics on train (leave-one-out) and answered phases."""
    data = scenario_data(ch, name)
    collected = collect_signals(data, config, inputs, executor, labels)
    signals = collected.signals
    targets = np.arange(len(data.models))
    scores = run_attack(config.attack, signals, targets, **config.params)
    raw = {m.model_id: scores[i] for i, m in enumerate(data.models)}
    solutions = {m.model_id: m.solution for m in data.models if m.solution is not None}
    if answers is not None:
        solutions.update({m.model_id: m.solution for m in answers.select(name) if m.solution is not None})
    phases = {p: r for p in ("train", "dev", "final") if (r := score_phase(data, p, raw, solutions))}
    result = ScenarioResult(name, config, {m.model_id: raw[m.model_id] for m in data.models if m.phase != "train"},
                            phases, collected.trainings, collected.job_seconds)
    result.curves = _curves(data, raw, solutions)
    loss = run_attack("loss", signals, targets)
    loss_raw = {m.model_id: loss[i] for i, m in enumerate(data.models)}
    result.baseline = {p: r for p in phases if (r := score_phase(data, p, loss_raw, solutions))}
    return result


def _curves(data: ScenarioData, raw: dict, solutions: dict) -> dict:
    from farm.metrics import roc_curve

    curves = {}
    for phase in ("train", "dev", "final"):
        if got := pooled(data, phase, raw, solutions):
            fpr, tpr, _ = roc_curve(*got)
            curves[phase] = (fpr, tpr)
    return curves


def attack_challenge(challenge_root: str | Path, configs: dict[str, AttackConfig], executor: Any, out: str | Path,
                     *, answers_root: str | Path | None = None) -> list[ScenarioResult]:
    """Attack every scenario; write ``out/predictions``, ``out/submission.zip`` and the report."""
    from farm.data import load_population
    from farm.report import write_report
    from farm.submission import Expected, normalize, pack, write_predictions

    ch, inputs = read_inputs(challenge_root)
    answers = read_challenge(answers_root, require_weights=False) if answers_root else None
    labels = load_population(inputs.population).labels
    results = [attack_scenario(ch, inputs, s, configs.get(s, configs["*"]), executor, answers, labels)
               for s in ch.scenarios()]
    out = Path(out)
    raw = {}
    for r in results:
        phase_of = {m.model_id: m.phase for m in ch.select(r.name)}
        raw_r = {(r.name, phase_of[i], i): v for i, v in r.raw.items()}
        raw.update(normalize(raw_r, mode=r.config.normalize))
    write_predictions(out / "predictions", raw)
    pack(out / "predictions", out / "submission.zip", Expected.from_challenge(ch))
    write_report(out, results, challenge_root)
    return results
