"""PATE: partitions (a keyed hash per record, so neighbouring record sets give neighbouring
partitions), (confident-)GNMax, the accountant against hand-computed cases, Opacus and dp-accounting
for both adjacencies, vote histograms of neighbouring partitions within the stated sensitivity, the
defence YAML, and a tiny PATE run through the executor (teachers, answers, vote, student; a rerun
runs nothing)."""

import dataclasses
import math

import numpy as np
import pytest

from farm.defences.pate import Pate, pate_jobs
from farm.errors import ConfigError, SpecError
from farm.privacy.pate import (
    ORDERS,
    Aggregation,
    confident_gnmax,
    gaussian_rdp,
    gnmax,
    partition,
    pate_rdp,
    rdp_epsilon,
    splitmix64,
    teacher_of,
    vote_counts,
)
from farm.spec.coerce import from_dict
from farm.spec.jobs import Selection, StoreRef
from farm.spec.population import PopulationSpec
from farm.spec.recipes import ModelSpec, Recipe, TinyModel

# --- partitions -----------------------------------------------------------------------------------


def test_partition_is_disjoint_covers_and_is_seeded():
    records = np.random.default_rng(0).choice(1000, 280, replace=False)
    parts = partition(records, 7, seed=[3, 4])
    joined = np.concatenate(parts)
    assert joined.size == np.unique(joined).size == 280  # disjoint
    assert np.array_equal(np.sort(joined), np.sort(records))  # covers
    assert all(p.dtype == np.int64 and np.array_equal(p, np.sort(p)) for p in parts)
    assert [p.size for p in parts] == [54, 40, 29, 39, 47, 34, 37]  # binomial(280, 1/7), not equal
    again, other = partition(records, 7, seed=[3, 4]), partition(records, 7, seed=[3, 5])
    assert all(np.array_equal(a, b) for a, b in zip(parts, again))
    assert not all(np.array_equal(a, b) for a, b in zip(parts, other))
    small = [[2, 4, 6, 7, 9], [5], [0, 1, 3, 8]]
    assert [p.tolist() for p in partition(np.arange(10), 3, 0)] == small
    with pytest.raises(SpecError, match="teachers"):
        partition(np.arange(3), 4, 0)


def _splitmix64(x: int) -> int:
    """splitmix64's output function on Python ints (Vigna's reference C, mod 2^64): the oracle."""
    z = (x + 0x9E3779B97F4A7C15) % 2**64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) % 2**64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) % 2**64
    return z ^ (z >> 31)


def test_teacher_hash_is_splitmix64_and_pinned():
    """The assignment is exact integer arithmetic: numpy's vectorised splitmix64 equals the
    reference on Python ints (negative ids as two's complement), and the teachers of a few ids are
    pinned (the same on any platform)."""
    assert int(splitmix64(0)) == 0xE220A8397B1DCDAF  # the first output of splitmix64 seeded with 0
    ids = np.array([0, 1, 2, 41, 2**31 - 1, 2**62 + 7, -1, -(2**63)], dtype=np.int64)
    assert [int(v) for v in splitmix64(ids)] == [_splitmix64(int(i) % 2**64) for i in ids]
    key = _splitmix64(0x7EAC4E)
    for s in (3, 4):
        key = _splitmix64(key ^ s)
    ref = [_splitmix64(_splitmix64(int(i) % 2**64) ^ key) % 7 for i in ids]
    assert teacher_of(ids, 7, [3, 4]).tolist() == ref == [2, 4, 6, 5, 4, 4, 5, 1]
    assert teacher_of(ids, 7, [3, 4]).dtype == np.int64
    assert teacher_of(ids, 7, 3).tolist() != ref  # the seed is the key


def test_a_record_goes_to_its_own_teacher_whatever_the_others():
    records = np.arange(0, 6000, 3)
    parts = partition(records, 10, seed=[0, 9])
    owner = teacher_of(records, 10, [0, 9])
    assert all(np.array_equal(part, records[owner == t]) for t, part in enumerate(parts))
    some = np.random.default_rng(1).choice(records, 700, replace=False)
    assert all(
        np.array_equal(p, np.intersect1d(whole, some))
        for p, whole in zip(partition(some, 10, [0, 9]), parts)
    )


def _changed(before: list[np.ndarray], after: list[np.ndarray]) -> list[int]:
    """Teachers whose data differ between two partitions."""
    return [t for t, (a, b) in enumerate(zip(before, after)) if not np.array_equal(a, b)]


