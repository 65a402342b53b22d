import numpy as np
import pytest

from farm.intervals import bootstrap_by_model, counts
from farm.metrics import score


def _models(n_models=20, points=100, gap=1.0, seed=0):
    rng = np.random.default_rng(seed)
    labels = [rng.permutation(np.repeat([0, 1], points // 2)) for _ in range(n_models)]
    scores = [rng.normal(0, 1, points) + gap * y for y in labels]
    return labels, scores


def test_perfect_attack_gives_one_one():
    labels, _ = _models()
    got = bootstrap_by_model(labels, [y + 0.0 for y in labels], n_boot=50)
    for key in ("TPR_FPR_1000", "TPR_FPR_100", "AUC"):
        assert (got[key].value, got[key].lo, got[key].hi) == (1.0, 1.0, 1.0)


def test_interval_covers_point_estimate_and_is_deterministic():
    labels, scores = _models(gap=1.0)
    a = bootstrap_by_model(labels, scores, n_boot=200, seed=3)
    b = bootstrap_by_model(labels, scores, n_boot=200, seed=3)
    c = bootstrap_by_model(labels, scores, n_boot=200, seed=4)
    assert a == b and a != c
    point = score(np.concatenate(labels), np.concatenate(scores))
    for key, iv in a.items():
        assert iv.value == point[key]
        assert iv.lo <= iv.value <= iv.hi and iv.lo < iv.hi
    assert a["AUC"].to_dict() == {"value": a["AUC"].value, "lo": a["AUC"].lo, "hi": a["AUC"].hi}


def test_more_models_give_narrower_intervals():
    few = bootstrap_by_model(*_models(n_models=5), n_boot=200)
    many = bootstrap_by_model(*_models(n_models=80), n_boot=200)
    width = lambda iv: iv.hi - iv.lo  # noqa: E731
    assert width(many["AUC"]) < width(few["AUC"])


def test_no_interval_from_fewer_than_five_models():
    four = bootstrap_by_model(*_models(n_models=4), n_boot=50)
    five = bootstrap_by_model(*_models(n_models=5), n_boot=50)
    assert all(not iv.known and iv.cell() == "[n<5 models]" for iv in four.values())
    assert all(iv.known and iv.lo <= iv.value <= iv.hi for iv in five.values())


def test_counts_and_errors():
    labels, scores = _models(n_models=3, points=10)
    assert counts(labels) == {"models": 3, "members": 15, "non_members": 15}
    with pytest.raises(ValueError):
        bootstrap_by_model(labels, scores[:2])


def _concatenating_replicates(y, s, keys, n_boot, rng):
    """The plain resample (concatenate the picked models, score the pool): the reference for the weighted one."""
    from farm.metrics import score

    out = []
    for _ in range(10 * n_boot):
        if len(out) == n_boot:
            break
        pick = rng.integers(0, len(y), len(y))
        yy = np.concatenate([y[i] for i in pick])
        if yy.min() == yy.max():
            continue
        got = score(yy, np.concatenate([s[i] for i in pick]))
        out.append([got[k] for k in keys])
    return np.asarray(out, dtype=np.float64).reshape(-1, len(keys))


@pytest.mark.parametrize("seed", range(6))
def test_weighted_resamples_equal_concatenated_ones_exactly(seed):
    from farm.intervals import _replicates
    from farm.metrics import FPR_BOUNDS

    rng = np.random.default_rng(seed)
    models = int(rng.integers(1, 9))
    y = [rng.integers(0, 2, int(rng.integers(1, 40))) for _ in range(models)]
    s = [np.round(rng.normal(size=a.size) + a, 1) for a in y]  # heavy ties, across models too
    keys = [*FPR_BOUNDS, "AUC", "MIA", "accuracy"]
    got = _replicates(y, s, keys, 50, np.random.default_rng([seed, 1]))
    expected = _concatenating_replicates(y, s, keys, 50, np.random.default_rng([seed, 1]))
    np.testing.assert_array_equal(got, expected)
