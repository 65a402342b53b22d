"""Does retraining a stored shadow give its stored bytes? Per torch thread count.

A job key names what a training computes, not how many intra-op threads computed it; float sums in
another order give other bits. This retrains chosen shadows of a scenario's pool (``--config``'s
plan, ``--k`` shadows) into a temporary store -- the stored one is only read: the job's inputs are
copied over -- once per ``--threads`` count, in this process, and compares the weights file with
the stored one, byte for byte.

    python -m benchmarks.retrain_bytes --challenge /tmp/cb/challenge --store /tmp/scale/store \\
        --config attack-mini-clickbait --scenario cb_inf --k 16 --shadows 0,15 --threads 1,2
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import tempfile
from pathlib import Path

from benchmarks.common import table
from benchmarks.scaling import pool
from farm.config.attack import load_attack_config
from farm.shadows.scenario import load_scenarios, plan_shadows, train_jobs
from farm.spec.jobs import TrainJob, job_inputs
from farm.store.store import Store

WEIGHTS = "model.safetensors"


def retrain(job: TrainJob, store: Store, threads: int) -> str:
    """sha256 of ``job``'s weights trained afresh with ``threads`` torch threads in a temporary
    store holding copies of its inputs from ``store``."""
    # lazy: loads torch
    import torch

    from farm.store.run_job import run_job

    torch.set_num_threads(threads)
    with tempfile.TemporaryDirectory(prefix="farm-retrain-") as tmp:
        fresh = Store(Path(tmp) / "store")
        for key in job_inputs(job):
            shutil.copytree(store.path(key), fresh.path(key))
        run_job(job, fresh)
        return _sha(Path(fresh.path(job.key, WEIGHTS)))


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--challenge", type=Path, required=True)
    parser.add_argument("--store", required=True)
    parser.add_argument("--config", required=True, help="attack config giving the shadows")
    parser.add_argument("--scenario", required=True)
    parser.add_argument("--k", type=int, default=16, help="shadows in the pool")
    parser.add_argument("--shadows", default="0", help="comma-separated indices in the pool")
    parser.add_argument("--threads", default="1,2", help="comma-separated torch thread counts")
    args = parser.parse_args(argv)
    config = load_attack_config(args.config)
    config = config.get(args.scenario, config["*"])
    _, scenarios = load_scenarios(args.challenge, names=[args.scenario])
    scenario = scenarios[args.scenario]
    recipe = config.shadow_recipe(scenario.inputs.len_training)
    jobs = train_jobs(scenario, recipe, plan_shadows(scenario, pool(config, args.k, 2)))
    store = Store(args.store)
    rows = []
    for i in [int(x) for x in args.shadows.split(",")]:
        stored = _sha(Path(store.path(jobs[i].key, WEIGHTS)))
        for threads in [int(x) for x in args.threads.split(",")]:
            again = retrain(jobs[i], store, threads)
            rows.append(
                {
                    "shadow": jobs[i].label,
                    "threads": threads,
                    "stored sha256": stored,
                    "retrained sha256": again,
                    "same bytes": again == stored,
                }
            )
    print(table(rows))
    return rows


if __name__ == "__main__":
    main()
