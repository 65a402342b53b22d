"""``farm plan``: the jobs a command would run, counted without running them (farm.commands.dry_run,
farm.spec.costs)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from farm.challenge.layouts import MICO_SST2, mico_sst2_layout
from farm.cli import main
from farm.commands.dry_run import (
    attack_forecast,
    make_challenge_forecast,
    read_table,
    tune_forecast,
    write_table,
)
from farm.config.attack import load_attack_config
from farm.config.tune import load_tune_config
from farm.spec.costs import (
    DEFAULTS,
    MODES,
    ROBERTA_BASE,
    Rate,
    Shape,
    Table,
    logits_bytes,
    wall_seconds,
    weights_bytes,
)
from tests.helpers import POOL_24, mico_seed_tree

# `farm plan` in a fresh interpreter, with every population loader replaced by one that fails: what
# it must not do is load data, import Ray, torch, transformers or datasets (so start no Ray) or
# scipy.stats (~0.5 s of import, half of a cached plan's time), or, on a rerun, recompute a shuffle
# the disk cache holds.
PLAN_GUARDED = """
import sys
import farm.cli, farm.commands.dry_run, farm.shadows.scenario, farm.training.data
from farm.store.shuffles import ShuffleCache
real = farm.training.data.load_population
def refuse(*args, **kwargs):
    raise AssertionError('data loaded')
for module in list(sys.modules.values()):
    if getattr(module, 'load_population', None) is real:
        module.load_population = refuse
