"""How long Ctrl-C takes to stop a running command (issue 23).

Starts ``farm make-challenge`` (phases ``base``, ``targets``) or ``farm attack`` on that challenge
(phase ``attack``) on a fresh store, waits until the phase's marker shows in its output (a stage
planned; for the attack, its first finished job), waits ``--delay`` seconds more so that a job is
running, sends SIGINT and measures the seconds until the process has exited. Checks what must hold:
exit 130, the one-line message, no traceback, no output (tree or submission), every stored entry
valid. Then reruns the command on the same store and reports how many jobs the rerun reused. One
table row a trial.

    python -m benchmarks.ctrl_c --config tests/data/tiny-mini.yaml --trials 3
"""

from __future__ import annotations

import argparse
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO

from benchmarks.common import table
from farm.store.store import Store

PHASES = {  # what the output shows when a phase is under way
    "base": re.escape("[base model] planning"),
    "targets": re.escape("[targets] planning"),
    "attack": r"\] 1/\d+ ",  # the attack's first finished job (its progress line)
}
ATTACK = "tests/data/tiny-attack.yaml"


def start_interruptible(cmd: list[str], sink: IO[str]) -> subprocess.Popen:
    """Start ``cmd`` with its output in ``sink`` and SIGINT's default action restored (a shell's
    background job ignores it), so that a SIGINT sent to it acts as a Ctrl-C does."""
    return subprocess.Popen(
        cmd,
        stdout=sink,
        stderr=subprocess.STDOUT,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def command(
    phase: str, config: str, out: Path, store: Path, *, challenge: Path | None
) -> list[str]:
    """The command a trial interrupts: ``make-challenge`` of ``config``, or for ``attack`` the
    tiny attack on ``challenge`` (built from ``config``)."""
    if phase == "attack":
        cmd = [sys.executable, "-m", "farm.cli", "attack", "--challenge", str(challenge)]
        cmd += ["--config", ATTACK]
    else:
        cmd = [sys.executable, "-m", "farm.cli", "make-challenge", "--config", config]
    return [*cmd, "--out", str(out), "--store", str(store)]


def trial(
    config: str, phase: str, delay: float, root: Path, *, challenge: Path | None = None
) -> dict:
    """One interrupted run and its rerun, in ``root``."""
    out, store, log = root / "out", root / "store", root / "log"
    cmd = command(phase, config, out, store, challenge=challenge)
    with log.open("w") as sink:
        proc = start_interruptible(cmd, sink)
        while not re.search(PHASES[phase], log.read_text()):
            if proc.poll() is not None:
                raise SystemExit(f"{config}: ended before {phase!r}:\n{log.read_text()[-2000:]}")
            time.sleep(0.1)
        time.sleep(delay)
        sent = time.perf_counter()
        proc.send_signal(signal.SIGINT)
        rc = proc.wait(timeout=120)
        seconds = time.perf_counter() - sent
    text = log.read_text()
    stored = Store(store).keys()
    clean = (
        rc == 130
        and "interrupted; finished jobs are in the store" in text
        and "Traceback" not in text
        and not (out / "challenge").exists()
        and not (out / "submission.zip").exists()
        and all(Store(store).valid(k) for k in stored)
    )
    rerun = subprocess.run(cmd, capture_output=True, text=True, check=True)
    jobs = re.search(r"jobs: (\d+) run, (\d+) reused", rerun.stdout)
    return {
        "phase": phase,
        "exit s": f"{seconds:.2f}",
        "rc": rc,
        "clean": "yes" if clean else "NO",
        "stored at stop": len(stored),
        "rerun reused": jobs.group(2) if jobs else "?",
        "rerun ran": jobs.group(1) if jobs else "?",
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="tests/data/tiny-mini.yaml")
    ap.add_argument("--phases", default="base,targets,attack")
    ap.add_argument("--delay", type=float, default=1.0)
    ap.add_argument("--trials", type=int, default=3)
    args = ap.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory(prefix="farm-ctrl-c-built-") as built:
        challenge = None
        if "attack" in args.phases.split(","):  # the challenge the attack trials interrupt
            out = Path(built)
            build = command("base", args.config, out, out / "store", challenge=None)
            subprocess.run(build, check=True, capture_output=True)
            challenge = out / "challenge"
        for phase in args.phases.split(","):
            for _ in range(args.trials):
                with tempfile.TemporaryDirectory(prefix="farm-ctrl-c-") as tmp:
                    rows.append(
                        trial(args.config, phase, args.delay, Path(tmp), challenge=challenge)
                    )
    print(table(rows))


if __name__ == "__main__":
    main()
