"""Configs are checked in full when loaded: every shipped one loads; each bad one fails through the
CLI before Ray starts (no executor built, nothing written) with one line naming the file and the
key."""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from farm import cli
from farm.config.attack import AttackConfig, attack_params, load_attack_config
from farm.config.challenge import load_challenge_config
from farm.config.loading import config_kind, config_path, read_yaml, shipped
from farm.config.recipes import is_defence, load_recipe
from farm.config.tune import ATTACK_GRID, dp_choice, load_tune_config, trial_recipe
from farm.errors import ConfigError, SpecError
from farm.shadows.plans import PlanSpec
from farm.spec.recipes import DPConfig

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "farm" / "config" / "shipped"
DATA = ROOT / "tests" / "data"


# --- every shipped config loads -------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", sorted(n for n in shipped("recipe") if not is_defence(n))
)  # see test_defences
def test_recipes_load_by_name_and_path(name):
    recipe = load_recipe(name)
    assert recipe == load_recipe(SHIPPED / "recipes" / f"{name}.yaml")


MINI_CONFIGS = sorted((SHIPPED / "challenge").glob("*.yaml"))


@pytest.mark.parametrize("path", [*MINI_CONFIGS, DATA / "tiny-mini.yaml"], ids=lambda p: p.name)
def test_mini_configs_load(path):
    load_challenge_config(
        path
    )  # recipes of its scenarios and population files are checked by the loader


@pytest.mark.parametrize(
    "path",
    [*sorted((SHIPPED / "attack").glob("*.yaml")), DATA / "tiny-attack.yaml"],
    ids=lambda p: p.name,
)
def test_attack_configs_load(path):
    configs = load_attack_config(path)
    assert all(c.named_recipe() for c in configs.values())


@pytest.mark.parametrize(
    "path",
    [*sorted((SHIPPED / "tune").glob("*.yaml")), DATA / "tiny-tune.yaml"],
    ids=lambda p: p.name,
)
def test_tune_configs_load(path):
    config = load_tune_config(path)
    load_attack_config(config.default_attack)
    assert all(load_recipe(r).dp for r in config.dp_matched.values())


@pytest.mark.parametrize(
    "name", ["mini", "mini-sst2", "mini-sst2-scale", "mini-clickbait-scale", "mico-rehearsal"]
)
def test_mini_configs_load_by_name(name):
    config = load_challenge_config(name)
    assert config == load_challenge_config(SHIPPED / "challenge" / f"{name}.yaml")
    for recipe in config.scenarios.values():
        load_recipe(recipe)


@pytest.mark.parametrize(
    "name",
    [
        "attack-mini",
        "attack-mini-sst2",
        "attack-mini-clickbait",
        "attack-mico",
        "attack-mico-rehearsal",
    ],
)
def test_attack_configs_load_by_name(name):
    configs = load_attack_config(name)
    assert all(c.named_recipe() for c in configs.values())


def test_one_attack_logic_for_both_corpora():
    """The clickbait default is the SST-2 default per scenario kind (inf, hi, lo)."""
    sst2, clickbait = (
        load_attack_config("attack-mini-sst2"),
        load_attack_config("attack-mini-clickbait"),
    )
    assert sst2["*"] == clickbait["*"]
    for kind in ("hi", "lo"):
        assert sst2[f"sst2_{kind}"] == clickbait[f"cb_{kind}"]


@pytest.mark.parametrize("name", ["tune-mini", "tune-mini-sst2", "tune-mico"])
def test_tune_configs_load_by_name(name):
    config = load_tune_config(config_path(name))
    load_attack_config(config.default_attack)
    assert all(load_recipe(r).dp for r in config.dp_matched.values())


# --- what loading accepts and converts ------------------------------------------------------------


def test_learning_rate_5e_5_is_the_float_it_means(tmp_path):
    (tmp_path / "r.yaml").write_text(
        "learning_rate: 5e-5\nepochs: 2\ndp: {target_epsilon: 8, delta: 1e-5}\n"
    )
    assert yaml.safe_load("x: 5e-5")["x"] == "5e-5"  # YAML 1.1 reads it as a string
    recipe = load_recipe(tmp_path / "r.yaml")
    assert recipe.learning_rate == 5e-5 and isinstance(recipe.learning_rate, float)
    assert recipe.dp.target_epsilon == 8.0 and recipe.dp.delta == 1e-5