@pytest.mark.parametrize("teachers", [10, 50])
@pytest.mark.parametrize("seed", [0, 1, [0, 7], [3, 2**40 + 5]])
def test_neighbouring_record_sets_change_one_teacher_or_two(teachers, seed):
    """2,000 records of a population of 4,000: adding or removing any one record changes exactly one
    teacher's data (that record's teacher, by exactly that record); substituting one record changes
    exactly the one or two teachers of the two records. 40 additions, 40 removals and 80
    substitutions per case."""
    rng = np.random.default_rng(teachers)
    population = np.arange(4000)
    records = np.sort(rng.choice(population, 2000, replace=False))
    outside = np.setdiff1d(population, records)
    parts = partition(records, teachers, seed)
    owner = dict(zip(population.tolist(), teacher_of(population, teachers, seed).tolist()))
    for new in rng.choice(outside, 40, replace=False):
        after = partition(np.append(records, new), teachers, seed)
        assert _changed(parts, after) == [owner[new]]
        assert np.setdiff1d(after[owner[new]], parts[owner[new]]).tolist() == [new]
    for old in rng.choice(records, 40, replace=False):
        assert _changed(parts, partition(records[records != old], teachers, seed)) == [owner[old]]
    sizes = []
    pairs = zip(rng.choice(records, 80, replace=False), rng.choice(outside, 80, replace=False))
    for old, new in pairs:
        after = partition(np.append(records[records != old], new), teachers, seed)
        assert _changed(parts, after) == sorted({owner[old], owner[new]})
        sizes.append(len(_changed(parts, after)))
    assert max(sizes) == 2  # two teachers do change in some substitutions: the bound is met


def test_no_teacher_may_be_empty():
    with pytest.raises(SpecError, match="teachers: 5 teachers over 5 records leave teacher"):
        partition(np.arange(5), 5, 0)
    assert min(p.size for p in partition(np.arange(900), 50, 0)) > 0


def test_shipped_pate_settings_leave_no_teacher_empty():
    """The defence comparison (shipped config defences-sst2) planned as shipped (its seeds, 900
    members per target; a synthetic population of the same size stands in for SST-2, which planning
    does not read): every PATE target's teachers have records, the fewest 69 of 900 (10 teachers)
    and 7 (50 teachers)."""
    from farm.commands.make_challenge import challenge_jobs
    from farm.config.challenge import ChallengeConfig
    from farm.config.loading import read_yaml, shipped, typed
    from farm.defences.pate import PateJobs

    data = read_yaml(shipped()["defences-sst2"])
    data["population"] = {"source": "synthetic", "n": 1000, "seed": 0}
    data["public"] = {"source": "synthetic", "n": 4000, "seed": 1}
    p = challenge_jobs(typed(ChallengeConfig, data, "defences-sst2"), 1000)
    smallest: dict[int, int] = {}
    for target in p.targets:
        if isinstance(target.build.state, PateJobs):
            sizes = [t.selection.indices().size for t in target.build.state.teachers]
            assert sum(sizes) == 900
            smallest[len(sizes)] = min(smallest.get(len(sizes), 900), *sizes)
    assert smallest == {10: 62, 50: 7}  # defences-sst2 at 4 + 5 + 5 targets per setting


# --- aggregation ----------------------------------------------------------------------------------


def test_vote_counts():
    votes = np.array([[0, 1, 1], [0, 0, 1], [1, 0, 1]])  # [teachers, queries]
    assert vote_counts(votes, 2).tolist() == [[2, 1], [2, 1], [0, 3]]
    with pytest.raises(SpecError):
        vote_counts(np.array([[0, 2]]), 2)


def test_gnmax_without_noise_is_the_plurality_vote():
    rng = np.random.default_rng(0)
    counts = rng.integers(0, 20, (500, 3))
    assert np.array_equal(gnmax(counts, 0.0, rng), counts.argmax(axis=1))
    assert np.array_equal(Aggregation(sigma=0.0).labels(counts), counts.argmax(axis=1))


def test_gnmax_noise_is_seeded_and_flips_close_votes_only():
    counts = np.tile([[60, 40]], (2000, 1))
    labels = Aggregation(sigma=5.0, seed=1).labels(counts)
    assert np.array_equal(labels, Aggregation(sigma=5.0, seed=1).labels(counts))
    # P(noisy 40 > noisy 60) = P(N(0, 2 * 25) > 20) = 1 - Phi(20 / sqrt(50)): about 0.0023
    assert (labels == 1).mean() < 0.01 and (
        Aggregation(sigma=30.0, seed=1).labels(counts) == 1
    ).mean() > 0.2


