import re

import numpy as np
import pytest

from farm.errors import ConfigError
from farm.spec.population import PopulationSpec
from farm.training.data import (
    length_buckets,
    load_population,
    pad_batch,
    shuffled_bucketed,
    tokenize,
)
from tests.helpers import SHARED_SST2, tiny_setup


def test_synthetic_is_deterministic_and_realistic():
    a = load_population(PopulationSpec.of({"source": "synthetic", "n": 2000, "seed": 3}))
    b = load_population(PopulationSpec.of({"source": "synthetic", "n": 2000, "seed": 3}))
    c = load_population(PopulationSpec.of({"source": "synthetic", "n": 2000, "seed": 4}))
    assert a.sentences == b.sentences and np.array_equal(a.labels, b.labels)
    assert a.sentences != c.sentences
    words = np.array([len(s.split()) for s in a.sentences])
    assert (
        1 <= words.min() and words.max() >= 30 and 5 <= np.median(words) <= 12
    )  # SST-2-like long tail
    assert 0.4 < a.labels.mean() < 0.6
    assert len(set(a.sentences)) > 0.95 * len(a)


def _write_tables(tmp_path):
    import pandas as pd

    frame = pd.DataFrame(
        {"sentence": ["good film ", "bad film", 'a, quoted "one"'], "label": [1, 0, 1]}
    )
    rows = [f"{y}\t{s}" for s, y in zip(frame["sentence"], frame["label"])]
    (tmp_path / "p.tsv").write_text("label\tsentence\n" + "\n".join(rows) + "\n")
    frame.to_csv(tmp_path / "p.csv", index=False)
    frame.to_parquet(tmp_path / "p.parquet")
    return frame


@pytest.mark.parametrize("name", ["p.tsv", "p.csv", "p.parquet"])
def test_file_sources(tmp_path, name):
    frame = _write_tables(tmp_path)
    pop = load_population(PopulationSpec.of({"source": "file", "path": name}), base_dir=tmp_path)
    assert list(pop.sentences) == list(frame["sentence"]) and pop.labels.tolist() == [1, 0, 1]


def test_hf_dataset_dict_dir_is_train_then_validation(tmp_path):
    import datasets

    dd = datasets.DatasetDict(
        {
            "validation": datasets.Dataset.from_dict(
                {"sentence": ["v0 ", "v1 "], "label": [0, 1], "idx": [0, 1]}
            ),
            "train": datasets.Dataset.from_dict(
                {"sentence": ["t0 ", "t1 ", "t2 "], "label": [1, 1, 0], "idx": [0, 1, 2]}
            ),
        }
    )
    dd.save_to_disk(str(tmp_path / "glue"))
    pop = load_population(PopulationSpec.of({"source": "file", "path": str(tmp_path / "glue")}))
    assert pop.sentences == (
        "t0 ",
        "t1 ",
        "t2 ",
        "v0 ",
        "v1 ",
    )  # trailing spaces kept, as HF's copy has them
    assert pop.labels.tolist() == [1, 1, 0, 0, 1]


