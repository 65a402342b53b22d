"""GPU-slot utilisation of the executor on a MICO-shaped plan, measured without GPUs.

Ray schedules logical GPUs, so a ``ray.cluster_utils.Cluster`` of 2 nodes x 4 logical GPUs gives 8
GPU slots on a CPU machine (the jobs themselves run on the CPU). The plan has MICO's shape, scaled
down: three scenarios, each with shadow trainings and inference passes over provided models and
shadows, in MICO's proportion of job-seconds (attack-mico: 24 roberta-base trainings and 224
inference passes over a ~30k-record union per scenario: 1 training to 9.3 inference passes, and at
the H100 rates of ``farm.spec.costs`` inference is about a fifth of the job-seconds; ``--union``
sets the inference share, printed). Every job of the three scenarios goes into one queue, as
``farm attack`` does. Reports utilisation = busy slot-seconds / (slots x wall) and the overhead of
wall time against sum(job seconds) / slots, with the workers' start-up and the utilisation of the
workers once started.

One invocation measures the executors of ``--executors`` side by side on the same jobs (each from
an empty measured set; the setup -- tokenizer and provided models -- is shared and not measured):
``busy`` (issue 22: workers started before the driver plans, jobs that others read first, the next
job's inputs prefetched) and ``today`` (issue 12's executor). Wall time and start-up count from the
first call of each (``Executor.start``, or the planning when workers start with the run), so
start-up hidden behind planning is still paid for.

    python -m benchmarks.utilisation --n 12000 --epochs 6 --shadows 6 --provided 50 --union 7000
"""

from __future__ import annotations

import os

os.environ.setdefault(
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0"
)  # before Ray is imported: nodes on loopback

import argparse  # noqa: E402
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.common import table
from farm.spec.jobs import InferJob, Selection, StoreRef, TokenizerJob, TrainJob
from farm.spec.population import PopulationSpec
from farm.spec.recipes import ModelSpec, Perf, Recipe, TinyModel

SCENARIOS = ("sst2_inf", "sst2_hi", "sst2_lo")


def plan(
    n: int, shadows: int, provided: int, epochs: int, union: int
) -> tuple[list, list, dict[str, list]]:
    """(tokenizer + provided trainings to prepare, provided models, per-scenario jobs of the
    measured run)."""
    pop = {"source": "synthetic", "n": n, "seed": 1}
    tok = TokenizerJob(PopulationSpec.of(pop), vocab_size=800, label="tokenizer")
    rng = np.random.default_rng(0)
    recipe = Recipe(
        model=ModelSpec(name="tiny", tiny=TinyModel(32, 1, 2, 64)),
        epochs=epochs,
        learning_rate=1e-3,
        batch_size=32,
        max_length=32,
    )

    def train(i: int, label: str, epochs: int = epochs) -> TrainJob:
        sel = Selection.of(n, np.sort(rng.choice(n, int(0.75 * n), replace=False)))
        return TrainJob(
            population=PopulationSpec.of(pop),
            tokenizer=StoreRef(tok.key),
            selection=sel,
            recipe=Recipe(**{**recipe.__dict__, "seed": i, "epochs": epochs}),
            label=label,
        )

    models = [
        train(i, f"provided {i}", epochs=1) for i in range(provided)
    ]  # only their inference is measured
    run: dict[str, list] = {}
    for s, scenario in enumerate(SCENARIOS):
        records = Selection.of(n, np.sort(rng.choice(n, union, replace=False)))
        shadow = [train(1000 * (s + 1) + i, f"{scenario} shadow {i}") for i in range(shadows)]
        infer = [
            InferJob(
                population=PopulationSpec.of(pop),
                tokenizer=StoreRef(tok.key),
                model=StoreRef(m.key),
                selection=records,
                max_length=32,
                label=f"{scenario} infer",
            )
            for m in [*models, *shadow]
        ]
        run[scenario] = [*shadow, *infer]
    return [tok], models, run


MODES = {
    # issue 22's executor: workers started at the first call, before the driver plans; jobs that
    # others read first; the next job's tokens and weights prefetched
    "busy": {"busy_queue": True, "early": True},
    # issue 12's: workers started by ``run`` once the jobs are planned, first in first out, only
    # inference weights prefetched
    "today": {"busy_queue": False, "early": False},
}