def test_attack_params_checked_against_the_signature():
    assert attack_params("rmia", {"gamma": 2, "seed": 3}) == {"gamma": 2.0, "seed": 3}
    with pytest.raises(
        SpecError, match=r"params.gama: unknown parameter of attack 'rmia' \(expected one of gamma"
    ):
        attack_params("rmia", {"gama": 2})
    with pytest.raises(
        SpecError, match="params.online: unknown parameter"
    ):  # fixed by the lira_online variant
        attack_params("lira_online", {"online": False})
    with pytest.raises(SpecError, match="params.fixed_variance: expected true or false"):
        attack_params("lira_offline", {"fixed_variance": "yes"})
    for name, grid in ATTACK_GRID.items():
        for params in grid:
            assert attack_params(name, params) == params


def test_attack_config_checks_in_code_too():
    with pytest.raises(SpecError, match="attack: expected one of loss"):
        AttackConfig(attack="lira_onlin")
    with pytest.raises(
        SpecError, match=r"params.extra_signals: unknown extra signal\(s\) \['hidden'\]"
    ):
        AttackConfig(attack="stacked", params={"extra_signals": ["hidden"]})
    wb = AttackConfig(attack="stacked", params={"extra_signals": ["grad_norm", "query_logits"]})
    assert wb.extras().grad_norm and wb.extras().queries is not None  # inference computes them
    assert AttackConfig(attack="stacked").extras() == type(wb.extras())()
    with pytest.raises(SpecError, match=r"plan.phases\[0\]"):
        AttackConfig(plan=PlanSpec(kind="per-target", phases=("test",)))


def test_best_yaml_round_trips(tmp_path):
    from farm.commands.tune import config_yaml
    from farm.spec.recipes import to_dict

    recipe = load_recipe("mini-hi")
    config = AttackConfig(
        attack="rmia",
        params={"gamma": 1.0},
        plan=PlanSpec(kind="pool", shadows=4),
        recipe=to_dict(recipe),
    )
    (tmp_path / "best.yaml").write_text(config_yaml(config))
    loaded = load_attack_config(tmp_path / "best.yaml")["*"]
    assert (
        loaded.shadow_recipe() == recipe
        and loaded.plan == config.plan
        and loaded.params == {"gamma": 1.0}
    )


def test_dp_variants_are_mappings():
    assert dp_choice("none") == "none" and dp_choice("matched") == "matched"
    assert dp_choice({"noise_multiplier": 0.5, "max_grad_norm": 2, "delta": 1e-5}) == DPConfig(
        noise_multiplier=0.5, max_grad_norm=2.0, delta=1e-5
    )
    with pytest.raises(SpecError, match="expected none, matched or a mapping of DP settings"):
        dp_choice("sigma=0.5, clip=1.0")
    config = load_tune_config(DATA / "tiny-tune.yaml")
    label = config.space["dp"]["choice"][1]
    assert isinstance(label, str)  # what Tune and Optuna carry
    dp = trial_recipe({"dp": label}, config, "sst2_inf", 2920).dp
    assert (dp.noise_multiplier, dp.max_grad_norm, dp.delta) == (0.5, 1.0, 1e-5)


def test_every_shipped_file_is_tested():
    assert set(shipped()) == {
        "mini",
        "mini-sst2",
        "mini-sst2-scale",
        "mini-clickbait-scale",
        "mico-rehearsal",
        "attack-mini",
        "attack-mini-sst2",
        "attack-mini-clickbait",
        "attack-mico",
        "attack-mico-rehearsal",
        "tune-mini",
        "tune-mini-sst2",
        "tune-mico",
        "defences-sst2",
        "attack-defences",
        "audit-tiny-mislabelled",
    }
    assert {p.stem for p in SHIPPED.rglob("*.yaml")} == set(shipped()) | set(shipped("recipe"))


