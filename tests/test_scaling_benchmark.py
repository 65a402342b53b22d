"""The attack-scaling benchmark runs end to end on the test-sized challenge (K in {0, 2}) and writes
its PNG."""


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
            "lira_online,rmia,lira_queries,lira_grad,stacked_wb",
            "--png",
            str(png),
            "--n-boot",
            "50",
        ]
    )
    assert png.read_bytes()[:4] == b"\x89PNG"
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
    import numpy as np

    from benchmarks.scaling import ATTACKS, extras_for, sees, view
    from farm.attacks.signals import Signals
    from farm.shadows.scenario import Extras
    from farm.spec.queries import QueryFamily

    assert {"lira_queries", "lira_grad", "stacked_wb"} <= set(ATTACKS)
    assert sees("stacked") == ("stacked", frozenset()) and sees("lira_grad") == (
        "lira_grad",
        {"grad_norm"},
    )
    assert sees("stacked_wb") == ("stacked", {"query_logits", "grad_norm"})
    assert extras_for(["rmia", "stacked"], None) == Extras()
    assert extras_for(["lira_grad", "lira_queries"], QueryFamily(seed=2)) == Extras(
        QueryFamily(seed=2), True
    )
    full = Signals(
        logits=np.zeros((2, 3, 2)),
        labels=np.zeros(3, np.int64),
        keep=np.zeros((2, 3), np.int8),
        challenge=np.zeros((2, 1), np.int64),
        labelled=np.array([True, True]),
        query_logits=np.zeros((2, 3, 4, 2)),
        grad_norm=np.ones((2, 3)),
    )
    assert (
        view(full, frozenset()).query_logits is None and view(full, frozenset()).grad_norm is None
    )
    assert view(full, frozenset({"grad_norm"})).grad_norm is full.grad_norm
