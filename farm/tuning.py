"""Ray Tune chooses the shadow recipe, DP variant, pool size and attack per scenario by TPR@0.1FPR.

The labelled ``train`` models of a scenario are split once (seeded): the search scores only the *search* part
(leave-one-out: no model is its own reference); the *held-out* part is never scored, nor used as a reference,
during the search, and reports the chosen configuration (and the default one) afterwards. Dev/final answers are
never read. A trial grows a shadow pool one group at a time; after each group it picks the best attack on the
cached signals (the cheap inner loop) and reports it, so ASHA can stop poor trials early. Trainings and
inference passes go through the store, so a job shared by two trials (same recipe, same shadow) runs once.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from farm.attacks import run_attack
from farm.config import load_recipe, read_yaml, typed
from farm.driver import (
    AttackConfig,
    ScenarioData,
    collect_signals,
    read_inputs,
    scenario_data,
)
from farm.errors import ConfigError, FarmError
from farm.metrics import score
from farm.plans import PlanSpec
from farm.recipes import DPConfig, Recipe, to_dict

ATTACK_GRID: dict[str, list[dict]] = {
    "loss": [{}],
    "in_calibration": [{"labelled_only": True}, {"labelled_only": False}],
    "reference": [{}],
    "lira_online": [{"fixed_variance": True}, {"fixed_variance": False}],
    "lira_offline": [{"fixed_variance": True}],
    "rmia": [{"gamma": 1.0}],
    "learned": [{}],
}


@dataclass(frozen=True)
class TuneConfig:
    """A search: its space, the budget and what "DP-matched" means per scenario."""

    space: dict[str, Any]
    recipe: str = "mini-inf"
    dp_matched: dict[str, str] = field(default_factory=dict)
    attacks: list[str] = field(default_factory=lambda: list(ATTACK_GRID))
    num_samples: int = 6
    max_shadows: int = 4
    group: int = 2
    held_out: float = 0.375
    max_concurrent: int = 2
    time_budget_s: float = 1800.0
    search: str = "optuna"
    seed: int = 0
    default_attack: str = "attack-mini"  # a shipped config name or a path

    def __post_init__(self) -> None:
        if self.max_shadows < self.group or self.max_shadows % self.group:
            raise ValueError("max_shadows must be a positive multiple of group")
        if not 0 < self.held_out < 1:
            raise ValueError("held_out must be a fraction in (0, 1)")
        if self.search not in ("optuna", "random"):
            raise ValueError("search must be optuna or random")
        unknown = sorted(set(self.attacks) - set(ATTACK_GRID))
        if unknown:
            raise ValueError(f"unknown attacks {unknown}")


def load_tune_config(path: str | Path) -> TuneConfig:
    """A tune config; file references (recipes, the default attack) become absolute, since trials run elsewhere."""
    data = read_yaml(path)
    absolute = lambda ref: str(Path(ref).resolve()) if Path(ref).suffix else ref  # noqa: E731
    for key in ("recipe", "default_attack"):
        if key in data:
            data[key] = absolute(data[key])
    data["dp_matched"] = {k: absolute(v) for k, v in (data.get("dp_matched") or {}).items()}
    return typed(TuneConfig, data, path, "tune")


def split_train_models(data: ScenarioData, held_out: float, seed: int) -> tuple[list[int], list[int]]:
    """Indices (into ``data.models``) of search and held-out labelled models; at least 2 in each part."""
    labelled = [i for i, m in enumerate(data.models) if m.phase == "train"]
    if len(labelled) < 4:
        raise ConfigError(f"{data.name}: need at least 4 labelled train models to tune, found {len(labelled)}")
    order = np.random.default_rng([seed, 0x7E57]).permutation(labelled)
    n_held = min(max(2, int(round(held_out * len(labelled)))), len(labelled) - 2)
    return sorted(int(i) for i in order[n_held:]), sorted(int(i) for i in order[:n_held])


def trial_recipe(params: dict, tune_config: TuneConfig, scenario: str) -> Recipe:
    """The trial's shadow recipe: the base recipe with the trial's hyperparameters and DP variant."""
    recipe = load_recipe(tune_config.recipe)
    changes = {k: params[k] for k in ("learning_rate", "epochs", "batch_size", "max_length") if k in params}
    recipe = dataclasses.replace(recipe, **changes)
    return dataclasses.replace(recipe, dp=_dp_variant(str(params.get("dp", "none")), tune_config, scenario))


def _dp_variant(variant: str, tune_config: TuneConfig, scenario: str) -> DPConfig | None:
    if variant == "none":
        return None
    if variant == "matched":
        name = tune_config.dp_matched.get(scenario)
        return load_recipe(name).dp if name else None
    values = dict(part.split("=") for part in variant.split(","))  # e.g. "sigma=0.5,clip=1.0"
    return DPConfig(noise_multiplier=float(values["sigma"]), max_grad_norm=float(values.get("clip", 1.0)))


def subset(data: ScenarioData, keep: list[int]) -> ScenarioData:
    """The scenario restricted to models ``keep`` (same records, so shadows and inference jobs stay shared)."""
    return ScenarioData(data.name, [data.models[i] for i in keep], [data.challenges[i] for i in keep],
                        [data.train_sets[i] for i in keep], data.records)


def best_attack(signals: Any, data: ScenarioData, targets: list[int], attacks: list[str]) -> tuple[str, dict, float]:
    """The attack (and parameters) with the highest pooled TPR@0.1FPR on ``targets`` (labelled, leave-one-out)."""
    y = np.concatenate([signals.solution(t) for t in targets])
    best: tuple[str, dict, float] = ("loss", {}, -1.0)
    for name in attacks:
        for params in ATTACK_GRID[name]:
            s = run_attack(name, signals, np.asarray(targets), **params)
            tpr = score(y, np.nan_to_num(s.ravel(), nan=0.0, posinf=1e9, neginf=-1e9))["TPR_FPR_1000"]
            if tpr > best[2]:
                best = (name, params, float(tpr))
    return best


@dataclass
class Objective:
    """Everything a trial needs, shipped once to the trial actors with ``tune.with_parameters``."""

    challenge: str
    store_uri: str
    scenario: str
    tune_config: TuneConfig

    def __call__(self, params: dict) -> None:
        from ray import tune

        from farm.cluster import Executor
        from farm.data import load_population
        from farm.store import Store

        ch, inputs = read_inputs(self.challenge)
        data = scenario_data(ch, self.scenario)
        search, _ = split_train_models(data, self.tune_config.held_out, self.tune_config.seed)
        part = subset(data, search)
        labels = load_population(inputs.population).labels
        recipe = trial_recipe(params, self.tune_config, self.scenario)
        executor = Executor(Store(self.store_uri), progress=None)
        for k in range(self.tune_config.group, self.tune_config.max_shadows + 1, self.tune_config.group):
            config = AttackConfig(plan=PlanSpec(kind="pool", shadows=k, group=self.tune_config.group),
                                  recipe=to_dict(recipe))
            got = collect_signals(data, config, inputs, executor, labels, part=part, title="trial")
            name, attack_params, tpr = best_attack(got.signals, part, list(range(len(search))),
                                                   self.tune_config.attacks)
            tune.report({"tpr": tpr, "shadows": k, "attack": name, "attack_params": json.dumps(attack_params),
                         "job_seconds": got.job_seconds, "train_keys": ",".join(k[:16] for k in got.train_keys)})


def search_space(space: dict[str, Any]) -> dict[str, Any]:
    """YAML space -> Tune domains: ``{choice: [...]}``, ``{loguniform: [a, b]}``, ``{uniform: [a, b]}``."""
    from ray import tune

    domains = {}
    for name, spec in space.items():
        (kind, values), = spec.items()
        if kind == "choice":
            domains[name] = tune.choice(list(values))
        elif kind in ("loguniform", "uniform"):
            domains[name] = getattr(tune, kind)(float(values[0]), float(values[1]))
        else:
            raise ConfigError(f"space.{name}: unknown domain {kind!r} (choice, loguniform, uniform)")
    return domains


def tune_scenario(challenge: str | Path, scenario: str, tune_config: TuneConfig, store_uri: str,
                  out: Path, *, progress: Callable[[str], None] | None = None) -> Any:
    """Run (or resume with ``Tuner.restore``) the search of one scenario; results in ``out/ray_results``.
    ``progress`` gets a line per trial result as it arrives (default: the ``farm.tuning`` logger, INFO)."""
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler

    objective = Objective(str(Path(challenge).resolve()), store_uri, scenario, tune_config)
    trainable = tune.with_resources(objective, {"cpu": 0.01})
    storage = (out / "ray_results").resolve()
    progress = progress or logging.getLogger(__name__).info
    path = storage / f"tune_{scenario}"
    if tune.Tuner.can_restore(str(path)):
        progress(f"[tune {scenario}] resuming {path}")
        tuner = tune.Tuner.restore(str(path), trainable=trainable, resume_errored=True, restart_errored=False)
        return tuner.fit()
    steps = tune_config.max_shadows // tune_config.group
    scheduler = ASHAScheduler(time_attr="training_iteration", max_t=steps, grace_period=1, reduction_factor=2)
    tuner = tune.Tuner(
        trainable,
        param_space=search_space(tune_config.space),
        tune_config=tune.TuneConfig(metric="tpr", mode="max", num_samples=tune_config.num_samples,
                                    scheduler=scheduler, search_alg=_searcher(tune_config),
                                    max_concurrent_trials=tune_config.max_concurrent,
                                    time_budget_s=tune_config.time_budget_s),
        run_config=tune.RunConfig(name=f"tune_{scenario}", storage_path=str(storage), verbose=0,
                                  callbacks=[_trial_progress(scenario, progress)]),
    )
    return tuner.fit()


def _trial_progress(scenario: str, progress: Callable[[str], None]) -> Any:
    """A Tune callback (driver side) passing one line per reported trial result, or failure, to ``progress``."""
    from ray import tune

    class TrialProgress(tune.Callback):
        def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
            progress(f"[tune {scenario}] trial {trial.trial_id} step {result.get('training_iteration')}: "
                     f"TPR@0.1FPR {float(result.get('tpr', float('nan'))):.3f} ({result.get('attack')}, "
                     f"{result.get('shadows')} shadows)")

        def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            progress(f"[tune {scenario}] trial {trial.trial_id} failed")

    return TrialProgress()


def _searcher(tune_config: TuneConfig) -> Any:
    if tune_config.search == "random":
        return None
    from ray.tune.search.optuna import OptunaSearch

    return OptunaSearch(seed=tune_config.seed)


def best_config(results: Any, tune_config: TuneConfig, scenario: str) -> tuple[AttackConfig, dict]:
    """The best trial's configuration as an ``AttackConfig`` (what ``farm attack --config`` consumes)."""
    best = results.get_best_result(metric="tpr", mode="max", scope="last")
    recipe = trial_recipe(best.config, tune_config, scenario)
    metrics = best.metrics
    plan = PlanSpec(kind="pool", shadows=int(metrics["shadows"]), group=tune_config.group)
    params = json.loads(metrics["attack_params"])
    config = AttackConfig(attack=metrics["attack"], params=params, plan=plan, recipe=_plain(to_dict(recipe)))
    return config, {"search_tpr": float(metrics["tpr"]), "trial": best.config}


