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
