import dataclasses

import numpy as np

from farm.jobs import InferJob, Selection, TokenizerJob, TrainJob
from farm.recipes import Recipe


def test_selection_roundtrip_and_size():
    idx = np.sort(np.random.default_rng(0).choice(68_221, 67_349, replace=False))
    sel = Selection.of(68_221, idx[::-1])  # order does not matter: a selection is a set
    assert np.array_equal(sel.indices(), idx)
    assert len(sel.bits) < 12_000


def test_keys_are_content_addressed():
    sel = Selection.of(10, np.array([1, 2, 3]))
    pop = {"source": "synthetic", "n": 10, "seed": 0}
    a = TrainJob(pop, "store:tok", sel, Recipe(seed=1), label="a")
    b = TrainJob(dict(pop), "store:tok", Selection.of(10, np.array([3, 2, 1])), Recipe(seed=1), label="b")
    assert a.key == b.key  # labels are not semantic
    assert a.key != dataclasses.replace(a, recipe=Recipe(seed=2)).key
    assert a.key != dataclasses.replace(a, selection=Selection.of(10, np.array([1, 2]))).key
    assert a.key != dataclasses.replace(a, base="store:other").key
    infer = InferJob(pop, "store:tok", f"store:{a.key}", sel)
    assert infer.key != a.key and len(infer.key) == 64
    assert TokenizerJob(pop).key != TokenizerJob(pop, vocab_size=100).key


def test_key_is_stable_across_processes():
    import subprocess
    import sys

    code = ("from farm.jobs import TokenizerJob; "
            "print(TokenizerJob({'source': 'synthetic', 'n': 10, 'seed': 0}).key)")
    out = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout for _ in range(2)}
    assert len(out) == 1
