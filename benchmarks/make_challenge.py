"""Executor overhead and cost of ``farm make-challenge``: wall time per stage against the sum of job
times divided by the workers (target: at most 10% overhead), total time and peak memory (driver +
workers).

    python -m benchmarks.make_challenge --config mini   # a shipped config name, or a path
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

from benchmarks.common import table
from farm.cluster.executor import Executor, ensure_ray
from farm.commands.make_challenge import make_challenge
from farm.store.store import Store


def peak_rss_mib() -> float:
    """Peak RSS of this process and of its (reaped) children, MiB."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return own / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", default="mini", help="a shipped config name or a path")
    parser.add_argument("--workers", type=int, default=None)
    args = parser.parse_args()
    out = Path(tempfile.mkdtemp(prefix="farm-mc-"))
    ensure_ray()
    import ray

    executor = Executor(store=Store(out / "store"), workers=args.workers, progress=None)
    start = time.perf_counter()
    make_challenge(args.config, out, executor)
    total = time.perf_counter() - start
    rows = []
    for title, rep in executor.history:
        ideal = rep.job_seconds / max(rep.workers, 1)
        rows.append(
            {
                "stage": title,
                "jobs": rep.ran,
                "workers": rep.workers,
                "wall_s": rep.wall_seconds,
                "sum_job_s": rep.job_seconds,
                "ideal_s": ideal,
                "overhead": rep.wall_seconds / ideal - 1,
            }
        )
    wall = sum(r["wall_s"] for r in rows)
    ideal = sum(r["ideal_s"] for r in rows)
    rows.append(
        {
            "stage": "all",
            "jobs": sum(r["jobs"] for r in rows),
            "workers": "-",
            "wall_s": wall,
            "sum_job_s": sum(r["sum_job_s"] for r in rows),
            "ideal_s": ideal,
            "overhead": wall / ideal - 1,
        }
    )
    mem = _cluster_peak_mib(ray)
    print(
        f"config={args.config} total={total:.1f}s (incl. population load and tree writing) "
        f"driver_peak_rss={peak_rss_mib():.0f}MiB workers_peak_rss_sum={mem:.0f}MiB"
    )
    print(table(rows))


def _cluster_peak_mib(ray) -> float:
    import psutil

    total = 0.0
    for proc in psutil.process_iter(["cmdline", "memory_info"]):
        cmd = " ".join(proc.info["cmdline"] or [])
        if "ray::" in cmd and proc.info["memory_info"]:
            total += proc.info["memory_info"].rss / 2**20
    return total


if __name__ == "__main__":
    main()
