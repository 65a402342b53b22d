"""A release tree (MICO layout, no challenge.json) run on local assets only: a roberta-base-shaped
model (the ``RobertaConfig`` defaults, random weights, saved as ``pytorch_model.bin``), a local
tokenizer and local GLUE-style files, through the farm's own reading, pinning and inference path,
with the hub switched off."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from farm.challenge.tree import Assets, read_challenge
from farm.config.attack import check_attack_inputs
from farm.errors import ChallengeFormatError, ConfigError
from farm.mico.splits import MICO_LEN_TRAINING, MICO_N_TOTAL
from farm.shadows.scenario import load_scenarios, model_ref
from farm.spec.jobs import InferJob, PathRef, Selection
from farm.spec.population import PopulationSpec
from farm.store.run_job import logits_from_store, run_job
from farm.store.store import Store


def _glue_folder(root):
    """GLUE SST-2's local layout: ``train.tsv`` (67,349 records) then ``dev.tsv`` (872): MICO's
    68,221."""
    from farm.training.synthetic import synthetic_corpus

    sentences, labels = synthetic_corpus(MICO_N_TOTAL, 0)
    root.mkdir()
    for name, part in (("train.tsv", slice(0, 67_349)), ("dev.tsv", slice(67_349, None))):
        rows = [f"{s}\t{y}" for s, y in zip(sentences[part], labels[part])]
        (root / name).write_text("\n".join(["sentence\tlabel", *rows]) + "\n")
    return sentences


@pytest.fixture(scope="module")
def release_tree(tmp_path_factory):
    """``(tree, roberta_dir, glue_dir, model)``: one roberta-base-shaped model in
    ``sst2_inf/train/model_0`` and the same weights with a tokenizer as the local "roberta-base"
    directory."""
    from transformers import RobertaConfig, RobertaForSequenceClassification

    from farm.training.models import train_tokenizer

    tmp = tmp_path_factory.mktemp("release")
    sentences = _glue_folder(tmp / "SST-2")
    roberta = train_tokenizer(list(sentences[:2000]), tmp / "roberta-base", vocab_size=1000)
    torch.manual_seed(0)
    config = RobertaConfig(
        num_labels=2
    )  # roberta-base's shape: 12 layers, hidden 768, vocabulary 50,265
    model = RobertaForSequenceClassification(config).eval()
    mdir = tmp / "mico" / "sst2_inf" / "train" / "model_0"
    mdir.mkdir(parents=True)
    config.save_pretrained(mdir)
    torch.save(model.state_dict(), mdir / "pytorch_model.bin")
    for name, seed in (("seed_challenge", 11), ("seed_training", 12), ("seed_membership", 13)):
        (mdir / name).write_text(f"{seed}\n")
    config.save_pretrained(roberta)
    os.link(mdir / "pytorch_model.bin", roberta / "pytorch_model.bin")
    return tmp / "mico", roberta, tmp / "SST-2", model


def test_release_tree_runs_on_local_assets_offline(release_tree, tmp_path, monkeypatch):
    tree, roberta, glue, model = release_tree
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    config = tmp_path / "attack.yaml"
    config.write_text(
        f"attack: loss\nrecipe: mico-inf\nassets:\n  base_model: {roberta}\n  population: "
        f"{{source: file, path: {glue}}}\n"
    )
    assets = check_attack_inputs(config, tree)["*"].assets
    assert assets == Assets(
        base_model=str(roberta), population={"source": "file", "path": str(glue)}
    )
    assert (
        read_challenge(tree).constants.len_training == MICO_LEN_TRAINING
    )  # no challenge.json: MICO's constants

    _, scenarios = load_scenarios(tree, assets=assets)
    scenario = scenarios["sst2_inf"]
    inputs = scenario.inputs
    assert (inputs.n_total, inputs.len_training) == (MICO_N_TOTAL, MICO_LEN_TRAINING)
    assert isinstance(inputs.tokenizer, PathRef) and inputs.tokenizer.path == str(
        roberta
    )  # base_model's folder
    assert isinstance(inputs.base, PathRef) and inputs.population.path == str(glue)
    assert scenario.records.size == 200 and scenario.keep.shape == (1, 200)

    (entry,) = scenario.models.values()
    handful = scenario.records[:6]
    job = InferJob(
        population=PopulationSpec.of(inputs.population),
        tokenizer=inputs.tokenizer,
        model=model_ref(entry),
        selection=Selection.of(inputs.n_total, handful),
    )
    store = Store(tmp_path / "store")
    assert run_job(job, store)["ran"]
    indices, logits = logits_from_store(store, job)
    assert np.array_equal(indices, handful) and logits.shape == (6, 2) and np.isfinite(logits).all()

    from farm.training.data import load_population, pad_batch, tokenize
    from farm.training.models import load_tokenizer

    tokens = tokenize(
        load_population(PopulationSpec.of(inputs.population)), load_tokenizer(roberta), 67
    )
    ids, mask, _ = (torch.from_numpy(a) for a in pad_batch(tokens, handful))
    with torch.inference_mode():
        expected = model(input_ids=ids, attention_mask=mask).logits.numpy()
    assert np.allclose(logits, expected, atol=1e-4)  # the saved weights, not a fresh initialisation


def test_assets_are_checked(release_tree, tmp_path):
    tree, roberta, glue, _ = release_tree
    with pytest.raises(ChallengeFormatError, match="assets.base_model: not a directory"):
        Assets(base_model=str(tmp_path / "nowhere")).apply(tree, read_challenge(tree).constants)
    (tmp_path / "half").mkdir()
    with pytest.raises(ChallengeFormatError, match="half/config.json: missing model config"):
        Assets(base_model=str(tmp_path / "half")).apply(tree, read_challenge(tree).constants)
    (tmp_path / "mini").mkdir()
    (tmp_path / "mini" / "challenge.json").write_text("{}")
    with pytest.raises(
        ChallengeFormatError, match="assets replace MICO's defaults for a release tree only"
    ):
        Assets(base_model=str(roberta)).apply(tmp_path / "mini", read_challenge(tree).constants)
    short = tmp_path / "short.tsv"
    short.write_text("sentence\tlabel\na fine film\t1\n")
    with pytest.raises(
        ConfigError, match="has 1 records; the challenge's splits need n_total = 68221"
    ):
        load_scenarios(
            tree,
            assets=Assets(
                base_model=str(roberta), population={"source": "file", "path": str(short)}
            ),
        )
