import shutil

import numpy as np
import pytest

from farm.challenge.tree import ChallengeConstants, read_challenge, read_constants, write_constants
from farm.errors import ChallengeFormatError
from tests.conftest import TINY, make_tree, write_pickle_bomb


def test_read_tree_order_and_contents(tiny_challenge):
    ch = read_challenge(tiny_challenge)
    assert ch.constants == TINY
    assert ch.scenarios() == ["sst2_hi", "sst2_inf", "sst2_lo"]
    assert ch.phases("sst2_inf") == ["train", "dev", "final"]
    assert [m.model_id for m in ch.select("sst2_inf")] == list(range(7))
    train = ch.select("sst2_inf", "train")
    assert all(m.solution is not None and m.seed_training is not None for m in train)
    dev = ch.select("sst2_lo", "dev")
    assert all(m.solution is None and m.seed_training is None for m in dev)
    assert all(
        m.weights.name == "model.safetensors" and m.config.name == "config.json" for m in ch.models
    )
    split = train[0].split(ch.constants)
    assert np.array_equal(split.solution, train[0].solution)


def test_numeric_model_order(tmp_path):
    root = make_tree(tmp_path / "t", counts=(12, 0, 0))
    ids = [m.model_id for m in read_challenge(root).select("sst2_hi", "train")]
    assert ids == list(range(12))  # model_10 after model_9


def test_mico_constants_without_json(tmp_path):
    assert read_constants(tmp_path) == ChallengeConstants()


def test_write_read_roundtrip_constants(tmp_path):
    c = ChallengeConstants(
        n_total=100,
        len_training=80,
        len_challenge=10,
        population={"source": "synthetic", "seed": 3},
    )
    write_constants(tmp_path, c)
    assert read_constants(tmp_path) == c


def test_answers_tree_without_weights(tiny_answers):
    ch = read_challenge(tiny_answers, require_weights=False)
    assert all(m.solution is not None for m in ch.models)
    with pytest.raises(ChallengeFormatError, match="no weights file"):
        read_challenge(tiny_answers)


def _model(root, scenario="sst2_inf", phase="train", i=0):
    return root / scenario / phase / f"model_{i}"


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda m: (m / "seed_challenge").unlink(), "seed_challenge: missing seed file"),
        (
            lambda m: (m / "seed_training").write_text("12.5\n"),
            "seed_training: seed must be one decimal integer",
        ),
        (
            lambda m: (m / "seed_membership").write_text("abc"),
            "seed_membership: seed must be one decimal integer",
        ),
        (lambda m: (m / "seed_challenge").write_text(str(2**64)), "outside the int64 range"),
        (lambda m: (m / "solution.csv").write_text("0,1,0\n"), "solution.csv: expected 10 values"),
        (
            lambda m: (m / "solution.csv").write_text("0,1,0,1,0,1,0,1,0,2\n"),
            "values must be 0 or 1",
        ),
        (
            lambda m: (m / "solution.csv").write_text("1,1,1,1,1,0,0,0,0,0\n"),
            "disagrees with seed_membership",
        ),
        (lambda m: (m / "model.safetensors").unlink(), "no weights file"),
        (lambda m: (m / "config.json").unlink(), "config.json: missing model config"),
    ],
)
def test_bad_model_folder(tiny_challenge, mutate, message):
    mdir = _model(tiny_challenge)
    mutate(mdir)
    with pytest.raises(ChallengeFormatError, match=message) as info:
        read_challenge(tiny_challenge)
    assert str(mdir) in str(info.value)


def test_unexpected_name_in_scenario(tiny_challenge):
    (tiny_challenge / "sst2_inf" / "test").mkdir()
    with pytest.raises(
        ChallengeFormatError, match="sst2_inf/test: unexpected name in scenario folder"
    ):
        read_challenge(tiny_challenge)


def test_unexpected_name_in_phase(tiny_challenge):
    (tiny_challenge / "sst2_inf" / "dev" / "notes.txt").write_text("x")
    with pytest.raises(ChallengeFormatError, match="notes.txt: unexpected name in phase folder"):
        read_challenge(tiny_challenge)


def test_duplicate_model_id_across_phases(tiny_challenge):
    shutil.copytree(
        _model(tiny_challenge, phase="dev", i=3), _model(tiny_challenge, phase="final", i=3)
    )
    with pytest.raises(ChallengeFormatError, match="duplicate model id 3"):
        read_challenge(tiny_challenge)


def test_duplicate_model_id_padded(tiny_challenge):
    shutil.copytree(
        _model(tiny_challenge, phase="dev", i=3), tiny_challenge / "sst2_inf" / "dev" / "model_03"
    )
    with pytest.raises(ChallengeFormatError, match="duplicate model id 3"):
        read_challenge(tiny_challenge)


def test_bad_challenge_json(tiny_challenge):
    (tiny_challenge / "challenge.json").write_text(
        '{"n_total": 10, "len_training": 50, "len_challenge": 5}'
    )
    with pytest.raises(ChallengeFormatError, match="challenge.json: invalid"):
        read_challenge(tiny_challenge)


def test_not_a_directory(tmp_path):
    with pytest.raises(ChallengeFormatError, match="not a directory"):
        read_challenge(tmp_path / "nope")


