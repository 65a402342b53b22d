import dataclasses

import numpy as np
import pytest

from farm.errors import SpecError
from farm.spec.jobs import HubRef, InferJob, PathRef, Selection, StoreRef, TokenizerJob, TrainJob
from farm.spec.population import PopulationSpec
from farm.spec.recipes import Recipe, canonical_key, recipe_identity, to_dict


def test_selection_roundtrip_and_size():
    idx = np.sort(np.random.default_rng(0).choice(68_221, 67_349, replace=False))
    sel = Selection.of(68_221, idx[::-1])  # order does not matter: a selection is a set
    assert np.array_equal(sel.indices(), idx)
    assert len(sel.bits) < 12_000


def test_keys_are_content_addressed():
    sel = Selection.of(10, np.array([1, 2, 3]))
    pop = {"source": "synthetic", "n": 10, "seed": 0}
    a = TrainJob(
        population=PopulationSpec.of(pop),
        tokenizer=StoreRef("tok"),
        selection=sel,
        recipe=Recipe(seed=1),
        label="a",
    )
    b = TrainJob(
        population=PopulationSpec.of(dict(pop)),
        tokenizer=StoreRef("tok"),
        selection=Selection.of(10, np.array([3, 2, 1])),
        recipe=Recipe(seed=1),
        label="b",
    )
    assert a.key == b.key  # labels are not semantic
    assert a.key != dataclasses.replace(a, recipe=Recipe(seed=2)).key
    assert a.key != dataclasses.replace(a, selection=Selection.of(10, np.array([1, 2]))).key
    assert a.key != dataclasses.replace(a, base=StoreRef("other")).key
    infer = InferJob(
        population=PopulationSpec.of(pop),
        tokenizer=StoreRef("tok"),
        model=StoreRef(a.key),
        selection=sel,
    )
    assert infer.key != a.key and len(infer.key) == 64
    assert (
        TokenizerJob(PopulationSpec.of(pop)).key
        != TokenizerJob(PopulationSpec.of(pop), vocab_size=100).key
    )


def test_key_is_stable_across_processes():
    import subprocess
    import sys

    code = (
        "from farm.spec.jobs import TokenizerJob; print(TokenizerJob({'source': 'synthetic', 'n': "
        "10, 'seed': 0}).key)"
    )
    out = {
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout
        for _ in range(2)
    }
    assert len(out) == 1


def test_refs_enter_keys_by_content_only():
    sel = Selection.of(10, np.array([1, 2, 3]))
    pop = {"source": "synthetic", "n": 10, "seed": 0}
    here, there = PathRef("/here/model", "ab" * 32), PathRef("/there/model", "ab" * 32)
    assert here == there and hash(here) == hash(there)  # the path is where to read, not what it is
    assert (
        InferJob(population=PopulationSpec.of(pop), tokenizer=here, model=here, selection=sel).key
        == InferJob(
            population=PopulationSpec.of(pop), tokenizer=there, model=there, selection=sel
        ).key
    )
    assert (
        InferJob(population=PopulationSpec.of(pop), tokenizer=here, model=here, selection=sel).key
        != InferJob(
            population=PopulationSpec.of(pop),
            tokenizer=here,
            model=PathRef("/here/model", "cd" * 32),
            selection=sel,
        ).key
    )
    assert (
        TrainJob(
            population=PopulationSpec.of(pop),
            tokenizer=HubRef("roberta-base"),
            selection=sel,
            recipe=Recipe(),
        ).key
        != TrainJob(
            population=PopulationSpec.of(pop),
            tokenizer=StoreRef("roberta-base"),
            selection=sel,
            recipe=Recipe(),
        ).key
    )


