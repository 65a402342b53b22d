"""InfoRMIA (``farm.attacks.rmia.informia``): known answers by hand, its relation to RMIA, and the
contract every attack keeps."""

import numpy as np
import pytest

from farm.attacks.registry import run_attack
from farm.attacks.rmia import informia, rmia
from farm.attacks.signals import IN, OUT, UNKNOWN, Signals
from farm.errors import SpecError
from tests.attacks.test_registry import _auc, _prob_signals, synthetic


def _hand_signals(target=(0.9, 0.6, 0.8, 0.5)):
    return _prob_signals(
        list(target),
        [[0.7, 0.6, 0.8, 0.4], [0.95, 0.9, 0.9, 0.9]],
        [[UNKNOWN] * 4, [OUT] * 4, [IN] * 4],
    )


def test_informia_by_hand():
    """test_rmia_by_hand's world. Target 0: p on challenge x0, x1 = 0.9, 0.6; population z2, z3 =
    0.8, 0.5. Offline, a = 0.5: p(.) = 0.75 p_out + 0.25 -> 0.775, 0.7, 0.85, 0.55; log2 LR ->
    x0 0.215728, x1 -0.222392, z2 -0.087463, z3 -0.137504; mean over z -0.112483; scores x0
    0.328212, x1 -0.109909. Online: p(.) = (p_in + p_out) / 2 -> 0.825, 0.75, 0.85, 0.65; log2 LR
    -> x0 0.125531, x1 -0.321928, z2 -0.087463, z3 -0.378512; mean over z -0.232988; scores x0
    0.358519, x1 -0.088940."""
    s, t = _hand_signals(), np.array([0])
    np.testing.assert_allclose(
        informia(s, t, online=False, offline_a=0.5), [[0.328212, -0.109909]], atol=2e-6
    )
    np.testing.assert_allclose(informia(s, t, online=True), [[0.358519, -0.088940]], atol=2e-6)
    np.testing.assert_allclose(
        run_attack("informia_offline", s, t, offline_a=0.5),
        informia(s, t, online=False, offline_a=0.5),
    )


def test_informia_moves_by_the_log_ratio_of_the_target_likelihood():
    """Raising p_target on x0 from 0.9 to 0.95 moves x0's score by exactly log2(0.95 / 0.9) and
    leaves x1's: the score is log2 LR(x) plus a per-target constant (monotone in LR(x))."""
    t = np.array([0])
    before = informia(_hand_signals(), t, online=False, offline_a=0.5)[0]
    after = informia(_hand_signals((0.95, 0.6, 0.8, 0.5)), t, online=False, offline_a=0.5)[0]
    np.testing.assert_allclose(after - before, [np.log2(0.95 / 0.9), 0.0], atol=1e-12)
    # the population's likelihoods move the constant only: z2 0.8 -> 0.4 shifts both points alike
    moved = informia(_hand_signals((0.9, 0.6, 0.4, 0.5)), t, online=False, offline_a=0.5)[0]
    # (log2 LR(z2) falls by 1, so the mean over the two z by 1/2)
    np.testing.assert_allclose(moved - before, [0.5, 0.5], atol=1e-12)


def test_informia_is_the_mean_log_ratio_whose_count_rmia_takes():
    """Both read the pairwise ratios LR(x) / LR(z): RMIA counts those above gamma, InfoRMIA
    averages their log2. With one population point, RMIA at gamma = 1 is InfoRMIA > 0; with many,
    within a target, RMIA (any gamma) never ranks two points the other way round."""
    one = _prob_signals([0.9, 0.6, 0.8], [[0.7, 0.6, 0.8]], [[UNKNOWN] * 3, [OUT] * 3])
    t = np.array([0])
    np.testing.assert_allclose(  # to within RMIA's tie-break (< 1e-6 / |Z|)
        rmia(one, t, online=False, gamma=1.0),
        (informia(one, t, online=False) > 0).astype(float),
        rtol=0,
        atol=1e-6,
    )
    s, _, nl, nt = synthetic(seed=20)
    targets = np.arange(nl, nl + nt)
    info = informia(s, targets)
    for gamma in (1.0, 2.0):
        count = rmia(s, targets, gamma=gamma)
        for i in range(nt):
            order = np.argsort(info[i])
            assert (np.diff(count[i, order]) >= 0).all(), (gamma, i)


def test_informia_beats_loss_and_keeps_the_attack_contract():
    s, truth, nl, nt = synthetic(seed=21)
    targets = np.arange(nl, nl + nt)
    loss = run_attack("loss", s, targets)
    for name in ("informia", "informia_offline"):
        got = run_attack(name, s, targets)
        assert got.shape == (nt, s.challenge.shape[1])
        assert _auc(s, truth, targets, got) > _auc(s, truth, targets, loss) + 0.1, name
    # a target's score depends on neither the other targets of the call nor its own keep row
    for t in (0, 3, nl):
        alone = informia(s, np.array([t]), offline_a=(0.2, 0.8))
        np.testing.assert_array_equal(
            alone[0], informia(s, np.arange(nl + nt), offline_a=(0.2, 0.8))[t]
        )
        keep = s.keep.copy()
        if t < nl:  # a labelled target: its answers and its membership elsewhere
            keep[t] = 1 - keep[t]
        flipped = Signals(
            logits=s.logits, labels=s.labels, keep=keep, challenge=s.challenge, labelled=s.labelled
        )
        np.testing.assert_array_equal(informia(flipped, np.array([t]), offline_a=(0.2, 0.8)), alone)


@pytest.mark.parametrize("attack", [rmia, informia])
def test_no_population_point_is_a_spec_error_not_zeros(attack):
    """Issue 23: every record is one of the target's challenge points, so there is no z; RMIA used
    to score 0 everywhere (AUC 0.5) without a word."""
    s = _prob_signals([0.9, 0.6], [[0.7, 0.6], [0.95, 0.9]], [[UNKNOWN] * 2, [OUT] * 2, [IN] * 2])
    name = attack.__name__
    with pytest.raises(SpecError, match=f"{name}: model 0 has no population point"):
        attack(s, np.array([0]))
    with pytest.raises(SpecError, match="params.max_population: .*must be >= 1"):
        attack(_hand_signals(), np.array([0]), max_population=0)


def test_an_attack_config_names_informia_with_params():
    from farm.config.attack import AttackConfig, attack_params

    config = AttackConfig(attack="informia", params={"offline_a": [0.2, 0.5], "max_population": 9})
    assert config.params == {"offline_a": [0.2, 0.5], "max_population": 9}
    assert attack_params("informia_offline", {"offline_a": 1}) == {"offline_a": 1.0}
    with pytest.raises(SpecError, match="params.gamma: unknown parameter of attack 'informia'"):
        attack_params("informia", {"gamma": 2.0})  # InfoRMIA has no gamma
    with pytest.raises(SpecError, match="params.online: unknown parameter"):
        attack_params("informia_offline", {"online": True})
