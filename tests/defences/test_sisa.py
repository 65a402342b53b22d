"""SISA: shard/slice layout, checkpoint chains, unlearning that reruns only affected shards, the
unlearning challenge end to end (make-challenge, then ``farm attack`` unchanged)."""

import dataclasses

import numpy as np
import pytest

from farm.defences.seam import TargetSpec, build_target, redone
from farm.defences.sisa import Sisa, forget_members, forgetting_rates, shard_of, split, unlearn
from farm.errors import SpecError
from farm.spec.jobs import Selection, StoreRef
from farm.spec.population import PopulationSpec
from farm.spec.recipes import DPConfig, ModelSpec, Recipe, TinyModel
from tests.jobs_fixture import POP, TOKENIZER

TINY = Recipe(
    model=ModelSpec(name="tiny", tiny=TinyModel(32, 1, 2, 64)),
    epochs=1,
    learning_rate=1e-3,
    batch_size=32,
)
MEMBERS = np.random.default_rng(0).choice(300, 280, replace=False)


def target(seed=3):
    return TargetSpec(
        population=PopulationSpec.of(POP),
        tokenizer=StoreRef(TOKENIZER.key),
        selection=Selection.of(300, MEMBERS),
        seed=seed,
        base=None,
        label="sisa",
    )


@pytest.mark.parametrize("shards, slices", [(1, 1), (5, 1), (3, 4), (7, 5)])
def test_split_is_a_seeded_partition(shards, slices):
    layout = split(MEMBERS, shards, slices, seed=11)
    parts = [part for shard in layout for part in shard]
    assert len(layout) == shards and all(len(shard) == slices for shard in layout)
    everything = np.concatenate(parts)
    assert everything.size == MEMBERS.size and np.array_equal(
        np.sort(everything), np.sort(MEMBERS)
    )  # disjoint, all
    sizes = [part.size for part in parts]
    assert max(sizes) - min(sizes) <= 1
    again = split(MEMBERS, shards, slices, seed=11)
    assert all(np.array_equal(a, b) for s, t in zip(layout, again) for a, b in zip(s, t))
    other = split(MEMBERS, shards, slices, seed=12)
    assert shards * slices == 1 or not np.array_equal(layout[0][0], other[0][0])


def test_split_refuses_empty_slices():
    with pytest.raises(SpecError, match="cannot fill"):
        split(np.arange(5), 3, 2, seed=0)


def test_checkpoints_chain_through_base():
    plan = build_target(Sisa(recipe=TINY, shards=2, slices=3), target())
    assert len(plan.jobs) == 6 and plan.aggregate == "mean"
    first, second, third = plan.jobs[:3]
    assert (
        first.recipe.model.name == "tiny" and first.base is None
    )  # the member recipe as it starts
    assert second.base == StoreRef(first.key) and second.recipe.model.name == "base"
    assert third.base == StoreRef(second.key) and plan.members == (third.key, plan.jobs[5].key)
    layout = plan.state.layout
    assert np.array_equal(
        second.selection.indices(), np.sort(np.concatenate(layout[0][:2]))
    )  # slices 0..1
    assert len({job.recipe.seed for job in plan.jobs}) == 6


def test_unlearning_keeps_unaffected_shards_and_prefixes():
    plan = build_target(Sisa(recipe=TINY, shards=3, slices=4), target())
    record = int(plan.state.layout[1][2][0])
    assert shard_of(plan, record) == (1, 2)
    after = unlearn(
        plan, [record, 299 if 299 not in MEMBERS else -1]
    )  # a never-trained index is ignored
    changed = [(j.label) for j in redone(plan, after)]
    assert changed == ["sisa/shard_1/slice_2", "sisa/shard_1/slice_3"]
    assert shard_of(after, record) is None and after.members[0] == plan.members[0]


def test_unlearning_a_whole_slice_drops_its_checkpoint():
    plan = build_target(Sisa(recipe=TINY, shards=2, slices=3), target())
    after = unlearn(plan, plan.state.layout[0][0])
    labels = [j.label for j in after.jobs if "shard_0" in j.label]
    assert (
        labels == ["sisa/shard_0/slice_1", "sisa/shard_0/slice_2"]
        and after.jobs[0].recipe.model.name == "tiny"
    )
    with pytest.raises(SpecError, match="shard 0 holds no records"):
        unlearn(plan, np.concatenate(plan.state.layout[0]))


