import numpy as np
import pytest
from scipy import stats

from farm.audit import audit_epsilon, choose_threshold, clopper_pearson_upper, epsilon_lower_bound


def test_perfect_test_on_100_and_100_points_by_hand():
    """0 FP of 100 non-members, 0 FN of 100 members, delta = 0, 95% joint confidence (alpha/2 = 0.025 each).

    Clopper-Pearson upper bound for k = 0 of n: 1 - (alpha/2)^(1/n) = 1 - 0.025^(1/100)
      = 1 - exp(ln(0.025) / 100) = 1 - exp(-3.688879 / 100) = 1 - 0.963783 = 0.036217 (both rates).
    eps_lb = log((1 - 0 - 0.036217) / 0.036217) = log(26.6115) = 3.28135.
    """
    u = 1 - 0.025 ** (1 / 100)
    assert u == pytest.approx(0.036217, abs=1e-6)
    assert float(epsilon_lower_bound(0, 100, 0, 100, delta=0.0)) == pytest.approx(3.28135, abs=1e-5)


def test_half_tpr_at_zero_fpr_by_hand():
    """0 FP of 1000 non-members, 500 FN of 1000 members (TPR 0.5 at FPR 0), delta = 1e-5.

    FPR_hi = 1 - 0.025^(1/1000) = 1 - exp(-0.00368888) = 0.0036821.
    FNR_hi = Beta(501, 500) quantile at 0.975 = 0.531451 (normal approximation 0.5 + 1.96 * sqrt(.25/1000) = 0.531).
    term 1 = log((1 - 1e-5 - 0.0036821) / 0.531451) = log(1.87462) = 0.62845
    term 2 = log((1 - 1e-5 - 0.531451) / 0.0036821) = log(127.253) = 4.84614  -> eps_lb = 4.84614.
    """
    assert float(clopper_pearson_upper(500, 1000, 0.025)) == pytest.approx(0.531451, abs=1e-6)
    assert float(clopper_pearson_upper(0, 1000, 0.025)) == pytest.approx(0.0036821, abs=1e-7)
    assert float(epsilon_lower_bound(0, 1000, 500, 1000, delta=1e-5)) == pytest.approx(4.84614, abs=1e-5)


def test_chance_level_and_hopeless_cases_give_zero():
    """FPR = FNR = 0.5: both terms are log((1 - delta - ~0.6) / ~0.6) < 0, so the bound clips to 0. An
    all-wrong test (FP = n, FN = n) has upper bounds 1 and non-positive numerators: both terms dropped, 0."""
    assert float(epsilon_lower_bound(50, 100, 50, 100, delta=1e-5)) == 0.0
    assert float(epsilon_lower_bound(100, 100, 100, 100, delta=1e-5)) == 0.0


def test_clopper_pearson_matches_beta_quantile_and_limits():
    assert float(clopper_pearson_upper(3, 40, 0.05)) == pytest.approx(stats.beta.ppf(0.95, 4, 37))
    assert float(clopper_pearson_upper(40, 40, 0.05)) == 1.0
    with pytest.raises(ValueError):
        clopper_pearson_upper(5, 4, 0.05)


def test_threshold_is_chosen_on_train_and_counted_on_test():
    """Train: members score 1..10, non-members 0 -> the best threshold separates them (>= 1). Test: with that
    threshold 2 of 10 non-members score >= 1 (FP = 2) and 1 of 10 members scores < 1 (FN = 1)."""
    y_tr = np.r_[np.ones(10), np.zeros(10)].astype(int)
    s_tr = np.r_[np.arange(1, 11), np.zeros(10)].astype(float)
    assert choose_threshold(y_tr, s_tr, delta=1e-5) == 1.0
    y_te = y_tr.copy()
    s_te = np.r_[np.r_[0.5, np.full(9, 2.0)], np.r_[np.full(8, 0.0), 1.0, 3.0]]
    got = audit_epsilon(y_tr, s_tr, y_te, s_te, delta=1e-5)
    assert (got.threshold, got.fp, got.negatives, got.fn, got.positives) == (1.0, 2, 10, 1, 10)
    assert got.fpr_hi == pytest.approx(stats.beta.ppf(0.975, 3, 8))
    assert got.fnr_hi == pytest.approx(stats.beta.ppf(0.975, 2, 9))
    expected = max(np.log((1 - 1e-5 - got.fpr_hi) / got.fnr_hi), np.log((1 - 1e-5 - got.fnr_hi) / got.fpr_hi), 0)
    assert got.epsilon_lb == pytest.approx(expected)
    assert set(got.to_dict()) >= {"epsilon_lb", "threshold", "delta", "confidence"}


def test_stronger_separation_gives_larger_bound():
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 2000)
    weak, strong = (rng.normal(0, 1, y.size) + gap * y for gap in (0.5, 3.0))
    a = audit_epsilon(y[::2], weak[::2], y[1::2], weak[1::2], delta=1e-5).epsilon_lb
    b = audit_epsilon(y[::2], strong[::2], y[1::2], strong[1::2], delta=1e-5).epsilon_lb
    assert 0 <= a < b
