import math

import numpy as np
import pytest
from scipy import stats

from farm.attacks.audit import (
    audit_epsilon,
    choose_threshold,
    clopper_pearson_upper,
    epsilon_lower_bound,
)


def test_perfect_test_on_100_and_100_points_by_hand():
    """0 FP of 100 non-members, 0 FN of 100 members, delta = 0, 95% joint confidence (alpha/2 =
    0.025 each).

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
    FNR_hi = Beta(501, 500) quantile at 0.975 = 0.531451 (normal approximation 0.5 + 1.96 *
    sqrt(.25/1000) = 0.531). term 1 = log((1 - 1e-5 - 0.0036821) / 0.531451) = log(1.87462) =
    0.62845 term 2 = log((1 - 1e-5 - 0.531451) / 0.0036821) = log(127.253) = 4.84614  -> eps_lb =
    4.84614.
    """
    assert float(clopper_pearson_upper(500, 1000, 0.025)) == pytest.approx(0.531451, abs=1e-6)
    assert float(clopper_pearson_upper(0, 1000, 0.025)) == pytest.approx(0.0036821, abs=1e-7)
    assert float(epsilon_lower_bound(0, 1000, 500, 1000, delta=1e-5)) == pytest.approx(
        4.84614, abs=1e-5
    )


def test_chance_level_and_hopeless_cases_give_zero():
    """FPR = FNR = 0.5: both terms are log((1 - delta - ~0.6) / ~0.6) < 0, so the bound clips to 0.
    An all-wrong test (FP = n, FN = n) has upper bounds 1 and non-positive numerators: both terms
    dropped, 0."""
    assert float(epsilon_lower_bound(50, 100, 50, 100, delta=1e-5)) == 0.0
    assert float(epsilon_lower_bound(100, 100, 100, 100, delta=1e-5)) == 0.0


def test_clopper_pearson_matches_beta_quantile_and_limits():
    assert float(clopper_pearson_upper(3, 40, 0.05)) == pytest.approx(stats.beta.ppf(0.95, 4, 37))
    assert float(clopper_pearson_upper(40, 40, 0.05)) == 1.0
    with pytest.raises(ValueError):
        clopper_pearson_upper(5, 4, 0.05)


def test_threshold_is_chosen_on_train_and_counted_on_test():
    """Train: members score 1..10, non-members 0 -> the best threshold separates them (>= 1). Test:
    with that threshold 2 of 10 non-members score >= 1 (FP = 2) and 1 of 10 members scores < 1 (FN =
    1)."""
    y_tr = np.r_[np.ones(10), np.zeros(10)].astype(int)
    s_tr = np.r_[np.arange(1, 11), np.zeros(10)].astype(float)
    assert choose_threshold(y_tr, s_tr, delta=1e-5) == 1.0
    y_te = y_tr.copy()
    s_te = np.r_[np.r_[0.5, np.full(9, 2.0)], np.r_[np.full(8, 0.0), 1.0, 3.0]]
    got = audit_epsilon(y_tr, s_tr, y_te, s_te, delta=1e-5)
    assert (got.threshold, got.fp, got.negatives, got.fn, got.positives) == (1.0, 2, 10, 1, 10)
    assert got.fpr_hi == pytest.approx(stats.beta.ppf(0.975, 3, 8))
    assert got.fnr_hi == pytest.approx(stats.beta.ppf(0.975, 2, 9))
    expected = max(
        np.log((1 - 1e-5 - got.fpr_hi) / got.fnr_hi),
        np.log((1 - 1e-5 - got.fnr_hi) / got.fpr_hi),
        0,
    )
    assert got.epsilon_lb == pytest.approx(expected)
    assert set(got.to_dict()) >= {"epsilon_lb", "threshold", "delta", "confidence"}


def test_stronger_separation_gives_larger_bound():
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 2000)
    weak, strong = (rng.normal(0, 1, y.size) + gap * y for gap in (0.5, 3.0))
    a = audit_epsilon(y[::2], weak[::2], y[1::2], weak[1::2], delta=1e-5).epsilon_lb
    b = audit_epsilon(y[::2], strong[::2], y[1::2], strong[1::2], delta=1e-5).epsilon_lb
    assert 0 <= a < b


def _one_point_case():
    """2 fit models of 20 points (members 4 or 5, non-members 0 or 1: threshold 4, 0.8 on the fit's
    0..5 scale); 20 held-out models of 4 points. Held-out model k's picked point
    (``pick_index(k, 4)``) is a member for k < 10 and scores 5 except model 0's, which scores 0 (one
    FN); for k >= 10 it is a non-member scoring 0 (no FP). Every other point is scored against its
    label (members 0, non-members 5): counting any of them would change the counts."""
    from types import SimpleNamespace

    from farm.attacks.audit import pick_index
    from farm.shadows.scenario import ModelId

    fit = [ModelId("s", "train", i) for i in (100, 101)]
    held = [ModelId("s", "dev", k) for k in range(20)]
    solutions = {fit[0]: np.tile([1, 0], 10), fit[1]: np.tile([0, 1], 10)}
    bump = np.arange(20) % 4 // 2  # members 4, 5; non-members 0, 1
    raw = {m: np.where(solutions[m] == 1, 4.0, 0.0) + bump for m in fit}
    for k, m in enumerate(held):
        i = pick_index(k, 4)
        y = np.array([0, 1, 0, 1]) if k < 10 else np.array([1, 0, 1, 0])
        y = np.roll(y, i - int(np.flatnonzero(y == (k < 10))[0]))  # picked point: the wanted label
        solutions[m] = y
        raw[m] = np.where(y == 1, 0.0, 5.0)
        raw[m][i] = (5.0 if k else 0.0) if k < 10 else 0.0
    return SimpleNamespace(solutions=solutions), raw, fit, held