def test_forget_members_draws_challenge_members():
    plan = build_target(Sisa(recipe=TINY, shards=2, slices=1), target())
    challenge = MEMBERS[:20]
    solution = np.r_[np.ones(10, np.int64), np.zeros(10, np.int64)]
    after, mask = forget_members(plan, challenge, solution, 3, seed=-5)
    assert mask.sum() == 3 and not (mask & (solution == 0)).any()
    assert all(shard_of(after, int(i)) is None for i in challenge[mask == 1])
    with pytest.raises(SpecError, match="cannot forget 11 of 10"):
        forget_members(plan, challenge, solution, 11, seed=0)


def test_dp_members_with_several_slices_are_refused_at_load(tmp_path):
    """A record of slice r (0-based) of R is trained in the R - r checkpoints from r on, so one
    checkpoint's epsilon is not the ensemble's: a DP member recipe with slices > 1 is a config error
    naming ``slices``."""
    from farm.config.recipes import load_defence
    from farm.errors import ConfigError

    dp = Recipe(dp=DPConfig(target_epsilon=4.0, delta=1e-5))
    with pytest.raises(SpecError, match="slices: expected 1 with a DP member recipe") as info:
        Sisa(recipe=dp, shards=2, slices=3)
    assert info.value.key == "slices"
    bad = tmp_path / "bad.yaml"
    bad.write_text("defence: sisa\nrecipe: mini-lo\nshards: 2\nslices: 2\n")
    with pytest.raises(ConfigError, match=f"{bad}: slices: expected 1 with a DP member recipe"):
        load_defence(bad)
    assert (
        Sisa(recipe=TINY, shards=2, slices=3).slices == 3
    )  # without DP, slicing is SISA's business


def test_dp_members_with_one_slice_record_one_shard_trainings_epsilon():
    """S > 1, R = 1: every record is trained in exactly one training (its shard's), and shards are
    disjoint, so the ensemble's epsilon is one shard training's (parallel composition); the noise of
    each is solved at its shard's size, so each spends the recipe's target epsilon on its own
    records."""
    dp = DPConfig(target_epsilon=4.0, delta=1e-5, sampling="shuffle")
    member = dataclasses.replace(TINY, dp=dp, group_by_length=False)
    defence = Sisa(recipe=member, shards=4, slices=1, aggregate="vote")
    record = defence.privacy()
    assert record == {
        "epsilon": 4.0,
        "delta": 1e-5,
        "accountant": "prv",
        "sampling": "shuffle",
        "adjacency": "add/remove",
        "assumes": "as accounted for Poisson sampling; the run used shuffled batches "
        "(prv accountant, add/remove adjacency)",
        "composition": "parallel over disjoint shards (a keyed hash of each record picks its "
        "shard): each record is trained in one shard's one training; each shard's size is taken "
        "as public, as DP-SGD takes n",
        "defence": "sisa",
        "shards": 4,
        "slices": 1,
        "aggregate": "vote",
    }
    plan = build_target(defence, target())
    assert plan.privacy == record and len(plan.jobs) == 4
    assert all(job.recipe.dp == dp for job in plan.jobs)  # target eps 4, solved at each shard's n
    shards = [set(job.selection.indices().tolist()) for job in plan.jobs]
    assert sum(map(len, shards)) == len(set().union(*shards)) == MEMBERS.size  # disjoint, all
    # neighbouring training sets, neighbouring shards: one record more changes one shard's data only
    extra = int(np.setdiff1d(np.arange(300), MEMBERS)[0])
    bigger = dataclasses.replace(target(), selection=Selection.of(300, np.append(MEMBERS, extra)))
    grown = [set(job.selection.indices().tolist()) for job in build_target(defence, bigger).jobs]
    changed = [i for i, (a, b) in enumerate(zip(shards, grown)) if a != b]
    assert len(changed) == 1 and grown[changed[0]] - shards[changed[0]] == {extra}