def test_confident_gnmax_answers_only_confident_queries():
    counts = np.array([[9, 1]] * 50 + [[5, 5]] * 50)
    labels = confident_gnmax(counts, threshold=8, sigma1=1e-6, sigma2=1e-6, seed=0)
    assert labels[:50].tolist() == [0] * 50 and labels[50:].tolist() == [-1] * 50
    assert (confident_gnmax(counts, threshold=100, sigma1=1.0, sigma2=1.0, seed=0) == -1).all()
    agg = Aggregation(sigma=1e-6, threshold=8, sigma1=1e-6, seed=2)
    assert np.array_equal(agg.labels(counts), labels)


# --- the accountant -------------------------------------------------------------------------------


def test_accountant_matches_a_hand_computed_case():
    """100 GNMax answers at sigma 40 (L2 sensitivity sqrt(2)): RDP(alpha) = 100 * alpha / 40^2 =
    alpha / 16."""
    orders = np.array([2.0, 10.0, 15.0, 32.0])
    assert pate_rdp(orders, queries=100, answered=100, sigma=40.0).tolist() == [
        2 / 16,
        10 / 16,
        15 / 16,
        32 / 16,
    ]
    delta = 1e-5
    # classic conversion (Mironov 2017): rdp + log(1/delta) / (alpha - 1), by hand at these orders
    classic = {a: a / 16 + math.log(1 / delta) / (a - 1) for a in orders}
    assert classic[15.0] == pytest.approx(
        0.9375 + 11.512925 / 14, abs=1e-6
    )  # 1.759855: the best of the four
    assert min(classic.values()) == classic[15.0]
    # Opacus' conversion (Balle et al. 2020): rdp - (log(delta) + log(alpha)) / (alpha - 1) +
    # log((alpha - 1) / alpha)
    balle15 = 0.9375 - (math.log(delta) + math.log(15)) / 14 + math.log(14 / 15)
    assert balle15 == pytest.approx(0.9375 + 8.8048753 / 14 - 0.0689929, abs=1e-6)  # 1.497427
    eps, order = rdp_epsilon(orders, pate_rdp(orders, queries=100, answered=100, sigma=40.0), delta)
    assert (eps, order) == (pytest.approx(balle15), 15.0)
    full = Aggregation(sigma=40.0, delta=delta).epsilon(
        queries=100, answered=100
    )  # over all of ORDERS
    assert full <= balle15 < classic[15.0] and full == pytest.approx(balle15, abs=0.03)


def test_accountant_under_substitution_matches_a_hand_computed_case():
    """Substitution: two teachers' data change, L2 sensitivity 2 sqrt(2), so 100 answers at sigma 40
    cost RDP(alpha) = 100 * alpha * (2 sqrt(2))^2 / (2 * 40^2) = alpha / 4; the threshold check's
    sensitivity is 2."""
    orders = np.array([2.0, 5.0, 7.0, 10.0])
    rdp = pate_rdp(orders, queries=100, answered=100, sigma=40.0, adjacency="substitution")
    assert rdp.tolist() == pytest.approx([0.5, 1.25, 1.75, 2.5], rel=1e-15)
    # Balle et al. 2020 by hand:
    # alpha / 4 + (log(1/delta) - log(alpha)) / (alpha - 1) + log((alpha - 1) / alpha)
    by_hand = {
        5.0: 1.25 + (11.512925 - 1.609438) / 4 - 0.223144,  # 3.502728
        7.0: 1.75 + (11.512925 - 1.945910) / 6 - 0.154151,  # 3.190352: the best of the four
        10.0: 2.5 + (11.512925 - 2.302585) / 9 - 0.105361,
    }  # 3.418010
    eps, order = rdp_epsilon(orders, rdp, 1e-5)
    assert (eps, order) == (pytest.approx(by_hand[7.0], abs=1e-5), 7.0)
    assert eps == pytest.approx(3.190352, abs=1e-5)
    # confident-GNMax, 1,000 queries of which 300 answered, sigma1 10, sigma 20, per alpha:
    # add/remove 300 / 20^2 + 1000 / (2 * 10^2) = 5.75;
    # substitution 300 * 4 / 20^2 + 1000 * 4 / (2 * 10^2) = 23
    conf = {
        adj: pate_rdp(
            np.array([1.0, 2.0]), queries=1000, answered=300, sigma=20.0, sigma1=10.0, adjacency=adj
        ).tolist()
        for adj in ("add/remove", "substitution")
    }
    assert conf == {"add/remove": [5.75, 11.5], "substitution": [23.0, 46.0]}
    sub = Aggregation(sigma=40.0, adjacency="substitution").epsilon(queries=100, answered=100)
    half = Aggregation(sigma=20.0).epsilon(queries=100, answered=100)  # sigma / 2 under add/remove
    assert sub == pytest.approx(half, rel=1e-12)
    assert sub > Aggregation(sigma=40.0).epsilon(queries=100, answered=100)
    with pytest.raises(SpecError, match="adjacency"):
        pate_rdp(orders, queries=1, answered=1, sigma=1.0, adjacency="replace-one")
    with pytest.raises(SpecError, match="adjacency"):
        Aggregation(sigma=1.0, adjacency="replace-one")


