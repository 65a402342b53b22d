"""The defence comparison benchmark runs end to end on a test-sized config (plain, SISA unlearning,
PATE) and writes its table, JSON and PNG; its held-out rows follow farm.training.data's subset
rule."""

import json

import numpy as np
import pytest


def test_defences_benchmark_smoke(local_ray, tmp_path):
    from benchmarks.defences import main

    rows = main(
        [
            "--config",
            "tests/data/tiny-defences.yaml",
            "--out",
            str(tmp_path),
            "--settings",
            "plain,sisa_s2_r1_forget,pate_t3",
            "--forget",
            "3",
        ]
    )
    by = {r["setting"]: r for r in rows}
    assert list(by) == ["plain", "sisa_s2_r1_forget", "pate_t3"]
    assert all(0 <= r["test_acc"] <= 1 and 0 <= r["_tpr"] <= 1 and r["train_s"] > 0 for r in rows)
    assert (
        by["plain"]["dev TPR@0.1FPR"].endswith("[n<5 models]") and by["plain"]["eps"] == "inf"
    )  # no DP
    assert by["plain"]["TPR@0.1FPR dev+final [95%]"].endswith(
        "[n<5 models]"
    )  # too few models for intervals
    assert float(by["pate_t3"]["eps"].split()[0]) > 0 and "adjacency" in by["pate_t3"]["eps"]
    assert (
        by["sisa_s2_r1_forget"]["unlearn"].endswith(" s")
        and "/8 jobs" in by["sisa_s2_r1_forget"]["unlearn"]
    )
    assert (
        by["sisa_s2_r1_forget"]["forgetting"].startswith("kept ") and by["plain"]["unlearn"] == "-"
    )
    assert (tmp_path / "defences.png").read_bytes()[:4] == b"\x89PNG"
    assert len(json.loads((tmp_path / "defences.json").read_text())) == 3
    assert "| setting | test_acc |" in (tmp_path / "defences.md").read_text()


def test_held_out_rows_follow_the_subset_rule():
    from benchmarks.defences import _epsilon, _subset_rows
    from farm.spec.population import Subset
    from farm.training.data import _subset

    kept = _subset(50, Subset(n=7, seed=3, offset=5))
    assert sorted(_subset_rows({"subset": {"n": 7, "seed": 3, "offset": 5}}, 50).tolist()) == (
        kept.tolist()
    )
    assert _epsilon({"epsilon": "inf", "label_dp": "label-DP", "label_epsilon": 1.0}).startswith(
        "1 (label DP"
    )
    assert _epsilon({"epsilon": "inf"}) == "inf"
    assert _epsilon({"epsilon": 4.0, "delta": 1e-5}) == "4 (assumptions not recorded)"
    record = {
        "epsilon": 4.0,
        "delta": 1e-5,
        "assumes": "prv accountant, Poisson sampling, add/remove adjacency",
    }
    assert _epsilon(record) == "4 (prv accountant, Poisson sampling, add/remove adjacency)"


def test_headline_is_the_mean_of_dev_and_final_with_a_joint_interval(tmp_path):
    import pandas as pd

    from benchmarks.defences import headline
    from farm.mico.scorer import score

    rng = np.random.default_rng(0)
    rows = []
    for phase in ("train", "dev", "final"):
        for model in range(6):
            y = rng.integers(0, 2, 40)
            s = rng.normal(size=40) + 1.5 * y
            rows += [
                {
                    "scenario": "plain",
                    "phase": phase,
                    "model": model,
                    "record": i,
                    "score": s[i],
                    "label": y[i] if phase != "train" or model else None,
                }
                for i in range(40)
            ]
    frame = pd.DataFrame(rows).astype({"label": "Int64"})
    frame.to_parquet(tmp_path / "scores.parquet")
    got = headline(tmp_path / "scores.parquet", "plain", n_boot=100)
    want = np.mean(
        [
            score(g.label.to_numpy(int), g.score.to_numpy())["TPR_FPR_1000"]
            for p, g in frame.groupby("phase")
            if p != "train"
        ]
    )
    assert got.value == pytest.approx(want) and got.lo <= got.value <= got.hi and got.lo < got.hi