def measure(mode: str, store, args: argparse.Namespace, slots: int) -> dict:
    """One measured run of ``mode`` on an empty measured set (the setup stays stored): wall time
    from the first call -- ``Executor.start`` for an early pool, else the driver's planning -- to
    the last job's end; start-up likewise from the first call, so that start-up hidden behind
    planning is still paid for in wall time."""
    from farm.cluster.executor import Executor

    ex = Executor(
        store=store, perf=Perf(), progress=None, device="gpu", busy_queue=MODES[mode]["busy_queue"]
    )
    start = time.perf_counter()  # the first call
    if MODES[mode]["early"]:
        ex.start()
    _, _, run = plan(args.n, args.shadows, args.provided, args.epochs, args.union)  # planning
    jobs = [j for scenario in SCENARIOS for j in run[scenario]]
    planned = time.perf_counter() - start
    try:
        report = ex.run(jobs, title="MICO-shaped run")
    finally:
        ex.close()
    wall = time.perf_counter() - start
    by_key = {j.key: j for j in jobs}
    trains = sum(isinstance(j, TrainJob) for j in jobs)
    train_s = sum(
        r["seconds"] for k, r in report.results.items() if isinstance(by_key[k], TrainJob)
    )
    ideal = report.job_seconds / slots
    assert ex.pool_times is not None and ex.pool_times[1] is not None
    return {
        "executor": mode,
        "slots": slots,
        "trainings": trains,
        "inference passes": len(jobs) - trains,
        "job_s": report.job_seconds,
        "inference share": 1 - train_s / report.job_seconds,
        "plan_s": planned,
        "wall_s": wall,
        "sum(job)/slots": ideal,
        "utilisation": report.busy_seconds / (slots * wall),
        "overhead": wall / ideal - 1,
        "workers start-up_s": ex.pool_times[1] - start,
        "utilisation of started workers": report.busy_seconds / max(report.live_seconds, 1e-9),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--nodes", type=int, default=2)
    parser.add_argument("--gpus-per-node", type=int, default=4)
    parser.add_argument("--shadows", type=int, default=4, help="shadow trainings per scenario")
    parser.add_argument(
        "--provided", type=int, default=12, help="provided models inferred in every scenario"
    )
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--n", type=int, default=3000, help="population records")
    parser.add_argument("--union", type=int, default=150, help="records per inference pass")
    parser.add_argument("--store", default=None, help="store (default: a new temporary one)")
    parser.add_argument(
        "--executors",
        default="busy,today",
        help="which executors to measure, in this order, each on the same jobs (their results are "
        "removed from the store between them): busy (issue 22) and today (issue 12's)",
    )
    args = parser.parse_args()
    modes = args.executors.split(",")
    if not modes or any(m not in MODES for m in modes):
        parser.error(f"--executors: a comma-separated list of {', '.join(MODES)}")
    import ray
    from ray.cluster_utils import Cluster

    from farm.cluster.executor import Executor
    from farm.store.store import Store

    cluster = Cluster(
        initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False}
    )
    for _ in range(args.nodes):
        cluster.add_node(num_cpus=args.gpus_per_node, num_gpus=args.gpus_per_node)
    try:
        ray.init(address=cluster.address, log_to_driver=False)
        cluster.wait_for_nodes()
        store = Store(args.store or Path(tempfile.mkdtemp(prefix="farm-util-")) / "store")
        tok, models, run = plan(args.n, args.shadows, args.provided, args.epochs, args.union)
        setup = Executor(store=store, perf=Perf(), progress=None, device="gpu")
        setup.run([*tok, *models], title="setup: tokenizer and provided models")  # not measured
        measured = [j.key for scenario in SCENARIOS for j in run[scenario]]
        slots = args.nodes * args.gpus_per_node
        rows = []
        for mode in modes:
            for key in measured:  # every executor runs the same jobs from scratch
                if store.exists(key):
                    store.remove(key)
            rows.append(measure(mode, store, args, slots))
        print(table(rows))
    finally:
        ray.shutdown()
        cluster.shutdown()


if __name__ == "__main__":
    main()