def test_accountant_equals_opacus():
    from opacus.accountants.analysis.rdp import compute_rdp, get_privacy_spent

    orders = list(ORDERS)
    for sigma, answered in [(40.0, 100), (5.0, 200), (2.0, 7)]:
        ours = pate_rdp(np.asarray(orders), queries=answered, answered=answered, sigma=sigma)
        theirs = compute_rdp(
            q=1.0, noise_multiplier=sigma / math.sqrt(2), steps=answered, orders=orders
        )
        assert np.allclose(ours, theirs, rtol=1e-12)
        assert rdp_epsilon(np.asarray(orders), ours, 1e-5)[0] == pytest.approx(
            get_privacy_spent(orders=orders, rdp=theirs, delta=1e-5)[0], rel=1e-12
        )
    # confident-GNMax: every query pays the threshold check (sensitivity 1, sigma1), each answer
    # GNMax (sigma2)
    ours = pate_rdp(np.asarray(orders), queries=1000, answered=300, sigma=20.0, sigma1=10.0)
    theirs = compute_rdp(q=1.0, noise_multiplier=10.0, steps=1000, orders=orders) + compute_rdp(
        q=1.0, noise_multiplier=20.0 / math.sqrt(2), steps=300, orders=orders
    )
    assert np.allclose(ours, theirs, rtol=1e-12)
    # substitution: noise over sensitivity, 20 / (2 sqrt(2)) and 10 / 2
    ours = pate_rdp(
        np.asarray(orders),
        queries=1000,
        answered=300,
        sigma=20.0,
        sigma1=10.0,
        adjacency="substitution",
    )
    theirs = compute_rdp(q=1.0, noise_multiplier=10.0 / 2, steps=1000, orders=orders) + compute_rdp(
        q=1.0, noise_multiplier=20.0 / (2 * math.sqrt(2)), steps=300, orders=orders
    )
    assert np.allclose(ours, theirs, rtol=1e-12)


@pytest.mark.parametrize(("adjacency", "sensitivity"), [("add/remove", 1.0), ("substitution", 2.0)])
def test_accountant_equals_dp_accounting(adjacency, sensitivity):
    """Google's dp-accounting (an independent implementation) composing the same Gaussian
    mechanisms: the threshold checks (sensitivity 1 or 2) and the answers (sqrt(2) or 2 sqrt(2))."""
    import dp_accounting
    from dp_accounting.rdp import RdpAccountant

    accountant = RdpAccountant(list(ORDERS))
    for noise, count in [(10.0 / sensitivity, 1000), (20.0 / (sensitivity * math.sqrt(2)), 300)]:
        event = dp_accounting.GaussianDpEvent(noise)
        accountant.compose(dp_accounting.SelfComposedDpEvent(event, count))
    agg = Aggregation(sigma=20.0, threshold=40.0, sigma1=10.0, adjacency=adjacency)
    ours = agg.epsilon(queries=1000, answered=300)
    assert ours == pytest.approx(accountant.get_epsilon(1e-5), rel=1e-9)
    expected = {"add/remove": 20.859187, "substitution": 53.901693}[adjacency]
    assert ours == pytest.approx(expected, abs=1e-6)


