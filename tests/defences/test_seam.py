"""The defence seam: plain recipes and defences planned through one door; defence configs checked at
load."""

from pathlib import Path

import numpy as np
import pytest

from farm.config.challenge import load_challenge_config
from farm.config.recipes import is_defence, load_defence, load_recipe, load_scenario_recipe
from farm.defences.seam import TargetBuild, TargetSpec, build_target, recipe_privacy, redone
from farm.defences.sisa import Sisa
from farm.errors import ConfigError, SpecError
from farm.spec.jobs import Selection, StoreRef, TrainJob
from farm.spec.population import PopulationSpec

DATA = Path(__file__).parents[1] / "data"
POP = {"source": "synthetic", "n": 300, "seed": 0}


def target(seed=5):
    return TargetSpec(
        population=PopulationSpec.of(POP),
        tokenizer=StoreRef("tok"),
        selection=Selection.of(300, np.arange(280)),
        seed=seed,
        base=StoreRef("base"),
        label="s/model_0",
    )


def test_plain_recipe_is_one_training_released_as_itself():
    recipe = load_recipe("mini-inf")
    plan = build_target(recipe, target())
    job = TrainJob(
        population=PopulationSpec.of(POP),
        tokenizer=StoreRef("tok"),
        selection=Selection.of(300, np.arange(280)),
        recipe=recipe.__class__(**{**recipe.__dict__, "seed": 5}),
        base=StoreRef("base"),
    )
    assert (
        plan.jobs == (job,) and plan.members == (job.key,) and plan.aggregate == "single"
    )  # keys as before
    assert plan.privacy == recipe_privacy(recipe) == {"epsilon": "inf"}


def test_defence_plan_contract_is_checked():
    job = build_target(load_recipe("mini-inf"), target()).jobs[0]
    with pytest.raises(SpecError, match="members"):
        TargetBuild(jobs=(job,), members=("not-a-job-key",), aggregate="mean", privacy={})
    with pytest.raises(SpecError, match="exactly one member"):
        TargetBuild(jobs=(job, job), members=(job.key, job.key), aggregate="single", privacy={})
    with pytest.raises(SpecError, match="aggregate"):
        TargetBuild(jobs=(job,), members=(job.key,), aggregate="median", privacy={})


@pytest.mark.parametrize("name", ["sisa-s5-r1", "sisa-s5-r5"])
def test_shipped_defences_load(name):
    assert is_defence(name) and not is_defence("mini-inf")
    defence = load_defence(name)
    assert isinstance(defence, Sisa) and defence.recipe == load_recipe("mini-inf")
    assert load_scenario_recipe(name, "c.yaml", "scenarios.x") == defence
    assert defence.privacy()["defence"] == "sisa" and defence.privacy()["epsilon"] == "inf"


def test_make_challenge_config_accepts_a_defence():
    config = load_challenge_config(DATA / "tiny-mini-sisa.yaml")
    assert config.scenarios == {"sst2_sisa": "tests/data/tiny-sisa.yaml"}


@pytest.mark.parametrize(
    "body, message",
    [
        (
            "defence: sisa\nrecipe: mini-inf\nshards: 0\n",
            "bad.yaml: shards: expected an integer >= 1, got 0",
        ),
        (
            "defence: sisa\nrecipe: mini-inf\naggregate: median\n",
            "bad.yaml: aggregate: expected mean or vote",
        ),
        ("defence: sisa\nrecipe: mini-inf\nshard: 5\n", "bad.yaml: shard"),
        ("defence: sisa\nrecipe: mini-inf\nslices: two\n", "bad.yaml: slices: expected an integer"),
        (
            "defence: sisa\nrecipe: mini-inf\nforget: -1\n",
            "bad.yaml: forget: expected an integer >= 0",
        ),
        ("defence: sisa\n", "bad.yaml: recipe: missing"),
        ("defence: sisa\nrecipe: no-such-recipe\n", "bad.yaml: recipe: no recipe 'no-such-recipe'"),
        (
            "defence: sisa\nrecipe: {epochs: 0}\n",
            "bad.yaml: recipe.epochs: expected an integer >= 1",
        ),
        ("defence: shield\nrecipe: mini-inf\n", "bad.yaml: defence: expected one of sisa"),
    ],
)
def test_bad_defence_fails_at_load_in_one_line(tmp_path, body, message):
    bad = tmp_path / "bad.yaml"
    bad.write_text(body)
    config = tmp_path / "mini.yaml"
    config.write_text(
        (DATA / "tiny-mini-sisa.yaml").read_text().replace("tests/data/tiny-sisa.yaml", str(bad))
    )
    with pytest.raises(ConfigError) as info:
        load_challenge_config(config)
    text = str(info.value)
    assert (
        "\n" not in text
        and text.startswith(f"{config}: scenarios.sst2_sisa: defence")
        and message in text
    )


def test_forgetting_more_than_the_challenge_members_fails_at_load(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("defence: sisa\nrecipe: mini-inf\nforget: 11\n")
    config = tmp_path / "mini.yaml"
    config.write_text(
        (DATA / "tiny-mini-sisa.yaml").read_text().replace("tests/data/tiny-sisa.yaml", str(bad))
    )
    with pytest.raises(ConfigError, match="forgets 11 members per target, more than the 10"):
        load_challenge_config(config)


def test_redone_lists_new_keys_only():
    sisa = Sisa(recipe=load_recipe("mini-inf"), shards=2, slices=2)
    before = build_target(sisa, target())
    after = build_target(sisa, target(seed=6))
    assert redone(before, before) == [] and len(redone(before, after)) == 4


def test_label_noise_recipes_record_their_label_dp_epsilon():
    from farm.commands.make_challenge import privacy_record
    from farm.defences.registry import registry

    rr = load_recipe("mini-rr-e1")
    record = privacy_record(rr)
    assert record == {
        "epsilon": "inf",
        "label_dp": "label-DP",
        "label_epsilon": 1.0,
        "mechanism": "randomized_response",
    }  # labels only: no record-level bound
    assert recipe_privacy(load_recipe("mini-inf")) == {"epsilon": "inf"}
    assert registry()["pate"].__name__ == "Pate"
