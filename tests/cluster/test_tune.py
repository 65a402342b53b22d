"""farm tune: split honesty, trial recipes and bad configs (a real search, its resume and the attack
on its best.yaml: ``test_tune_resume``)."""

from farm.cli import main
from farm.cluster.tune import split_train_models
from farm.config.loading import config_path
from farm.config.tune import load_tune_config, trial_recipe
from farm.shadows.scenario import load_scenarios

TUNE = "tests/data/tiny-tune.yaml"


def test_split_is_disjoint_and_stable(tiny_built):
    _, scenarios = load_scenarios(tiny_built / "challenge")
    scenario = scenarios["sst2_inf"]
    search, held = split_train_models(scenario, 0.5, 0)
    assert len(search) == 2 and len(held) == 2 and not set(search) & set(held)
    assert all(m.phase == "train" for m in search + held)
    assert (search, held) == split_train_models(scenario, 0.5, 0)


def test_trial_recipe_variants():
    config = load_tune_config(TUNE)
    plain = trial_recipe(
        {"learning_rate": 2e-3, "epochs": 2, "dp": "none"}, config, "sst2_inf", 2920
    )
    assert plain.learning_rate == 2e-3 and plain.epochs == 2 and plain.dp is None
    noisy = trial_recipe(
        {"dp": {"noise_multiplier": 0.7, "max_grad_norm": 0.5, "delta": 1e-5}},
        config,
        "sst2_inf",
        2920,
    )
    assert noisy.dp.noise_multiplier == 0.7 and noisy.dp.max_grad_norm == 0.5
    matched = trial_recipe(
        {"dp": "matched"}, load_tune_config(config_path("tune-mini")), "sst2_lo", 2920
    )
    assert (
        matched.dp.target_epsilon is None and matched.steps == 3 * 61
    )  # the targets' mechanism (mini-lo at 2,920)


def test_bad_tune_config(tmp_path, capsys):
    bad = tmp_path / "t.yaml"
    bad.write_text("space: {}\nmax_shadows: 3\ngroup: 2\n")
    assert (
        main(["tune", "--challenge", "nowhere", "--config", str(bad), "--out", str(tmp_path / "o")])
        == 1
    )
    assert "t.yaml" in capsys.readouterr().err


# --- best.yaml holds the tuned configuration only when it beats the default on held-out models ----


def _configs():
    from farm.config.attack import load_attack_config

    default = load_attack_config("tests/data/tiny-attack.yaml")["*"]
    tuned = load_attack_config(str(config_path("attack-mini")))["*"]
    assert tuned != default
    return tuned, default


def test_choose_config_keeps_the_default_unless_the_tuned_one_is_better():
    import math

    from farm.commands.tune import choose_config

    tuned, default = _configs()
    for tuned_score, default_score, kept in [
        (0.050, 0.350, True),  # issue 23: the tuned configuration scored worse
        (0.350, 0.350, True),  # a tie keeps the default
        (math.nan, 0.350, True),
        (0.400, 0.350, False),
        (0.010, math.nan, False),
    ]:
        choice = choose_config(tuned, tuned_score, default, default_score)
        assert choice.kept_default is kept, (tuned_score, default_score)
        assert choice.config is (default if kept else tuned)
    note = choose_config(tuned, 0.05, default, 0.35).note("sst2_inf")
    assert "holds the default" in note and "0.050" in note and "0.350" in note
    assert "holds the tuned" in choose_config(tuned, 0.4, default, 0.35).note("sst2_inf")


def test_run_tune_writes_the_default_when_the_tuned_config_is_worse(monkeypatch, tmp_path):
    """The wiring, without a search: a tuned configuration scoring 0.050 on the held-out models
    against the default's 0.350 leaves the default in best.yaml, and the summary says so."""
    from types import SimpleNamespace

    import pandas as pd

    import farm.cluster.executor
    import farm.commands.tune as tune_command
    from farm.config.attack import load_attack_config

    tuned, default = _configs()
    scenario = SimpleNamespace(inputs=SimpleNamespace(len_training=35))

    class Results(list):
        def get_dataframe(self):
            return pd.DataFrame({"tpr": [0.5]})

    results = Results([SimpleNamespace(error=None, metrics={})])
    monkeypatch.setattr(farm.cluster.executor, "ensure_ray", lambda address: None)
    monkeypatch.setattr(tune_command, "load_scenarios", lambda *a, **k: ({}, {"s": scenario}))
    monkeypatch.setattr(tune_command, "tune_scenario", lambda *a, **k: results)
    monkeypatch.setattr(tune_command, "count_trial_jobs", lambda results, executor: None)
    monkeypatch.setattr(tune_command, "_search_seconds", lambda results: 0.0)
    monkeypatch.setattr(
        tune_command,
        "best_config",
        lambda *a: (tuned, {"search_tpr": 0.9, "trial": {"dp": "none"}}),
    )
    monkeypatch.setattr(
        tune_command,
        "held_out_score",
        lambda s, config, *a: (0.050 if config == tuned else 0.350, 0),
    )
    executor = SimpleNamespace(store=SimpleNamespace(uri="mem"), options=dict, address=None)
    summary = tune_command.run_tune("tree", TUNE, executor, tmp_path)
    assert load_attack_config(tmp_path / "s" / "best.yaml")["*"] == default
    assert "| default |" in summary and "0.050" in summary and "0.350" in summary
    assert "s: best.yaml holds the default attack config" in summary
    assert (tmp_path / "summary.md").read_text() == summary + "\n"


def test_tune_prints_nothing_to_stdout(capsys):
    """Tune's "Configuration for experiment" box goes to the log at DEBUG, its TensorBoard hint
    (naming the Ray session's staging folder) nowhere."""
    import logging

    from farm.cluster.tune import tune_stdout_to_log

    logger = logging.getLogger("farm.cluster.tune")
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.DEBUG)
    handler.emit = records.append  # type: ignore[method-assign]
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        with tune_stdout_to_log():
            print("| Configuration for experiment     tune_sst2_inf |")
            print("To visualize your results with TensorBoard, run: ", end="")
            print("`tensorboard --logdir /tmp/ray/session_x/artifacts/driver_artifacts`")
            print("last line without newline", end="")
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    assert capsys.readouterr().out == ""
    logged = [r.getMessage() for r in records if r.levelno == logging.DEBUG]
    assert logged == [
        "| Configuration for experiment     tune_sst2_inf |",
        "last line without newline",
    ]


def test_search_state_counts_finished_trials_and_the_best_tpr_so_far():
    """Each trial line of ``farm tune`` ends with trials finished of the total and the best TPR any
    trial has reported (issue 23); trials that have not reported add nothing to the best."""
    from types import SimpleNamespace as T

    from farm.cluster.tune import search_state

    trials = [
        T(status="TERMINATED", last_result={"tpr": 0.15}),
        T(status="RUNNING", last_result={"tpr": 0.20}),
        T(status="ERROR", last_result={}),
        T(status="PENDING", last_result=None),
    ]
    assert search_state(trials, 8) == "2/8 trials finished, best TPR@0.1FPR so far 0.200"
    assert search_state(trials[2:], 8) == "1/8 trials finished"