def _toy_votes(parts: list[np.ndarray], n_queries: int, n_classes: int) -> np.ndarray:
    """``[teachers, queries]`` votes of deterministic toy teachers: a teacher's vote on query ``q``
    is a function of its own records only (a hash of ``q`` and the sum of their ids), as a trained
    teacher's is of its data."""
    queries = np.arange(n_queries) * 1_000_003
    return np.stack(
        [
            (splitmix64(queries + int(part.sum())) % np.uint64(n_classes)).astype(np.int64)
            for part in parts
        ]
    )


@pytest.mark.parametrize("teachers", [10, 50])
def test_vote_histograms_of_neighbouring_datasets_stay_within_the_sensitivity(teachers):
    """Teachers on neighbouring partitions (one record added, removed or substituted): over 200
    queries, the L2 distance of the two vote histograms never exceeds the sensitivity the accountant
    uses (sqrt(2) add/remove, 2 sqrt(2) substitution) and the top count moves by at most 1 / 2, the
    threshold check's; both bounds are met (the toy teachers change their votes freely), so they are
    the least that hold."""
    rng = np.random.default_rng(teachers)
    records = np.sort(rng.choice(4000, 2000, replace=False))
    outside = np.setdiff1d(np.arange(4000), records)
    n_q, n_c = 200, 2
    counts = vote_counts(_toy_votes(partition(records, teachers, 5), n_q, n_c), n_c)
    worst = {"add/remove": (0.0, 0), "substitution": (0.0, 0)}
    pairs = zip(rng.choice(records, 20, replace=False), rng.choice(outside, 20, replace=False))
    for old, new in pairs:
        for adjacency, after in [
            ("add/remove", np.append(records, new)),
            ("add/remove", records[records != old]),
            ("substitution", np.append(records[records != old], new)),
        ]:
            other = vote_counts(_toy_votes(partition(after, teachers, 5), n_q, n_c), n_c)
            l2 = float(np.sqrt(((other - counts) ** 2).sum(axis=1)).max())
            top = int(np.abs(other.max(axis=1) - counts.max(axis=1)).max())
            worst[adjacency] = (max(worst[adjacency][0], l2), max(worst[adjacency][1], top))
    assert worst == {
        "add/remove": (pytest.approx(math.sqrt(2)), 1),
        "substitution": (pytest.approx(2 * math.sqrt(2)), 2),
    }


def test_accountant_edges():
    assert (
        rdp_epsilon(
            np.asarray(ORDERS), pate_rdp(np.asarray(ORDERS), queries=5, answered=0, sigma=1.0), 1e-5
        )[0]
        == 0.0
    )
    assert math.isinf(Aggregation(sigma=0.0).epsilon(queries=3, answered=3))
    assert gaussian_rdp(np.array([2.0]), 1.0).tolist() == [1.0]
    more = Aggregation(sigma=5.0).epsilon(queries=100, answered=100)
    assert (
        Aggregation(sigma=5.0).epsilon(queries=100, answered=50)
        < more
        < Aggregation(sigma=4.0).epsilon(queries=100, answered=100)
    )
    with pytest.raises(SpecError, match="answered"):
        pate_rdp(np.asarray(ORDERS), queries=2, answered=3, sigma=1.0)


# --- the defence YAML -----------------------------------------------------------------------------


def load_pate(path):
    from farm.config.recipes import load_defence

    pate = load_defence(path)
    assert isinstance(pate, Pate)
    return pate


def test_pate_config_checks():
    base = {"recipe": {}, "student": {"epochs": 1}, "teachers": 10, "sigma": 40, "queries": 100}
    pate = from_dict(Pate, base)
    assert (pate.sigma, pate.student.epochs) == (40.0, 1)
    for bad, key in [
        ({"teachers": 0}, "teachers"),
        ({"sigma": -1}, "sigma"),
        ({"student": "mini-inf"}, "student"),
        ({"threshold": 5}, "sigma1"),
        ({"threshold": 5, "sigma1": 0}, "sigma1"),
        ({"delta": 0}, "delta"),
        ({"queries": 0}, "queries"),
        ({"noise": 1}, "noise"),
        ({"adjacency": "replace-one"}, "adjacency"),
    ]:
        with pytest.raises(SpecError, match=key):
            from_dict(Pate, {**base, **bad})


