"""The gradient-norm / inference speed benchmark runs end to end in a tiny mode (seconds), and its
methods agree."""

import numpy as np
import pytest

pytest.importorskip("torch")


def test_grad_norm_speed_benchmark_tiny(tmp_path):
    from benchmarks.grad_norm_speed import main

    rng = np.random.default_rng(0)
    words = "a fine film the plot is dull and slow but acting great not bad at all".split()
    lines = ["sentence\tlabel"] + [
        " ".join(rng.choice(words, rng.integers(2, 12))) + f"\t{i % 2}" for i in range(40)
    ]
    (tmp_path / "train.tsv").write_text("\n".join(lines) + "\n")
    rows = main(
        [
            "--data", str(tmp_path), "--records", "12", "--loop-records", "4",
            "--infer-records", "20", "--infer-batch", "8", "--sizes", "16x1",
            "--vocab-size", "300", "--rounds", "2", "--threads", "1",
        ]
    )  # fmt: skip
    assert len(rows) == 6
    assert all(r["rec/s"] > 0 for r in rows)
    grad = [r for r in rows if r["what"].startswith("grad norm")]
    assert all(r["max diff"] < 1e-4 for r in grad)
    assert rows[-1]["max diff"] < 1e-4  # dynamic padding's logits are the padded ones
