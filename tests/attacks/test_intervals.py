import numpy as np
import pytest

from farm.attacks.intervals import bootstrap_by_model, counts, paired_bootstrap
from farm.mico.scorer import score


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
    """The plain resample (concatenate the picked models, score the pool): the reference for the
    weighted one."""
    from farm.mico.scorer import score

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
    from farm.attacks.intervals import _replicates
    from farm.mico.scorer import FPR_BOUNDS

    rng = np.random.default_rng(seed)
    models = int(rng.integers(1, 9))
    y = [rng.integers(0, 2, int(rng.integers(1, 40))) for _ in range(models)]
    s = [np.round(rng.normal(size=a.size) + a, 1) for a in y]  # heavy ties, across models too
    keys = [*FPR_BOUNDS, "AUC", "MIA", "accuracy"]
    got = _replicates(y, s, keys, 50, np.random.default_rng([seed, 1]))
    expected = _concatenating_replicates(y, s, keys, 50, np.random.default_rng([seed, 1]))
    np.testing.assert_array_equal(got, expected)


def _paired_phase(rng, n_models, points=100, gain_a=1.6, gain_b=1.0):
    """Models with a shared per-model difficulty (an offset of the members' scores): A and B see the
    same models, A separates members better."""
    y = [rng.integers(0, 2, points) for _ in range(n_models)]
    hard = rng.normal(0, 0.7, n_models)
    a = [rng.normal(size=points) + (gain_a + h) * v for v, h in zip(y, hard)]
    b = [rng.normal(size=points) + (gain_b + h) * v for v, h in zip(y, hard)]
    return y, a, b


def test_paired_bootstrap_of_an_attack_against_itself_is_exactly_one():
    """Known answer: the same scores (up to a monotone map) on the same targets differ by nothing,
    so every paired replicate has ratio 1 (an unpaired bootstrap would spread around 1)."""
    y, a, _ = _paired_phase(np.random.default_rng(1), 12)
    got = paired_bootstrap({"dev": (y, a, [3 * s + 1 for s in a]), "final": (y, a, a)}, n_boot=200)
    assert (got.ratio.value, got.ratio.lo, got.ratio.hi) == (1.0, 1.0, 1.0)
    assert (got.diff.lo, got.diff.hi) == (0.0, 0.0) and got.verdict() == "within noise"
    marginal = bootstrap_by_model(y, a, n_boot=200)["TPR_FPR_1000"]
    assert marginal.hi - marginal.lo > 0.05  # the targets alone vary this much


def test_paired_bootstrap_headline_is_the_mean_of_per_phase_figures():
    rng = np.random.default_rng(2)
    phases = {"dev": _paired_phase(rng, 6), "final": _paired_phase(rng, 7)}
    got = paired_bootstrap(phases, n_boot=100)
    want = {
        p: tuple(score(np.concatenate(y), np.concatenate(s))["TPR_FPR_1000"] for s in (a, b))
        for p, (y, a, b) in phases.items()
    }
    assert got.per_phase == want and got.models == {"dev": 6, "final": 7}
    assert got.a == np.mean([v[0] for v in want.values()]) and got.b == np.mean(
        [v[1] for v in want.values()]
    )
    assert got.ratio.value == got.a / got.b and got.diff.value == got.a - got.b
    assert got.ratio.lo <= got.ratio.value <= got.ratio.hi and got.verdict() == "better"
    few = paired_bootstrap(
        {"dev": _paired_phase(rng, 4), "final": _paired_phase(rng, 9)}, n_boot=50
    )
    assert not few.ratio.known and not few.diff.known and few.within_noise


def test_paired_ratio_interval_covers_the_true_ratio_at_about_95_percent():
    """Coverage on a synthetic population whose ratio is known (computed on 3,000 models): 80
    experiments of 2 phases x 12 models; a 95% interval should cover the truth in about 95% of them
    (binomial: >= 85%)."""
    rng = np.random.default_rng(3)
    truth_y, truth_a, truth_b = _paired_phase(rng, 3000)
    y = np.concatenate(truth_y)
    true_ratio = (
        score(y, np.concatenate(truth_a))["TPR_FPR_1000"]
        / score(y, np.concatenate(truth_b))["TPR_FPR_1000"]
    )
    covered = 0
    for i in range(80):
        phases = {"dev": _paired_phase(rng, 12), "final": _paired_phase(rng, 12)}
        got = paired_bootstrap(phases, n_boot=200, seed=i)
        covered += got.ratio.lo <= true_ratio <= got.ratio.hi
    assert 1.3 < true_ratio < 2.5 and covered >= 68, (true_ratio, covered)


def test_headline_bootstrap_is_the_paired_bootstraps_a_side():
    from farm.attacks.intervals import headline_bootstrap

    rng = np.random.default_rng(4)
    phases = {"dev": _paired_phase(rng, 8), "final": _paired_phase(rng, 8)}
    got = headline_bootstrap({p: (y, a) for p, (y, a, _) in phases.items()}, n_boot=100)
    paired = paired_bootstrap(phases, n_boot=100)
    assert got.value == paired.a and got.lo <= got.value <= got.hi and got.lo < got.hi
    few = headline_bootstrap({"dev": (phases["dev"][0][:3], phases["dev"][1][:3])}, n_boot=100)
    assert not few.known


def test_the_record_bootstrap_is_the_model_bootstrap_with_each_record_a_unit():
    from farm.attacks.intervals import bootstrap_by_model, bootstrap_by_record

    rng = np.random.default_rng(5)
    y, s = rng.integers(0, 2, 80), rng.normal(size=80)
    by_record = bootstrap_by_record(y, s, n_boot=100)
    assert by_record == bootstrap_by_model(list(y[:, None]), list(s[:, None]), n_boot=100)
    assert by_record["AUC"].known and not bootstrap_by_record(y[:4], s[:4])["AUC"].known