rc = farm.cli.main(sys.argv[2:])
heavy = {'ray', 'torch', 'transformers', 'datasets', 'scipy.stats'} & set(sys.modules)
assert not heavy, heavy
cache = ShuffleCache.default()
assert cache.rejected == 0 and cache.hits + cache.misses == 600, vars(cache)
assert sys.argv[1] == 'first' or cache.misses == 0, 'a rerun recomputed a shuffle'
sys.exit(rc)
"""


def test_mico_plan_from_a_seeds_only_tree_without_ray_or_data(tmp_path):
    """What a MICO-scale pool costs, planned from seed files alone: no Ray, no data, no heavy
    import, and a rerun reads the 600 challenge shuffles from the disk cache (the shipped
    attack-mico trains fewer shadows; a pool of 24 in every scenario exercises DP-matched stages).
    How long it takes is measured by ``benchmarks/splits.py``, not asserted here."""
    tree = mico_seed_tree(tmp_path / "mico")
    config = tmp_path / "pool-24.yaml"
    config.write_text(POOL_24)
    env = {**os.environ, "FARM_CACHE_DIR": str(tmp_path / "cache")}
    args = ["plan", "--challenge", str(tree), "--config", str(config), "--json"]
    args += ["--table", str(tmp_path / "none.json")]
    runs = [
        subprocess.run(
            [sys.executable, "-c", PLAN_GUARDED, which, *args],
            capture_output=True,
            text=True,
            env=env,
        )
        for which in ("first", "rerun")
    ]
    for result in runs:
        assert result.returncode == 0, result.stderr
    assert runs[0].stdout == runs[1].stdout
    result = runs[1]
    plan = json.loads(result.stdout)
    stages = {(s["scenario"], s["name"]): s for s in plan["stages"]}
    for scenario in ("sst2_hi", "sst2_inf", "sst2_lo"):
        shadows, infer = stages[scenario, "shadows"], stages[scenario, "inference"]
        assert (
            shadows["jobs"] == 24
            and shadows["model"] == "roberta-base"
            and shadows["bytes_per_job"] > 490e6
        )
        assert (
            infer["jobs"] == 200 + 24 and 20_000 < infer["records"] < 40_000
        )  # the union of challenge points
        # pool of groups of 2: each shadow leaves out half the union
        assert abs(shadows["records"] - (68_221 - infer["records"] / 2)) < 200
        # inf: 3 epochs; hi/lo shadows run the targets' mechanism: 3 x ceil(67,349 / 1024) = 198
        # batches of 1024
        want = 3 * shadows["records"] if scenario == "sst2_inf" else 198 * 1024
        assert shadows["sequences"] == want
    assert (
        stages["sst2_hi", "shadows"]["mode"] == "train_dp"
        and stages["sst2_inf", "shadows"]["mode"] == "train_fp32"
    )
    # the DP shadows' mechanism and what its epsilon rests on, beside the stage (MICO's shuffles)
    assert stages["sst2_inf", "shadows"]["privacy"] is None
    assert stages["sst2_hi", "inference"]["privacy"] is None
    assert stages["sst2_lo", "shadows"]["privacy"] == {
        "epsilon": 4.0,
        "noise_multiplier": None,
        "delta": 1e-5,
        "matched": True,
        "accountant": "prv",
        "sampling": "shuffle",
        "adjacency": "add/remove",
        "assumes": "as accounted for Poisson sampling; the run used shuffled batches "
        "(prv accountant, add/remove adjacency)",
    }
    assert plan["totals"]["trainings"] == 72 and plan["totals"]["inference_passes"] == 672
    assert (
        plan["totals"]["gpu_hours"] > 0
        and plan["totals"]["wall_hours"] < plan["totals"]["gpu_hours"]
    )
    assert all("estimate" in r["source"] for r in plan["table"]["rates"].values())
    assert "600 of 600 provided models have no weights" in plan["notes"][0]


def test_mico_layout_plans_exactly_as_a_seeds_only_tree(tmp_path):
    """``--challenge mico-sst2`` (no download) gives the stage table of a seeds-only tree of MICO's
    layout written from the same stand-in seeds, for an attack and a tune config; only the notes
    differ, the layout's saying what it is. The session's shuffle cache serves every MICO-layout
    test after the first."""
    tree = mico_seed_tree(tmp_path / "mico")
    layout = mico_sst2_layout()
    attack, tune = load_attack_config("attack-mico"), load_tune_config("tune-mico")
    for forecast, config in ((attack_forecast, attack), (tune_forecast, tune)):
        on_tree = forecast(tree, config, table=Table(), gpus=8)
        on_layout = forecast(layout, config, table=Table(), gpus=8)
        assert (
            on_layout.stages == on_tree.stages
            and on_layout.to_json()["totals"] == (on_tree.to_json()["totals"])
        )
        assert on_layout.notes[0].startswith("no tree given: MICO SST-2's published layout")
        assert not any("published layout" in n for n in on_tree.notes)
    # tune-mico's default (attack-mico) reads query logits and gradient norms on inf: scoring it on
    # the held-out models needs inference jobs of its own over every labelled train model
    extra = [s for s in on_layout.stages if s.name == "held-out default inference"]
    assert [(s.scenario, s.jobs, s.bound) for s in extra] == [("sst2_inf", 100 + 16, True)]
    assert extra[0].sequences == (1 + 7 + 1) * extra[0].records
    # the default's 16 shadows are in that stage only, not in the plain held-out inference too
    plain = {s.scenario: s for s in on_layout.stages if s.name == "held-out inference"}
    assert plain["sst2_inf"].jobs == plain["sst2_hi"].jobs == 30 + tune.max_shadows
    per_phase = {(m.scenario, m.phase) for m in layout.models}
    assert len(layout.models) == 600 and len(per_phase) == 9
    assert [m.model_id for m in layout.select("sst2_lo", "dev")] == list(range(100, 150))


def test_mico_layout_counts_do_not_depend_on_the_seeds():
    """The release's own seeds (unknown before the download) change no job count; records per
    job follow the union of challenge points, which moves by a few tenths of a percent."""
    config = load_attack_config("attack-mico")
    stand_in = attack_forecast(mico_sst2_layout(0), config, table=Table(), gpus=8)
    other = attack_forecast(mico_sst2_layout(1), config, table=Table(), gpus=8)
    assert [(s.scenario, s.name, s.jobs) for s in other.stages] == [
        (s.scenario, s.name, s.jobs) for s in stand_in.stages
    ]
    for a, b in zip(stand_in.stages, other.stages):
        assert abs(a.records - b.records) <= 0.01 * a.records
    assert abs(other.gpu_hours - stand_in.gpu_hours) <= 0.01 * stand_in.gpu_hours


def test_plan_of_the_mico_layout_needs_no_tree_ray_or_data(tmp_path):
    """``farm plan --config attack-mico --challenge mico-sst2`` in a fresh interpreter: no tree,
    no data, no heavy import (an existing default store is not counted: stand-in seeds match no
    stored job, and counting DP-matched shadows would solve their noise with torch); the output
    says it planned the published layout."""
    (tmp_path / "store").mkdir()
    env = {**os.environ, "FARM_STORE": str(tmp_path / "store")}  # the session's shuffle cache
    args = ["plan", "--config", "attack-mico", "--challenge", MICO_SST2]
    args += ["--table", str(tmp_path / "none.json")]
    result = subprocess.run(
        [sys.executable, "-c", PLAN_GUARDED, "first", *args],
        capture_output=True,
        text=True,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    assert "note: no tree given: MICO SST-2's published layout" in result.stdout
    assert "| sst2_inf | shadows | 16 | - |" in result.stdout
    assert result.stdout.splitlines()[-1].startswith("store: none (a published layout's")
    # ./mico-sst2 names a folder, not the layout
    assert main(["plan", "--config", "attack-mico", "--challenge", "./mico-sst2"]) == 1


def test_plan_counts_what_the_store_holds_with_the_real_keys(tiny_challenge, tmp_path):
    from farm.challenge.tree import read_challenge
    from farm.shadows.scenario import (
        build_scenario,
        challenge_inputs,
        infer_jobs,
        plan_shadows,
        train_jobs,
    )
    from farm.store.store import Store

    configs = load_attack_config("tests/data/tiny-attack.yaml")
    store = Store(tmp_path / "store")
    empty = attack_forecast(tiny_challenge, configs, table=Table(), gpus=2, store=store)
    assert {(s.name, s.jobs, s.done) for s in empty.stages} == {
        ("shadows", 2, 0),
        ("inference", 7 + 2, 0),
    }
    ch = read_challenge(tiny_challenge)
    scenario = build_scenario(ch, "sst2_inf", challenge_inputs(ch), np.zeros(60, np.int64))
    config = configs["*"]
    trains = train_jobs(scenario, config.shadow_recipe(), plan_shadows(scenario, config.plan))
    (tmp_path / "dummy").mkdir()
    (tmp_path / "dummy" / "x").write_text("x")
    for job in (trains[0], infer_jobs(scenario, trains)[0], infer_jobs(scenario, trains)[-1]):
        store.put_dir(job.key, tmp_path / "dummy")
    got = {
        (s.scenario, s.name): s
        for s in attack_forecast(tiny_challenge, configs, table=Table(), gpus=2, store=store).stages
    }
    # the fixture's provided models share one weights file, hence one inference key: 7 of them + 1
    # shadow
    assert got["sst2_inf", "shadows"].done == 1 and got["sst2_inf", "inference"].done == 7 + 1
    assert got["sst2_hi", "shadows"].done == 0
    assert got["sst2_inf", "shadows"].todo == 1

    # an attack reading query logits and gradient norms needs other inference entries: the plain
    # ones stored above are not its, and each pass costs its queries and a backward pass too
    white = tmp_path / "white.yaml"
    white.write_text(
        Path("tests/data/tiny-attack.yaml")
        .read_text()
        .replace(
            "attack: lira_online",
            "attack: stacked\nparams: {extra_signals: [query_logits, grad_norm]}",
        )
    )
    table = Table()
    plan = attack_forecast(
        tiny_challenge, load_attack_config(white), table=table, gpus=2, store=store
    )
    wb = {(s.scenario, s.name): s for s in plan.stages}
    plain, inf = got["sst2_inf", "inference"], wb["sst2_inf", "inference"]
    assert inf.jobs == plain.jobs and inf.done == 0 and wb["sst2_inf", "shadows"].done == 1
    # farm.spec.queries.QueryFamily's default family: 8 queries, the first the record itself, whose
    # logits inference reuses (farm.training.infer): 7 more passes
    r, perturbed = inf.records, 7
    assert inf.sequences == (1 + perturbed + 1) * r
    assert inf.seconds_per_job == pytest.approx(
        table.seconds(inf.model, inf.mode, (1 + perturbed) * r)
        + table.seconds(inf.model, "train_fp32", r)
    )
    assert inf.bytes_per_job == plain.bytes_per_job + r * (8 * 2 * 4 + 8)  # float32 x 2, float64
    assert any(
        n.startswith("sst2_inf: stacked's inference also computes the logits of 8 queries")
        and "each of the 7 perturbed ones" in n
        and "gradient norms" in n
        for n in plan.notes
    )


DP_MATCHED = """attack: lira_online
plan: {kind: pool, shadows: 2, group: 2, seed: 0}
recipe: RECIPE
normalize: global
match_targets: true
"""


def test_plan_counts_dp_matched_shadows_with_the_runs_keys(
    local_ray, tiny_built, tmp_path, monkeypatch, capsys
):
    """DP-matched shadows are keyed by the noise multiplier the run solves for the targets'
    epsilon: ``farm plan`` with the (shared, default) store solves it too, so after an attack it
    counts every job as done, as the rerun's ``jobs: 0 run`` says."""
    recipe = tmp_path / "dp.yaml"
    recipe.write_text(
        "model: {name: base}\nepochs: 1\nlearning_rate: 1.0e-3\nbatch_size: 32\n"
        "max_length: 67\ngroup_by_length: false\n"
        "dp: {target_epsilon: 8.0, delta: 1.0e-5, max_grad_norm: 1.0}\n"
    )
    config = tmp_path / "dp-matched.yaml"
    config.write_text(DP_MATCHED.replace("RECIPE", str(recipe)))
    monkeypatch.setenv("FARM_STORE", str(tmp_path / "store"))
    tree = ["--challenge", str(tiny_built / "challenge"), "--config", str(config)]
    assert main(["attack", *tree, "--out", str(tmp_path / "a")]) == 0
    first = capsys.readouterr().out.strip().splitlines()[-1]
    ran = int(first.split()[1])
    assert ran > 2 and first == f"jobs: {ran} run, 0 reused"
    assert main(["plan", *tree, "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["store"] == str(tmp_path / "store")
    stages = {s["name"]: s for s in plan["stages"]}
    assert (stages["shadows"]["jobs"], stages["shadows"]["done"]) == (2, 2)
    privacy = stages["shadows"]["privacy"]
    assert privacy["epsilon"] == 8.0 and privacy["matched"]  # the target epsilon, not the noise
    assert stages["inference"]["done"] == stages["inference"]["jobs"]
    assert main(["attack", *tree, "--out", str(tmp_path / "b")]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == f"jobs: 0 run, {ran} reused"


def test_make_challenge_plan_counts_every_target(tmp_path):
    plan = make_challenge_forecast("mini", table=Table(), gpus=4)
    stages = {(s.scenario, s.name): s for s in plan.stages}
    assert stages["assets", "tokenizer"].kind == "cpu" and stages["assets", "base model"].jobs == 1
    assert [stages[s, "targets"].jobs for s in ("sst2_hi", "sst2_inf", "sst2_lo")] == [16, 16, 16]
    assert all(
        s.model == "tiny" and s.bytes_per_job < 5e6 for s in plan.stages if s.kind == "train"
    )


def test_plan_prints_what_each_dp_epsilon_assumes(capsys):
    """``farm plan`` shows each DP-SGD stage's epsilon with its assumptions: MICO-mirroring recipes
    (shuffled batches, accounted as Poisson) and the defence comparison's own DP recipes (Poisson,
    as accounted)."""
    assert main(["plan", "--config", "mini", "--table", "/nonexistent/none.json"]) == 0
    out = capsys.readouterr().out
    assert (
        "DP-SGD sst2_lo targets: epsilon 4 at delta 1e-05 per training (as accounted for Poisson "
        "sampling; the run used shuffled batches (prv accountant, add/remove adjacency))"
    ) in out.splitlines()
    assert "DP-SGD sst2_inf" not in out
    plan = make_challenge_forecast("defences-sst2", table=Table(), gpus=1)
    dp = {s.scenario: s.privacy for s in plan.stages if s.privacy}
    assert {name: r["assumes"] for name, r in dp.items()} == {
        "dp_e4": "prv accountant, Poisson sampling, add/remove adjacency",
        "dp_e10": "prv accountant, Poisson sampling, add/remove adjacency",
    }
    assert (dp["dp_e4"]["epsilon"], dp["dp_e10"]["epsilon"]) == (4.0, 10.0)
    assert plan.to_json()["stages"][0]["privacy"] is None  # a field added to every stage of --json


def test_make_challenge_plan_counts_every_defence_job():
    plan = make_challenge_forecast("tests/data/tiny-mini-pate.yaml", table=Table(), gpus=1)
    stages = {(s.scenario, s.name): s for s in plan.stages}
    assert stages["sst2_inf", "targets"].jobs == 4
    teachers, answers = stages["sst2_pate", "teacher"], stages["sst2_pate", "teacher/answers"]
    assert (teachers.kind, teachers.jobs, teachers.records) == (
        "train",
        12,
        93,
    )  # 3 teachers of 280 records x 4
    assert (answers.kind, answers.jobs, answers.records) == (
        "infer",
        12,
        40,
    )  # each teacher on the 40 queries
    assert (stages["sst2_pate", "votes"].kind, stages["sst2_pate", "votes"].jobs) == ("cpu", 4)
    assert (stages["sst2_pate", "student"].jobs, stages["sst2_pate", "student"].records) == (4, 40)
    totals = plan.to_json()["totals"]
    assert (totals["trainings"], totals["inference_passes"]) == (1 + 4 + 12 + 4, 12)
    sisa = {
        s.name: s
        for s in make_challenge_forecast(
            "tests/data/tiny-mini-sisa.yaml", table=Table(), gpus=1
        ).stages
        if s.scenario == "sst2_sisa"
    }
    assert list(sisa) == ["shard/slice"] and sisa["shard/slice"].jobs == 6 * 2


def test_roberta_base_sizes():
    assert ROBERTA_BASE.params == 124_647_170 and ROBERTA_BASE.kind == "roberta-base"
    assert 498e6 < weights_bytes(ROBERTA_BASE) < 499e6
    assert (
        Shape(
            vocab_size=4096,
            hidden_size=64,
            num_hidden_layers=2,
            intermediate_size=256,
            max_position_embeddings=70,
        ).kind
        == "tiny"
    )
    assert logits_bytes(1000) == 16_000


def test_wall_time_is_packed_work_or_the_longest_job():
    assert wall_seconds([10.0] * 16, 8) == 20.0
    assert wall_seconds([100.0, 1.0], 8) == 100.0
    assert wall_seconds([], 8) == 0.0


def test_table_roundtrip_and_fallback_to_estimates(tmp_path):
    measured = Table("cpu (2 threads)", {"tiny": {"train_fp32": Rate(123.0, "measured on cpu")}})
    path = write_table(measured, tmp_path / "t.json")
    back = read_table(path)
    assert back == measured
    assert back.rate("tiny", "train_fp32").seq_per_s == 123.0
    assert back.rate("roberta-base", "train_bf16") == DEFAULTS["roberta-base"]["train_bf16"]
    assert (
        set(DEFAULTS["roberta-base"]) == set(MODES)
        and "estimate" in DEFAULTS["roberta-base"]["infer_fp32"].source
    )
    assert read_table(tmp_path / "absent.json") == Table()


def test_an_invalid_table_is_refused_with_its_path(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"version": 1, "rates": {"tiny": {"train_fp8": {"seq_per_s": 1}}}}))
    assert main(["plan", "--config", "mini", "--table", str(bad)]) == 1
    assert f"{bad}: invalid throughput table: rates.tiny.train_fp8" in capsys.readouterr().err
    with pytest.raises(ValueError, match="seq_per_s > 0"):
        Table.from_json({"version": 1, "rates": {"tiny": {"infer_fp32": {"seq_per_s": -3}}}})