def test_keys_of_store_and_hub_refs_are_unchanged():
    # the key a store reference or hub name gave when references were strings ("store:<key>", a hub
    # name)
    pop = {"source": "synthetic", "n": 10, "seed": 0}
    job = TrainJob(
        population=PopulationSpec.of(pop),
        tokenizer=StoreRef("tok"),
        selection=Selection.of(10, np.array([1, 2, 3])),
        recipe=Recipe(seed=1),
        base=HubRef("roberta-base"),
    )
    payload = {
        "population": pop,
        "tokenizer": "store:tok",
        "selection": to_dict(job.selection),
        "recipe": recipe_identity(job.recipe),
        "base": "roberta-base",
    }
    assert job.key == canonical_key("train", payload)


def test_jobs_refuse_string_refs():
    with pytest.raises(SpecError, match="tokenizer must be a StoreRef"):
        TrainJob(
            population=PopulationSpec.of({"source": "synthetic", "n": 10}),
            tokenizer="store:tok",
            selection=Selection.of(10, np.array([1])),
            recipe=Recipe(),
        )


def test_precision_is_in_the_keys():
    sel = Selection.of(10, np.array([1, 2, 3]))
    pop = {"source": "synthetic", "n": 10, "seed": 0}
    train = TrainJob(
        population=PopulationSpec.of(pop),
        tokenizer=StoreRef("tok"),
        selection=sel,
        recipe=Recipe(seed=1),
    )
    assert train.recipe.precision == "fp32"  # MICO trained in fp32
    keys = {
        dataclasses.replace(train, recipe=Recipe(seed=1, precision=p)).key
        for p in ("fp32", "bf16", "tf32")
    }
    assert train.key in keys and len(keys) == 3
    infer = InferJob(
        population=PopulationSpec.of(pop),
        tokenizer=StoreRef("tok"),
        model=StoreRef(train.key),
        selection=sel,
    )
    assert infer.precision == "fp32"
    keys = {dataclasses.replace(infer, precision=p).key for p in ("fp32", "bf16", "tf32")}
    assert infer.key in keys and len(keys) == 3


def test_unknown_precision_is_refused():
    with pytest.raises(SpecError, match="precision: expected fp32 or bf16 or tf32, got 'fp16'"):
        Recipe(precision="fp16")
    with pytest.raises(SpecError, match="precision"):
        InferJob(
            population=PopulationSpec.of({"source": "synthetic", "n": 10}),
            tokenizer=StoreRef("tok"),
            model=StoreRef("m"),
            selection=Selection.of(3, np.array([0])),
            precision="half",
        )


def test_plain_inference_keys_are_pinned_and_extra_signals_enter_only_when_set():
    from farm.spec.queries import QueryFamily

    pop = {"source": "synthetic", "n": 300, "seed": 0}
    plain = InferJob(
        population=PopulationSpec.of(pop),
        tokenizer=StoreRef("tok"),
        model=PathRef("/x", "ab" * 32),
        selection=Selection.of(300, np.arange(0, 300, 3)),
    )
    other = InferJob(
        population=PopulationSpec.of(pop),
        tokenizer=HubRef("roberta-base"),
        model=StoreRef("m"),
        selection=Selection.of(300, np.arange(10)),
        max_length=32,
        precision="bf16",
    )
    # Keys of logits-only jobs from before queries and gradient norms existed: stores keep their
    # entries.
    assert plain.key == "5c8f303d2559dd94d4500876ec757a019dce1bde383f20f60e17f3a19849a560"
    assert other.key == "bde6ec77ff7a052d22b21d6c959d3f01a6117a8e6aaea1f4f7442bc5c8d884e5"
    assert dataclasses.replace(plain, queries=None, grad_norm=False).key == plain.key
    keys = {
        plain.key,
        dataclasses.replace(plain, grad_norm=True).key,
        dataclasses.replace(plain, queries=QueryFamily()).key,
        dataclasses.replace(plain, queries=QueryFamily(seed=1)).key,
        dataclasses.replace(plain, queries=QueryFamily(), grad_norm=True).key,
    }
    assert len(keys) == 5
    with pytest.raises(SpecError, match="queries"):
        InferJob(
            population=PopulationSpec.of(pop),
            tokenizer=StoreRef("tok"),
            model=StoreRef("m"),
            selection=plain.selection,
            queries={"seed": 1},
        )  # type: ignore[arg-type]
