import numpy as np
import pytest

from farm.attacks import ATTACKS, IN, OUT, UNKNOWN, Signals, in_calibration, lira, loss, reference, rmia, run_attack
from farm.metrics import score


def synthetic(seed=0, n_records=400, n_labelled=12, n_shadows=8, n_targets=6, p=20, gap=1.5):
    """Margins = per-record difficulty (wide spread) + gap if IN + noise. Calibration must beat raw loss."""
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
    return Signals(logits, np.zeros(n_records, np.int64), keep, challenge, labelled), truth, n_labelled, n_targets


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
    labelled = np.arange(nl)  # cross-fitted: each labelled target scored by a classifier that never saw it
    assert _auc(s, truth, labelled, run_attack("learned", s, labelled)) > 0.75


def test_in_calibration_by_hand():
    # 3 models, 2 records, label 0. logprob = log sigmoid(margin). Target 0; references 1 and 2.
    margins = np.array([[2.0, -1.0], [1.0, 0.0], [3.0, 1.0]])
    logits = np.stack([margins, np.zeros_like(margins)], axis=-1)
    keep = np.array([[UNKNOWN, UNKNOWN], [IN, OUT], [IN, IN]], dtype=np.int8)
    s = Signals(logits, np.zeros(2, np.int64), keep, np.array([[0, 1], [-1, -1], [-1, -1]]), np.array([0, 1, 1], bool))
    lp = -np.log1p(np.exp(-margins))
    expected = [lp[0, 0] - (lp[1, 0] + lp[2, 0]) / 2, lp[0, 1] - lp[2, 1]]
    np.testing.assert_allclose(in_calibration(s, np.array([0]))[0], expected)
    p = np.exp(lp)
    np.testing.assert_allclose(reference(s, np.array([0]))[0], [p[0, 0] - (p[1, 0] + p[2, 0]) / 2,
                                                                 p[0, 1] - p[1, 1]])


def test_a_labelled_target_is_never_its_own_reference():
    s, truth, nl, _ = synthetic(seed=2)
    t = 0
    assert not s.reference_mask(t)[t]
    before = {name: run_attack(name, s, np.array([t])) for name in ("in_calibration", "lira_online", "rmia")}
    # Changing the target's logits on records outside its challenge set changes no reference statistic.
    logits = s.logits.copy()
    others = np.setdiff1d(np.arange(logits.shape[1]), s.challenge[t])
    logits[t, others] += 100.0
    moved = Signals(logits, s.labels, s.keep, s.challenge, s.labelled)
    for name in ("in_calibration", "lira_online"):
        np.testing.assert_allclose(run_attack(name, moved, np.array([t])), before[name])


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
    assert set(ATTACKS) >= {"loss", "reference", "in_calibration", "lira_online", "lira_offline", "rmia", "learned"}


def test_offline_lira_uses_no_in_references():
    s, truth, nl, nt = synthetic(seed=5)
    targets = np.arange(nl, nl + nt)
    a = lira(s, targets, online=False)
    logits = s.logits.copy()
    logits[s.keep == IN] += 5.0  # IN references change; offline scores must not
    moved = Signals(logits, s.labels, s.keep, s.challenge, s.labelled)
    np.testing.assert_allclose(lira(moved, targets, online=False), a)
    assert OUT == 0