def test_config_path_names_and_paths(tmp_path):
    assert config_path("attack-mini") == SHIPPED / "attack" / "attack-mini.yaml"
    assert config_path("mini-lo", "recipe") == SHIPPED / "recipes" / "mini-lo.yaml"
    for path in ("x.yaml", tmp_path / "attack-mini", "./attack-mini"):
        assert config_path(path) == Path(path)
    with pytest.raises(ConfigError, match="mini-inf: no shipped config of that name .*attack-mini"):
        config_path("mini-inf")


def test_bad_yaml_names_the_file(tmp_path):
    (tmp_path / "x.yaml").write_text("a: [unclosed\n")
    with pytest.raises(ConfigError, match="x.yaml: invalid YAML at line 2"):
        read_yaml(tmp_path / "x.yaml")
    (tmp_path / "r.yaml").write_text("epochs: 3\nlearning_rte: 0.1\n")
    with pytest.raises(ConfigError, match="r.yaml: learning_rte: unknown key"):
        load_recipe(tmp_path / "r.yaml")


# --- each bad config fails through the CLI, before Ray --------------------------------------------


class _Started(Exception):
    """Raised by the patched executor: the CLI went past validation."""


class _RayStarted(BaseException):
    """Raised by the patched ``ray.init``: the CLI started Ray."""


def _run(monkeypatch, capsys, argv: list[str], out: Path) -> str:
    """Run the CLI with an executor that must never be built; return its one-line error."""

    def no_executor(*_args, **_kwargs):
        raise _Started

    def no_ray(*_args, **_kwargs):
        raise _RayStarted  # a BaseException: no handler of the CLI's can turn it into an exit code

    monkeypatch.setattr(cli, "_executor", no_executor)
    import ray  # the session's shared Ray may already be up: no call may start one either

    monkeypatch.setattr(ray, "init", no_ray)
    # what must not happen (an executor built, Ray started, output written), not wall-clock time
    code = cli.main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 1, (code, err)
    assert err and "\n" not in err, err
    assert not out.exists()
    return err


ATTACK_BASE = (
    "attack: rmia\nplan: {kind: pool, shadows: 2, group: 2}\nrecipe: tests/data/tiny-recipe.yaml\n"
)
BAD_ATTACK = [  # (YAML appended to ATTACK_BASE: later keys win, key expected in the message)
    ("attack: lira_onlin", "attack"),
    ("params: {gama: 2}", "params.gama"),
    ("params: {gamma: abc}", "params.gamma"),
    ("attack: loss\nparams: {gamma: 1}", "params.gamma"),
    ("params: [1, 2]", "params"),
    ("normalize: minmax", "normalize"),
    ("recipe: mini-nope", "recipe"),
    ("recipe: tests/data/missing.yaml", "recipe"),
    ("recipe: {learning_rate: abc}", "recipe.learning_rate"),
    ("recipe: {epochs: -1}", "recipe.epochs"),
    ("recipe: {batch_size: '32'}", "recipe.batch_size"),
    ("recipe: {group_by_length: maybe}", "recipe.group_by_length"),
    ("recipe: {dp: {noise_multiplier: 0.5, max_grad_norm: 1.0}}", "recipe.dp.delta"),
    ("recipe: {dp: {noise_multiplier: 0.5, delta: 2}}", "recipe.dp.delta"),
    (
        "recipe: {dp: {noise_multiplier: 0.5, target_epsilon: 4, delta: 1.0e-5}}",
        "recipe.dp.noise_multiplier",
    ),
    ("recipe: {dp: 'sigma=0.5, clip=1.0'}", "recipe.dp"),
    (
        "recipe: {group_by_length: true, dp: {noise_multiplier: 0.5, delta: 1.0e-5}}",
        "recipe.group_by_length",
    ),
    (
        "recipe: {model: {name: base, tiny: {hidden_size: 30, num_attention_heads: 4}}}",
        "recipe.model.tiny.hidden_size",
    ),
    ("recipe: {model: {name: base, dropuot: 0.1}}", "recipe.model.dropuot"),
    ("plan: {kind: pool, shadows: 3, group: 2}", "plan.shadows"),
    ("plan: {kind: pools}", "plan.kind"),
    ("plan: {kind: pool, shadow: 4}", "plan.shadow"),
    ("plan: {kind: pool, shadows: four}", "plan.shadows"),
    ("plan: {kind: per-target, phases: [dev, test]}", "plan.phases[1]"),
    ("atack: loss", "atack"),
    ("phases: [dev]", "phases"),
    ("scenarios: {sst2_low: {recipe: mini-lo}}", "scenarios.sst2_low"),
    ("scenarios: {sst2_hi: {atack: rmia}}", "scenarios.sst2_hi.atack"),
    ("scenarios: {sst2_hi: {recipe: mini-nope}}", "scenarios.sst2_hi.recipe"),
    ("scenarios: [sst2_hi]", "scenarios"),
    ("queries: {kinds: [identity, shuffle]}", "queries"),
    ("queries: {drop_rate: 1.5}", "queries"),
    ("queries: {swap: 2}", "queries.swap"),
    ("queries: {seed: one}", "queries.seed"),
    ("queries: [identity, swap]", "queries"),
    ("scenarios: {sst2_hi: {queries: {drop_rate: -1}}}", "scenarios.sst2_hi.queries"),
]