def test_glue_offline_gives_clear_error(tmp_path):
    import os
    import subprocess
    import sys

    env = {
        **os.environ,
        "HF_DATASETS_OFFLINE": "1",
        "HF_HUB_OFFLINE": "1",
        "HF_HOME": str(tmp_path / "hf"),
    }
    code = (
        "from farm.spec.population import PopulationSpec; from farm.training.data import "
        "load_population; load_population(PopulationSpec.of({'source': 'glue-sst2'}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode != 0
    assert "GLUE SST-2 is neither in the local datasets cache nor reachable" in result.stderr


@pytest.mark.skipif(not SHARED_SST2.is_dir(), reason="shared SST-2 not present")
def test_shared_sst2_folder_is_mico_population():
    pop = load_population(PopulationSpec.of({"source": "file", "path": str(SHARED_SST2)}))
    assert len(pop) == 68_221
    assert pop.sentences[0] == "hide new secretions from the parental units"
    assert pop.labels[:2].tolist() == [0, 0]


def test_subset_keeps_population_order(tmp_path):
    pop = load_population(
        PopulationSpec.of(
            {"source": "synthetic", "n": 100, "seed": 0, "subset": {"n": 10, "seed": 1}}
        )
    )
    full = load_population(PopulationSpec.of({"source": "synthetic", "n": 100, "seed": 0}))
    assert len(pop) == 10 and all(s in full.sentences for s in pop.sentences)
    positions = [full.sentences.index(s) for s in pop.sentences]
    assert positions == sorted(positions)


@pytest.mark.parametrize(
    "spec, message",
    [
        ({"source": "nope"}, "population source must be"),
        ({"source": "file", "path": "/no/such/file.tsv"}, "population file not found"),
        ({"source": "synthetic", "n": 10, "subset": {"n": 20}}, "subset n=20 offset=0"),
    ],
)
def test_bad_population_specs(spec, message):
    with pytest.raises(ConfigError, match=message):
        load_population(PopulationSpec.of(spec))


def test_bad_table(tmp_path):
    (tmp_path / "x.tsv").write_text("words\tlabel\nhello\t1\n")
    with pytest.raises(ConfigError, match="x.tsv: needs a 'label' column and a text column"):
        load_population(PopulationSpec.of({"source": "file", "path": str(tmp_path / "x.tsv")}))


def test_batches_cover_every_index_once():
    _, _, tokens = tiny_setup()
    idx = np.arange(5, 395)
    batches = list(shuffled_bucketed(idx, tokens.lengths, 32, np.random.default_rng(0)))
    assert np.array_equal(np.sort(np.concatenate(batches)), idx)
    assert max(b.size for b in batches) == 32
    spread = np.mean([np.ptp(tokens.lengths[b]) for b in batches])
    random_spread = np.mean(
        [np.ptp(tokens.lengths[np.random.default_rng(1).choice(idx, 32)]) for _ in range(20)]
    )
    assert spread < random_spread / 2  # grouped by length
    assert np.array_equal(np.sort(np.concatenate(length_buckets(idx, tokens.lengths, 50))), idx)


def test_dynamic_padding():
    pop, tok, tokens = tiny_setup()
    batch = np.array([3, 7, 11])
    ids, mask, labels = pad_batch(tokens, batch)
    assert ids.shape[1] == tokens.lengths[batch].max()
    assert mask.sum(1).tolist() == tokens.lengths[batch].tolist()
    assert labels.tolist() == pop.labels[batch].tolist()
    assert (ids[mask == 0] == tok.pad_token_id).all()
    assert ids[0, 0] == tok.bos_token_id


def test_tokenize_truncates():
    pop, tok, _ = tiny_setup()
    assert tokenize(pop, tok, 8).lengths.max() == 8


def _write_formats(tmp_path):
    """One small table (id, body, y) in every format a file population reads."""
    import datasets
    import pandas as pd

    frame = pd.DataFrame(
        {"id": ["r1", "r2", "r3"], "body": ["good film ", "bad, film", "a 'quoted' one"]}
    )
    frame["y"] = [1, 0, 1]
    frame.to_csv(tmp_path / "d.csv", index=False)
    frame.to_csv(tmp_path / "d.tsv", sep="\t", index=False)
    frame.to_parquet(tmp_path / "d.parquet")
    frame.to_json(tmp_path / "d.jsonl", orient="records", lines=True)
    frame.to_json(tmp_path / "d.json", orient="records")  # one JSON array
    datasets.Dataset.from_pandas(frame).save_to_disk(str(tmp_path / "d_ds"))
    only = datasets.DatasetDict({"train": datasets.Dataset.from_pandas(frame)})
    only.save_to_disk(str(tmp_path / "d_dict"))  # a DatasetDict of one split reads as that split
    return frame


@pytest.mark.parametrize(
    "name", ["d.csv", "d.tsv", "d.parquet", "d.jsonl", "d.json", "d_ds", "d_dict"]
)
def test_every_format_reads_named_columns_and_ids(tmp_path, name):
    frame = _write_formats(tmp_path)
    spec = {"source": "file", "path": str(tmp_path / name), "text_column": "body"}
    pop = load_population(PopulationSpec.of({**spec, "label_column": "y"}), id_column="id")
    assert list(pop.sentences) == list(frame["body"]) and pop.labels.tolist() == [1, 0, 1]
    assert pop.ids == ("r1", "r2", "r3")
    assert load_population(PopulationSpec.of({**spec, "label_column": "y"})).ids is None


@pytest.mark.parametrize(
    ("spec", "id_column", "message"),
    [
        ({"text_column": "text"}, None, "d.csv: no text column 'text' (text_column); columns"),
        ({"text_column": "body"}, None, "d.csv: no label column 'label' (label_column)"),
        ({"text_column": "body", "label_column": "id"}, None, "labels must be integers"),
        ({"text_column": "body", "label_column": "y"}, "key", "d.csv: no id column 'key'"),
    ],
)
def test_a_missing_column_is_named_with_its_file(tmp_path, spec, id_column, message):
    _write_formats(tmp_path)
    spec = PopulationSpec.of({"source": "file", "path": str(tmp_path / "d.csv"), **spec})
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_population(spec, id_column=id_column)


def test_named_columns_enter_the_key_only_when_given():
    plain = PopulationSpec.of({"source": "file", "path": "/d.csv"})
    named = PopulationSpec.of({"source": "file", "path": "/d.csv", "text_column": "body"})
    assert plain.identity() == {"source": "file", "path": "/d.csv"}
    assert named.identity()["text_column"] == "body" and named.text_column == "body"
