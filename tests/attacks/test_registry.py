import numpy as np
import pytest

from farm.attacks.baselines import in_calibration, loss, reference
from farm.attacks.lira import lira
from farm.attacks.references import cross_fit
from farm.attacks.registry import ATTACKS, run_attack
from farm.attacks.rmia import rmia
from farm.attacks.signals import IN, OUT, UNKNOWN, Signals
from farm.mico.scorer import score


def synthetic(seed=0, n_records=400, n_labelled=12, n_shadows=8, n_targets=6, p=20, gap=1.5):
    """Margins = per-record difficulty (wide spread) + gap if IN + noise. Calibration must beat raw
    loss."""
    rng = np.random.default_rng(seed)
    m = n_labelled + n_targets + n_shadows
    difficulty = rng.normal(0, 3, n_records)
    keep = (rng.random((m, n_records)) < 0.5).astype(np.int8)
    challenge = np.full((m, p), -1)
    for i in range(n_labelled + n_targets):
        challenge[i] = rng.choice(n_records, p, replace=False)
        keep[i, challenge[i]] = np.repeat([0, 1], p // 2)[rng.permutation(p)]
    margin = difficulty + gap * keep + rng.normal(0, 0.7, (m, n_records))
    logits = np.stack([margin / 2, -margin / 2], axis=-1)  # label 0 everywhere: margin = z_0 - z_1
    truth = keep.copy()
    keep[n_labelled : n_labelled + n_targets] = UNKNOWN
    labelled = np.zeros(m, bool)
    labelled[:n_labelled] = True
    return (
        Signals(
            logits=logits,
            labels=np.zeros(n_records, np.int64),
            keep=keep,
            challenge=challenge,
            labelled=labelled,
        ),
        truth,
        n_labelled,
        n_targets,
    )


def _auc(signals, truth, targets, scores):
    y = np.stack([truth[t, signals.challenge[t]] for t in targets])
    return score(y, scores)["AUC"]


def test_calibrated_attacks_beat_loss_when_difficulty_dominates():
    s, truth, nl, nt = synthetic()
    targets = np.arange(nl, nl + nt)
    base = _auc(s, truth, targets, loss(s, targets))
    for name in ("in_calibration", "lira_online", "lira_offline", "rmia", "reference"):
        params = {"labelled_only": False} if name == "in_calibration" else {}
        got = _auc(s, truth, targets, run_attack(name, s, targets, **params))
        assert got > base + 0.1, (name, got, base)
    assert _auc(s, truth, targets, lira(s, targets, online=True)) > 0.8


def test_learned_attack_on_unseen_models():
    s, truth, nl, nt = synthetic(seed=1)
    targets = np.arange(nl, nl + nt)
    assert _auc(s, truth, targets, run_attack("learned", s, targets)) > 0.8
    labelled = np.arange(
        nl
    )  # cross-fitted: each labelled target scored by a classifier that never saw it
    assert _auc(s, truth, labelled, run_attack("learned", s, labelled)) > 0.75


def test_in_calibration_by_hand():
    # 3 models, 2 records, label 0. logprob = log sigmoid(margin). Target 0; references 1 and 2.
    margins = np.array([[2.0, -1.0], [1.0, 0.0], [3.0, 1.0]])
    logits = np.stack([margins, np.zeros_like(margins)], axis=-1)
    keep = np.array([[UNKNOWN, UNKNOWN], [IN, OUT], [IN, IN]], dtype=np.int8)
    s = Signals(
        logits=logits,
        labels=np.zeros(2, np.int64),
        keep=keep,
        challenge=np.array([[0, 1], [-1, -1], [-1, -1]]),
        labelled=np.array([0, 1, 1], bool),
    )
    lp = -np.log1p(np.exp(-margins))
    expected = [lp[0, 0] - (lp[1, 0] + lp[2, 0]) / 2, lp[0, 1] - lp[2, 1]]
    np.testing.assert_allclose(in_calibration(s, np.array([0]))[0], expected)
    p = np.exp(lp)
    np.testing.assert_allclose(
        reference(s, np.array([0]))[0], [p[0, 0] - (p[1, 0] + p[2, 0]) / 2, p[0, 1] - p[1, 1]]
    )


def test_a_labelled_target_is_never_its_own_reference():
    s, truth, nl, _ = synthetic(seed=2)
    t = 0
    assert not s.reference_mask(t)[t]
    before = {
        name: run_attack(name, s, np.array([t]))
        for name in ("in_calibration", "lira_online", "rmia")
    }
    # The target's own statistic outside its challenge set (its label's logit raised by 3) enters no
    # reference statistic; RMIA reads it there (its population points z): it moves RMIA only.
    logits = s.logits.copy()
    others = np.setdiff1d(np.arange(logits.shape[1]), s.challenge[t])
    logits[t, others, 0] += 3.0
    moved = Signals(
        logits=logits, labels=s.labels, keep=s.keep, challenge=s.challenge, labelled=s.labelled
    )
    for name in ("in_calibration", "lira_online"):
        np.testing.assert_allclose(run_attack(name, moved, np.array([t])), before[name])
    assert not np.allclose(run_attack("rmia", moved, np.array([t])), before["rmia"])
    # Its own membership (its keep row: answers and the rest) enters nothing.
    keep = s.keep.copy()
    keep[t] = 1 - keep[t]
    flipped = Signals(
        logits=s.logits, labels=s.labels, keep=keep, challenge=s.challenge, labelled=s.labelled
    )
    for name in before:
        np.testing.assert_array_equal(run_attack(name, flipped, np.array([t])), before[name])


@pytest.mark.parametrize(
    "name", ["rmia", "rmia_offline", "rmia_fit", "learned", "stacked", "learned_across"]
)
def test_rmia_score_of_a_target_does_not_change_with_its_own_keep_mask(name):
    """Labelled targets in different cross-fitting groups: flipping a target's whole keep row (its
    answers and its membership elsewhere) leaves its scores bit-identical. rmia_fit held the
    target's group out of the references of the models its grid pair is chosen on; before that, the
    flip moved target 3's scores by up to 0.57. learned / stacked hold the target's group out of
    the references of the features their classifier is fitted on and scores with; before that, the
    flip moved their scores by up to 0.58."""
    s, _, nl, _ = synthetic(seed=2)
    for t in (0, 3, 7):
        before = run_attack(name, s, np.array([t]))
        keep = s.keep.copy()
        keep[t] = 1 - keep[t]
        flipped = Signals(
            logits=s.logits, labels=s.labels, keep=keep, challenge=s.challenge, labelled=s.labelled
        )
        after = run_attack(name, flipped, np.array([t]))
        np.testing.assert_array_equal(after, before)


def test_rmia_without_population_points_is_an_error():
    """Every record is one of the target's challenge points: no z to compare with (it used to
    score 0 everywhere)."""
    s = _prob_signals([0.9, 0.6], [[0.7, 0.6], [0.95, 0.9]], [[UNKNOWN] * 2, [OUT] * 2, [IN] * 2])
    with pytest.raises(ValueError, match="rmia: model 0 has no population point"):
        rmia(s, np.array([0]))
    s4 = _prob_signals([0.9, 0.6, 0.8, 0.5], [[0.7, 0.6, 0.8, 0.4]], [[UNKNOWN] * 4, [OUT] * 4])
    with pytest.raises(ValueError, match="max_population must be >= 1"):
        rmia(s4, np.array([0]), max_population=0)


def test_rmia_is_a_rank_in_zero_one():
    s, truth, nl, nt = synthetic(seed=3)
    out = rmia(s, np.arange(nl, nl + nt))
    assert out.shape == (nt, 20) and (out >= 0).all() and (out <= 1).all()


def test_loss_is_minus_cross_entropy():
    s, _, nl, _ = synthetic(seed=4)
    t = nl
    cols = s.challenge[t]
    z = s.logits[t, cols]
    expected = z[:, 0] - np.logaddexp(z[:, 0], z[:, 1])
    np.testing.assert_allclose(loss(s, np.array([t]))[0], expected)


def test_unknown_attack_name():
    s, *_ = synthetic()
    with pytest.raises(KeyError, match="unknown attack"):
        run_attack("nope", s, np.array([0]))
    assert set(ATTACKS) >= {
        "loss",
        "reference",
        "in_calibration",
        "lira_online",
        "lira_offline",
        "rmia",
        "learned",
    }


def test_offline_lira_uses_no_in_references():
    s, truth, nl, nt = synthetic(seed=5)
    targets = np.arange(nl, nl + nt)
    a = lira(s, targets, online=False)
    logits = s.logits.copy()
    logits[s.keep == IN] += 5.0  # IN references change; offline scores must not
    moved = Signals(
        logits=logits, labels=s.labels, keep=s.keep, challenge=s.challenge, labelled=s.labelled
    )
    np.testing.assert_allclose(lira(moved, targets, online=False), a)
    assert OUT == 0


def _with(s, **fields):
    base = dict(
        logits=s.logits,
        labels=s.labels,
        keep=s.keep,
        challenge=s.challenge,
        labelled=s.labelled,
        query_logits=s.query_logits,
        grad_norm=s.grad_norm,
    )
    return Signals(**(base | fields))


def _true_keep(s, truth, targets):
    return np.stack([truth[t, s.challenge[t]] for t in targets])


def test_lira_takes_in_from_labelled_and_out_from_shadows():
    s, truth, nl, nt = synthetic(seed=6)
    targets = np.arange(nl, nl + nt)
    before = run_attack("lira_farm", s, targets)
    shadow = np.zeros(s.keep.shape[0], bool)
    shadow[nl + nt :] = True
    logits = s.logits.copy()
    logits[(s.keep == IN) & shadow[:, None]] += (
        7.0  # shadows' IN side and labelled models' OUT side are unused
    )
    logits[(s.keep == OUT) & s.labelled[:, None]] -= 7.0
    np.testing.assert_allclose(run_attack("lira_farm", _with(s, logits=logits), targets), before)
    assert _auc(s, truth, targets, before) > _auc(s, truth, targets, loss(s, targets)) + 0.1
    with pytest.raises(ValueError, match="source"):
        lira(s, targets, in_from="nope")


def test_per_example_variance_only_where_enough_references():
    s, truth, nl, nt = synthetic(seed=7)
    targets = np.arange(nl, nl + nt)
    fixed = lira(s, targets, fixed_variance=True)
    np.testing.assert_allclose(lira(s, targets, fixed_variance=False, min_count=10**6), fixed)
    assert not np.allclose(lira(s, targets, fixed_variance=False, min_count=2), fixed)


def test_per_example_variance_wins_when_noise_differs_per_record():
    """Half the records are 10x noisier: a per-example Gaussian knows it, a pooled one does not."""
    rng = np.random.default_rng(8)
    m, r, p, nl = 90, 300, 20, 10
    keep = (rng.random((m, r)) < 0.5).astype(np.int8)
    challenge = np.stack([rng.choice(r, p, replace=False) for _ in range(m)])
    scale = np.where(rng.random(r) < 0.5, 0.3, 3.0)
    margin = rng.normal(0, 2, r) + 1.0 * keep + scale * rng.normal(0, 1, (m, r))
    truth = keep.copy()
    keep[nl : 2 * nl] = UNKNOWN
    labelled = np.zeros(m, bool)
    labelled[:nl] = True
    s = Signals(
        logits=np.stack([margin, np.zeros_like(margin)], -1),
        labels=np.zeros(r, np.int64),
        keep=keep,
        challenge=challenge,
        labelled=labelled,
    )
    targets = np.arange(nl, 2 * nl)
    per = _auc(s, truth, targets, lira(s, targets, fixed_variance=False, min_count=8))
    fixed = _auc(s, truth, targets, lira(s, targets, fixed_variance=True))
    assert per > fixed + 0.03, (per, fixed)


def _prob_signals(target, refs, keep):
    """label 0 and logits (log p, log(1 - p)): p(y|x) = p exactly."""
    probs = np.array([target, *refs])
    logits = np.stack([np.log(probs), np.log1p(-probs)], axis=-1)
    challenge = np.array([[0, 1]] + [[-1, -1]] * len(refs))
    return Signals(
        logits=logits,
        labels=np.zeros(probs.shape[1], np.int64),
        keep=np.array(keep, np.int8),
        challenge=challenge,
        labelled=np.array([False] * probs.shape[0]),
    )


def test_rmia_by_hand():
    """Target 0: p on challenge x0, x1 = 0.9, 0.6; population z2, z3 = 0.8, 0.5.
    Reference 1 (all OUT): 0.7, 0.6, 0.8, 0.4. Reference 2 (all IN): 0.95, 0.9, 0.9, 0.9.

    Offline, a = 0.5: p(.) = ((1 + a) p_out + 1 - a) / 2 = 0.75 p_out + 0.25 -> 0.775, 0.7, 0.85,
    0.55; LR = p_target / p(.) -> x0 1.16129, x1 0.857143, z2 0.941176, z3 0.909091.
    gamma 1: x0 beats both z (1.0), x1 neither (0.0). gamma 1.25: x0/z2 = 1.2339 < 1.25, x0/z3 =
    1.2774 -> 0.5. Online: p(.) = (p_in + p_out) / 2 -> 0.825, 0.75, 0.85, 0.65; LR -> 1.0909, 0.8,
    0.941176, 0.769231; gamma 1: x0 -> 1.0; x1: 0.8 / 0.941 < 1, 0.8 / 0.769 = 1.04 > 1 -> 0.5.
    """
    s = _prob_signals(
        [0.9, 0.6, 0.8, 0.5],
        [[0.7, 0.6, 0.8, 0.4], [0.95, 0.9, 0.9, 0.9]],
        [[UNKNOWN] * 4, [OUT] * 4, [IN] * 4],
    )
    t = np.array([0])
    near = dict(rtol=0, atol=1e-6)  # the tie-break moves a score by less than 1e-6 / |Z|
    np.testing.assert_allclose(
        rmia(s, t, online=False, offline_a=0.5, gamma=1.0), [[1.0, 0.0]], **near
    )
    np.testing.assert_allclose(
        rmia(s, t, online=False, offline_a=0.5, gamma=1.25), [[0.5, 0.0]], **near
    )
    np.testing.assert_allclose(rmia(s, t, online=True, gamma=1.0), [[1.0, 0.5]], **near)


def test_rmia_breaks_ties_by_how_far_a_point_got_and_keeps_its_fraction_order():
    """Points that beat equally many z (here: none, or all) keep distinct scores in the order of
    their LR; a point beating more z always scores higher; scores stay in [0, 1]."""
    from farm.attacks.rmia import _tie_broken

    lr_z = np.array([0.0, 1.0, 2.0])
    v = np.array([-5.0, -1.0, -0.5, 0.5, 0.9, 1.5, 2.5, 9.0])
    out = _tie_broken(v, lr_z)
    assert (np.diff(out) > 0).all() and out.min() >= 0 and out.max() <= 1
    counts = np.searchsorted(lr_z, v, side="left")
    np.testing.assert_allclose(out, counts / 3, rtol=0, atol=1e-6)
    same = _tie_broken(np.array([3.0, 3.0]), lr_z)
    assert same[0] == same[1]  # equal LRs still tie
    infinite = _tie_broken(np.array([-np.inf, 0.5, np.inf]), np.array([-np.inf, 0.0, np.inf]))
    assert np.isfinite(infinite).all() and (np.diff(infinite) >= 0).all()


def test_rmia_refuses_a_gamma_that_is_not_positive():
    s, _, nl, nt = synthetic(seed=6)
    with pytest.raises(ValueError, match="gamma must be > 0"):
        rmia(s, np.arange(nl, nl + nt), gamma=[1.0, 0.0])


def test_rmia_with_gamma_above_one_on_a_confident_model_is_not_one_big_tie():
    """gamma = 2 where LR(x) / LR(z) > 2 almost never holds: RMIA's fraction is 0 for nearly every
    point; with the tie-break the members still rank above the non-members (issue 21)."""
    s, truth, nl, nt = synthetic(seed=5)
    targets = np.arange(nl, nl + nt)
    out = rmia(s, targets, gamma=1e6)
    assert (out < 1e-6).all()  # every fraction 0: no z is beaten by a factor 1e6
    assert np.unique(out).size > 0.9 * out.size
    assert _auc(s, truth, targets, out) > 0.7


def test_rmia_score_of_a_target_does_not_depend_on_the_other_targets():
    s, truth, nl, nt = synthetic(seed=9)
    targets = np.arange(nl + nt)
    for params in (
        {"max_population": 50},
        {"max_population": 50, "offline_a": (0.2, 0.8), "gamma": (1.0, 2.0)},
    ):
        together = rmia(s, targets, **params)
        for i in (0, nl, nl + nt - 1):
            np.testing.assert_array_equal(rmia(s, targets[i : i + 1], **params)[0], together[i])


def test_rmia_fitted_on_labelled_models_is_cross_fitted_and_strong():
    s, truth, nl, nt = synthetic(seed=10)
    targets = np.arange(nl, nl + nt)
    fitted = run_attack("rmia_fit", s, targets)
    assert fitted.shape == (nt, 20) and (fitted >= 0).all() and (fitted <= 1).all()
    assert _auc(s, truth, targets, fitted) > _auc(s, truth, targets, loss(s, targets)) + 0.1
    np.testing.assert_array_equal(rmia(s, targets, offline_a=[0.3], gamma=[1.0]), rmia(s, targets))
    labelled = np.arange(nl)
    assert _auc(s, truth, labelled, run_attack("rmia_fit", s, labelled)) > 0.75


def test_cross_fit_never_fits_on_a_labelled_target():
    s, _, nl, nt = synthetic(seed=11)
    targets = np.arange(nl + nt)
    fits = cross_fit(s, targets, folds=4, seed=0)
    assert sorted(r for _, rows in fits for r in rows) == list(range(nl + nt))
    for fit, rows in fits:
        assert not set(targets[rows]) & set(fit)
        assert set(fit) <= set(range(nl))
    assert any(len(fit) == nl for fit, _ in fits)  # unlabelled targets use every labelled model


def _queries(s, truth, q, seed=0, noise=1.5):
    """Each query of a record sees the same membership signal plus its own noise."""
    rng = np.random.default_rng(seed)
    base = s.logits[..., 0] - s.logits[..., 1]
    margins = base[..., None] + rng.normal(0, noise, base.shape + (q,))
    return np.stack([margins / 2, -margins / 2], axis=-1)


def test_several_queries_combine_like_lira_augmentations():
    s, truth, nl, nt = synthetic(seed=12)
    targets = np.arange(nl, nl + nt)
    one = _with(s, query_logits=s.logits[:, :, None, :])
    np.testing.assert_allclose(run_attack("lira_queries", one, targets), lira(s, targets))
    many = _with(s, query_logits=_queries(s, truth, 8))
    single = _with(s, query_logits=many.query_logits[:, :, :1])
    auc_many = _auc(s, truth, targets, run_attack("lira_queries", many, targets))
    auc_single = _auc(s, truth, targets, run_attack("lira_queries", single, targets))
    assert auc_many > auc_single + 0.03, (auc_many, auc_single)


def test_white_box_gradient_norm_is_a_statistic():
    s, truth, nl, nt = synthetic(seed=13)
    targets = np.arange(nl, nl + nt)
    g = _with(
        s, grad_norm=np.exp(-s.margin)
    )  # -log ||g|| = margin: the white-box attacks mirror the margin ones
    np.testing.assert_allclose(run_attack("lira_grad", g, targets), lira(s, targets))
    np.testing.assert_allclose(
        run_attack("gradient", g, targets), np.stack([s.margin[t, s.challenge[t]] for t in targets])
    )
    with pytest.raises(ValueError, match="grad_norm"):
        run_attack("gradient", s, targets)
    with pytest.raises(ValueError, match="grad_norm"):
        _with(s, grad_norm=np.ones(3))


def test_stacked_attack_on_unseen_models():
    s, truth, nl, nt = synthetic(seed=14)
    s = _with(
        s, grad_norm=np.exp(-s.margin + np.random.default_rng(0).normal(0, 1, s.margin.shape))
    )
    targets = np.arange(nl, nl + nt)
    assert _auc(s, truth, targets, run_attack("stacked", s, targets)) > 0.8
    assert _auc(s, truth, np.arange(nl), run_attack("stacked", s, np.arange(nl))) > 0.75
    with pytest.raises(ValueError, match="learned"):
        run_attack("learned", s, targets, stack=("learned",))


def test_needs_names_the_optional_signals_an_attack_reads():
    from farm.attacks.registry import ATTACKS, needs

    assert needs("lira_queries") == {"query_logits"}
    assert needs("lira_grad") == needs("gradient") == {"grad_norm"}
    assert needs("lira", {"statistic": "query_margin"}) == {"query_logits"}
    assert needs("loss", {"statistic": "grad_norm"}) == {"grad_norm"}
    assert needs("stacked") == needs("learned") == needs("learned_across") == frozenset()
    assert needs("stacked", {"extra_signals": ["grad_norm"]}) == {"grad_norm"}
    with pytest.raises(ValueError, match="hidden"):
        needs("learned", {"extra_signals": ["hidden"]})
    assert needs("stacked", {"stack": ("lira_queries", "lira_grad")}) == {
        "query_logits",
        "grad_norm",
    }
    logits_only = {name for name in ATTACKS if not needs(name)}
    assert logits_only >= {
        "loss",
        "reference",
        "in_calibration",
        "lira_online",
        "lira_farm",
        "rmia",
        "rmia_fit",
    }
    with pytest.raises(KeyError, match="unknown attack"):
        needs("nope")


def test_learned_features_are_what_the_params_name():
    """A learned attack's features are named by ``extra_signals``, not by what the signals happen
    to carry: signals with gradient norms score the same as without unless ``grad_norm`` is named,
    and naming it adds the gradient-norm columns (and changes the scores)."""
    from farm.attacks.learned import features

    s, _, nl, nt = synthetic(seed=15)
    g = _with(
        s, grad_norm=np.exp(-s.margin + np.random.default_rng(1).normal(0, 1, s.margin.shape))
    )
    targets = np.arange(nl, nl + nt)
    np.testing.assert_array_equal(
        run_attack("stacked", g, targets), run_attack("stacked", s, targets)
    )
    assert features(g, targets, extra_signals=["grad_norm"]).shape[-1] == (
        features(g, targets).shape[-1] + 2
    )
    named = run_attack("stacked", g, targets, extra_signals=["grad_norm"])
    assert not np.array_equal(named, run_attack("stacked", s, targets))
    with pytest.raises(ValueError, match="grad_norm"):
        run_attack("stacked", s, targets, extra_signals=["grad_norm"])  # named but not computed


def test_learned_across_models_fits_on_shadows_too():
    """LT-MIA's reading: with 2 labelled models, a classifier fitted on them alone has 40 points;
    fitted across the shadows too (their membership is known on every record) it has 20 more
    points per shadow. Known answer: the shadows' points enter the fit (the fitted classifier
    differs), and on unseen targets the attack across models is at least as strong."""
    s, truth, nl, nt = synthetic(seed=16, n_labelled=2, n_shadows=20, gap=1.0)
    targets = np.arange(nl, nl + nt)
    alone = run_attack("learned", s, targets, classifier="logistic")
    across = run_attack("learned_across", s, targets, classifier="logistic")
    assert not np.allclose(alone, across)
    assert _auc(s, truth, targets, across) > 0.8
    assert _auc(s, truth, targets, across) >= _auc(s, truth, targets, alone) - 0.02


def test_shadow_points_are_seeded_draws_of_the_records():
    from farm.attacks.learned import with_shadow_points

    s, _, nl, nt = synthetic(seed=17)
    shadows = np.flatnonzero(s.known & ~s.labelled)
    a = with_shadow_points(s, shadows, seed=3)
    np.testing.assert_array_equal(a.challenge, with_shadow_points(s, shadows, seed=3).challenge)
    np.testing.assert_array_equal(a.challenge[: nl + nt], s.challenge[: nl + nt])
    for m in shadows:
        row = a.challenge[m]
        assert len(set(row.tolist())) == row.size and row.min() >= 0
