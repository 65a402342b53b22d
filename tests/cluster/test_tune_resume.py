"""An interrupted `farm tune` (driver and its Ray killed) resumes with Tuner.restore and completes
the search, whose best.yaml `farm attack` then consumes (the end-to-end check of `farm tune`: one
search serves both, as a search is the slowest thing in the suite).

Its own module, so that no other Ray instance of the test process is alive while the subprocess
runs (``no_local_ray``).
"""

import os
import subprocess
import sys
import time
from pathlib import Path

from farm.config.attack import load_attack_config
from tests.helpers import kill_ray_instance

TUNE = "tests/data/tiny-tune.yaml"


def test_interrupted_search_resumes_with_tuner_restore(tiny_built, no_local_ray, tmp_path):
    out = tmp_path / "tune"
    temp = f"/tmp/farm-tune-{os.getpid()}"
    env = {
        **os.environ,
        "FARM_RAY_TMPDIR": temp,
        "TUNE_GLOBAL_CHECKPOINT_S": "0",
    }  # save state every step
    cmd = [
        sys.executable,
        "-m",
        "farm.cli",
        "tune",
        "--challenge",
        str(tiny_built / "challenge"),
        "--config",
        TUNE,
        "--out",
        str(out),
        "--store",
        str(tmp_path / "store"),
    ]  # a fresh store: trials must train
    log = open(tmp_path / "first.log", "w")
    proc = subprocess.Popen(
        cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    experiment = out / "ray_results" / "tune_sst2_inf"
    try:
        deadline = time.time() + 300
        while not _finished_trials(experiment):
            assert proc.poll() is None, (tmp_path / "first.log").read_text()[-3000:]
            assert time.time() < deadline
            time.sleep(0.5)
    finally:
        kill_ray_instance(temp, proc.pid)
    assert not (out / "sst2_inf" / "best.yaml").exists()  # interrupted before the end
    done_before = _finished_trials(experiment)
    again = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    kill_ray_instance(temp, proc.pid)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "resuming" in again.stdout + again.stderr
    assert "trials finished, best TPR@0.1FPR so far" in again.stderr  # each trial line's tail
    assert len((out / "sst2_inf" / "trials.csv").read_text().splitlines()) == 1 + 2
    assert done_before >= 1
    assert "| sst2_inf |" in again.stdout and "held-out TPR@0.1 tuned" in again.stdout
    assert "sst2_inf: best.yaml holds the" in again.stdout  # tuned or default, with both figures
    # stdout holds farm's results only; Tune's TensorBoard hint names the results, not a session
    assert "Configuration for experiment" not in again.stdout
    hints = [line for line in again.stderr.splitlines() if "tensorboard --logdir" in line]
    assert all(str((out / "ray_results").resolve()) in line for line in hints), hints
    best = out / "sst2_inf" / "best.yaml"
    config = load_attack_config(best)["*"]
    assert config.plan.kind == "pool" and config.plan.shadows in (2, 4)
    assert experiment.is_dir()  # Ray's standard results layout
    attack = [
        *cmd[:3],
        "attack",
        "--challenge",
        str(tiny_built / "challenge"),
        "--config",
        str(best),
        "--out",
        str(tmp_path / "attack"),
        "--store",
        str(tmp_path / "store"),
    ]
    ran = subprocess.run(attack, env=env, capture_output=True, text=True, timeout=600)
    kill_ray_instance(temp, proc.pid)
    assert ran.returncode == 0, ran.stderr[-3000:]
    assert (tmp_path / "attack" / "submission.zip").is_file()


def _finished_trials(experiment: Path) -> int:
    """Trials the saved experiment state records as finished."""
    states = sorted(experiment.glob("experiment_state-*.json"))
    return states[-1].read_text().count("TERMINATED") if states else 0