@pytest.mark.parametrize("extra, key", BAD_ATTACK, ids=[k for _, k in BAD_ATTACK])
def test_bad_attack_config_fails_before_ray(
    tiny_challenge, tmp_path, monkeypatch, capsys, extra, key
):
    bad = tmp_path / "bad.yaml"
    bad.write_text(ATTACK_BASE + extra + "\n")
    out = tmp_path / "out"
    err = _run(
        monkeypatch,
        capsys,
        ["attack", "--challenge", str(tiny_challenge), "--config", str(bad), "--out", str(out)],
        out,
    )
    assert f"{bad}: {key}" in err


def test_bad_recipe_file_named_by_an_attack_config(tiny_challenge, tmp_path, monkeypatch, capsys):
    (tmp_path / "r.yaml").write_text("epochs: 3\nlearning_rte: 0.1\n")
    bad = tmp_path / "bad.yaml"
    bad.write_text(f"attack: loss\nrecipe: {tmp_path / 'r.yaml'}\n")
    err = _run(
        monkeypatch,
        capsys,
        [
            "attack",
            "--challenge",
            str(tiny_challenge),
            "--config",
            str(bad),
            "--out",
            str(tmp_path / "out"),
        ],
        tmp_path / "out",
    )
    assert f"{bad}: recipe: recipe " in err and "r.yaml: learning_rte: unknown key" in err


@pytest.mark.parametrize(
    "text, what", [("- attack\n- loss\n", "top level"), ("attack: [loss\n", "invalid YAML")]
)
def test_unreadable_attack_config(tiny_challenge, tmp_path, monkeypatch, capsys, text, what):
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    err = _run(
        monkeypatch,
        capsys,
        [
            "attack",
            "--challenge",
            str(tiny_challenge),
            "--config",
            str(bad),
            "--out",
            str(tmp_path / "out"),
        ],
        tmp_path / "out",
    )
    assert str(bad) in err and what in err


def test_missing_config_file(tiny_challenge, tmp_path, monkeypatch, capsys):
    missing = tmp_path / "nope.yaml"
    err = _run(
        monkeypatch,
        capsys,
        [
            "attack",
            "--challenge",
            str(tiny_challenge),
            "--config",
            str(missing),
            "--out",
            str(tmp_path / "out"),
        ],
        tmp_path / "out",
    )
    assert f"{missing}: cannot read" in err


def test_good_attack_config_reaches_the_executor(tiny_challenge, tmp_path, monkeypatch):
    monkeypatch.setattr(cli, "_executor", lambda *a, **k: (_ for _ in ()).throw(_Started()))
    with pytest.raises(_Started):
        cli.main(
            [
                "attack",
                "--challenge",
                str(tiny_challenge),
                "--config",
                str(DATA / "tiny-attack.yaml"),
                "--out",
                str(tmp_path / "out"),
            ]
        )


