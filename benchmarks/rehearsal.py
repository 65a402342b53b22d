"""A challenge rehearsal end to end, as a user runs it (issue 11): ``farm make-challenge``,
``farm attack``, then ``farm attack`` again (which must run 0 jobs in seconds). Each command runs as
its own process; this script polls the driver's resident memory (psutil, every 0.2 s) and records
its wall time and ``jobs:`` line. Prints the steps, the attack's stages (``stages.json``: reading,
fingerprinting, scheduling, training, inference, scoring, writing) and the store's bytes; ``--json``
saves them, ``--against`` a saved run prints how each grew.

    python -m benchmarks.rehearsal --config mico-rehearsal --attack attack-mico-rehearsal \\
        --out /tmp/reh --json /tmp/reh.json
    python -m benchmarks.rehearsal --config mini --attack attack-mini --out /tmp/mini-reh \\
        --json /tmp/mini.json
    # growth from the mini challenge
    python -m benchmarks.rehearsal ... --against /tmp/mini.json

The attack config may name ``${FARM_REHEARSAL_DIR}`` (``attack-mico-rehearsal`` does, for its
assets); it is set to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.common import table


def run_polled(argv: list[str], env: dict[str, str], log: Path) -> dict:
    """Run ``argv``; wall seconds, the driver's peak RSS (MiB, sampled) and the last ``jobs:``
    line."""
    import psutil

    start = time.perf_counter()
    with log.open("w") as sink:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=sink, text=True, env=env)
        watched, peak = psutil.Process(proc.pid), 0
        while proc.poll() is None:
            try:
                peak = max(peak, watched.memory_info().rss)
            except psutil.Error:
                pass
            time.sleep(0.2)
        out = proc.stdout.read() if proc.stdout else ""
    if proc.returncode:
        raise SystemExit(f"{' '.join(argv)} failed ({proc.returncode}); see {log}")
    jobs = [line for line in out.splitlines() if line.startswith("jobs: ")]
    return {
        "wall_s": round(time.perf_counter() - start, 1),
        "driver_peak_rss_mib": round(peak / 2**20),
        "jobs": jobs[-1] if jobs else "-",
    }


def store_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", required=True, help="make-challenge config (name or path)")
    parser.add_argument("--attack", required=True, help="attack config (name or path)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--json", type=Path, default=None, help="save the results here")
    parser.add_argument(
        "--against", type=Path, default=None, help="a saved run to compare with (growth)"
    )
    args = parser.parse_args(argv)
    out, farm = args.out.resolve(), [sys.executable, "-m", "farm.cli"]
    env = {**os.environ, "FARM_REHEARSAL_DIR": str(out)}
    store = out / "store"
    steps = {}
    steps["make-challenge"] = run_polled(
        [
            *farm,
            "make-challenge",
            "--config",
            args.config,
            "--out",
            str(out),
            "--store",
            str(store),
        ],
        env,
        out.parent / f"{out.name}-build.log",
    )
    attack = [
        *farm,
        "attack",
        "--challenge",
        str(out / "challenge"),
        "--answers",
        str(out / "answers"),
        "--config",
        args.attack,
        "--store",
        str(store),
    ]
    stages = {}
    for name in ("attack", "attack rerun"):
        dest = out / name.replace(" ", "-")
        steps[name] = run_polled(
            [*attack, "--out", str(dest)], env, out.parent / f"{out.name}-{dest.name}.log"
        )
        stages[name] = json.loads((dest / "stages.json").read_text())
    models = sum(1 for _ in (out / "challenge").glob("*/*/model_*"))
    result = {
        "config": args.config,
        "models": models,
        "steps": steps,
        "stages": stages,
        "store_bytes": store_bytes(store),
        "tree_bytes": store_bytes(out / "challenge"),
    }
    print(
        f"config={args.config} models={models} store={result['store_bytes'] / 2**20:.1f} MiB "
        f"tree={result['tree_bytes'] / 2**20:.1f} MiB"
    )
    print(table([{"step": k, **v} for k, v in steps.items()]))
    print()
    print(table(stage_rows(stages)))
    if args.against:
        print()
        print(table(growth_rows(json.loads(args.against.read_text()), result)))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return result


def stage_rows(stages: dict) -> list[dict]:
    """One row per stage: wall seconds of each attack run, and the job-seconds behind training and
    inference."""
    names = list(next(iter(stages.values()))["wall_seconds"])
    rows = [
        {
            "stage": s,
            **{
                f"{run} s": run_stages["wall_seconds"].get(s, 0.0)
                for run, run_stages in stages.items()
            },
        }
        for s in names
    ]
    for kind in ("training", "inference"):
        rows.append(
            {
                "stage": f"{kind} job-seconds (all workers)",
                **{f"{run} s": st["job_seconds"].get(kind, 0.0) for run, st in stages.items()},
            }
        )
    return rows


def growth_rows(before: dict, after: dict) -> list[dict]:
    """How each measured quantity grew from ``before`` (e.g. the mini challenge) to ``after``."""
    pairs = {
        "models": (before["models"], after["models"]),
        "store MiB": (before["store_bytes"] / 2**20, after["store_bytes"] / 2**20),
    }
    for step in after["steps"]:
        pairs[f"{step} wall s"] = (before["steps"][step]["wall_s"], after["steps"][step]["wall_s"])
        pairs[f"{step} driver peak RSS MiB"] = (
            before["steps"][step]["driver_peak_rss_mib"],
            after["steps"][step]["driver_peak_rss_mib"],
        )
    for stage, seconds in after["stages"]["attack"]["wall_seconds"].items():
        pairs[f"attack: {stage} s"] = (
            before["stages"]["attack"]["wall_seconds"].get(stage, 0.0),
            seconds,
        )
    return [
        {
            "quantity": k,
            "before": round(a, 2),
            "after": round(b, 2),
            "growth": f"{b / a:.1f}x" if a else "-",
        }
        for k, (a, b) in pairs.items()
    ]


if __name__ == "__main__":
    main()
