"""PATE: partitions, (confident-)GNMax, the accountant against a hand-computed case and Opacus, the defence YAML,
and a tiny PATE run through the executor (teachers, answers, vote, student; a rerun runs nothing)."""

import math

import numpy as np
import pytest

from farm.errors import ConfigError, SpecError
from farm.jobs import Selection, StoreRef
from farm.pate import (
    ORDERS,
    Aggregation,
    confident_gnmax,
    gaussian_rdp,
    gnmax,
    partition,
    pate_rdp,
    rdp_epsilon,
    vote_counts,
)
from farm.pateplan import Pate, plan_pate
from farm.recipes import ModelSpec, Recipe, TinyModel, from_dict

# --- partitions --------------------------------------------------------------------------------------------------


def test_partition_is_disjoint_covers_and_is_seeded():
    records = np.random.default_rng(0).choice(1000, 280, replace=False)
    parts = partition(records, 7, seed=[3, 4])
    joined = np.concatenate(parts)
    assert joined.size == np.unique(joined).size == 280  # disjoint
    assert np.array_equal(np.sort(joined), np.sort(records))  # covers
    assert {p.size for p in parts} == {40} and all(np.array_equal(p, np.sort(p)) for p in parts)
    again, other = partition(records, 7, seed=[3, 4]), partition(records, 7, seed=[3, 5])
    assert all(np.array_equal(a, b) for a, b in zip(parts, again))
    assert not all(np.array_equal(a, b) for a, b in zip(parts, other))
    assert [p.size for p in partition(np.arange(10), 3, 0)] == [4, 3, 3]
    with pytest.raises(SpecError, match="teachers"):
        partition(np.arange(3), 4, 0)


# --- aggregation -------------------------------------------------------------------------------------------------


def test_vote_counts():
    votes = np.array([[0, 1, 1], [0, 0, 1], [1, 0, 1]])  # [teachers, queries]
    assert vote_counts(votes, 2).tolist() == [[2, 1], [2, 1], [0, 3]]
    with pytest.raises(SpecError):
        vote_counts(np.array([[0, 2]]), 2)


def test_gnmax_without_noise_is_the_plurality_vote():
    rng = np.random.default_rng(0)
    counts = rng.integers(0, 20, (500, 3))
    assert np.array_equal(gnmax(counts, 0.0, rng), counts.argmax(axis=1))
    assert np.array_equal(Aggregation(0.0).labels(counts), counts.argmax(axis=1))


def test_gnmax_noise_is_seeded_and_flips_close_votes_only():
    counts = np.tile([[60, 40]], (2000, 1))
    labels = Aggregation(5.0, seed=1).labels(counts)
    assert np.array_equal(labels, Aggregation(5.0, seed=1).labels(counts))
    # P(noisy 40 > noisy 60) = P(N(0, 2 * 25) > 20) = 1 - Phi(20 / sqrt(50)): about 0.0023
    assert (labels == 1).mean() < 0.01 and (Aggregation(30.0, seed=1).labels(counts) == 1).mean() > 0.2


def test_confident_gnmax_answers_only_confident_queries():
    counts = np.array([[9, 1]] * 50 + [[5, 5]] * 50)
    labels = confident_gnmax(counts, threshold=8, sigma1=1e-6, sigma2=1e-6, seed=0)
    assert labels[:50].tolist() == [0] * 50 and labels[50:].tolist() == [-1] * 50
    assert (confident_gnmax(counts, threshold=100, sigma1=1.0, sigma2=1.0, seed=0) == -1).all()
    agg = Aggregation(1e-6, threshold=8, sigma1=1e-6, seed=2)
    assert np.array_equal(agg.labels(counts), labels)


# --- the accountant ----------------------------------------------------------------------------------------------