TUNE_BASE = {
    "space": {
        "learning_rate": {"loguniform": [5.0e-4, 3.0e-3]},
        "dp": {
            "choice": ["none", {"noise_multiplier": 0.5, "max_grad_norm": 1.0, "delta": 1.0e-5}]
        },
    },
    "recipe": "tests/data/tiny-recipe.yaml",
    "default_attack": "tests/data/tiny-attack.yaml",
}
DP_NO_DELTA = {"noise_multiplier": 0.5, "max_grad_norm": 1.0}
BAD_TUNE = [  # (top-level keys replacing TUNE_BASE's, key expected in the message)
    ({"space": {"dp": {"choice": ["none", "sigma=0.5, clip=1.0"]}}}, "space.dp.choice[1]"),
    ({"space": {"dp": {"choice": [DP_NO_DELTA]}}}, "space.dp.choice[0].delta"),
    ({"space": {"dp": {"choice": [{"sigma": 0.5, "delta": 1e-5}]}}}, "space.dp.choice[0].sigma"),
    ({"space": {"lr": {"loguniform": [1e-4, 1e-3]}}}, "space.lr"),
    ({"space": {"learning_rate": {"normal": [0, 1]}}}, "space.learning_rate.normal"),
    ({"space": {"learning_rate": {"loguniform": [1e-3, 1e-4]}}}, "space.learning_rate.loguniform"),
    ({"space": {"learning_rate": {"choice": ["abc"]}}}, "space.learning_rate.choice[0]"),
    ({"space": {"epochs": {"choice": [0, 2]}}}, "space.epochs.choice[0]"),
    ({"space": {"epochs": {"uniform": [1, 3]}}}, "space.epochs.uniform"),
    ({"space": {"batch_size": {"choice": []}}}, "space.batch_size.choice"),
    ({"space": None}, "space"),
    ({"max_shadows": 3}, "max_shadows"),
    ({"group": 1, "max_shadows": 2}, "group"),
    ({"attacks": ["lira_onlin"]}, "attacks[0]"),
    ({"recipe": "mini-nope"}, "recipe"),
    ({"dp_matched": {"sst2_hi": "mini-inf"}}, "dp_matched.sst2_hi"),
    ({"dp_matched": {"sst2_high": "mini-hi"}}, "dp_matched.sst2_high"),
    ({"held_out": 1.5}, "held_out"),
    ({"num_samples": 0}, "num_samples"),
    ({"search": "grid"}, "search"),
    ({"time_budget_s": "soon"}, "time_budget_s"),
    ({"max_concurent": 2}, "max_concurent"),
    ({"default_attack": "tests/data/missing.yaml"}, "default_attack"),
]


@pytest.mark.parametrize("change, key", BAD_TUNE, ids=[k for _, k in BAD_TUNE])
def test_bad_tune_config_fails_before_ray(
    tiny_challenge, tmp_path, monkeypatch, capsys, change, key
):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({**TUNE_BASE, **change}))
    out = tmp_path / "out"
    err = _run(
        monkeypatch,
        capsys,
        ["tune", "--challenge", str(tiny_challenge), "--config", str(bad), "--out", str(out)],
        out,
    )
    assert f"{bad}: {key}" in err


def test_tune_unknown_scenario_option(tiny_challenge, tmp_path, monkeypatch, capsys):
    out = tmp_path / "out"
    err = _run(
        monkeypatch,
        capsys,
        [
            "tune",
            "--challenge",
            str(tiny_challenge),
            "--config",
            str(DATA / "tiny-tune.yaml"),
            "--out",
            str(out),
            "--scenarios",
            "sst2_nope",
        ],
        out,
    )
    assert "--scenarios: no scenario 'sst2_nope'" in err


