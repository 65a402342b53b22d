"""``farm tune``: Ray Tune (``farm.cluster.tune``) searches each scenario; this writes what it chose
-- ``best.yaml``, the trials and ``summary.md`` -- with the held-out scores of the chosen and the
default configuration."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from farm.cluster.tune import split_train_models, targets_score, tune_scenario
from farm.config.attack import AttackConfig, load_attack_config
from farm.config.tune import TuneConfig, dp_choice, load_tune_config, trial_recipe
from farm.errors import FarmError
from farm.shadows.plans import PlanSpec
from farm.shadows.scenario import Scenario, collect_signals, load_scenarios
from farm.spec.recipes import to_dict
from farm.store.atomic import atomic_write_text
from farm.store.runner import RunReport

if TYPE_CHECKING:  # the type only: importing the executor loads Ray
    from farm.cluster.executor import Executor


def best_config(
    results: Any, tune_config: TuneConfig, scenario: str, n_target: int
) -> tuple[AttackConfig, dict]:
    """The best trial's configuration as an ``AttackConfig`` (what ``farm attack --config``
    consumes): a ``matched`` trial becomes the scenario's ``dp_matched`` recipe with
    ``match_targets``, any other its recipe inline. ``n_target``: the targets' training-set size
    (``trial_recipe``)."""
    best = results.get_best_result(metric="tpr", mode="max", scope="last")
    metrics = best.metrics
    plan = PlanSpec(kind="pool", shadows=int(metrics["shadows"]), group=tune_config.group)
    params = json.loads(metrics["attack_params"])
    common = {
        "attack": metrics["attack"],
        "params": params,
        "plan": plan,
        "assets": tune_config.assets,
    }
    if dp_choice(best.config.get("dp", "none")) == "matched" and scenario in tune_config.dp_matched:
        config = AttackConfig(**common, recipe=tune_config.dp_matched[scenario], match_targets=True)
    else:
        recipe = trial_recipe(best.config, tune_config, scenario, n_target)
        config = AttackConfig(**common, recipe=_plain(to_dict(recipe)))
    return config, {"search_tpr": float(metrics["tpr"]), "trial": best.config}


def _plain(value: Any) -> Any:
    """Drop ``None`` leaves so the YAML stays readable (dataclass defaults fill them back); tuples
    become lists (safe YAML has no tuples)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items() if v is not None}
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value


@dataclass(frozen=True, kw_only=True)
class Choice:
    """What ``best.yaml`` holds for a scenario: the tuned configuration only when it scored better
    than the default attack config on the held-out models, else the default (``kept_default``);
    ``tuned`` and ``default`` are both held-out TPR@0.1FPR figures."""

    config: AttackConfig
    kept_default: bool
    tuned: float
    default: float

    def note(self, scenario: str) -> str:
        """One line for ``summary.md`` and stdout naming what ``best.yaml`` holds and why."""
        figures = f"held-out TPR@0.1FPR tuned {self.tuned:.3f}, default {self.default:.3f}"
        if self.kept_default:
            return (
                f"{scenario}: best.yaml holds the default attack config, not the tuned one: the "
                f"tuned configuration is no better on the held-out models ({figures})"
            )
        return f"{scenario}: best.yaml holds the tuned configuration ({figures})"


def choose_config(
    tuned: AttackConfig, tuned_score: float, default: AttackConfig, default_score: float
) -> Choice:
    """Keep ``default`` unless ``tuned`` scored strictly better on the held-out models: a tie, or a
    tuned score that is NaN, keeps the default (the search's own score is optimistic, having
    chosen among many trials; the held-out figure is the fair one). A NaN default loses to any
    finite tuned score."""
    better = not math.isnan(tuned_score) and (
        math.isnan(default_score) or tuned_score > default_score
    )
    return Choice(
        config=tuned if better else default,
        kept_default=not better,
        tuned=tuned_score,
        default=default_score,
    )


def config_yaml(config: AttackConfig) -> str:
    plan = to_dict(config.plan)
    plan["phases"] = list(plan["phases"])
    data: dict[str, Any] = {
        "attack": config.attack,
        "params": dict(config.params),
        "plan": plan,
        "recipe": config.recipe,
        "normalize": config.normalize,
    }
    if config.match_targets:
        data["match_targets"] = True
    if config.assets:
        data["assets"] = _plain(to_dict(config.assets))
    if config.queries is not None:
        data["queries"] = _plain(to_dict(config.queries))
    return yaml.safe_dump(data, sort_keys=False)


