"""The attack-scaling benchmark runs end to end on the test-sized challenge (K in {0, 2}) and writes
its PNG."""

import json


def test_scaling_benchmark_smoke(tiny_built, tmp_path, local_ray):
    from benchmarks.scaling import main

    out = tiny_built
    png = tmp_path / "scaling.png"
    rows = main(
        [
            "--challenge",
            str(out / "challenge"),
            "--answers",
            str(out / "answers"),
            "--store",
            str(out / "store"),
            "--config",
            "tests/data/tiny-attack.yaml",
            "--ks",
            "0,2",
            "--attacks",
            "lira_online,rmia,lira_queries,lira_grad,stacked_wb,learned_across",
            "--png",
            str(png),
            "--n-boot",
            "50",
            "--json",
            str(tmp_path / "rows.json"),
        ]
    )
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert json.loads((tmp_path / "rows.json").read_text()) == rows  # what pick_across reads
    table, verdicts = [r for r in rows if "attack" in r], [r for r in rows if "chosen (LOO)" in r]
    assert {r["attack"] for r in table} >= {
        "loss",
        "winner: in_calibration",
        "runner-up: reference, 1 per target",
        "lira_online",
        "rmia",
        "lira_queries",
        "lira_grad",
        "stacked_wb",
    }
    assert {r["K"] for r in table if r["attack"] == "rmia"} == {0, 2}
    assert {r["K"] for r in table if r["attack"] == "lira_grad"} == {0, 2}
    assert all(0 <= r["TPR@0.1FPR"] <= 1 and 0 <= r["LOO train"] <= 1 for r in table)
    winner = [r for r in table if r["attack"] == "winner: in_calibration"]
    assert all(
        r["vs winner (paired)"].startswith("1.00x") for r in winner
    )  # itself, paired: exactly 1
    # one protocol row per scenario: the choice is the best leave-one-out figure among the
    # candidates
    assert len(verdicts) == len({r["scenario"] for r in table})
    for v in verdicts:
        budget = next(
            r["trainings"]
            for r in table
            if r["scenario"] == v["scenario"] and r["attack"].startswith("runner-up")
        )
        candidates = [
            r
            for r in table
            if r["scenario"] == v["scenario"]
            and isinstance(r["K"], int)
            and r["trainings"] <= budget
        ]
        assert v["LOO train"] == max(r["LOO train"] for r in candidates)
        assert {"vs loss", "vs winner", "vs runner-up"} <= set(v)


def test_rows_see_what_they_name():
    import dataclasses

    import numpy as np

    from benchmarks.scaling import ATTACKS, extras_for, pools, sees, shadow_fit
    from farm.attacks.signals import Signals
    from farm.shadows.scenario import Extras
    from farm.spec.queries import QueryFamily

    assert {"lira_queries", "lira_grad", "stacked_wb", "learned_across_wb"} <= set(ATTACKS)
    assert sees("stacked") == ("stacked", {}) and sees("lira_grad") == ("lira_grad", {})
    assert sees("stacked_wb") == ("stacked", {"extra_signals": ("query_logits", "grad_norm")})
    assert extras_for(["rmia", "stacked"], None) == Extras()
    assert extras_for(["lira_grad", "lira_queries"], QueryFamily(seed=2)) == Extras(
        QueryFamily(seed=2), True
    )
    assert extras_for(["stacked_wb"], None) == Extras(QueryFamily(), True)
    # K = 0 once; each K only in the groups it is a multiple of
    assert pools([0, 2, 8], [2, 8]) == [(0, 2), (2, 2), (8, 2), (8, 8)]
    # shadows drawn from the labelled models' own distributions fit them: gaps near 0, sd ratio ~1
    rng = np.random.default_rng(0)
    m, r = 40, 300
    keep = rng.integers(0, 2, size=(m, r)).astype(np.int8)
    margin = np.where(keep == 1, 2.0, 0.0) + rng.normal(size=(m, r))
    signals = Signals(
        logits=np.stack([margin / 2, -margin / 2], -1),
        labels=np.zeros(r, np.int64),
        keep=keep,
        challenge=np.where(np.arange(m)[:, None] < 20, np.arange(10)[None], -1),
        labelled=np.arange(m) < 20,
    )
    fit = shadow_fit(signals)
    assert fit["IN mean gap / (IN-OUT)"] < 0.25 and fit["OUT mean gap / (IN-OUT)"] < 0.25
    assert 0.8 < fit["IN sd ratio"] < 1.25
    # shadows whose IN records look OUT are a whole IN-OUT gap off
    moved = margin - np.where(np.arange(m)[:, None] >= 20, 2.0 * keep, 0.0)
    off = shadow_fit(dataclasses.replace(signals, logits=np.stack([moved / 2, -moved / 2], -1)))
    assert off["IN mean gap / (IN-OUT)"] > 0.8


def _row(attack, k, trainings, loo):
    """A row as ``benchmarks.scaling --json`` writes it (figures other than LOO: dummies)."""
    return {
        "scenario": "s",
        "attack": attack,
        "K": k,
        "trainings": trainings,
        "LOO train": loo,
        "dev [95%]": "0.200 [0.100, 0.300]",
        "final [95%]": "0.200 [0.100, 0.300]",
        "TPR@0.1FPR": 0.2,
        "vs winner (paired)": "1.00x [1.00, 1.00] within noise",
    }


def test_pick_across_takes_the_best_mean_leave_one_out_figure_within_every_budget():
    from benchmarks.pick_across import RUNNER_UP, WINNER, pick_across, report, scenario_rows

    anchors = [_row(WINNER, "none", 0, 0.25), _row(RUNNER_UP, "per-target", 8, 0.125)]

    def run():
        over_budget = _row("stacked", 16, 16, 0.875)  # 16 trainings > the runner-up's 8
        return [*anchors, over_budget]

    a = run() + [_row("rmia", 0, 0, 0.375), _row("stacked", 4, 4, 0.5), _row("lira", 8, 8, 0.25)]
    a.append(_row("only_in_a", 2, 2, 1.0))  # not measured in b: not a candidate
    b = run() + [_row("rmia", 0, 0, 0.25), _row("stacked", 4, 4, 0.0625), _row("lira", 8, 8, 0.5)]
    # means: rmia 0.3125, stacked K=4 0.28125, lira 0.375
    assert pick_across([a, b]) == ("lira", 8)
    c = run() + [_row("rmia", 0, 0, 0.125), _row("stacked", 4, 4, 0.0), _row("lira", 8, 8, 0.25)]
    assert pick_across([a, c]) == ("rmia", 0)  # rmia and lira tie at 0.25: fewer trainings
    out = report({"a": a, "b": b}, ("lira", 8))
    assert [r["beats IN calibration on LOO"] for r in out] == ["no", "yes"]  # 0.25 is not > 0.25
    assert [r["own choice (LOO)"] for r in out] == ["only_in_a, K=2", "lira, K=8"]
    assert out[0]["vs runner-up (paired)"] == "n/a"  # rows written before the column existed
    verdict = {"scenario": "s", "chosen (LOO)": "x"}
    assert scenario_rows([*a, verdict]) == {"s": a}
