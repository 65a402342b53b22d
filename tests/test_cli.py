import json
import os
import re
import shlex
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from farm.challenge.submission import write_predictions
from farm.challenge.tree import read_challenge
from farm.cli import build_parser, main
from tests.conftest import make_tree


def _informative_predictions(answers_root, seed=0):
    """Scores that carry the answers' membership plus noise, for every model of the answers tree."""
    rng = np.random.default_rng(seed)
    ch = read_challenge(answers_root, require_weights=False)
    return {
        (m.scenario, m.phase, m.model_id): np.clip(
            0.3 * m.solution + 0.7 * rng.random(m.solution.size), 0, 1
        )
        for m in ch.models
        if m.phase != "train"
    }


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
    assert (
        main(
            [
                "pack",
                str(tmp_path / "pred"),
                "-o",
                str(zip_path),
                "--challenge",
                str(tiny_challenge),
            ]
        )
        == 0
    )
    assert zip_path.exists()
    plots = tmp_path / "plots"
    assert (
        main(
            [
                "score",
                str(zip_path),
                "--solutions",
                str(tiny_answers),
                "--plot-dir",
                str(plots),
                "--json",
                str(tmp_path / "scores.json"),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "| sst2_inf | dev | 2 | 20 |" in out and "TPR@0.1FPR" in out and "TPR_FPR" not in out
    assert sorted(p.name for p in plots.iterdir()) == [
        "roc_sst2_hi.png",
        "roc_sst2_inf.png",
        "roc_sst2_lo.png",
    ]
    assert (plots / "roc_sst2_inf.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = json.loads((tmp_path / "scores.json").read_text())
    assert len(rows) == 6 and all(r["AUC"] > 0.5 for r in rows)
    # the vocabulary of metrics.json and report.md (farm.mico.scorer.READABLE_NAMES)
    assert {"TPR@0.1FPR", "TPR@0.001FPR", "MIA advantage", "balanced accuracy"} <= set(rows[0])
    assert not any(k.startswith("TPR_FPR") or k == "MIA" for k in rows[0])


def test_pack_missing_model_fails_cleanly(tmp_path, tiny_challenge, tiny_answers, capsys):
    preds = _informative_predictions(tiny_answers)
    del preds[("sst2_hi", "final", 6)]
    write_predictions(tmp_path / "pred", preds)
    zip_path = tmp_path / "submission.zip"
    assert (
        main(
            [
                "pack",
                str(tmp_path / "pred"),
                "-o",
                str(zip_path),
                "--challenge",
                str(tiny_challenge),
            ]
        )
        == 1
    )
    assert "missing sst2_hi/final/model_6/prediction.csv" in capsys.readouterr().err
    assert not zip_path.exists()


def test_pack_default_expects_mico(tmp_path, tiny_answers, capsys):
    write_predictions(tmp_path / "pred", _informative_predictions(tiny_answers))
    assert main(["pack", str(tmp_path / "pred"), "-o", str(tmp_path / "s.zip")]) == 1
    assert "missing sst2_hi/dev/model_100/prediction.csv" in capsys.readouterr().err


def test_score_rejects_nan_prediction(tmp_path, tiny_answers, capsys):
    write_predictions(tmp_path / "pred", _informative_predictions(tiny_answers))
    (tmp_path / "pred/sst2_inf/dev/model_4/prediction.csv").write_text("nan," * 9 + "nan\n")
    assert (
        main(
            [
                "score",
                str(tmp_path / "pred"),
                "--solutions",
                str(tiny_answers),
                "--plot-dir",
                str(tmp_path / "plots"),
            ]
        )
        == 1
    )
    err = capsys.readouterr().err
    assert "sst2_inf/dev/model_4/prediction.csv: 10 NaN value(s)" in err


def test_score_unreadable_zip(tmp_path, tiny_answers, capsys):
    (tmp_path / "x.zip").write_bytes(b"garbage")
    assert main(["score", str(tmp_path / "x.zip"), "--solutions", str(tiny_answers)]) == 1
    assert "unreadable zip" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["splits", "score", "pack"])
def test_help_says_what_it_reads_and_writes(command):
    result = subprocess.run(
        [sys.executable, "-m", "farm.cli", command, "--help"], capture_output=True, text=True
    )
    assert result.returncode == 0 and "Reads" in result.stdout


def test_console_script_exit_status(tmp_path):
    result = subprocess.run(["farm", "splits", str(tmp_path)], capture_output=True, text=True)
    assert result.returncode == 1 and "missing seed file" in result.stderr


@pytest.mark.parametrize("command", ["splits", "store"])
def test_a_reader_that_went_away_ends_quietly_with_141(tiny_challenge, tmp_path, command):
    """``farm … | head``: stdout's reader is gone before farm writes; no traceback, exit 141."""
    argv = {
        "splits": ["splits", str(tiny_challenge / "sst2_inf" / "train" / "model_1")],
        "store": ["store", "verify", str(tmp_path / "empty-store")],
    }[command]
    (tmp_path / "empty-store").mkdir()
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader has already gone: every write to stdout fails with EPIPE
    try:
        result = subprocess.run(
            [sys.executable, "-m", "farm.cli", *argv],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
        )
    finally:
        os.close(write_end)
    assert result.returncode == 141 and result.stderr == "", result.stderr


def test_attack_refuses_pickle_weights_before_any_job(tiny_challenge, tmp_path):
    from tests.conftest import write_pickle_bomb

    mdir = tiny_challenge / "sst2_lo" / "final" / "model_5"
    (mdir / "model.safetensors").unlink()
    marker = tmp_path / "code-ran"
    bomb = write_pickle_bomb(mdir / "pytorch_model.bin", marker)
    code = (
        "import sys; from farm.cli import main; rc = main(sys.argv[1:]); assert 'ray' not in "
        "sys.modules; sys.exit(rc)"
    )
    # what must not happen (Ray started, a job run, the pickle's code run, output written), not
    # wall-clock time
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            code,
            "attack",
            "--challenge",
            str(tiny_challenge),
            "--config",
            "tests/data/tiny-attack.yaml",
            "--out",
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1 and result.stderr.count("\n") == 1, result.stderr
    assert f"{bomb}: refused" in result.stderr
    assert not marker.exists() and not (tmp_path / "out").exists()


def test_outputs_have_ordinary_permissions(tmp_path, capsys):
    """Seed files, challenge.json, predictions, the zip, metrics JSON and ROC plots: 0644 under
    umask 022."""
    old = os.umask(0o022)
    try:
        tree = make_tree(tmp_path / "challenge")
        answers = make_tree(tmp_path / "answers", answers=True, weights=False)
        write_predictions(tmp_path / "pred", _informative_predictions(answers))
        assert (
            main(
                [
                    "pack",
                    str(tmp_path / "pred"),
                    "-o",
                    str(tmp_path / "s.zip"),
                    "--challenge",
                    str(tree),
                ]
            )
            == 0
        )
        assert (
            main(
                [
                    "score",
                    str(tmp_path / "s.zip"),
                    "--solutions",
                    str(answers),
                    "--plot-dir",
                    str(tmp_path / "plots"),
                    "--json",
                    str(tmp_path / "m.json"),
                ]
            )
            == 0
        )
    finally:
        os.umask(old)
    out = capsys.readouterr().out
    assert (
        f"submission: {tmp_path / 's.zip'}" in out and f"metrics JSON: {tmp_path / 'm.json'}" in out
    )
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    kinds = {p.name for p in files}
    assert {
        "challenge.json",
        "seed_challenge",
        "prediction.csv",
        "s.zip",
        "m.json",
        "roc_sst2_inf.png",
    } <= kinds
    assert {
        str(p): oct(stat.S_IMODE(p.stat().st_mode))
        for p in files
        if stat.S_IMODE(p.stat().st_mode) != 0o644
    } == {}
    dirs = [p for p in tmp_path.rglob("*") if p.is_dir()]
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o755 for p in dirs)


def test_version(capsys):
    import farm

    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0 and capsys.readouterr().out.startswith(f"farm {farm.__version__}")


def test_unknown_config_name_is_refused_by_the_parser(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        main(
            [
                "attack",
                "--challenge",
                str(tmp_path),
                "--config",
                "attack-mni",
                "--out",
                str(tmp_path / "o"),
            ]
        )
    err = capsys.readouterr().err
    assert (
        info.value.code == 2
        and "attack-mni: no shipped config of that name" in err
        and "attack-mini" in err
    )
    assert not (tmp_path / "o").exists()


def test_jobs_server_address_is_refused_in_one_line(tmp_path, capsys, monkeypatch):
    import ray

    monkeypatch.setattr(ray, "init", lambda *a, **k: pytest.fail("ray.init must not run"))
    monkeypatch.setenv("RAY_ADDRESS", "http://head:8265")
    assert main(["make-challenge", "--config", "mini", "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err.strip()
    assert (
        err.startswith("farm make-challenge: error: RAY_ADDRESS=http://head:8265 is a Ray Jobs")
        and "\n" not in err
    )
    assert not (tmp_path / "o").exists()


def test_progress_goes_through_logging_with_verbosity(capsys):
    import logging

    from farm.cli import setup_logging

    progress = logging.getLogger("farm.cluster.executor")
    try:
        for verbosity, shown in ((0, True), (-1, False), (1, True), (0, True)):
            setup_logging(verbosity)
            progress.info("[jobs 1/2] done")
            err = capsys.readouterr().err
            assert err.count("[jobs 1/2] done") == int(shown), (
                verbosity,
                err,
            )  # one handler, never two
            assert ("farm.cluster.executor INFO" in err) == (verbosity > 0)
    finally:
        setup_logging(0)


def _every_parser(parser):
    """(name, parser) of every command and nested verb under ``parser``."""
    import argparse

    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield name, sub
                yield from ((f"{name} {verb}", p) for verb, p in _every_parser(sub))


def test_logging_flags_are_accepted_after_every_command():
    from farm.cli import build_parser

    parsers = dict(_every_parser(build_parser()))
    assert {"plan", "attack", "tune", "store verify", "audit", "splits"} <= set(parsers)
    for name, parser in parsers.items():
        flags = {o for a in parser._actions for o in a.option_strings}
        assert {"-v", "--verbose", "-q", "--quiet"} <= flags, name


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["-v", "splits", "M"], 1),
        (["splits", "M", "-v"], 1),
        (["splits", "-v", "M", "--verbose"], 2),
        (["-q", "splits", "M", "-v"], 0),
        (["plan", "--config", "attack-mini", "-q"], -1),
        (["store", "-v", "verify", "S", "-v"], 2),
        (["store", "verify", "S", "-q"], -1),
        (["-v", "store", "verify", "S"], 1),
    ],
)
def test_verbosity_counts_flags_before_and_after_the_command(argv, expected):
    from farm.cli import build_parser, verbosity

    assert verbosity(build_parser().parse_args(argv)) == expected


def test_plan_with_verbose_after_the_command_runs(tiny_challenge, capsys):
    import logging

    try:
        code = main(
            [
                "plan",
                "--config",
                "tests/data/tiny-attack.yaml",
                "--challenge",
                str(tiny_challenge),
                "-v",
            ]
        )
        assert code == 0, capsys.readouterr().err
        assert logging.getLogger("farm").level == logging.DEBUG
    finally:
        from farm.cli import setup_logging

        setup_logging(0)


def test_attack_dry_run_prints_the_plan_and_runs_nothing(tiny_challenge, tmp_path):
    code = (
        "import sys; from farm.cli import main; rc = main(sys.argv[1:]); assert 'ray' not in "
        "sys.modules; sys.exit(rc)"
    )
    out = tmp_path / "out"
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            code,
            "attack",
            "--challenge",
            str(tiny_challenge),
            "--config",
            "tests/data/tiny-attack.yaml",
            "--out",
            str(out),
            "--dry-run",
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert (
        "| sst2_inf | shadows | 2 | - |" in result.stdout
        and "trainings: 6   inference passes: 27" in result.stdout
    )
    assert not out.exists()


def test_make_challenge_dry_run_writes_nothing(tmp_path, capsys):
    assert (
        main(["make-challenge", "--config", "mini", "--out", str(tmp_path / "out"), "--dry-run"])
        == 0
    )
    text = capsys.readouterr().out
    assert "| sst2_lo | targets | 16 |" in text and "| assets | base model | 1 |" in text
    default = os.environ["FARM_STORE"]  # the shared default store, which a plan never creates
    assert text.splitlines()[-1] == f"store: {default} (not there yet: no job counted as done)"
    assert not (tmp_path / "out").exists() and not os.path.exists(default)


def test_plan_of_a_tune_config_gives_upper_bounds(tmp_path, capsys):
    tree = make_tree(tmp_path / "tree", counts=(8, 2, 2))
    assert (
        main(["plan", "--config", "tune-mini", "--challenge", str(tree), "--json", "--gpus", "2"])
        == 0
    )
    plan = json.loads(capsys.readouterr().out)
    search = next(
        s for s in plan["stages"] if s["scenario"] == "sst2_hi" and s["name"] == "search shadows"
    )
    assert (
        search["bound"] and search["jobs"] == 6 * 4 and search["mode"] == "train_dp"
    )  # 6 trials x 4 shadows
    assert plan["command"] == "tune" and plan["gpus"] == 2


def test_every_command_of_the_mico_tutorial_parses():
    """docs/mico.md's commands (``farm ...`` and the ``ray job submit`` entry points, which take
    the commands' arguments) exist with the flags it gives them: parsed, not run."""
    text = (Path(__file__).resolve().parents[1] / "docs" / "mico.md").read_text()
    parser, seen = build_parser(), []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line.split("  #")[0])
            while words and "=" in words[0]:  # VAR=value prefixes
                words = words[1:]
            if words[:1] == ["ray"]:
                entry, *args = words[words.index("--") + 2 :]
                words = ["farm", Path(entry).stem, *args]
            if words:
                assert words[0] == "farm", line
                parser.parse_args(words[1:])
                seen.append(words[1])
    assert {"plan", "bench", "attack", "tune", "pack", "score"} <= set(seen)


def test_plan_needs_a_challenge_for_an_attack_config(capsys):
    assert main(["plan", "--config", "attack-mini"]) == 1
    assert "needs --challenge TREE" in capsys.readouterr().err


def test_bench_writes_a_measured_table(tmp_path, capsys):
    from farm.commands.dry_run import read_table

    assert (
        main(["bench", "--sequences", "48", "--device", "cpu", "--table", str(tmp_path / "t.json")])
        == 0
    )
    captured = capsys.readouterr()
    assert "| tiny | train_dp |" in captured.out
    from farm.spec.costs import MODES

    for mode in MODES:  # a line per mode as it starts and one with its rate (stderr, INFO)
        assert f"bench tiny {mode} (" in captured.err, captured.err
        assert f"bench tiny {mode}: " in captured.err and "sequences/s" in captured.err
    table = read_table(tmp_path / "t.json")
    assert table.device.startswith("cpu") and set(table.rates) == {"tiny"}
    assert all(
        r.seq_per_s > 0 and r.source.startswith("measured on cpu")
        for r in table.rates["tiny"].values()
    )


def test_store_verify_refuses_a_missing_store_and_writes_nothing(tmp_path, capsys):
    assert main(["store", "verify", str(tmp_path / "nope")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{tmp_path / 'nope'}: no such store" in err
    assert not (tmp_path / "nope").exists()


def test_ctrl_c_stops_a_running_attack_and_the_rerun_reuses_its_finished_jobs(tiny_built, tmp_path):
    """SIGINT to a running ``farm attack`` once its first job has finished: it ends with 130 and one
    line, no traceback (60 s is a hang guard, not a timing check; benchmarks/ctrl_c.py measures the
    time); no job starts after the signal (what the store gains is at most the jobs running when it
    came, one per worker, and nothing after the command ended); nothing is half-written (every
    entry valid, no submission or report); the rerun reuses every finished job."""
    import signal
    import time

    from benchmarks.ctrl_c import start_interruptible
    from farm.store.store import Store

    out, store = tmp_path / "out", tmp_path / "store"
    cmd = [sys.executable, "-m", "farm.cli", "attack", "--challenge", str(tiny_built / "challenge")]
    cmd += ["--config", "tests/data/tiny-attack.yaml", "--out", str(out), "--store", str(store)]
    log = tmp_path / "log"
    with log.open("w") as sink:
        proc = start_interruptible(cmd, sink)
        deadline = time.time() + 240
        while not re.search(r"\] 1/\d+ ", log.read_text()):  # the first job's progress line
            assert proc.poll() is None and time.time() < deadline, log.read_text()
            time.sleep(0.05)
        at_signal = set(Store(store).keys())
        proc.send_signal(signal.SIGINT)
        rc = proc.wait(timeout=60)
    text = log.read_text()
    assert rc == 130, text
    assert "farm attack: interrupted; finished jobs are in the store" in text
    assert "Traceback" not in text
    assert not (out / "submission.zip").exists() and not (out / "report.md").exists()
    at_exit = set(Store(store).keys())
    workers = os.cpu_count() or 1  # the local pool, one per CPU: the jobs running at the signal
    assert at_signal and at_signal <= at_exit and len(at_exit - at_signal) <= workers
    time.sleep(2.0)
    assert set(Store(store).keys()) == at_exit  # no worker outlived the command
    assert all(Store(store).valid(k) for k in at_exit)
    rerun = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    ran, reused = map(int, re.search(r"jobs: (\d+) run, (\d+) reused", rerun.stdout).groups())
    assert reused == len(at_exit) and ran + reused > len(at_signal)  # all of them, and the rest
