import json
import subprocess
import sys
import time

import numpy as np
import pytest

from farm.challenge import read_challenge
from farm.cli import main
from farm.submission import write_predictions


def _informative_predictions(answers_root, seed=0):
    """Scores that carry the answers' membership plus noise, for every model of the answers tree."""
    rng = np.random.default_rng(seed)
    ch = read_challenge(answers_root, require_weights=False)
    return {(m.scenario, m.phase, m.model_id): np.clip(0.3 * m.solution + 0.7 * rng.random(m.solution.size), 0, 1)
            for m in ch.models if m.phase != "train"}


def test_splits_json(tiny_challenge, capsys):
    mdir = tiny_challenge / "sst2_inf" / "train" / "model_1"
    assert main(["splits", str(mdir)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["constants"]["n_total"] == 60 and len(data["challenge"]) == 10
    assert len(data["training"]) == 35 and len(data["member"]) == 5
    solution = [int(c) for c in (mdir / "solution.csv").read_text().strip().split(",")]
    assert data["solution"] == solution


def test_splits_dev_model_has_nulls(tiny_challenge, capsys):
    assert main(["splits", str(tiny_challenge / "sst2_inf" / "dev" / "model_3")]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["training"] is None and data["solution"] is None and len(data["rest"]) == 50


def test_splits_missing_seed(tmp_path, capsys):
    assert main(["splits", str(tmp_path)]) == 1
    assert "seed_challenge: missing seed file" in capsys.readouterr().err


def test_pack_then_score_roundtrip(tmp_path, tiny_challenge, tiny_answers, capsys):
    preds = _informative_predictions(tiny_answers)
    write_predictions(tmp_path / "pred", preds)
    zip_path = tmp_path / "submission.zip"
    assert main(["pack", str(tmp_path / "pred"), "-o", str(zip_path), "--challenge", str(tiny_challenge)]) == 0
    assert zip_path.exists()
    plots = tmp_path / "plots"
    assert main(["score", str(zip_path), "--solutions", str(tiny_answers), "--plot-dir", str(plots),
                 "--json", str(tmp_path / "scores.json")]) == 0
    out = capsys.readouterr().out
    assert "| sst2_inf | dev | 2 | 20 |" in out and "TPR_FPR_1000" in out
    assert sorted(p.name for p in plots.iterdir()) == ["roc_sst2_hi.png", "roc_sst2_inf.png", "roc_sst2_lo.png"]
    assert (plots / "roc_sst2_inf.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = json.loads((tmp_path / "scores.json").read_text())
    assert len(rows) == 6 and all(r["AUC"] > 0.5 for r in rows)


def test_pack_missing_model_fails_cleanly(tmp_path, tiny_challenge, tiny_answers, capsys):
    preds = _informative_predictions(tiny_answers)
    del preds[("sst2_hi", "final", 6)]
    write_predictions(tmp_path / "pred", preds)
    zip_path = tmp_path / "submission.zip"
    assert main(["pack", str(tmp_path / "pred"), "-o", str(zip_path), "--challenge", str(tiny_challenge)]) == 1
    assert "missing sst2_hi/final/model_6/prediction.csv" in capsys.readouterr().err
    assert not zip_path.exists()


def test_pack_default_expects_mico(tmp_path, tiny_answers, capsys):
    write_predictions(tmp_path / "pred", _informative_predictions(tiny_answers))
    assert main(["pack", str(tmp_path / "pred"), "-o", str(tmp_path / "s.zip")]) == 1
    assert "missing sst2_hi/dev/model_100/prediction.csv" in capsys.readouterr().err


def test_score_rejects_nan_prediction(tmp_path, tiny_answers, capsys):
    write_predictions(tmp_path / "pred", _informative_predictions(tiny_answers))
    (tmp_path / "pred/sst2_inf/dev/model_4/prediction.csv").write_text("nan," * 9 + "nan\n")
    assert main(["score", str(tmp_path / "pred"), "--solutions", str(tiny_answers),
                 "--plot-dir", str(tmp_path / "plots")]) == 1
    err = capsys.readouterr().err
    assert "sst2_inf/dev/model_4/prediction.csv: 10 NaN value(s)" in err


def test_score_unreadable_zip(tmp_path, tiny_answers, capsys):
    (tmp_path / "x.zip").write_bytes(b"garbage")
    assert main(["score", str(tmp_path / "x.zip"), "--solutions", str(tiny_answers)]) == 1
    assert "unreadable zip" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["splits", "score", "pack"])
def test_help_says_what_it_reads_and_writes(command):
    result = subprocess.run([sys.executable, "-m", "farm.cli", command, "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "Reads" in result.stdout


def test_console_script_exit_status(tmp_path):
    result = subprocess.run(["farm", "splits", str(tmp_path)], capture_output=True, text=True)
    assert result.returncode == 1 and "missing seed file" in result.stderr


def test_attack_refuses_pickle_weights_before_any_job(tiny_challenge, tmp_path):
    from tests.conftest import write_pickle_bomb

    mdir = tiny_challenge / "sst2_lo" / "final" / "model_5"
    (mdir / "model.safetensors").unlink()
    marker = tmp_path / "code-ran"
    bomb = write_pickle_bomb(mdir / "pytorch_model.bin", marker)
    code = ("import sys; from farm.cli import main; rc = main(sys.argv[1:]); "
            "assert 'ray' not in sys.modules; sys.exit(rc)")
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", code, "attack", "--challenge", str(tiny_challenge), "--config",
                             "tests/data/tiny-attack.yaml", "--out", str(tmp_path / "out")], capture_output=True,
                            text=True)
    assert time.perf_counter() - start < 5
    assert result.returncode == 1 and result.stderr.count("\n") == 1, result.stderr
    assert f"{bomb}: refused" in result.stderr
    assert not marker.exists() and not (tmp_path / "out").exists()
