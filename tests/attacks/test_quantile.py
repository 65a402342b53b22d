"""The quantile-regression attack (``farm.attacks.quantile``): a known answer on a world whose
non-member scores are N(mu(x), 1) and member scores N(mu(x) + d, 1), and the attack contract."""

import numpy as np
import pytest
from scipy import stats

from farm.attacks.quantile import quantile
from farm.attacks.registry import run_attack
from farm.attacks.signals import OUT, UNKNOWN, Signals
from farm.errors import SpecError
from farm.mico.scorer import score
from tests.attacks.test_registry import _auc, synthetic


def _gaussian_world(seed=0, n_public=3000, p=2000, k=8, d=1.5):
    """One target (model 0, unknown keep) with ``p`` challenge points, half members, and
    ``n_public`` public records no model trained on; ``k`` reference models whose margin on a
    record is mu(x) + N(0, 0.2) (a view of the record's difficulty). The target's margin is mu(x) +
    d * member + N(0, 1); mu(x) ~ N(0, 2) varies widely, so the raw margin is a poor attack."""
    rng = np.random.default_rng(seed)
    r = p + n_public
    mu = rng.normal(0, 2, r)
    member = np.zeros(r, np.int8)
    member[rng.permutation(p)[: p // 2]] = 1
    margin = np.empty((1 + k, r))
    margin[0] = mu + d * member + rng.normal(0, 1, r)
    margin[1:] = mu + rng.normal(0, 0.2, (k, r))
    keep = np.full((1 + k, r), OUT, np.int8)
    keep[0] = UNKNOWN
    challenge = np.full((1 + k, p), -1)
    challenge[0] = np.arange(p)
    s = Signals(
        logits=np.stack([margin / 2, -margin / 2], axis=-1),  # label 0: margin = z_0 - z_1
        labels=np.zeros(r, np.int64),
        keep=keep,
        challenge=challenge,
        labelled=np.zeros(1 + k, bool),
    )
    return s, member[:p], np.arange(p, r), mu[:p]


def test_quantile_recovers_the_analytic_separation_and_its_level():
    """With mu(x) known, the best score is margin - mu(x): N(0, 1) against N(d, 1), AUC = Phi(d /
    sqrt 2) = 0.8556 at d = 1.5 (the oracle margin - mu(x) on this sample: within 0.02 of it). The
    regressor, fitted on the public non-members only, gets within 0.03 of the oracle (its quantile
    is estimated from 3,000 records; the raw margin: Phi(d / sqrt(2 + 2 * 4)) = 0.68), and at its
    fitted quantile (score > 0) flags about alpha of the challenge non-members, which it never
    saw."""
    s, member, public, mu = _gaussian_world()
    t = np.array([0])
    analytic = stats.norm.cdf(1.5 / np.sqrt(2))
    oracle = score(member, s.margin[0, : member.size] - mu)["AUC"]
    assert abs(oracle - analytic) < 0.02, (oracle, analytic)
    for alpha in (0.1, 0.05):
        got = quantile(s, t, alpha=alpha, nonmembers=public)[0]
        auc = score(member, got)["AUC"]
        assert oracle - 0.03 < auc <= oracle + 0.01, (alpha, auc, oracle)
        fpr = (got[member == 0] > 0).mean()
        assert abs(fpr - alpha) < 0.3 * alpha + 0.01, (alpha, fpr)
    raw = score(member, run_attack("loss", s, t, statistic="margin")[0])["AUC"]
    assert raw < 0.72
    # the label alone (one class here) is a global quantile: no better than the raw margin
    flat = quantile(s, t, nonmembers=public, features="label")[0]
    assert abs(score(member, flat)["AUC"] - raw) < 0.01
    np.testing.assert_allclose((flat[member == 0] > 0).mean(), 0.1, atol=0.03)  # still its level


def test_quantile_pooled_on_references_beats_loss_and_keeps_the_contract():
    s, truth, nl, nt = synthetic(seed=22)
    targets = np.arange(nl, nl + nt)
    got = run_attack("quantile", s, targets)
    assert got.shape == (nt, s.challenge.shape[1])
    loss = run_attack("loss", s, targets, statistic="margin")
    assert _auc(s, truth, targets, got) > _auc(s, truth, targets, loss) + 0.1
    for t in (0, 5, nl):
        alone = quantile(s, np.array([t]))
        np.testing.assert_array_equal(alone[0], quantile(s, np.array([t, nl + 1, 2]))[0])
        if t < nl:  # a labelled target's keep row (its answers) enters nothing
            keep = s.keep.copy()
            keep[t] = 1 - keep[t]
            flipped = Signals(
                logits=s.logits,
                labels=s.labels,
                keep=keep,
                challenge=s.challenge,
                labelled=s.labelled,
            )
            np.testing.assert_array_equal(quantile(flipped, np.array([t])), alone)


def test_quantile_refuses_what_it_cannot_do():
    s, member, public, mu = _gaussian_world(p=40, n_public=60, k=2)
    t = np.array([0])
    with pytest.raises(SpecError, match="params.nonmembers: quantile: 1 of the non-member records"):
        quantile(s, t, nonmembers=[*public, 3])  # a scored point in the fit
    with pytest.raises(SpecError, match="params.nonmembers: expected record columns"):
        quantile(s, t, nonmembers=[10**6])
    with pytest.raises(SpecError, match=r"params.alpha: expected a level in \(0, 1\)"):
        quantile(s, t, alpha=1.0, nonmembers=public)
    with pytest.raises(SpecError, match="params.statistic"):
        quantile(s, t, statistic="query_margin", nonmembers=public)
    with pytest.raises(SpecError, match="params.features"):
        quantile(s, t, features="text", nonmembers=public)
    with pytest.raises(SpecError, match="no reference model of source 'labelled'"):
        quantile(s, t, source="labelled", nonmembers=public)
    assert quantile(s, t, source="labelled", features="label", nonmembers=public).shape == (1, 40)
    with pytest.raises(SpecError, match="no record known OUT"):
        quantile(s, t, source="labelled", features="label")


def test_an_attack_config_names_quantile_with_params():
    from farm.attacks.registry import needs
    from farm.config.attack import AttackConfig

    config = AttackConfig(
        attack="quantile", params={"alpha": 0.05, "nonmembers": [3, 4], "features": "label"}
    )
    assert config.params == {"alpha": 0.05, "nonmembers": [3, 4], "features": "label"}
    with pytest.raises(SpecError, match=r"params.nonmembers\[0\]"):
        AttackConfig(attack="quantile", params={"nonmembers": ["a"]})
    assert needs("quantile") == frozenset()
    assert needs("quantile", {"statistic": "grad_norm"}) == {"grad_norm"}
