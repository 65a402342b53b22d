"""The attack-scaling benchmark runs end to end on the test-sized challenge (K in {0, 2}) and writes its PNG."""


def test_scaling_benchmark_smoke(tiny_built, tmp_path, local_ray):
    from benchmarks.scaling import main

    out = tiny_built
    png = tmp_path / "scaling.png"
    rows = main(["--challenge", str(out / "challenge"), "--answers", str(out / "answers"), "--store",
                 str(out / "store"), "--config", "tests/data/tiny-attack.yaml", "--ks", "0,2",
                 "--attacks", "lira_online,rmia", "--png", str(png)])
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert {r["attack"] for r in rows} >= {"loss", "winner: in_calibration", "runner-up: reference, 1 per target",
                                            "lira_online", "rmia"}
    assert {r["K"] for r in rows if r["attack"] == "rmia"} == {0, 2}
    assert all(0 <= r["TPR@0.1FPR"] <= 1 and r["points"] > 0 for r in rows)
