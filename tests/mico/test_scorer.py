import numpy as np
import pytest
from sklearn.metrics import auc as sk_auc
from sklearn.metrics import roc_curve as sk_roc_curve

from farm.mico.scorer import FPR_BOUNDS, pooled_scores, roc_curve, score


def mico_reference(solutions, predictions):
    """The MICO scoring program, written directly against scikit-learn."""
    fpr, tpr, _ = sk_roc_curve(solutions, predictions)
    out = {key: float(max(tpr[fpr < bound])) for key, bound in FPR_BOUNDS.items()}
    out["AUC"] = float(sk_auc(fpr, tpr))
    out["MIA"] = float(np.max(tpr - fpr))
    out["accuracy"] = float(np.max(1 - (fpr + (1 - tpr)) / 2))
    return out


@pytest.mark.parametrize("seed", range(25))
def test_score_matches_sklearn_with_ties(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(20, 3000))
    y = rng.integers(0, 2, size=n)
    y[0], y[1] = 0, 1
    levels = int(rng.integers(2, 40))  # few distinct values: many ties
    s = rng.integers(0, levels, size=n) / levels + 0.3 * y * rng.random(n)
    s = np.round(s, int(rng.integers(1, 3)))
    ours, ref = score(y, s), mico_reference(y, s)
    assert ours.keys() == ref.keys()
    for key in ref:
        assert ours[key] == pytest.approx(ref[key], abs=1e-12), key
    fpr, tpr, thr = roc_curve(y, s)
    sk_fpr, sk_tpr, sk_thr = sk_roc_curve(y, s)
    assert (
        np.array_equal(fpr, sk_fpr) and np.array_equal(tpr, sk_tpr) and np.array_equal(thr, sk_thr)
    )


def test_strict_fpr_bound():
    # 10 negatives, 10 positives. At threshold 0.5, FPR is exactly 0.1 and TPR 1: not counted
    # (strict).
    y = np.array([1] * 10 + [0] * 10)
    s = np.array([0.5] * 10 + [0.5] + [0.0] * 9)
    assert score(y, s)["TPR_FPR_1000"] == 0.0
    assert score(y, s)["TPR_FPR_1500"] == 1.0


def test_ties_share_a_threshold():
    y = np.array([1, 0, 1, 0])
    s = np.array([1.0, 1.0, 0.0, 0.0])
    fpr, tpr, _ = roc_curve(y, s)
    assert fpr.tolist() == [0.0, 0.5, 1.0] and tpr.tolist() == [0.0, 0.5, 1.0]


def test_perfect_and_reversed():
    y = np.array([0, 0, 1, 1])
    assert score(y, np.array([0.1, 0.2, 0.8, 0.9]))["TPR_FPR_10"] == 1.0
    assert score(y, np.array([0.9, 0.8, 0.2, 0.1]))["AUC"] == 0.0


def test_rejects_bad_input():
    with pytest.raises(ValueError, match="both"):
        score(np.ones(4), np.arange(4.0))
    with pytest.raises(ValueError, match="finite"):
        score(np.array([0, 1]), np.array([np.nan, 1.0]))


def test_pooled_scores_nan_rule_is_the_submissions():
    from farm.challenge.submission import normalize

    parts = [np.array([0.2, np.nan, 3.0]), np.array([np.inf, -1.0, -np.inf, 0.2])]
    pooled = pooled_scores(parts)
    # min-max over finite values [-1, 3]; NaN is uninformative (0.5); +inf -> 1 and -inf -> 0
    np.testing.assert_array_equal(pooled, [0.3, 0.5, 1.0, 1.0, 0.0, 0.0, 0.3])
    group = normalize(
        {("s", "dev", 0): parts[0], ("s", "dev", 1): parts[1]}
    )  # one (scenario, phase) group
    np.testing.assert_array_equal(
        pooled, np.concatenate([group["s", "dev", 0], group["s", "dev", 1]])
    )
    assert pooled_scores([np.array([2.0, np.nan]), np.array([2.0])]).tolist() == [
        0.5,
        0.5,
        0.5,
    ]  # constant
    assert pooled_scores([np.array([np.nan, np.nan])]).tolist() == [0.5, 0.5]
    assert pooled_scores([]).shape == (0,)
