"""Randomized response (label DP): the flip rate, per-record coins, the recipe option and its
key."""

import dataclasses
import math

import numpy as np
import pytest

from farm.errors import SpecError
from farm.privacy.label_dp import flip_probability, randomized_response
from farm.spec.coerce import from_dict
from farm.spec.jobs import HubRef, Selection, TrainJob
from farm.spec.population import PopulationSpec
from farm.spec.recipes import LabelNoise, Recipe, canonical_key, to_dict


def test_flip_probability_is_one_over_e_to_the_eps_plus_one():
    assert flip_probability(math.log(3)) == pytest.approx(0.25)
    assert flip_probability(1.0) == pytest.approx(1 / (math.e + 1))
    p = flip_probability(2.0)  # epsilon-label-DP exactly: keep / flip odds are e^eps
    assert (1 - p) / p == pytest.approx(math.exp(2.0))


@pytest.mark.parametrize("epsilon", [0.5, 1.0, 4.0])
def test_flips_at_the_right_rate(epsilon):
    n = 200_000
    labels = np.random.default_rng(1).integers(0, 2, n)
    out = randomized_response(labels, epsilon, seed=3)
    rate, p = float((out != labels).mean()), flip_probability(epsilon)
    assert abs(rate - p) < 5 * math.sqrt(
        p * (1 - p) / n
    )  # a 5-sigma bound (seeded: it never flakes)
    assert set(np.unique(out)) <= {0, 1}
    assert np.array_equal(out, randomized_response(labels, epsilon, seed=3))
    assert not np.array_equal(out, randomized_response(labels, epsilon, seed=4))


def test_a_records_coin_depends_on_its_position_only():
    labels = np.zeros(1000, dtype=np.int64)
    full = randomized_response(labels, 0.3, seed=9)
    assert np.array_equal(randomized_response(labels[:500], 0.3, seed=9), full[:500])
    ones = randomized_response(1 - labels, 0.3, seed=9)  # the same coins flip the other labels
    assert np.array_equal(ones, 1 - full)


def test_non_binary_labels_are_refused():
    with pytest.raises(SpecError, match="binary"):
        randomized_response(np.array([0, 1, 2]), 1.0, seed=0)


def test_recipe_option_is_typed_and_keyed():
    recipe = from_dict(Recipe, {"label_noise": {"mechanism": "randomized_response", "epsilon": 1}})
    assert recipe.label_noise == LabelNoise(epsilon=1.0)
    with pytest.raises(SpecError, match="label_noise.mechanism"):
        from_dict(Recipe, {"label_noise": {"mechanism": "coin", "epsilon": 1}})
    with pytest.raises(SpecError, match="label_noise.epsilon"):
        from_dict(Recipe, {"label_noise": {"epsilon": 0}})
    pop, sel = {"source": "synthetic", "n": 10}, Selection.of(10, np.arange(5))
    plain = TrainJob(
        population=PopulationSpec.of(pop), tokenizer=HubRef("t"), selection=sel, recipe=Recipe()
    )
    noisy = TrainJob(
        population=PopulationSpec.of(pop), tokenizer=HubRef("t"), selection=sel, recipe=recipe
    )
    other = TrainJob(
        population=PopulationSpec.of(pop),
        tokenizer=HubRef("t"),
        selection=sel,
        recipe=dataclasses.replace(recipe, label_noise=LabelNoise(epsilon=2.0)),
    )
    assert len({plain.key, noisy.key, other.key}) == 3
    # a recipe without label noise keeps the key it had before the field existed
    before = {k: v for k, v in to_dict(Recipe()).items() if k != "label_noise"}
    assert plain.key == canonical_key(
        "train",
        {
            "population": pop,
            "tokenizer": "t",
            "selection": to_dict(sel),
            "recipe": before,
            "base": None,
        },
    )


def test_training_sees_the_noisy_labels(tmp_path, monkeypatch):
    import farm.training.train
    from farm.spec.recipes import ModelSpec, TinyModel
    from tests.helpers import tiny_setup

    _, tok, tokens = tiny_setup()
    seen: list[np.ndarray] = []
    real = farm.training.train.pad_batch
    monkeypatch.setattr(
        farm.training.train, "pad_batch", lambda t, b: seen.append(t.labels) or real(t, b)
    )
    recipe = Recipe(
        model=ModelSpec(name="tiny", tiny=TinyModel(32, 1, 2, 64)),
        epochs=1,
        batch_size=100,
        label_noise=LabelNoise(epsilon=0.5),
        seed=5,
    )
    farm.training.train.train(tokens, np.arange(300), recipe, out_dir=tmp_path / "m", tokenizer=tok)
    assert seen and all(
        np.array_equal(s, randomized_response(tokens.labels, 0.5, seed=5)) for s in seen
    )
    assert not np.array_equal(seen[0], tokens.labels)
