"""End to end on a test-sized mini challenge: make-challenge, attack (pool plan), submission,
report, rerun."""

import json
import zipfile

import pytest

from farm.challenge.tree import read_challenge
from farm.cli import main

CONFIG, ATTACK = "tests/data/tiny-mini.yaml", "tests/data/tiny-attack.yaml"


@pytest.fixture(scope="module")
def built(local_ray, tiny_built):
    """The session's tiny challenge (``CONFIG`` built once, with its store), which the tests below
    read, copy and attack (attacks add their jobs to its store)."""
    return tiny_built


def test_tree_is_a_valid_challenge(built):
    ch = read_challenge(built / "challenge")
    assert ch.scenarios() == ["sst2_inf"] and ch.constants.n_total == 300
    assert [m.phase for m in ch.models] == ["train"] * 4 + ["dev", "final"]
    dev = ch.select("sst2_inf", "dev")[0]
    assert (
        dev.seed_training is None and dev.solution is None
    )  # dev/final hold only seed_challenge and weights
    answers = read_challenge(built / "answers", require_weights=False)
    assert [m.model_id for m in answers.models] == [4, 5] and all(
        m.solution is not None for m in answers.models
    )
    from farm.training.models import load_model

    load_model(dev.path)  # weights load safely
    assert (built / "challenge" / "assets" / "tokenizer" / "tokenizer.json").is_file()


def test_rebuild_reuses_the_tree_and_trains_nothing(built, capsys):
    before = (built / "challenge" / ".complete").stat().st_mtime
    assert main(["make-challenge", "--config", CONFIG, "--out", str(built)]) == 0
    assert (built / "challenge" / ".complete").stat().st_mtime == before


