"""Canaries: made deterministically, appended as records, each included independently."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from farm.attacks.canaries import (
    adjacency,
    canary_records,
    included_records,
    inclusion,
    make_canaries,
    scored_records,
)
from farm.errors import SpecError
from farm.spec.population import CanarySpec, PopulationSpec
from farm.training.data import load_population

SENTENCES = [f"record {i}" for i in range(50)]
LABELS = np.arange(50) % 2


def test_mislabelled_canaries_are_copies_with_the_label_flipped():
    spec = CanarySpec(kind="mislabelled", count=10, seed=1)
    text, labels, source = make_canaries(SENTENCES, LABELS, spec)
    assert len(set(source)) == 10 and text == [SENTENCES[i] for i in source]
    assert (labels == 1 - LABELS[source]).all()
    again = make_canaries(SENTENCES, LABELS, spec)
    assert again[0] == text and (again[2] == source).all()  # deterministic in the spec
    assert not (
        make_canaries(SENTENCES, LABELS, CanarySpec(kind="mislabelled", count=10, seed=2))[2]
        == source
    ).all()


def test_ood_canaries_are_new_text_and_duplicated_ones_repeat():
    text, labels, source = make_canaries(SENTENCES, LABELS, CanarySpec(kind="ood", count=20))
    assert (source == -1).all() and not set(text) & set(SENTENCES) and len(set(text)) == 20
    assert set(labels.tolist()) <= {0, 1}
    spec = CanarySpec(kind="duplicated", count=4, repeats=3)
    text, labels, source = make_canaries(SENTENCES, LABELS, spec)
    assert len(text) == spec.records == 12 and (source[::3] == source[1::3]).all()
    assert [r.tolist() for r in canary_records(50, spec)][:2] == [[50, 51, 52], [53, 54, 55]]


def test_a_population_spec_appends_its_canaries_and_keys_them():
    plain = {"source": "synthetic", "n": 100, "seed": 0}
    spec = PopulationSpec.of({**plain, "canaries": {"kind": "mislabelled", "count": 8, "seed": 3}})
    base, pop = load_population(PopulationSpec.of(plain)), load_population(spec)
    assert len(pop) == spec.size == 108 and pop.sentences[:100] == base.sentences
    assert spec.identity() != PopulationSpec.of(plain).identity()  # canaries change the key
    with pytest.raises(SpecError) as caught:
        PopulationSpec.of({**plain, "canaries": {"kind": "loud", "count": 1}}, "population")
    assert caught.value.key == "population.canaries.kind"


def test_inclusion_is_a_fair_independent_coin_per_canary_and_run():
    spec = CanarySpec(kind="ood", count=2000, seed=5)
    runs = np.stack([inclusion(spec, run=r) for r in range(8)])
    assert (inclusion(spec, run=3) == runs[3]).all()  # stored by its seed: recomputable
    assert stats.binomtest(int(runs.sum()), runs.size, 0.5).pvalue > 0.01
    # independent across canaries and runs: correlations near 0
    corr = np.corrcoef(runs)
    assert np.abs(corr[np.triu_indices(8, 1)]).max() < 0.1
    lagged = np.corrcoef(runs[0, :-1], runs[0, 1:])[0, 1]
    assert abs(lagged) < 0.1
    picked = included_records(100, spec, run=0)
    assert picked.size == runs[0].sum() and (picked >= 100).all()


def test_relabelled_canaries_train_one_of_their_two_labels_by_the_coin():
    spec = CanarySpec(kind="relabelled", count=6, seed=2)
    text, labels, source = make_canaries(SENTENCES, LABELS, spec)
    assert len(text) == spec.records == 12 and text[::2] == text[1::2]
    assert (labels[::2] == LABELS[source[::2]]).all() and (labels[1::2] == 1 - labels[::2]).all()
    records = canary_records(50, spec)
    assert [r.tolist() for r in scored_records(50, spec)] == [[r[1]] for r in records]
    for run in range(3):
        coins = inclusion(spec, run=run)
        trained = included_records(50, spec, run=run)
        assert trained.tolist() == [r[c] for r, c in zip(records, coins)]  # one copy, by the coin
    assert adjacency(spec) == "label" and adjacency(CanarySpec(kind="ood", count=1)) == "add/remove"