def _plain(value: Any) -> Any:
    """Drop ``None`` leaves so the YAML stays readable (dataclass defaults fill them back)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items() if v is not None}
    return value


def config_yaml(config: AttackConfig) -> str:
    plan = to_dict(config.plan)
    plan["phases"] = list(plan["phases"])
    data = {"attack": config.attack, "params": dict(config.params), "plan": plan, "recipe": config.recipe,
            "normalize": config.normalize}
    return yaml.safe_dump(data, sort_keys=False)


def held_out_score(challenge: str | Path, scenario: str, config: AttackConfig, tune_config: TuneConfig,
                   executor: Any) -> tuple[float, int]:
    """TPR@0.1FPR of ``config`` on the held-out train models (references: search models and shadows)."""
    from farm.data import load_population

    ch, inputs = read_inputs(challenge)
    data = scenario_data(ch, scenario)
    search, held = split_train_models(data, tune_config.held_out, tune_config.seed)
    keep = sorted(search + held)
    labels = load_population(inputs.population).labels
    got = collect_signals(data, config, inputs, executor, labels, part=subset(data, keep), title=f"{scenario} held-out")
    targets = [keep.index(i) for i in held]
    y = np.concatenate([got.signals.solution(t) for t in targets])
    s = run_attack(config.attack, got.signals, np.asarray(targets), **config.params)
    return float(score(y, np.nan_to_num(s.ravel(), nan=0.0))["TPR_FPR_1000"]), got.trainings


def run_tune(challenge: str | Path, config_path: str | Path, executor: Any, out: str | Path, *,
             scenarios: list[str] | None = None) -> str:
    """Search every scenario, write ``best.yaml``, ``trials.csv`` and ``summary.md``; return the summary."""
    from farm.driver import load_attack_config
    from farm.fsutil import atomic_write_text

    tune_config = load_tune_config(config_path)
    out = Path(out)
    ch, _ = read_inputs(challenge)
    defaults = load_attack_config(tune_config.default_attack)
    rows = ["| scenario | tuned attack | shadows | DP variant | search TPR@0.1 | held-out TPR@0.1 tuned | "
            "held-out TPR@0.1 default | trials | search job-seconds |", "|" + "---|" * 9]
    for scenario in scenarios or ch.scenarios():
        results = tune_scenario(challenge, scenario, tune_config, executor.store.uri, out)
        if all(r.error for r in results):
            raise FarmError(f"{scenario}: every trial failed; first error: {results.errors[0]}")
        best, info = best_config(results, tune_config, scenario)
        frame = results.get_dataframe()
        atomic_write_text(out / scenario / "best.yaml", config_yaml(best))
        atomic_write_text(out / scenario / "trials.csv", frame.to_csv(index=False))
        tuned, _ = held_out_score(challenge, scenario, best, tune_config, executor)
        default, _ = held_out_score(challenge, scenario, defaults.get(scenario, defaults["*"]), tune_config,
                                    executor)
        seconds = _search_seconds(results)
        rows.append(f"| {scenario} | {best.attack} {json.dumps(best.params)} | {best.plan.shadows} | "
                    f"{info['trial'].get('dp', 'none')} | {info['search_tpr']:.3f} | {tuned:.3f} | {default:.3f} | "
                    f"{len(frame)} | {seconds:.0f} |")
    summary = "\n".join(rows)
    atomic_write_text(out / "summary.md", summary + "\n")
    return summary


def _search_seconds(results: Any) -> float:
    """Job-seconds of the search, each trial counting its own jobs at their largest pool (shared jobs once)."""
    seen: dict[str, float] = {}
    for result in results:
        if result.metrics and "train_keys" in result.metrics:
            seen[result.metrics["train_keys"]] = float(result.metrics.get("job_seconds", 0.0))
    return sum(seen.values())
