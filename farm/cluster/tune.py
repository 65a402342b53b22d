"""Ray Tune chooses the shadow recipe, DP variant, pool size and attack per scenario by TPR@0.1FPR.

The labelled ``train`` models of a scenario are split once (seeded): the search scores only the
*search* part (leave-one-out: no model is its own reference); the *held-out* part is never scored,
nor used as a reference, during the search, and reports the chosen configuration (and the default
one) afterwards. Dev/final answers are never read. A trial grows a shadow pool one group at a time;
after each group it picks the best attack on the cached signals (the cheap inner loop) and reports
it, so ASHA can stop poor trials early. Trainings and inference passes go through the store, so a
job shared by two trials (same recipe, same shadow) runs once.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from farm.attacks.registry import run_attack
from farm.config.tune import ATTACK_GRID, TuneConfig, trial_recipe
from farm.errors import ConfigError
from farm.mico.scorer import pooled_scores, score
from farm.shadows.plans import PlanSpec
from farm.shadows.scenario import ModelId, Scenario, collect_signals, load_scenarios
from farm.store.store import Store


def split_train_models(
    scenario: Scenario, held_out: float, seed: int
) -> tuple[list[ModelId], list[ModelId]]:
    """Search and held-out labelled ``train`` models (each in row order); at least 2 in each
    part."""
    labelled = scenario.phase("train")
    if len(labelled) < 4:
        raise ConfigError(
            f"{scenario.name}: need at least 4 labelled train models to tune, found {len(labelled)}"
        )
    order = np.random.default_rng([seed, 0x7E57]).permutation(len(labelled))
    n_held = min(max(2, int(round(held_out * len(labelled)))), len(labelled) - 2)
    held = {labelled[i] for i in order[:n_held]}
    return [m for m in labelled if m not in held], [m for m in labelled if m in held]


def targets_score(scenario: Scenario, targets: list[ModelId], attack: str, params: dict) -> float:
    """Pooled TPR@0.1FPR (``farm.mico.scorer.pooled_scores``) of ``attack`` on labelled ``targets``
    of a scenario holding signals; every other model with known membership is a reference
    (leave-one-out)."""
    assert scenario.signals is not None
    rows = np.array([scenario.row(t) for t in targets])
    y = np.concatenate([scenario.signals.solution(r) for r in rows])
    s = run_attack(attack, scenario.signals, rows, **params)
    return float(score(y, pooled_scores(list(s)))["TPR_FPR_1000"])


def best_attack(
    scenario: Scenario, targets: list[ModelId], attacks: list[str]
) -> tuple[str, dict, float]:
    """The attack (and parameters) with the highest pooled TPR@0.1FPR on ``targets`` (labelled,
    leave-one-out)."""
    best: tuple[str, dict, float] = ("loss", {}, -1.0)
    for name in attacks:
        for params in ATTACK_GRID[name]:
            tpr = targets_score(scenario, targets, name, params)
            if tpr > best[2]:
                best = (name, params, tpr)
    return best


@dataclass(kw_only=True)
class Objective:
    """Everything a trial needs, shipped once to the trial actors with ``tune.with_parameters``."""

    challenge: str
    store_uri: str
    scenario: str
    tune_config: TuneConfig
    executor_options: dict[str, Any] = field(
        default_factory=dict
    )  # the driver's executor flags (``--device`` ...)

    def __call__(self, params: dict) -> None:
        # lazy: loads Ray
        from ray import tune

        # lazy: loads Ray
        from farm.cluster.executor import Executor

        _, scenarios = load_scenarios(
            self.challenge, names=[self.scenario], assets=self.tune_config.assets
        )
        scenario = scenarios[self.scenario]
        search, _ = split_train_models(scenario, self.tune_config.held_out, self.tune_config.seed)
        recipe = trial_recipe(params, self.tune_config, self.scenario, scenario.inputs.len_training)
        executor = Executor(store=Store(self.store_uri), progress=None, **self.executor_options)
        for k in range(
            self.tune_config.group, self.tune_config.max_shadows + 1, self.tune_config.group
        ):
            plan = PlanSpec(kind="pool", shadows=k, group=self.tune_config.group)
            got = collect_signals(scenario, plan, recipe, executor, only=search, title="trial")
            name, attack_params, tpr = best_attack(got.scenario, search, self.tune_config.attacks)
            tune.report(
                {
                    "tpr": tpr,
                    "shadows": k,
                    "attack": name,
                    "attack_params": json.dumps(attack_params),
                    "job_seconds": got.job_seconds,
                    "train_keys": ",".join(k[:16] for k in got.train_keys),
                    "jobs_ran": executor.ran,
                    "jobs_reused": executor.reused,
                }
            )


def search_space(space: dict[str, Any]) -> dict[str, Any]:
    """YAML space -> Tune domains: ``{choice: [...]}``, ``{loguniform: [a, b]}``, ``{uniform: [a,
    b]}``."""
    # lazy: loads Ray
    from ray import tune

    domains = {}
    for name, spec in space.items():
        ((kind, values),) = spec.items()
        if kind == "choice":
            domains[name] = tune.choice(list(values))
        elif kind in ("loguniform", "uniform"):
            domains[name] = getattr(tune, kind)(float(values[0]), float(values[1]))
        else:
            raise ConfigError(
                f"space.{name}: unknown domain {kind!r} (choice, loguniform, uniform)"
            )
    return domains


def tune_scenario(
    challenge: str | Path,
    scenario: str,
    tune_config: TuneConfig,
    store_uri: str,
    *,
    out: Path,
    progress: Callable[[str], None] | None = None,
    executor_options: dict[str, Any] | None = None,
) -> Any:
    """Run (or resume with ``Tuner.restore``) the search of one scenario; results in
    ``out/ray_results``. ``progress`` gets a line per trial result as it arrives (default: the
    ``farm.cluster.tune`` logger, INFO)."""
    # lazy: loads Ray
    from ray import tune

    # lazy: loads Ray
    from ray.tune.schedulers import ASHAScheduler

    objective = Objective(
        challenge=str(Path(challenge).resolve()),
        store_uri=store_uri,
        scenario=scenario,
        tune_config=tune_config,
        executor_options=dict(executor_options or {}),
    )
    trainable = tune.with_resources(objective, {"cpu": 0.01})
    storage = (out / "ray_results").resolve()
    progress = progress or logging.getLogger(__name__).info
    path = storage / f"tune_{scenario}"
    if tune.Tuner.can_restore(str(path)):
        progress(f"[tune {scenario}] resuming {path}")
        tuner = tune.Tuner.restore(
            str(path), trainable=trainable, resume_errored=True, restart_errored=False
        )
        return _fit(tuner, scenario, path, progress)
    steps = tune_config.max_shadows // tune_config.group
    scheduler = ASHAScheduler(
        time_attr="training_iteration", max_t=steps, grace_period=1, reduction_factor=2
    )
    tuner = tune.Tuner(
        trainable,
        param_space=search_space(tune_config.space),
        tune_config=tune.TuneConfig(
            metric="tpr",
            mode="max",
            num_samples=tune_config.num_samples,
            scheduler=scheduler,
            search_alg=_searcher(tune_config),
            max_concurrent_trials=tune_config.max_concurrent,
            time_budget_s=tune_config.time_budget_s,
        ),
        run_config=tune.RunConfig(
            name=f"tune_{scenario}",
            storage_path=str(storage),
            verbose=0,
            callbacks=[_trial_progress(scenario, progress, tune_config.num_samples)],
        ),
    )
    return _fit(tuner, scenario, path, progress)


def _fit(tuner: Any, scenario: str, path: Path, progress: Callable[[str], None]) -> Any:
    """``tuner.fit()`` with Tune's own printing kept off stdout (which holds farm's results):
    ``verbose=0`` silences Tune's progress tables, but not the "Configuration for experiment" box
    nor the TensorBoard hint, whose folder is the Ray session's staging copy. Those lines go to the
    ``farm.cluster.tune`` logger at DEBUG (stderr under ``-v``), the hint is dropped, and one line
    names where the results are (``out/ray_results/tune_<scenario>``, TensorBoard's ``--logdir``
    when tensorboardX writes event files)."""
    with tune_stdout_to_log():
        results = tuner.fit()
    hint = (
        f" (TensorBoard: tensorboard --logdir {path})"
        if importlib.util.find_spec("tensorboardX") is not None
        else ""
    )
    progress(f"[tune {scenario}] results in {path}{hint}")
    return results


class _Lines(io.TextIOBase):
    """A text stream handing each complete line written to it to ``emit`` (thread-safe: Ray
    prints from its own threads too)."""

    def __init__(self, emit: Callable[[str], None]) -> None:
        super().__init__()
        self._emit = emit
        self._partial = ""
        self._lock = threading.Lock()

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        with self._lock:
            *lines, self._partial = (self._partial + text).split("\n")
        for line in lines:
            self._emit(line)
        return len(text)

    def close(self) -> None:
        with self._lock:
            rest, self._partial = self._partial, ""
        if rest:
            self._emit(rest)
        super().close()


@contextlib.contextmanager
def tune_stdout_to_log() -> Iterator[None]:
    """While open, what is printed to stdout goes to this module's logger at DEBUG instead, one
    record per non-blank line, except Tune's TensorBoard hint, which names the Ray session's staging
    folder rather than the results and is dropped (``_fit`` prints the right one)."""
    log = logging.getLogger(__name__)

    def emit(line: str) -> None:
        if line.strip() and "tensorboard --logdir" not in line:
            log.debug(line)

    sink = _Lines(emit)
    try:
        with contextlib.redirect_stdout(sink):
            yield
    finally:
        sink.close()


def _trial_progress(scenario: str, progress: Callable[[str], None], total: int) -> Any:
    """A Tune callback (driver side) passing one line per reported trial result, or failure, to
    ``progress``: the result, then trials finished of ``total`` and the best TPR any trial has
    reported so far (read from the trials Tune passes, so a restored search counts its earlier
    trials too)."""
    # lazy: loads Ray
    from ray import tune

    class TrialProgress(tune.Callback):
        def on_trial_result(
            self, iteration: int, trials: list, trial: Any, result: dict, **info: Any
        ) -> None:
            progress(
                f"[tune {scenario}] trial {trial.trial_id} step "
                f"{result.get('training_iteration')}: TPR@0.1FPR "
                f"{float(result.get('tpr', float('nan'))):.3f} ({result.get('attack')}, "
                f"{result.get('shadows')} shadows); {search_state(trials, total)}"
            )

        def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            progress(
                f"[tune {scenario}] trial {trial.trial_id} failed; {search_state(trials, total)}"
            )

    return TrialProgress()


def search_state(trials: list, total: int) -> str:
    """``3/8 trials finished, best TPR@0.1FPR so far 0.150`` from Tune's trials (anything with a
    ``status`` and a ``last_result`` dict); the best is left out before any trial has reported."""
    done = sum(getattr(t, "status", "") in ("TERMINATED", "ERROR") for t in trials)
    tprs = [
        float(r["tpr"])
        for t in trials
        if (r := getattr(t, "last_result", None) or {}).get("tpr") is not None
    ]
    best = f", best TPR@0.1FPR so far {max(tprs):.3f}" if tprs else ""
    return f"{done}/{total} trials finished{best}"


def _searcher(tune_config: TuneConfig) -> Any:
    if tune_config.search == "random":
        return None
    # lazy: loads Ray
    from ray.tune.search.optuna import OptunaSearch

    return OptunaSearch(seed=tune_config.seed)
