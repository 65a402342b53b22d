import zipfile

import numpy as np
import pytest

from farm.challenge.submission import (
    Expected,
    normalize,
    pack,
    read_predictions,
    validate,
    write_predictions,
)
from farm.challenge.tree import read_challenge
from farm.errors import SubmissionError


def _preds(challenge_root, seed=0):
    ch = read_challenge(challenge_root)
    rng = np.random.default_rng(seed)
    return {
        (m.scenario, m.phase, m.model_id): rng.random(10) for m in ch.models if m.phase != "train"
    }, ch


def test_normalize_global_minmax_per_phase():
    raw = {
        ("s", "dev", 0): np.array([1.0, 3.0]),
        ("s", "dev", 1): np.array([5.0, 2.0]),
        ("s", "final", 2): np.array([10.0, 20.0]),
    }
    out = normalize(raw)
    assert out[("s", "dev", 0)].tolist() == [0.0, 0.5] and out[("s", "dev", 1)].tolist() == [
        1.0,
        0.25,
    ]
    assert out[("s", "final", 2)].tolist() == [0.0, 1.0]


def test_normalize_edge_cases_never_nan():
    raw = {
        ("s", "dev", 0): np.array([np.nan, np.inf, -np.inf, 1.0, 3.0]),
        ("s", "final", 1): np.full(3, 7.0),
        ("s", "dev", 2): np.array([np.nan, np.nan]),
    }
    for mode in ("global", "rank"):
        out = normalize(raw, mode=mode)
        for v in out.values():
            assert np.isfinite(v).all() and (v >= 0).all() and (v <= 1).all()
    g = normalize(raw)
    assert g[("s", "dev", 0)].tolist() == [0.5, 1.0, 0.0, 0.0, 1.0]
    assert g[("s", "final", 1)].tolist() == [0.5, 0.5, 0.5]


def test_normalize_rank_per_model():
    out = normalize({("s", "dev", 0): np.array([10.0, 30.0, 20.0, 20.0])}, mode="rank")
    assert out[("s", "dev", 0)].tolist() == [0.0, 1.0, 0.5, 0.5]
    with pytest.raises(ValueError):
        normalize({}, mode="bogus")


def test_write_pack_read_roundtrip(tmp_path, tiny_challenge):
    preds, ch = _preds(tiny_challenge)
    write_predictions(tmp_path / "pred", preds)
    expected = Expected.from_challenge(ch)
    assert validate(tmp_path / "pred", expected) == []
    out = pack(tmp_path / "pred", tmp_path / "sub.zip", expected)
    names = zipfile.ZipFile(out).namelist()
    assert "sst2/sst2_inf/dev/model_3/prediction.csv" in names and len(names) == len(preds)
    back = read_predictions(out)
    assert back.keys() == preds.keys()
    assert all(np.array_equal(back[k], preds[k]) for k in preds)
    assert validate(out, expected) == []


def test_write_refuses_nan_or_out_of_range(tmp_path):
    with pytest.raises(SubmissionError, match="NaN"):
        write_predictions(tmp_path, {("s", "dev", 0): np.array([np.nan, 0.5])})
    with pytest.raises(SubmissionError, match="outside"):
        write_predictions(tmp_path, {("s", "dev", 0): np.array([1.5, 0.5])})
    assert not any(tmp_path.rglob("*.csv"))


def test_validate_reports_every_problem(tmp_path, tiny_challenge):
    preds, ch = _preds(tiny_challenge)
    root = tmp_path / "pred"
    write_predictions(root, preds)
    (root / "sst2_inf/dev/model_3/prediction.csv").unlink()  # missing model
    (root / "sst2_hi/dev/model_3/prediction.csv").write_text("0.1,0.2\n")  # wrong count
    (root / "sst2_lo/dev/model_3/prediction.csv").write_text(",".join(["1.5"] * 10))  # out of range
    (root / "sst2_lo/final/model_5/prediction.csv").write_text(",".join(["nan"] * 10))  # NaN
    (root / "sst2_lo/final/model_99").mkdir()
    (root / "sst2_lo/final/model_99/prediction.csv").write_text("0.5")  # extra
    problems = validate(root, Expected.from_challenge(ch))
    text = "\n".join(problems)
    assert len(problems) == 5
    for needle in (
        "missing sst2_inf/dev/model_3",
        "expected 10 values, found 2",
        "outside [0, 1]",
        "NaN",
        "unexpected entry sst2_lo/final/model_99",
    ):
        assert needle in text
    with pytest.raises(SubmissionError) as info:
        pack(root, tmp_path / "sub.zip", Expected.from_challenge(ch))
    assert len(info.value.problems) == 5
    assert not (tmp_path / "sub.zip").exists()
    assert str(info.value).splitlines()[0] == (
        "5 problem(s) found (1 missing, 1 unexpected, 3 invalid)"
    )


def test_packing_another_challenge_as_mico_says_what_to_do(tmp_path, tiny_challenge):
    """Predictions of a non-MICO challenge packed without --challenge: hundreds of problems, but
    the message leads and ends with a summary naming the models expected and --challenge, and lists
    at most SubmissionError.SHOWN of them."""
    preds, _ = _preds(tiny_challenge)
    root = tmp_path / "preds"
    write_predictions(root, preds)
    with pytest.raises(SubmissionError) as info:
        pack(root, tmp_path / "sub.zip", Expected.mico())
    lines = str(info.value).splitlines()
    n = len(info.value.problems)
    assert n > 300 and len(lines) == SubmissionError.SHOWN + 3
    assert lines[0] == lines[-1] and lines[0].startswith(f"{n} problem(s) found (300 missing, ")
    assert "pass --challenge TREE" in lines[0] and "sst2_hi/dev/model_100..149" in lines[0]
    assert lines[-2] == f"... and {n - SubmissionError.SHOWN} more"


def test_zip_path_escape_duplicates_and_size(tmp_path, tiny_challenge):
    preds, ch = _preds(tiny_challenge)
    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(bad, "w") as z:
        for (s, p, i), v in preds.items():
            z.writestr(f"sst2/{s}/{p}/model_{i}/prediction.csv", ",".join(map(str, v)))
        z.writestr("../evil.txt", "x")
        z.writestr("/abs/path", "x")
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            z.writestr("sst2/sst2_inf/dev/model_3/prediction.csv", ",".join(["0.5"] * 10))
    problems = validate(bad, Expected.from_challenge(ch))
    text = "\n".join(problems)
    assert "path-escaping entry '../evil.txt'" in text and "path-escaping entry '/abs/path'" in text
    assert "duplicate entry sst2/sst2_inf/dev/model_3/prediction.csv" in text
    big = tmp_path / "big.zip"
    with zipfile.ZipFile(big, "w") as z:
        z.writestr("sst2/padding.bin", np.random.default_rng(0).bytes(2 * 1024 * 1024 + 10))
    assert any("over the" in p for p in validate(big, Expected.from_challenge(ch)))


def test_unreadable_zip(tmp_path):
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"this is not a zip")
    with pytest.raises(SubmissionError, match="junk.zip: unreadable zip"):
        validate(junk, Expected.mico())


def test_mico_expected_set():
    e = Expected.mico()
    assert len(e.keys) == 300 and e.n_values == 200
    assert ("sst2_hi", "dev", 100) in e.keys and ("sst2_lo", "final", 199) in e.keys