def test_privacy_record():
    pate = from_dict(
        Pate, {"recipe": {}, "student": {}, "teachers": 10, "sigma": 40, "queries": 100}
    )
    epsilon = Aggregation(sigma=40.0).epsilon(queries=100, answered=100)
    assert pate.privacy() == {
        "epsilon": pytest.approx(epsilon),
        "delta": 1e-5,
        "defence": "pate",
        "teachers": 10,
        "sigma": 40.0,
        "queries": 100,
        "sampling": "none",
        "accountant": "pate-rdp",
        "adjacency": "add/remove",
        "assumes": "pate-rdp accountant, add/remove adjacency",
    }
    sub = from_dict(
        Pate,
        {
            "recipe": {},
            "student": {},
            "teachers": 10,
            "sigma": 40,
            "queries": 100,
            "adjacency": "substitution",
        },
    )
    half = Aggregation(sigma=20.0).epsilon(
        queries=100, answered=100
    )  # sigma / 2: twice the sensitivity
    assert sub.privacy() == {
        **pate.privacy(),
        "adjacency": "substitution",
        "assumes": "pate-rdp accountant, substitution adjacency",
        "epsilon": pytest.approx(half),
    }
    assert sub.aggregation(3).adjacency == "substitution"
    confident = from_dict(
        Pate,
        {
            "recipe": {},
            "student": {},
            "teachers": 10,
            "sigma": 40,
            "queries": 100,
            "threshold": 8,
            "sigma1": 4,
        },
    )
    assert (
        confident.privacy()["epsilon"] > pate.privacy()["epsilon"]
    )  # all answered: an upper bound


def test_shipped_pate_defences_load():
    pate = load_pate("pate-t10-s5")
    assert (pate.teachers, pate.sigma, pate.recipe.epochs, pate.student.model.name) == (
        10,
        5.0,
        3,
        "base",
    )
    confident = load_pate("pate-t50-conf")
    assert confident.threshold == 40.0
    assert confident.privacy()["epsilon"] == pytest.approx(24.83, abs=0.01)  # as its comment says
    substituted = dataclasses.replace(confident, adjacency="substitution")
    assert substituted.privacy()["epsilon"] == pytest.approx(65.42, abs=0.01)
    assert load_pate("tests/data/tiny-pate.yaml").teachers == 3


def test_shipped_defence_comparison_epsilons():
    """The defence comparison's PATE settings: epsilon at delta 1e-5 of their 200 answers, as their
    comments say, for add/remove (what they ship) and substitution (the same noise against twice the
    sensitivity)."""
    expected = {
        "def-pate-t10-s2": (96.116, 294.861),
        "def-pate-t10-s5": (25.931, 68.624),
        "def-pate-t50-s5": (25.931, 68.624),
        "def-pate-t50-s20": (4.729, 10.726),
        "pate-t10-s5": (25.931, 68.624),
    }
    for name, (add_remove, substitution) in expected.items():
        pate = load_pate(name)
        substituted = dataclasses.replace(pate, adjacency="substitution")
        assert pate.privacy()["adjacency"] == "add/remove"
        assert pate.privacy()["epsilon"] == pytest.approx(add_remove, abs=1e-3)
        assert substituted.privacy()["epsilon"] == pytest.approx(substitution, abs=1e-3)


def test_bad_defence_yaml_fails_in_one_line(tmp_path):
    good = {
        "defence": "pate",
        "recipe": "mini-inf",
        "student": "{epochs: 1}",
        "teachers": "3",
        "sigma": "1.0",
        "queries": "4",
    }
    for line, key in {
        "teachers: 0": "teachers",
        "student: no-such-recipe": "student",
        "sigma: loud": "sigma",
        "extra: 1": "extra",
        "threshold: 3": "sigma1",
        "adjacency: sideways": "adjacency",
    }.items():
        path = tmp_path / "bad.yaml"
        rest = {k: v for k, v in good.items() if k != line.split(":")[0]}
        path.write_text("\n".join([*(f"{k}: {v}" for k, v in rest.items()), line]) + "\n")
        with pytest.raises(ConfigError) as info:
            load_pate(path)
        message = str(info.value)
        assert "\n" not in message and str(path) in message and key in message


# --- PATE as jobs ---------------------------------------------------------------------------------

PUBLIC = {"source": "synthetic", "n": 200, "seed": 5}


def _tiny_pate():
    recipe = Recipe(
        model=ModelSpec(name="tiny", tiny=TinyModel(32, 1, 2, 64)),
        epochs=1,
        learning_rate=1e-3,
        batch_size=32,
    )
    return Pate(recipe=recipe, student=recipe, teachers=3, sigma=0.5, queries=40)


