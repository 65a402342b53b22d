"""The defence comparison benchmark runs end to end on a test-sized config (plain, SISA unlearning, PATE) and writes
its table, JSON and PNG; its held-out rows follow farm.data's subset rule."""

import json

import numpy as np


def test_defences_benchmark_smoke(local_ray, tmp_path):
    from benchmarks.defences import main

    rows = main(["--config", "tests/data/tiny-defences.yaml", "--out", str(tmp_path), "--settings",
                 "plain,sisa_s2_r1_forget,pate_t3", "--forget", "3"])
    by = {r["setting"]: r for r in rows}
    assert list(by) == ["plain", "sisa_s2_r1_forget", "pate_t3"]
    assert all(0 <= r["test_acc"] <= 1 and 0 <= r["_tpr"] <= 1 and r["train_s"] > 0 for r in rows)
    assert "[" in by["plain"]["TPR@0.1FPR"] and by["plain"]["eps"] == "inf"  # an interval; no DP
    assert float(by["pate_t3"]["eps"]) > 0
    assert by["sisa_s2_r1_forget"]["unlearn"].endswith(" s") and "/8 jobs" in by["sisa_s2_r1_forget"]["unlearn"]
    assert by["sisa_s2_r1_forget"]["forgetting"].startswith("kept ") and by["plain"]["unlearn"] == "-"
    assert (tmp_path / "defences.png").read_bytes()[:4] == b"\x89PNG"
    assert len(json.loads((tmp_path / "defences.json").read_text())) == 3
    assert "| setting | test_acc |" in (tmp_path / "defences.md").read_text()


def test_held_out_rows_follow_the_subset_rule():
    from benchmarks.defences import _epsilon, _subset_rows
    from farm.data import _subset

    sentences = [str(i) for i in range(50)]
    kept, _ = _subset(sentences, np.arange(50), {"n": 7, "seed": 3, "offset": 5})
    assert sorted(_subset_rows({"subset": {"n": 7, "seed": 3, "offset": 5}}, 50).tolist()) == [int(s) for s in kept]
    assert _epsilon({"epsilon": "inf", "label_dp": "label-DP", "label_epsilon": 1.0}) == "1 (label)"
    assert (_epsilon({"epsilon": 4.0, "delta": 1e-5}), _epsilon({"epsilon": "inf"})) == ("4", "inf")