MINI_BASE = yaml.safe_load((DATA / "tiny-mini.yaml").read_text())
BAD_MINI = [
    ({"models": {"train": 4, "dev": 1}}, "models"),
    ({"models": {"train": -1, "dev": 1, "final": 1}}, "models.train"),
    ({"scenarios": {"sst2_inf": "mini-nope"}}, "scenarios.sst2_inf"),
    ({"scenarios": {}}, "scenarios"),
    ({"scenarios": {"assets": "mini-inf"}}, "scenarios.assets"),
    ({"population": {"source": "file", "path": "/nonexistent/sst2"}}, "population.path"),
    ({"population": {"source": "synth", "n": 300}}, "population.source"),
    ({"population": {"source": "synthetic", "n": 300, "sed": 1}}, "population.sed"),
    ({"population": {"source": "synthetic", "n": 300, "subset": {"n": 0}}}, "population.subset.n"),
    ({"public": {"source": "file", "path": "tests/data"}}, "public.n"),
    ({"len_training": 400}, "len_training"),
    ({"len_challenge": 10.5}, "len_challenge"),
    ({"base_recipe": {"epochs": 0}}, "base_recipe.epochs"),
    ({"base_recipe": {"learning_rate": "abc"}}, "base_recipe.learning_rate"),
    ({"vocab_size": "big"}, "vocab_size"),
    ({"seeds": 3}, "seeds"),
]


@pytest.mark.parametrize("change, key", BAD_MINI, ids=[k for _, k in BAD_MINI])
def test_bad_mini_config_fails_before_ray(tmp_path, monkeypatch, capsys, change, key):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({**MINI_BASE, **change}))
    out = tmp_path / "out"
    err = _run(
        monkeypatch, capsys, ["make-challenge", "--config", str(bad), "--out", str(out)], out
    )
    assert f"{bad}: {key}" in err


def test_dp_recipe_with_length_grouping_fails_make_challenge_before_ray(
    tmp_path, monkeypatch, capsys
):
    """Length-grouped batches are data-dependent and no DP accountant covers them: a scenario recipe
    with both is one error line naming the config, the recipe file and the key; nothing runs or is
    written (``_run``: exit 1, one line, no output folder, Ray not started)."""
    recipe = tmp_path / "grouped-dp.yaml"
    recipe.write_text(
        "model: {name: base}\nbatch_size: 32\ngroup_by_length: true\ndp: {target_epsilon: 4.0, "
        "delta: 1.0e-5}\n"
    )
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({**MINI_BASE, "scenarios": {"sst2_lo": str(recipe)}}))
    out = tmp_path / "out"
    err = _run(
        monkeypatch, capsys, ["make-challenge", "--config", str(bad), "--out", str(out)], out
    )
    assert f"{bad}: scenarios.sst2_lo" in err
    assert f"{recipe}: group_by_length: expected false with a dp block" in err
    assert "no DP accountant covers them" in err
    omitted = tmp_path / "dp.yaml"  # a DP recipe that omits the key does not group
    omitted.write_text(
        "model: {name: base}\nbatch_size: 32\ndp: {target_epsilon: 4.0, delta: 1.0e-5}\n"
    )
    loaded = load_recipe(omitted)
    assert loaded.group_by_length is False and loaded.dp.sampling == "poisson"
    assert load_recipe("mini-inf").group_by_length is True  # without DP: as before (same key)


