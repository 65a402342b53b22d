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


def test_counts_and_errors():
    labels, scores = _models(n_models=3, points=10)
    assert counts(labels) == {"models": 3, "members": 15, "non_members": 15}
    with pytest.raises(ValueError):
        bootstrap_by_model(labels, scores[:2])