def test_accountant_matches_a_hand_computed_case():
    """100 GNMax answers at sigma 40 (L2 sensitivity sqrt(2)): RDP(alpha) = 100 * alpha / 40^2 = alpha / 16."""
    orders = np.array([2.0, 10.0, 15.0, 32.0])
    assert pate_rdp(orders, queries=100, answered=100, sigma=40.0).tolist() == [2 / 16, 10 / 16, 15 / 16, 32 / 16]
    delta = 1e-5
    # classic conversion (Mironov 2017): rdp + log(1/delta) / (alpha - 1), by hand at these orders
    classic = {a: a / 16 + math.log(1 / delta) / (a - 1) for a in orders}
    assert classic[15.0] == pytest.approx(0.9375 + 11.512925 / 14, abs=1e-6)  # 1.759855: the best of the four
    assert min(classic.values()) == classic[15.0]
    # Opacus' conversion (Balle et al. 2020): rdp - (log(delta) + log(alpha)) / (alpha - 1) + log((alpha - 1) / alpha)
    balle15 = 0.9375 - (math.log(delta) + math.log(15)) / 14 + math.log(14 / 15)
    assert balle15 == pytest.approx(0.9375 + 8.8048753 / 14 - 0.0689929, abs=1e-6)  # 1.497427
    eps, order = rdp_epsilon(orders, pate_rdp(orders, queries=100, answered=100, sigma=40.0), delta)
    assert (eps, order) == (pytest.approx(balle15), 15.0)
    full = Aggregation(40.0, delta=delta).epsilon(queries=100, answered=100)  # over all of ORDERS
    assert full <= balle15 < classic[15.0] and full == pytest.approx(balle15, abs=0.03)


def test_accountant_equals_opacus():
    from opacus.accountants.analysis.rdp import compute_rdp, get_privacy_spent

    orders = list(ORDERS)
    for sigma, answered in [(40.0, 100), (5.0, 200), (2.0, 7)]:
        ours = pate_rdp(np.asarray(orders), queries=answered, answered=answered, sigma=sigma)
        theirs = compute_rdp(q=1.0, noise_multiplier=sigma / math.sqrt(2), steps=answered, orders=orders)
        assert np.allclose(ours, theirs, rtol=1e-12)
        assert rdp_epsilon(np.asarray(orders), ours, 1e-5)[0] == pytest.approx(
            get_privacy_spent(orders=orders, rdp=theirs, delta=1e-5)[0], rel=1e-12)
    # confident-GNMax: every query pays the threshold check (sensitivity 1, sigma1), each answer GNMax (sigma2)
    ours = pate_rdp(np.asarray(orders), queries=1000, answered=300, sigma=20.0, sigma1=10.0)
    theirs = (compute_rdp(q=1.0, noise_multiplier=10.0, steps=1000, orders=orders)
              + compute_rdp(q=1.0, noise_multiplier=20.0 / math.sqrt(2), steps=300, orders=orders))
    assert np.allclose(ours, theirs, rtol=1e-12)


def test_accountant_edges():
    assert rdp_epsilon(np.asarray(ORDERS), pate_rdp(np.asarray(ORDERS), queries=5, answered=0, sigma=1.0),
                       1e-5)[0] == 0.0
    assert math.isinf(Aggregation(0.0).epsilon(queries=3, answered=3))
    assert gaussian_rdp(np.array([2.0]), 1.0).tolist() == [1.0]
    more = Aggregation(5.0).epsilon(queries=100, answered=100)
    assert Aggregation(5.0).epsilon(queries=100, answered=50) < more < Aggregation(4.0).epsilon(queries=100,
                                                                                               answered=100)
    with pytest.raises(SpecError, match="answered"):
        pate_rdp(np.asarray(ORDERS), queries=2, answered=3, sigma=1.0)


# --- the defence YAML --------------------------------------------------------------------------------------------


def load_pate(path):
    from farm.mini import load_defence

    pate = load_defence(path)
    assert isinstance(pate, Pate)
    return pate


def test_pate_config_checks():
    base = {"recipe": {}, "student": {"epochs": 1}, "teachers": 10, "sigma": 40, "queries": 100}
    pate = from_dict(Pate, base)
    assert (pate.sigma, pate.student.epochs) == (40.0, 1)
    for bad, key in [({"teachers": 0}, "teachers"), ({"sigma": -1}, "sigma"), ({"student": "mini-inf"}, "student"),
                     ({"threshold": 5}, "sigma1"), ({"threshold": 5, "sigma1": 0}, "sigma1"),
                     ({"delta": 0}, "delta"), ({"queries": 0}, "queries"), ({"noise": 1}, "noise")]:
        with pytest.raises(SpecError, match=key):
            from_dict(Pate, {**base, **bad})


def test_privacy_record():
    pate = from_dict(Pate, {"recipe": {}, "student": {}, "teachers": 10, "sigma": 40, "queries": 100})
    assert pate.privacy() == {"epsilon": pytest.approx(Aggregation(40.0).epsilon(queries=100, answered=100)),
                              "delta": 1e-5, "defence": "pate", "teachers": 10, "sigma": 40.0, "queries": 100}
    confident = from_dict(Pate, {"recipe": {}, "student": {}, "teachers": 10, "sigma": 40, "queries": 100,
                                 "threshold": 8, "sigma1": 4})
    assert confident.privacy()["epsilon"] > pate.privacy()["epsilon"]  # all answered: an upper bound


