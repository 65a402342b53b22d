import numpy as np
import pytest

from farm.errors import SpecError
from farm.shadows.plans import (
    PlanSpec,
    all_but,
    keep_row,
    per_target_shadows,
    pool_shadows,
    union_of_challenges,
)


def test_pool_is_balanced_and_extendable():
    rng = np.random.default_rng(0)
    union = union_of_challenges([rng.choice(1000, 40, replace=False) for _ in range(10)])
    small = pool_shadows(1000, union, PlanSpec(kind="pool", shadows=4, group=2))
    big = pool_shadows(1000, union, PlanSpec(kind="pool", shadows=8, group=2))
    keep = np.stack([keep_row(s.indices, union) for s in big])
    assert (keep.sum(0) == 4).all()  # every challenge point OUT in exactly K / group shadows
    for a, b in zip(small, big[:4]):  # adding shadows leaves existing ones unchanged
        assert a.name == b.name and np.array_equal(a.indices, b.indices)
    others = np.setdiff1d(np.arange(1000), union)
    assert all(np.isin(others, s.indices).all() for s in big)  # everything outside U stays IN
    assert all(
        s.indices.size == 1000 - union.size // 2
        or abs(s.indices.size - (1000 - union.size / 2)) <= 1
        for s in big
    )


@pytest.mark.parametrize("n, size", [(0, 0), (1, 0), (1, 1), (50, 80), (1000, 300)])
def test_all_but_is_setdiff1d(n, size):
    out = np.random.default_rng(n + size).integers(0, max(n, 1), size) if n else np.zeros(0, int)
    got, want = all_but(n, out), np.setdiff1d(np.arange(n), out)  # unsorted, with repeats
    assert got.dtype == want.dtype and np.array_equal(got, want)


@pytest.mark.parametrize("out", [[-1], [5], [0, 7]])
def test_all_but_refuses_indices_outside_the_population(out):
    with pytest.raises(ValueError, match="outside"):
        all_but(5, np.array(out))


def test_pool_group_of_four():
    union = np.arange(0, 200, 2)
    shadows = pool_shadows(300, union, PlanSpec(kind="pool", shadows=8, group=4))
    keep = np.stack([keep_row(s.indices, union) for s in shadows])
    assert ((8 - keep.sum(0)) == 2).all()


def test_per_target_rest():
    shadows = per_target_shadows(10, {3: np.array([1, 2]), 1: np.array([5])})
    assert [s.target for s in shadows] == [1, 3]
    assert shadows[1].indices.tolist() == [0, 3, 4, 5, 6, 7, 8, 9]


@pytest.mark.parametrize(
    "kwargs",
    [dict(kind="bogus"), dict(kind="pool", shadows=3, group=2), dict(kind="pool", shadows=0)],
)
def test_bad_plans(kwargs):
    with pytest.raises(SpecError):
        PlanSpec(**kwargs)