def _swap_weights(mdir, name):
    (mdir / "model.safetensors").unlink()
    return mdir / name


def test_pickle_weights_refused_before_they_run(tiny_challenge, tmp_path):
    marker = tmp_path / "code-ran"
    bomb = write_pickle_bomb(
        _swap_weights(_model(tiny_challenge, phase="dev", i=3), "pytorch_model.bin"), marker
    )
    with pytest.raises(ChallengeFormatError) as info:
        read_challenge(tiny_challenge)
    message = str(info.value)
    assert message.startswith(f"{bomb}: refused: not loadable with torch.load(weights_only=True)")
    assert "\n" not in message and "io.open" in message
    assert not marker.exists()
    import pickle

    pickle.loads(bomb.read_bytes())  # the file is a real threat: plain unpickling runs its code
    assert marker.exists()


def test_torch_state_dict_bin_is_accepted(tiny_challenge):
    import torch

    target = _swap_weights(_model(tiny_challenge), "pytorch_model.bin")
    torch.save({"w": torch.zeros(2, 2)}, target)
    assert read_challenge(tiny_challenge).select("sst2_inf", "train")[0].weights == target


@pytest.mark.parametrize("cut", [b"not-really-weights", None])
def test_bad_safetensors_refused(tiny_challenge, cut):
    target = _model(tiny_challenge) / "model.safetensors"
    data = target.read_bytes()
    target.write_bytes(cut if cut is not None else data[:-3])  # garbage, or a truncated file
    with pytest.raises(ChallengeFormatError, match="not a valid safetensors file") as info:
        read_challenge(tiny_challenge)
    assert str(info.value).startswith(str(target))


@pytest.mark.parametrize("text", ["{not json", "[1, 2]"])
def test_bad_model_config_json(tiny_challenge, text):
    (_model(tiny_challenge) / "config.json").write_text(text)
    with pytest.raises(ChallengeFormatError, match="config.json: invalid model config"):
        read_challenge(tiny_challenge)


def test_answers_tree_skips_weight_checks(tiny_answers):
    assert read_challenge(tiny_answers, require_weights=False).models


def test_base_model_weights_in_assets_checked(tiny_challenge, tmp_path):
    c = ChallengeConstants(
        n_total=TINY.n_total,
        len_training=TINY.len_training,
        len_challenge=TINY.len_challenge,
        population=TINY.population,
        tokenizer="roberta-base",
        base_model="assets/base",
    )
    write_constants(tiny_challenge, c)
    (tiny_challenge / "assets" / "base").mkdir(parents=True)
    bomb = write_pickle_bomb(
        tiny_challenge / "assets" / "base" / "pytorch_model.bin", tmp_path / "code-ran"
    )
    with pytest.raises(ChallengeFormatError, match="refused"):
        read_challenge(tiny_challenge)
    assert not (tmp_path / "code-ran").exists() and bomb.exists()


def _ensemble(mdir, n=2, aggregate="mean"):
    """Turn model folder ``mdir`` into an ensemble of ``n`` copies of its own weights."""
    from farm.challenge.tree import write_ensemble

    files = {
        name: mdir.parent / f".{mdir.name}-{name}" for name in ("config.json", "model.safetensors")
    }
    for name, keep in files.items():
        (mdir / name).rename(keep)
    return write_ensemble(mdir, [files] * n, aggregate)


def test_ensemble_folder_is_a_model(tiny_challenge):
    from farm.challenge.tree import read_ensemble

    mdir = _ensemble(_model(tiny_challenge, phase="dev", i=3), n=3, aggregate="vote")
    entry = next(m for m in read_challenge(tiny_challenge).models if m.path == mdir)
    assert (
        entry.weights == mdir and entry.config == mdir / "ensemble.json"
    )  # pinned by the whole folder
    folders, aggregate = read_ensemble(mdir)
    assert [f.name for f in folders] == ["member_0", "member_1", "member_2"] and aggregate == "vote"


def test_ensemble_member_pickle_refused_before_it_runs(tiny_challenge, tmp_path):
    marker = tmp_path / "code-ran"
    mdir = _ensemble(_model(tiny_challenge, phase="dev", i=3))
    bomb = write_pickle_bomb(_swap_weights(mdir / "member_1", "pytorch_model.bin"), marker)
    with pytest.raises(ChallengeFormatError, match=f"^{bomb}: refused: not loadable"):
        read_challenge(tiny_challenge)
    assert not marker.exists()


@pytest.mark.parametrize(
    "text, message",
    [
        ('{"members": ["member_0"], "aggregate": "median"}', "expected aggregate: mean or vote"),
        ('{"members": ["../model_0"], "aggregate": "mean"}', "member_<i> folder names"),
        (
            '{"members": ["member_0", "member_7"], "aggregate": "mean"}',
            "member_7: missing ensemble member folder",
        ),
        ("[1, 2", "invalid ensemble description"),
    ],
)
def test_bad_ensemble_description(tiny_challenge, text, message):
    mdir = _ensemble(_model(tiny_challenge, phase="dev", i=3))
    (mdir / "ensemble.json").write_text(text)
    with pytest.raises(ChallengeFormatError, match=message) as info:
        read_challenge(tiny_challenge)
    assert "\n" not in str(info.value)