def test_shipped_pate_defences_load():
    pate = load_pate("pate-t10-s5")
    assert (pate.teachers, pate.sigma, pate.recipe.epochs, pate.student.model.name) == (10, 5.0, 3, "base")
    confident = load_pate("pate-t50-conf")
    assert confident.threshold == 40.0
    assert confident.privacy()["epsilon"] == pytest.approx(24.83, abs=0.01)  # as its comment says
    assert load_pate("tests/data/tiny-pate.yaml").teachers == 3


def test_bad_defence_yaml_fails_in_one_line(tmp_path):
    good = {"defence": "pate", "recipe": "mini-inf", "student": "{epochs: 1}", "teachers": "3", "sigma": "1.0",
            "queries": "4"}
    for line, key in {"teachers: 0": "teachers", "student: no-such-recipe": "student", "sigma: loud": "sigma",
                      "extra: 1": "extra", "threshold: 3": "sigma1"}.items():
        path = tmp_path / "bad.yaml"
        rest = {k: v for k, v in good.items() if k != line.split(":")[0]}
        path.write_text("\n".join([*(f"{k}: {v}" for k, v in rest.items()), line]) + "\n")
        with pytest.raises(ConfigError) as info:
            load_pate(path)
        message = str(info.value)
        assert "\n" not in message and str(path) in message and key in message


# --- PATE as jobs ------------------------------------------------------------------------------------------------

PUBLIC = {"source": "synthetic", "n": 200, "seed": 5}


def _tiny_pate():
    recipe = Recipe(model=ModelSpec(name="tiny", tiny=TinyModel(32, 1, 2, 64)), epochs=1, learning_rate=1e-3,
                    batch_size=32)
    return Pate(recipe, recipe, teachers=3, sigma=0.5, queries=40)


def _target():
    """A target as make-challenge plans it (the fields of ``farm.defences.TargetSpec``)."""
    from types import SimpleNamespace

    from tests.jobs_fixture import train_jobs

    job = train_jobs(1)[0]
    return SimpleNamespace(population=job.population, tokenizer=job.tokenizer, selection=job.selection, seed=11,
                           base=None, label="sst2_pate/train/model_0")


def test_plan_pate_shapes_jobs_from_the_target():
    target = _target()
    plan = plan_pate(target, _tiny_pate(), public=PUBLIC, public_n=200)
    parts = [t.selection.indices() for t in plan.teachers]
    assert np.array_equal(np.sort(np.concatenate(parts)), target.selection.indices())
    assert len({t.recipe.seed for t in plan.teachers}) == 3
    assert all(a.model.key == t.key and a.selection == plan.student.selection
               for a, t in zip(plan.answers, plan.teachers))
    assert plan.student.labels is not None and plan.student.labels.key == plan.votes.key
    assert plan.student.population == PUBLIC and plan.model.key == plan.student.key
    assert plan.student.selection.indices().size == 40 and plan.student.recipe.seed == 11
    again = plan_pate(target, _tiny_pate(), public=PUBLIC, public_n=200)
    assert [j.key for j in again.jobs] == [j.key for j in plan.jobs]  # deterministic, so reruns find every key
    with pytest.raises(SpecError, match="queries"):
        plan_pate(target, _tiny_pate(), public=PUBLIC, public_n=10)


def test_tiny_pate_run_through_the_executor(local_ray, tmp_path):
    import json

    from farm.cluster import Executor
    from farm.recipes import Perf
    from farm.store import Store
    from tests.jobs_fixture import TOKENIZER

    store = Store(tmp_path / "store")
    plan = plan_pate(_target(), _tiny_pate(), public=PUBLIC, public_n=200)
    first = Executor(store, perf=Perf(), workers=2, progress=None)
    first.run([TOKENIZER, *plan.jobs])
    assert first.ran == 1 + 3 + 3 + 1 + 1  # tokenizer, teachers, their answers, the vote, the student
    votes = store.get_arrays(plan.votes.key)
    meta = store.manifest(plan.votes.key)["meta"]
    assert votes["counts"].sum(axis=1).tolist() == [3] * 40 and meta["queries"] == 40
    answered = int((votes["labels"] >= 0).sum())
    assert meta["answered"] == answered == 40  # plain GNMax answers every query
    assert meta["epsilon"] == pytest.approx(_tiny_pate().aggregation(11).epsilon(queries=40, answered=40))
    student = json.loads((store.get_dir(plan.student.key, tmp_path / "cache") / "farm.json").read_text())
    assert student["n_train"] == answered
    rerun = Executor(store, perf=Perf(), workers=2, progress=None)
    rerun.run([TOKENIZER, *plan.jobs])
    assert (rerun.ran, rerun.reused) == (0, 9)