def held_out_score(
    scenario: Scenario, config: AttackConfig, tune_config: TuneConfig, executor: Executor
) -> tuple[float, int]:
    """TPR@0.1FPR of ``config`` on the held-out train models (references: search models and
    shadows)."""
    search, held = split_train_models(scenario, tune_config.held_out, tune_config.seed)
    recipe = config.shadow_recipe(scenario.inputs.len_training)
    got = collect_signals(
        scenario,
        config.plan,
        recipe,
        executor,
        only=search + held,
        title=f"{scenario.name} held-out",
        extras=config.extras(),
    )
    return targets_score(got.scenario, held, config.attack, dict(config.params)), got.trainings


def count_trial_jobs(results: Any, executor: Executor) -> None:
    """Add the jobs that trials ran and reused (each trial's last report) to ``executor``'s history,
    so that ``farm tune``'s ``jobs: N run, M reused`` line counts them."""
    ran = reused = 0
    for result in results:
        metrics = result.metrics or {}
        ran, reused = (
            ran + int(metrics.get("jobs_ran", 0)),
            reused + int(metrics.get("jobs_reused", 0)),
        )
    executor.history.append(("tune trials", RunReport(ran=ran, skipped=reused)))


def run_tune(
    challenge: str | Path,
    config_path: str | Path,
    executor: Executor,
    out: str | Path,
    *,
    scenarios: list[str] | None = None,
) -> str:
    """Search every scenario, write ``best.yaml``, ``trials.csv`` and ``summary.md``; return the
    summary. ``best.yaml`` holds the tuned configuration only when it beats the tune config's
    ``default_attack`` on the held-out models (``choose_config``), else that default; the summary
    says which, with both held-out figures."""
    # lazy: loads Ray
    from farm.cluster.executor import ensure_ray

    tune_config = load_tune_config(config_path)
    out = Path(out)
    _, loaded = load_scenarios(challenge, names=scenarios, assets=tune_config.assets)
    ensure_ray(executor.address)  # Tune needs Ray: ours (loopback) or the cluster named
    defaults = load_attack_config(tune_config.default_attack)
    rows = [
        "| scenario | tuned attack | shadows | DP variant | search TPR@0.1 | held-out TPR@0.1 "
        "tuned | held-out TPR@0.1 default | best.yaml | trials | search job-seconds |",
        "|" + "---|" * 10,
    ]
    notes = []
    for scenario in loaded:
        results = tune_scenario(
            challenge,
            scenario,
            tune_config,
            executor.store.uri,
            out=out,
            executor_options=executor.options(),
        )
        count_trial_jobs(results, executor)
        if all(r.error for r in results):
            raise FarmError(f"{scenario}: every trial failed; first error: {results.errors[0]}")
        best, info = best_config(
            results, tune_config, scenario, loaded[scenario].inputs.len_training
        )
        frame = results.get_dataframe()
        atomic_write_text(out / scenario / "trials.csv", frame.to_csv(index=False))
        tuned, _ = held_out_score(loaded[scenario], best, tune_config, executor)
        default_config = defaults.get(scenario, defaults["*"])
        default, _ = held_out_score(loaded[scenario], default_config, tune_config, executor)
        choice = choose_config(best, tuned, default_config, default)
        atomic_write_text(out / scenario / "best.yaml", config_yaml(choice.config))
        seconds = _search_seconds(results)
        rows.append(
            f"| {scenario} | {best.attack} {json.dumps(best.params)} | {best.plan.shadows} | "
            f"{info['trial'].get('dp', 'none')} | {info['search_tpr']:.3f} | {tuned:.3f} | "
            f"{default:.3f} | {'default' if choice.kept_default else 'tuned'} | {len(frame)} | "
            f"{seconds:.0f} |"
        )
        notes.append(choice.note(scenario))
    summary = "\n".join([*rows, "", *notes])
    atomic_write_text(out / "summary.md", summary + "\n")
    return summary


def _search_seconds(results: Any) -> float:
    """Job-seconds of the search, each trial counting its own jobs at their largest pool (shared
    jobs once)."""
    seen: dict[str, float] = {}
    for result in results:
        if result.metrics and "train_keys" in result.metrics:
            seen[result.metrics["train_keys"]] = float(result.metrics.get("job_seconds", 0.0))
    return sum(seen.values())