def test_one_point_per_model_bound_by_hand():
    """Trials: 10 non-members with 0 FP, 10 members with 1 FN, delta 1e-5, 95% jointly (alpha/2 =
    0.025 each).

    FPR_hi = 1 - 0.025^(1/10) = 1 - exp(-0.368888) = 0.308497.
    FNR_hi = Beta(2, 9) quantile at 0.975 = 0.445016.
    term 1 = log((1 - 1e-5 - 0.308497) / 0.445016) = log(1.55388) = 0.440742
    term 2 = log((1 - 1e-5 - 0.445016) / 0.308497) = log(1.79897) = 0.587209  -> eps_lb = 0.587209.
    """
    from farm.commands.attack import one_point_audit
    from farm.report.results import TargetPrivacy

    scenario, raw, fit, held = _one_point_case()
    target = TargetPrivacy(None, 1e-5, "test")
    got, why = one_point_audit(scenario, raw, fit, held, target=target, validity="because")
    assert why == "because" and got.threshold == pytest.approx(0.8)
    assert (got.fp, got.negatives, got.fn, got.positives) == (0, 10, 1, 10)  # one trial per model
    assert got.fpr_hi == pytest.approx(0.308497, abs=1e-6)
    assert got.fnr_hi == pytest.approx(0.445016, abs=1e-6)
    assert got.epsilon_lb == pytest.approx(0.587209, abs=1e-6)


def test_one_point_per_model_needs_both_labels_among_the_picks():
    from farm.commands.attack import one_point_audit
    from farm.report.results import TargetPrivacy

    scenario, raw, fit, held = _one_point_case()
    got, why = one_point_audit(
        scenario, raw, fit, held[:10], target=TargetPrivacy(None, 1e-5, "test")
    )
    assert got is None and why == "not computed: the 10 picked points hold no non-member"


def test_pick_depends_on_seed_and_model_id_only():
    from farm.attacks.audit import pick_index

    picks = [pick_index(k, 200) for k in range(100)]
    assert picks == [pick_index(k, 200) for k in range(100)] and len(set(picks)) > 50
    assert [pick_index(k, 200, seed=1) for k in range(100)] != picks
    with pytest.raises(ValueError, match="no challenge point"):
        pick_index(3, 0)


def test_scale_like_fixes_the_scale_on_the_reference():
    from farm.attacks.audit import scale_like

    ref = np.array([1.0, 3.0, np.nan])
    got = scale_like(ref, np.array([2.0, 5.0, -1.0, np.nan, np.inf]))
    np.testing.assert_allclose(got, [0.5, 2.0, -1.0, 0.5, 1.0])
    np.testing.assert_allclose(scale_like(np.ones(3), np.array([0.0, 7.0])), [0.5, 0.5])


def test_substitution_privacy_by_group_privacy():
    """eps 4, delta 1e-5 add/remove -> (8, (1 + e^4) 1e-5) = (8, 55.59815e-5) as substitution."""
    from farm.attacks.audit import substitution_privacy

    eps, delta = substitution_privacy(4.0, 1e-5)
    assert eps == 8.0 and delta == pytest.approx(5.559815e-4, rel=1e-6)
    assert substitution_privacy(10.0, 1e-5)[1] == pytest.approx(0.220275, rel=1e-5)
    assert substitution_privacy(30.0, 1e-5)[1] == 1.0  # vacuous, capped


def test_joint_beta_matches_the_privacy_estimates_readme_example():
    """privacy-estimates' README: TP 487, TN 1, FP 512, FN 0, delta 1e-5, alpha 0.1 two-sided
    (0.05 each side): joint beta eps_lo 0.145, Clopper-Pearson 0.000 (the package's tolerance is
    1e-2)."""
    from farm.attacks.audit import joint_beta_epsilon

    got = joint_beta_epsilon(tp=487, tn=1, fp=512, fn=0, delta=1e-5, confidence=0.95)
    assert got == pytest.approx(0.145, abs=0.01)
    assert float(epsilon_lower_bound(512, 513, 0, 487, delta=1e-5, confidence=0.9)) == 0.0


def test_joint_beta_is_tighter_than_clopper_pearson_and_rarely_above_the_truth():
    from farm.attacks.audit import joint_beta_epsilon

    joint = joint_beta_epsilon(tp=90, tn=90, fp=10, fn=10, delta=1e-5)
    separate = float(epsilon_lower_bound(10, 100, 10, 100, delta=1e-5))
    assert joint > separate > 0
    # an attack exactly on the eps = 1 boundary (pure DP): the 95% bound exceeds 1 rarely
    eps, fnr = 1.0, 0.3
    fpr = (1 - fnr) / math.exp(eps)
    rng = np.random.default_rng(0)
    above = 0
    for _ in range(100):
        fp, fn = rng.binomial(500, fpr), rng.binomial(500, fnr)
        above += joint_beta_epsilon(tp=500 - fn, fn=fn, fp=fp, tn=500 - fp, delta=0) > eps
    assert above / 100 < 0.1
