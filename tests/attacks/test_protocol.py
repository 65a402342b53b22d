"""The comparison protocol: choices read only the labelled models' leave-one-out scores; comparisons
are paired and pinned on a fixed fixture (a numeric regression for the figures the benchmarks
print)."""

import dataclasses

import numpy as np
import pytest

from farm.attacks.protocol import Scored, choose, compare, ratio_cell


def _candidate(name, gain, *, trainings=0, seed=0, models=6, points=60, k=0):
    rng = np.random.default_rng(seed)
    labels, scores = {}, {}
    for j, phase in enumerate(("train", "dev", "final")):
        y = [np.random.default_rng([j, m]).integers(0, 2, points) for m in range(models)]
        labels[phase] = y
        scores[phase] = [rng.normal(size=points) + gain * v for v in y]
    return Scored(name=name, k=k, trainings=trainings, labels=labels, scores=scores)


def test_choose_reads_only_the_labelled_models():
    weak, strong = _candidate("weak", 0.5, seed=1), _candidate("strong", 2.0, seed=2)
    assert choose([weak, strong]).name == "strong"
    # dev/final answers that favour the weak one change nothing: the choice never reads them
    flipped = dataclasses.replace(
        weak,
        scores={
            **weak.scores,
            "dev": [10.0 * y for y in weak.labels["dev"]],
            "final": [10.0 * y for y in weak.labels["final"]],
        },
    )
    assert flipped.headline() > strong.headline() and choose([flipped, strong]).name == "strong"


def test_choose_respects_the_budget_and_breaks_ties_by_cost():
    cheap, costly = (
        _candidate("cheap", 1.0, seed=3, trainings=4),
        _candidate("costly", 3.0, seed=4, trainings=40),
    )
    assert choose([cheap, costly], budget=16).name == "cheap"
    twin = dataclasses.replace(cheap, name="twin", trainings=2)
    assert choose([cheap, twin]).name == "twin"
    with pytest.raises(ValueError, match="budget"):
        choose([costly], budget=1)


def test_compare_is_pinned_on_a_fixed_fixture():
    """A numeric regression: these are the figures a benchmark row prints for this fixture."""
    a, b = _candidate("a", 1.5, seed=5, trainings=8), _candidate("b", 1.0, seed=6)
    got = compare(a, b, n_boot=200)
    assert got.models == {"dev": 6, "final": 6}
    assert got.per_phase == {"dev": (103 / 178, 71 / 178), "final": (139 / 192, 81 / 192)}
    assert (got.a, got.b) == pytest.approx((a.headline(), b.headline()))
    assert ratio_cell(got) == "1.59x [1.15, 2.32] better"
    assert ratio_cell(compare(a, a, n_boot=50)) == "1.00x [1.00, 1.00] within noise"


def test_compare_refuses_different_targets_and_prints_no_interval_below_five_models():
    a, other = _candidate("a", 1.0, seed=7), _candidate("other", 1.0, seed=8, points=50)
    with pytest.raises(ValueError, match="same models"):
        compare(a, other)
    few_a, few_b = _candidate("a", 2.0, seed=9, models=4), _candidate("b", 1.0, seed=10, models=4)
    assert ratio_cell(compare(few_a, few_b)).endswith("[n<5 models] within noise")