def test_demo_checks_both_configs_before_ray(tmp_path, monkeypatch, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text(ATTACK_BASE + "attack: lira_onlin\n")
    out = tmp_path / "out"
    err = _run(
        monkeypatch,
        capsys,
        [
            "demo",
            "--config",
            str(DATA / "tiny-mini.yaml"),
            "--attack-config",
            str(bad),
            "--out",
            str(out),
        ],
        out,
    )
    assert f"{bad}: attack" in err


def test_demo_checks_scenario_overrides_against_the_mini_config(tmp_path, monkeypatch, capsys):
    out = tmp_path / "out"
    err = _run(
        monkeypatch,
        capsys,
        [
            "demo",
            "--config",
            str(DATA / "tiny-mini.yaml"),
            "--attack-config",
            str(SHIPPED / "attack" / "attack-mini.yaml"),
            "--out",
            str(out),
        ],
        out,
    )
    assert "attack-mini.yaml: scenarios.sst2_hi: no such scenario" in err


def test_console_script_refuses_without_importing_ray(tiny_challenge, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(ATTACK_BASE + "params: {gama: 2}\n")
    # what must not happen (Ray or torch imported, data loaded, output written), not wall-clock time
    code = (
        "import sys; from farm.cli import main; rc = main(sys.argv[1:]); "
        "assert not {'ray', 'torch', 'pandas'} & set(sys.modules), sorted(sys.modules); "
        "sys.exit(rc)"
    )
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            code,
            "attack",
            "--challenge",
            str(tiny_challenge),
            "--config",
            str(bad),
            "--out",
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert result.returncode == 1 and result.stderr.count("\n") == 1, result.stderr
    assert f"{bad}: params.gama: unknown parameter of attack 'rmia'" in result.stderr
    assert not (tmp_path / "out").exists()


# --- DP-matched shadows, searched mechanisms, assets ----------------------------------------------


def test_shipped_attack_configs_match_the_dp_targets():
    for name in ("attack-mico", "attack-mini", "attack-mini-sst2"):
        configs = load_attack_config(name)
        assert (
            configs["sst2_hi"].match_targets
            and configs["sst2_lo"].match_targets
            and not configs["*"].match_targets
        )
        assert configs["sst2_lo"].named_recipe().dp.target_epsilon == 4.0
    with pytest.raises(ConfigError, match="training-set size"):
        load_attack_config("attack-mini")["sst2_lo"].shadow_recipe()


def test_matched_shadow_recipe_is_the_targets_mechanism_at_len_training():
    from farm.training.train import dp_schedule, matched_recipe

    config = load_attack_config("attack-mini")["sst2_lo"]
    recipe = config.shadow_recipe(2920)  # the mini challenge's len_training
    target = load_recipe("mini-lo")
    assert recipe == matched_recipe(target, 2920) and recipe.steps == 3 * 61
    assert (
        recipe.dp.noise_multiplier == dp_schedule(2920, target).noise_multiplier
        and recipe.dp.target_epsilon is None
    )
    assert load_attack_config("attack-mini")["*"].shadow_recipe(2920) == load_recipe("mini-inf-6ep")


def test_match_targets_and_assets_are_checked(tmp_path, monkeypatch):
    bad = tmp_path / "a.yaml"
    bad.write_text("recipe: mini-lo\nmatch_targets: yes please\n")
    with pytest.raises(ConfigError, match="a.yaml: match_targets: expected true or false"):
        load_attack_config(bad)
    bad.write_text("recipe: mini-inf\nscenarios:\n  sst2_hi: {assets: {base_model: /x}}\n")
    with pytest.raises(
        ConfigError, match="scenarios.sst2_hi.assets: assets belong to the whole challenge"
    ):
        load_attack_config(bad)
    bad.write_text("recipe: mini-inf\nassets: {base: /x}\n")
    with pytest.raises(ConfigError, match="a.yaml: assets.base: unknown key"):
        load_attack_config(bad)
    monkeypatch.setenv("FARM_TEST_ROBERTA", str(tmp_path / "rb"))
    good = tmp_path / "g.yaml"
    good.write_text(
        "recipe: mini-inf\nassets:\n  base_model: ${FARM_TEST_ROBERTA}\n  population: {source: "
        "file, path: data/sst2}\n"
    )
    assets = load_attack_config(good)["*"].assets
    assert assets.base_model == str(tmp_path / "rb") and assets.tokenizer is None
    assert Path(assets.population["path"]).is_absolute() and assets.population["source"] == "file"


def test_searched_dp_variants_describe_a_mechanism():
    with pytest.raises(
        SpecError, match="dp.target_epsilon: a searched DP variant describes a mechanism"
    ):
        dp_choice({"target_epsilon": 4.0, "delta": 1e-5})
    with pytest.raises(SpecError, match="dp.noise_multiplier: missing"):
        dp_choice({"max_grad_norm": 1.0, "delta": 1e-5})
    assert (
        dp_choice(
            {"noise_multiplier": 0.5, "clip_scale": 64, "sampling": "poisson", "delta": 1e-5}
        ).clip
        == 64
    )


def test_matched_trials_ignore_trial_hyperparameters():
    from farm.training.train import matched_recipe

    config = load_tune_config("tune-mini")
    params = {"learning_rate": 2e-3, "epochs": 6, "batch_size": 16, "dp": "matched"}
    assert trial_recipe(params, config, "sst2_lo", 2920) == matched_recipe(
        load_recipe("mini-lo"), 2920
    )
    plain = trial_recipe({**params, "dp": "none"}, config, "sst2_lo", 2920)
    assert (plain.learning_rate, plain.epochs, plain.batch_size, plain.dp) == (2e-3, 6, 16, None)
    noisy = trial_recipe(
        {**params, "dp": {"noise_multiplier": 0.7, "delta": 1e-5}}, config, "sst2_lo", 2920
    )
    assert noisy.batch_size == 16 and noisy.dp.noise_multiplier == 0.7
    mico = load_tune_config("tune-mico")
    noisy = trial_recipe({"dp": {"noise_multiplier": 0.7, "delta": 1e-5}}, mico, "sst2_inf", 67_349)
    assert (
        noisy.grad_clip is None and load_recipe(mico.recipe).grad_clip == 1.0
    )  # DP clips per example


def test_attack_config_asks_inference_for_what_its_attack_needs(tmp_path):
    from farm.shadows.scenario import Extras
    from farm.spec.queries import QueryFamily

    path = tmp_path / "a.yaml"
    path.write_text(
        "attack: lira_queries\nqueries: {kinds: [identity, swap], seed: 3}\nscenarios: {sst2_hi: "
        "{attack: lira_grad}, sst2_lo: {attack: loss}}\n"
    )
    configs = load_attack_config(path)
    family = QueryFamily(kinds=("identity", "swap"), seed=3)
    assert configs["*"].queries == family and configs["*"].extras() == Extras(queries=family)
    assert configs["sst2_hi"].extras() == Extras(grad_norm=True)
    assert configs["sst2_lo"].extras() == Extras()  # logits-only attacks keep plain inference jobs
    assert load_attack_config(DATA / "tiny-attack.yaml")["*"].extras() == Extras()
    # farm demo: logits-only inference
    assert all(c.extras() == Extras() for c in load_attack_config("attack-mini").values())
    for name in ("attack-mini-sst2", "attack-mini-clickbait", "attack-mico"):
        # issue 21's protocol pick on inf: the stack with query and white-box features; hi and lo
        # name other attacks and keep plain inference (they do not inherit the stack's params)
        configs = load_attack_config(name)
        assert configs["*"].attack == "stacked" and configs["*"].extras() == Extras(
            queries=QueryFamily(), grad_norm=True
        )
        assert [c.params for n, c in configs.items() if n != "*"] == [{}, {}]
    assert AttackConfig(attack="lira_queries").extras() == Extras(queries=QueryFamily())


def test_a_scenario_naming_another_attack_does_not_inherit_its_params(tmp_path):
    path = tmp_path / "a.yaml"
    path.write_text(
        "attack: stacked\nparams: {extra_signals: [grad_norm]}\nrecipe: mini-inf\nscenarios:\n"
        "  a: {attack: rmia}\n  b: {recipe: mini-hi}\n  c: {attack: rmia, params: {gamma: 2.0}}\n"
        "  d: {attack: stacked, recipe: mini-hi}\n"
    )
    configs = load_attack_config(path)
    assert configs["a"].params == {} and configs["c"].params == {"gamma": 2.0}
    assert configs["b"].params == configs["d"].params == {"extra_signals": ["grad_norm"]}


def test_a_configs_kind_is_its_shipped_folder_else_its_keys(tmp_path):
    kinds = {name: config_kind(path) for name, path in shipped().items()}
    assert kinds["mini"] == kinds["mico-rehearsal"] == "challenge"
    assert kinds["attack-mini"] == "attack" and kinds["tune-mini"] == "tune"
    assert {
        config_kind(SHIPPED / kind / f"{name}.yaml")
        for kind in ("challenge", "attack", "tune", "audit")
        for name in [n for n, p in shipped().items() if p.parent.name == kind]
    } == {"challenge", "attack", "tune", "audit"}
    (tmp_path / "t.yaml").write_text("space: {}\n")
    (tmp_path / "c.yaml").write_text("population: {source: synthetic, n: 10}\n")
    (tmp_path / "a.yaml").write_text("attack: rmia\n")
    (tmp_path / "u.yaml").write_text("canaries: ood:10\n")
    kinds = [config_kind(tmp_path / f"{k}.yaml") for k in "tcau"]
    assert kinds == ["tune", "challenge", "attack", "audit"]