def test_forgetting_rates_by_hand():
    scores = np.array([9, 8, 7, 1, 6, 0.5, 5, 4, 3, 2, 1, 0], dtype=float)
    solution = np.array([1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0])
    forgotten = np.array([0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0])
    rates = forgetting_rates(
        scores, solution, forgotten, max_fpr=0.2
    )  # 1 of 6 never-seen may pass (1/6 < 0.2)
    assert rates == {
        "kept": 0.75,
        "n_kept": 4,
        "forgotten": 0.5,
        "n_forgotten": 2,
        "never": 1 / 6,
        "n_never": 6,
    }
    assert (
        forgetting_rates(scores, solution, forgotten, max_fpr=0.1)["never"] == 0.0
    )  # threshold 5: 9, 8, 7, 6


# --- on the executor ------------------------------------------------------------------------------


def test_unlearning_reruns_only_affected_shards(local_ray, tmp_path):
    from farm.cluster.executor import Executor
    from farm.store.run_job import job_seconds
    from farm.store.store import Store

    store = Store(tmp_path / "store")
    plan = build_target(Sisa(recipe=TINY, shards=2, slices=2), target())
    with Executor(store=store, workers=2, progress=None) as executor:  # one pool for every run
        first = executor.run([TOKENIZER, *plan.jobs])
        late = unlearn(
            plan, [int(plan.state.layout[1][1][0])]
        )  # shard 1, last slice: one checkpoint redone
        again = executor.run(list(late.jobs))
        early = unlearn(
            late, [int(plan.state.layout[0][0][0])]
        )  # shard 0, first slice: both its checkpoints
        third = executor.run(list(early.jobs))
    assert first.ran == 5
    assert (again.ran, again.skipped) == (1, 3)
    assert (third.ran, third.skipped) == (2, 2)
    assert 0 < job_seconds(store, redone(late, early)) < job_seconds(store, list(early.jobs))
    from farm.training.models import load_model

    load_model(
        store.get_dir(early.members[0], tmp_path / "cache")
    )  # a checkpoint trained from its predecessor


def test_sisa_unlearning_challenge_is_attacked_unchanged(local_ray, tmp_path, capsys):
    import json

    import pandas as pd

    from farm.challenge.tree import read_challenge, read_solution
    from farm.cli import main

    out = tmp_path / "built"
    argv = ["make-challenge", "--config", "tests/data/tiny-mini-sisa.yaml", "--out", str(out)]
    assert main([*argv, "--store", str(out / "store")]) == 0  # the store the attack below reads
    ch = read_challenge(out / "challenge")
    dev = ch.select("sst2_sisa", "dev")[0]
    assert json.loads((dev.path / "ensemble.json").read_text()) == {
        "members": ["member_0", "member_1"],
        "aggregate": "mean",
    }
    assert not (
        dev.path / "forgotten.csv"
    ).exists()  # the attacker cannot see what a dev target forgot
    recorded = ch.constants.targets["sst2_sisa"]
    assert (
        recorded["defence"] == "sisa" and recorded["forget"] == 3 and recorded["epsilon"] == "inf"
    )
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
    assert "| sst2_sisa | dev |" in capsys.readouterr().out
    scores = pd.read_parquet(attack / "scores.parquet")
    pooled = {"scores": [], "solution": [], "forgotten": []}
    for model in ch.select("sst2_sisa"):
        folder = (
            (out / "challenge" if model.phase == "train" else out / "answers")
            / "sst2_sisa"
            / model.phase
        )
        mdir = folder / f"model_{model.model_id}"
        forgotten = read_solution(mdir / "forgotten.csv", 20)
        assert forgotten is not None and forgotten.sum() == 3
        rows = scores[scores.model == model.model_id]
        pooled["scores"].append(rows.score.to_numpy())
        pooled["solution"].append(read_solution(mdir / "solution.csv", 20))
        pooled["forgotten"].append(forgotten)
    rates = forgetting_rates(*(np.concatenate(v) for v in pooled.values()), max_fpr=0.5)
    assert rates["n_forgotten"] == 18 and rates["n_kept"] == 42 and rates["n_never"] == 60
    assert 0 <= rates["never"] < 0.5