def test_student_trains_on_the_answered_records_with_the_vote_labels():
    from farm.data import Tokenized
    from farm.run import given_labels

    tokens = Tokenized(tuple(np.zeros(3, np.int32) for _ in range(6)), np.full(6, 3), np.zeros(6, np.int64), 0)
    votes = {"indices": np.array([1, 2, 4]), "labels": np.array([1, -1, 1])}
    labelled, keep = given_labels(tokens, np.array([1, 2, 4, 5]), votes)
    assert keep.tolist() == [1, 4] and labelled.labels.tolist() == [0, 1, 0, 0, 1, 0]
    with pytest.raises(SpecError, match="answered none"):
        given_labels(tokens, np.array([2, 5]), votes)


# --- the defence seam: make-challenge, then farm attack unchanged -------------------------------------------------


def test_pate_plans_through_the_defence_seam():
    from farm.defences import TargetSpec, plan_target
    from farm.mini import load_config, plan
    from tests.jobs_fixture import POP, TOKENIZER

    pate = load_pate("tests/data/tiny-pate.yaml")
    members = Selection.of(300, np.arange(280))
    spec = TargetSpec(POP, StoreRef(TOKENIZER.key), members, 11, None, "t", public=PUBLIC, public_n=200)
    dplan = plan_target(pate, spec)
    assert dplan.aggregate == "single" and dplan.members == (dplan.state.student.key,)
    assert [type(j).__name__ for j in dplan.jobs].count("VoteJob") == 1 and len(dplan.jobs) == 3 + 3 + 1 + 1
    assert dplan.privacy == pate.privacy()
    with pytest.raises(SpecError, match="public"):
        plan_target(pate, TargetSpec(POP, StoreRef(TOKENIZER.key), members, 11, None, "t"))
    config = load_config("tests/data/tiny-mini-pate.yaml")
    p = plan(config, 300)
    students = [t.plan.state.student for t in p.targets if t.scenario == "sst2_pate"]
    assert len(students) == 4 and all(s.population == config.public and s.base == StoreRef(p.base.key)
                                      for s in students)
    assert p.constants.targets["sst2_pate"]["defence"] == "pate"


def test_named_student_and_too_many_queries(tmp_path):
    from farm.config import load_recipe
    from farm.mini import load_config

    path = tmp_path / "p.yaml"
    path.write_text("defence: pate\nrecipe: mini-inf\nstudent: mini-inf\nteachers: 2\nsigma: 1.0\nqueries: 500\n")
    assert load_pate(path).student == load_recipe("mini-inf")
    config = tmp_path / "c.yaml"
    text = open("tests/data/tiny-mini-pate.yaml").read().replace("tests/data/tiny-pate.yaml", str(path))
    config.write_text(text)
    with pytest.raises(ConfigError, match="500 public queries"):
        load_config(config)


def test_pate_challenge_is_attacked_unchanged(local_ray, tmp_path, capsys):
    import json

    from farm.challenge import read_challenge
    from farm.cli import main

    out = tmp_path / "built"
    assert main(["make-challenge", "--config", "tests/data/tiny-mini-pate.yaml", "--out", str(out)]) == 0
    ch = read_challenge(out / "challenge")
    dev = ch.select("sst2_pate", "dev")[0]
    assert (dev.path / "model.safetensors").exists() and not (dev.path / "ensemble.json").exists()  # the student
    recorded = ch.constants.targets["sst2_pate"]
    assert recorded["defence"] == "pate" and recorded["teachers"] == 3 and recorded["epsilon"] > 0
    attack = tmp_path / "attack"
    assert main(["attack", "--challenge", str(out / "challenge"), "--config", "tests/data/tiny-attack.yaml",
                 "--answers", str(out / "answers"), "--out", str(attack), "--store", str(out / "store")]) == 0
    report = capsys.readouterr().out
    assert "| sst2_pate | dev |" in report and "| sst2_inf | dev |" in report
    metrics = json.loads((attack / "metrics.json").read_text())
    assert set(metrics["scenarios"]) == {"sst2_inf", "sst2_pate"}
