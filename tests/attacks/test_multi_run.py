"""The multi-run audit: runs as trials, choices on half of them, three bounds."""

from __future__ import annotations

import dp_accounting
import numpy as np
import pytest

from farm.attacks.multi_run import gdp_epsilon, gdp_mu, multi_run_audit, split_runs


@pytest.mark.parametrize("eps", [1.0, 4.0, 10.0])
def test_gdp_epsilon_agrees_with_dp_accounting(eps):
    sigma = dp_accounting.get_sigma_gaussian(eps, 1e-5)  # the Gaussian mechanism's sigma at eps
    assert gdp_epsilon(1 / sigma, delta=1e-5) == pytest.approx(eps, rel=1e-6)


def test_gdp_mu_of_a_point():
    assert gdp_mu(fpr=0.5, fnr=0.5) == 0.0
    assert gdp_mu(fpr=0.1587, fnr=0.1587) == pytest.approx(2.0, abs=1e-3)  # Phi(-1) each side


def test_runs_split_into_disjoint_seeded_halves():
    fit, count = split_runs(10, seed=3)
    assert len(fit) == len(count) == 5 and not set(fit) & set(count)
    assert (split_runs(10, seed=3)[0] == fit).all()


def _game(mu: float, rng: np.random.Generator, runs: int = 100, canaries: int = 20):
    included = rng.integers(0, 2, (runs, canaries))
    return included * mu + rng.normal(size=(runs, canaries)), included


def test_bounds_stay_below_a_gaussian_mechanisms_epsilon():
    """Scores of a mu-GDP mechanism (IN ~ N(mu, 1), OUT ~ N(0, 1)): at 95% each bound exceeds the
    mechanism's epsilon in at most a few of 60 games."""
    mu, delta = 2.0, 1e-5
    truth = gdp_epsilon(mu, delta=delta)  # 10.0
    above = {"clopper_pearson": 0, "joint_beta": 0, "gdp": 0}
    gdp = []
    for seed in range(60):
        game = _game(mu, np.random.default_rng(seed), runs=200)
        audit = multi_run_audit(*game, delta=delta, seed=seed)
        for key in above:
            above[key] += getattr(audit, key) > truth
        gdp.append(audit.gdp)
        assert audit.tp + audit.fp + audit.tn + audit.fn == 100 and audit.fit_runs == 100
    assert max(above.values()) <= 6, above
    assert 0.3 * truth < np.median(gdp) < truth  # the parametric fit gets within reach


def test_four_runs_with_a_one_sided_count_bound_nothing_and_do_not_crash():
    for seed in range(40):  # two counted runs: often both IN or both OUT
        audit = multi_run_audit(*_game(2.0, np.random.default_rng(seed), runs=4), delta=1e-5)
        if audit.fp + audit.tn == 0 or audit.fn + audit.tp == 0:
            assert audit.clopper_pearson == 0.0


def test_pure_noise_gives_nothing_and_a_leak_is_found():
    rng = np.random.default_rng(0)
    noise = multi_run_audit(*_game(0.0, rng), delta=1e-5)
    assert noise.clopper_pearson == 0.0 and noise.gdp < 1.0
    leak = multi_run_audit(*_game(4.0, rng, runs=200), delta=1e-5)
    assert leak.clopper_pearson > 1.0 and leak.joint_beta >= leak.clopper_pearson
    assert "one trial per run" in leak.validity