def test_attack_writes_submission_and_report(built, tmp_path, capsys):
    out = tmp_path / "attack"
    assert (
        main(
            [
                "attack",
                "--challenge",
                str(built / "challenge"),
                "--config",
                ATTACK,
                "--answers",
                str(built / "answers"),
                "--out",
                str(out),
                "--store",
                str(built / "store"),
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "| sst2_inf | train (leave-one-out) | lira_online | pool K=2 |" in printed
    assert "| sst2_inf | dev |" in printed and "| sst2_inf | final |" in printed
    assert "| sst2_inf | dev | loss (baseline) | none |" in printed
    names = zipfile.ZipFile(out / "submission.zip").namelist()
    assert sorted(names) == [
        "sst2/sst2_inf/dev/model_4/prediction.csv",
        "sst2/sst2_inf/final/model_5/prediction.csv",
    ]
    assert (out / "roc_sst2_inf.png").read_bytes()[:4] == b"\x89PNG"
    report = (out / "report.md").read_text()
    assert "shadow trainings" in report and "| sst2_inf | 2 |" in report
    assert (
        "TPR@0.1FPR" in report and "TPR_FPR" not in report and "Empirical ε lower bound" in report
    )
    assert (
        "| sst2_inf | dev | lira_online | pool K=2 | 1 | " in report
    )  # one dev model behind the dev row
    assert (
        f"metrics:     {out / 'metrics.json'}" in printed
        and f"scores:      {out / 'scores.parquet'}" in printed
    )
    metrics = json.loads((out / "metrics.json").read_text())["scenarios"]["sst2_inf"]
    train = metrics["phases"]["train"]
    assert train["models"] == 4 and train["members"] + train["non_members"] == 4 * 20
    assert (
        set(train["intervals"]) == {"TPR@0.1FPR", "TPR@0.01FPR", "AUC"}
        and metrics["baseline"]["phases"]["dev"]
    )
    audit = metrics["epsilon_audit"]
    assert audit["epsilon_lb"] >= 0 and audit["held_out"] == "answered dev/final (2 models)"
    assert audit["target"]["epsilon"] == "inf" and metrics["compute"]["shadow_trainings"] == 2
    assert audit["validity"].startswith("heuristic")
    assert audit["adjacency"]["audit"] == "substitution"
    one = audit["one_point_per_model"]  # 2 trials, or none if the 2 picks share a label
    assert one["trials"] == 2 or one["validity"].startswith("not computed: the 2 picked points")
    import pandas as pd

    from farm.report.attack_report import read_provenance

    scores = pd.read_parquet(out / "scores.parquet")
    stamp = json.loads((out / "metrics.json").read_text())["provenance"]
    assert read_provenance(out / "scores.parquet") == stamp  # one stamp for both files
    assert stamp["attacks"]["sst2_inf"] == "lira_online" and (scores.attack == "lira_online").all()
    assert (
        len(scores) == 6 * 20 and scores["label"].notna().all()
    )  # 4 train + dev + final, 2 x len_challenge each
    assert sorted(scores[scores.phase == "train"].model.unique()) == [0, 1, 2, 3]
    assert (
        main(
            [
                "score",
                str(out / "submission.zip"),
                "--solutions",
                str(built / "answers"),
                "--plot-dir",
                str(tmp_path),
            ]
        )
        == 0
    )


def test_bad_attack_config_names_file_and_key(built, tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("attack: loss\nplan: {kind: pool, shadows: 3}\n")
    assert (
        main(
            [
                "attack",
                "--challenge",
                str(built / "challenge"),
                "--config",
                str(bad),
                "--out",
                str(tmp_path / "o"),
            ]
        )
        == 1
    )
    err = capsys.readouterr().err
    assert "bad.yaml" in err and "plan" in err
    assert not (tmp_path / "o" / "submission.zip").exists()


def test_tiny_config_is_what_it_says():
    from farm.config.challenge import load_challenge_config

    config = load_challenge_config(CONFIG)
    assert config.models == {"train": 4, "dev": 1, "final": 1}
    json.dumps(config.population)


def test_dev_and_final_folders_hold_only_seed_and_weights(built):
    for phase in ("dev", "final"):
        for mdir in (built / "challenge" / "sst2_inf" / phase).iterdir():
            assert sorted(p.name for p in mdir.iterdir()) == [
                "config.json",
                "model.safetensors",
                "seed_challenge",
            ]


def test_a_new_out_reuses_the_shared_default_store(built, tmp_path, monkeypatch, capsys):
    """Without ``--store`` every command uses one shared store (``$FARM_STORE`` here, the user
    cache's ``farm/store`` by default): an attack into a second ``--out`` runs nothing, and both
    runs name the store they used."""
    shared = tmp_path / "shared-store"
    monkeypatch.setenv("FARM_STORE", str(shared))
    args = ["attack", "--challenge", str(built / "challenge"), "--config", ATTACK]
    printed = []
    for out in ("first", "second"):
        assert main([*args, "--out", str(tmp_path / out)]) == 0
        printed.append(capsys.readouterr().out.strip().splitlines())
    for lines in printed:
        assert [line.split()[-1] for line in lines if line.startswith("store:")] == [str(shared)]
    ran = int(printed[0][-1].split()[1])
    assert ran > 0 and printed[0][-1] == f"jobs: {ran} run, 0 reused"
    assert printed[1][-1] == f"jobs: 0 run, {ran} reused"
    assert not (tmp_path / "first" / "store").exists()


def test_moved_tree_and_store_rerun_nothing_and_verify_catches_silent_corruption(
    built, tmp_path, capsys
):
    import os
    import re
    import shutil

    store, tree = tmp_path / "store", tmp_path / "tree"
    shutil.copytree(built / "store", store)
    shutil.copytree(built / "challenge", tree / "challenge")
    args = ["attack", "--config", ATTACK, "--answers", str(built / "answers")]
    first_run = [
        "--challenge",
        str(tree / "challenge"),
        "--out",
        str(tmp_path / "a"),
        "--store",
        str(store),
    ]
    assert main([*args, *first_run]) == 0
    first = capsys.readouterr().out.strip().splitlines()[-1]
    assert re.fullmatch(r"jobs: \d+ run, \d+ reused", first), first
    shutil.move(tree, tmp_path / "moved")  # the tree and the store both move
    shutil.move(store, tmp_path / "store2")
    moved = [
        "--challenge",
        str(tmp_path / "moved" / "challenge"),
        "--store",
        str(tmp_path / "store2"),
    ]
    assert main([*args, *moved, "--out", str(tmp_path / "b")]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert re.fullmatch(r"jobs: 0 run, [1-9]\d* reused", last), last
    weights = sorted((tmp_path / "store2").rglob("model.safetensors"))[0]
    st = weights.stat()
    data = bytearray(weights.read_bytes())
    data[-3] ^= 0xFF  # same size; bit rot keeps the stamp
    weights.write_bytes(bytes(data))
    os.utime(weights, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert main([*args, *moved, "--out", str(tmp_path / "c")]) == 0
    assert (
        capsys.readouterr().out.strip().splitlines()[-1].startswith("jobs: 0 run,")
    )  # read no weight bytes
    assert main(["store", "verify", str(tmp_path / "store2")]) == 1
    printed = capsys.readouterr().out
    assert f"corrupt {weights.parent.name}" in printed and "1 corrupt" in printed


def _shipped(name: str, scenario: str) -> tuple[str, str]:
    """The attack and parameters that a shipped config gives ``scenario`` (shadows: the test's)."""
    from farm.config.attack import load_attack_config

    config = load_attack_config(name)
    config = config.get(scenario, config["*"])
    return config.attack, f"params: {json.dumps(config.params)}\n" if config.params else ""


@pytest.mark.parametrize(
    "attack, extra",
    [
        ("lira_queries", "queries: {kinds: [identity, dropout, swap], drop_rate: 0.2}\n"),
        ("learned", "params: {stack: [lira_queries, lira_grad], classifier: logistic}\n"),
        _shipped("attack-mini-sst2", "sst2_inf"),  # issue 21: the shipped white-box stack
    ],
)
def test_attacks_on_query_logits_and_gradient_norms_run_end_to_end(
    built, tmp_path, capsys, attack, extra
):
    """The driver asks inference for what the attack reads; the store then holds it beside the
    logits."""
    from farm.config.attack import load_attack_config
    from farm.shadows.scenario import infer_jobs, load_scenarios
    from farm.store.store import Store

    config = tmp_path / "a.yaml"
    config.write_text(
        f"attack: {attack}\n{extra}plan: {{kind: pool, shadows: 2, group: 2, seed: 0}}\nrecipe: "
        f"tests/data/tiny-recipe.yaml\n"
    )
    out = tmp_path / "attack"
    assert (
        main(
            [
                "attack",
                "--challenge",
                str(built / "challenge"),
                "--config",
                str(config),
                "--answers",
                str(built / "answers"),
                "--out",
                str(out),
                "--store",
                str(built / "store"),
            ]
        )
        == 0
    )
    assert f"| sst2_inf | train (leave-one-out) | {attack} | pool K=2 |" in capsys.readouterr().out
    metrics = json.loads((out / "metrics.json").read_text())["scenarios"]["sst2_inf"]
    assert set(metrics["phases"]) == {"train", "dev", "final"}
    assert len(zipfile.ZipFile(out / "submission.zip").namelist()) == 2
    extras = load_attack_config(config)["*"].extras()
    _, scenarios = load_scenarios(built / "challenge")
    store, job = Store(built / "store"), infer_jobs(scenarios["sst2_inf"], [], extras)[0]
    arrays = store.get_arrays(job.key)
    r = scenarios["sst2_inf"].records.size
    if extras.queries is not None:
        assert arrays["query_logits"].shape == (r, extras.queries.n_queries, 2)
    assert ("grad_norm" in arrays) == extras.grad_norm