def _target():
    """A target as make-challenge plans it (the fields of ``farm.defences.seam.TargetSpec``)."""
    from types import SimpleNamespace

    from tests.jobs_fixture import train_jobs

    job = train_jobs(1)[0]
    return SimpleNamespace(
        population=job.population,
        tokenizer=job.tokenizer,
        selection=job.selection,
        seed=11,
        base=None,
        label="sst2_pate/train/model_0",
    )


def test_plan_pate_shapes_jobs_from_the_target():
    target = _target()
    plan = pate_jobs(target, _tiny_pate(), public=PopulationSpec.of(PUBLIC), public_n=200)
    parts = [t.selection.indices() for t in plan.teachers]
    assert np.array_equal(np.sort(np.concatenate(parts)), target.selection.indices())
    assert len({t.recipe.seed for t in plan.teachers}) == 3
    assert all(
        a.model.key == t.key and a.selection == plan.student.selection
        for a, t in zip(plan.answers, plan.teachers)
    )
    assert plan.student.labels is not None and plan.student.labels.key == plan.votes.key
    assert (
        plan.student.population == PopulationSpec.of(PUBLIC) and plan.model.key == plan.student.key
    )
    assert plan.student.selection.indices().size == 40 and plan.student.recipe.seed == 11
    again = pate_jobs(target, _tiny_pate(), public=PopulationSpec.of(PUBLIC), public_n=200)
    assert [j.key for j in again.jobs] == [
        j.key for j in plan.jobs
    ]  # deterministic, so reruns find every key
    substituted = dataclasses.replace(_tiny_pate(), adjacency="substitution")
    sub = pate_jobs(target, substituted, public=PopulationSpec.of(PUBLIC), public_n=200)
    assert sub.votes.aggregation.adjacency == "substitution" and sub.votes.key != plan.votes.key
    # the adjacency is the vote's alone: the teachers, their answers and partitions are shared
    assert [t.key for t in sub.teachers] == [t.key for t in plan.teachers]
    crowded = dataclasses.replace(_tiny_pate(), teachers=280)
    with pytest.raises(SpecError, match="sst2_pate/train/model_0: 280 teachers over 280 records"):
        pate_jobs(target, crowded, public=PopulationSpec.of(PUBLIC), public_n=200)
    with pytest.raises(SpecError, match="queries"):
        pate_jobs(target, _tiny_pate(), public=PopulationSpec.of(PUBLIC), public_n=10)


def test_tiny_pate_run_through_the_executor(local_ray, tmp_path):
    import json

    from farm.cluster.executor import Executor
    from farm.spec.recipes import Perf
    from farm.store.store import Store
    from tests.jobs_fixture import TOKENIZER

    store = Store(tmp_path / "store")
    plan = pate_jobs(_target(), _tiny_pate(), public=PopulationSpec.of(PUBLIC), public_n=200)
    first = Executor(store=store, perf=Perf(), workers=2, progress=None)
    first.run([TOKENIZER, *plan.jobs])
    assert (
        first.ran == 1 + 3 + 3 + 1 + 1
    )  # tokenizer, teachers, their answers, the vote, the student
    votes = store.get_arrays(plan.votes.key)
    meta = store.manifest(plan.votes.key)["meta"]
    assert votes["counts"].sum(axis=1).tolist() == [3] * 40 and meta["queries"] == 40
    answered = int((votes["labels"] >= 0).sum())
    assert meta["answered"] == answered == 40  # plain GNMax answers every query
    assert meta["epsilon"] == pytest.approx(
        _tiny_pate().aggregation(11).epsilon(queries=40, answered=40)
    )
    assert meta["adjacency"] == "add/remove"
    student = json.loads(
        (store.get_dir(plan.student.key, tmp_path / "cache") / "farm.json").read_text()
    )
    assert student["n_train"] == answered
    rerun = Executor(store=store, perf=Perf(), workers=2, progress=None)
    rerun.run([TOKENIZER, *plan.jobs])
    assert (rerun.ran, rerun.reused) == (0, 9)


def test_student_trains_on_the_answered_records_with_the_vote_labels():
    from farm.store.run_job import given_labels
    from farm.training.data import Tokenized

    tokens = Tokenized(
        tuple(np.zeros(3, np.int32) for _ in range(6)), np.full(6, 3), np.zeros(6, np.int64), 0
    )
    votes = {"indices": np.array([1, 2, 4]), "labels": np.array([1, -1, 1])}
    labelled, keep = given_labels(tokens, np.array([1, 2, 4, 5]), votes)
    assert keep.tolist() == [1, 4] and labelled.labels.tolist() == [0, 1, 0, 0, 1, 0]
    with pytest.raises(SpecError, match="answered none"):
        given_labels(tokens, np.array([2, 5]), votes)


# --- the defence seam: make-challenge, then farm attack unchanged ---------------------------------


def test_pate_plans_through_the_defence_seam():
    from farm.commands.make_challenge import challenge_jobs
    from farm.config.challenge import load_challenge_config
    from farm.defences.seam import TargetSpec, build_target
    from tests.jobs_fixture import POP, TOKENIZER

    pate = load_pate("tests/data/tiny-pate.yaml")
    members = Selection.of(300, np.arange(280))
    spec = TargetSpec(
        population=PopulationSpec.of(POP),
        tokenizer=StoreRef(TOKENIZER.key),
        selection=members,
        seed=11,
        base=None,
        label="t",
        public=PopulationSpec.of(PUBLIC),
        public_n=200,
    )
    dplan = build_target(pate, spec)
    assert dplan.aggregate == "single" and dplan.members == (dplan.state.student.key,)
    assert [type(j).__name__ for j in dplan.jobs].count("VoteJob") == 1 and len(
        dplan.jobs
    ) == 3 + 3 + 1 + 1
    assert dplan.privacy == pate.privacy()
    with pytest.raises(SpecError, match="public"):
        build_target(
            pate,
            TargetSpec(
                population=PopulationSpec.of(POP),
                tokenizer=StoreRef(TOKENIZER.key),
                selection=members,
                seed=11,
                base=None,
                label="t",
            ),
        )
    config = load_challenge_config("tests/data/tiny-mini-pate.yaml")
    p = challenge_jobs(config, 300)
    students = [t.build.state.student for t in p.targets if t.scenario == "sst2_pate"]
    assert len(students) == 4 and all(
        s.population == config.public_spec and s.base == StoreRef(p.base.key) for s in students
    )
    assert p.constants.targets["sst2_pate"]["defence"] == "pate"


def test_named_student_and_too_many_queries(tmp_path):
    from farm.config.challenge import load_challenge_config
    from farm.config.recipes import load_recipe

    path = tmp_path / "p.yaml"
    path.write_text(
        "defence: pate\nrecipe: mini-inf\nstudent: mini-inf\nteachers: 2\nsigma: 1.0\nqueries: "
        "500\n"
    )
    assert load_pate(path).student == load_recipe("mini-inf")
    config = tmp_path / "c.yaml"
    text = (
        open("tests/data/tiny-mini-pate.yaml")
        .read()
        .replace("tests/data/tiny-pate.yaml", str(path))
    )
    config.write_text(text)
    with pytest.raises(ConfigError, match="500 public queries"):
        load_challenge_config(config)


def test_pate_challenge_is_attacked_unchanged(local_ray, tmp_path, capsys):
    import json

    from farm.challenge.tree import read_challenge
    from farm.cli import main

    out = tmp_path / "built"
    argv = ["make-challenge", "--config", "tests/data/tiny-mini-pate.yaml", "--out", str(out)]
    assert main([*argv, "--store", str(out / "store")]) == 0  # the store the attack below reads
    ch = read_challenge(out / "challenge")
    dev = ch.select("sst2_pate", "dev")[0]
    assert (dev.path / "model.safetensors").exists() and not (
        dev.path / "ensemble.json"
    ).exists()  # the student
    recorded = ch.constants.targets["sst2_pate"]
    assert recorded["defence"] == "pate" and recorded["teachers"] == 3 and recorded["epsilon"] > 0
    attack = tmp_path / "attack"
    assert (
        main(
            [
                "attack",
                "--challenge",
                str(out / "challenge"),
                "--config",
                "tests/data/tiny-attack.yaml",
                "--answers",
                str(out / "answers"),
                "--out",
                str(attack),
                "--store",
                str(out / "store"),
            ]
        )
        == 0
    )
    report = capsys.readouterr().out
    assert "| sst2_pate | dev |" in report and "| sst2_inf | dev |" in report
    metrics = json.loads((attack / "metrics.json").read_text())
    assert set(metrics["scenarios"]) == {"sst2_inf", "sst2_pate"}
