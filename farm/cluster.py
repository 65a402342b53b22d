"""The executor: ships frozen job specs to Ray tasks and collects small result dicts.

Tasks (not actors) so that Ray's own retries cover a killed worker or a lost node: the task is re-run elsewhere
and ``run_job`` skips whatever it had already finished. A worker process keeps a ``farm.run.Context``
(tokenized populations, tokenizers, fetched models) across the tasks it runs, so a population is tokenized once
per worker, not per job. Jobs whose key already holds a valid store entry are never sent. Results are written
by the workers straight to the store; tasks return only keys and timings (a few hundred bytes, inlined).
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import ray

from farm.errors import FarmError
from farm.jobs import Job
from farm.recipes import Perf, to_dict
from farm.store import Store

log = logging.getLogger(__name__)


def ensure_ray(address: str | None = None, *, num_cpus: int | None = None) -> None:
    """Connect to Ray: ``address`` (or ``RAY_ADDRESS``, as under ``ray job submit``) if given, else start a
    private local instance bound to loopback. An ``http(s)://`` address (the Ray Jobs / dashboard server, what
    ``ray job submit`` users export) is no cluster address: ``FarmError`` in one line, before anything starts."""
    source = "--address" if address else "RAY_ADDRESS"
    address = address or os.environ.get("RAY_ADDRESS")
    if address and address.startswith(("http://", "https://")):
        raise FarmError(f"{source}={address} is a Ray Jobs (dashboard) address, not a cluster address: submit the "
                        f"run with `ray job submit --address {address} -- farm ...` (see ray_jobs/), or give the "
                        "cluster's GCS address (HOST:6379) or `auto`")
    if ray.is_initialized():
        return
    if address:
        ray.init(address=address, log_to_driver=False)
    else:  # a private single-machine instance on loopback; FARM_RAY_TMPDIR picks its session folder
        ray.init(address="local", num_cpus=num_cpus or os.cpu_count(), include_dashboard=False, log_to_driver=False,
                 _node_ip_address="127.0.0.1", _temp_dir=os.environ.get("FARM_RAY_TMPDIR"))


_CONTEXTS: dict[str, Any] = {}  # per worker process: a cache of inputs across tasks, never part of a result


def run_chunk(store_uri: str, perf: dict, threads: int, jobs: list[Job]) -> list[dict]:
    """Run ``jobs`` in one worker process, sharing its context (tokenized population, tokenizers, models).

    A task killed with its worker or node is retried by Ray (``max_retries``); jobs already in the store are
    skipped by ``run_job``, so a retry only redoes unfinished work.
    """
    import torch

    from farm.run import Context, run_job

    torch.set_num_threads(max(1, threads))
    _quiet()
    key = json.dumps(perf, sort_keys=True)
    ctx = _CONTEXTS.setdefault(key, Context(perf=Perf(**perf)))
    store = Store(store_uri)
    return [{**run_job(job, store, ctx), "pid": os.getpid()} for job in jobs]


# CPU tasks reuse worker processes (keeping their contexts); num_gpus in the decorator gives every GPU task a
# fresh process (max_calls=1), which frees its CUDA memory. Ray retries a task lost with its worker or node.
cpu_task = ray.remote(max_retries=4)(run_chunk)
gpu_task = ray.remote(num_gpus=1, max_retries=4)(run_chunk)


@dataclass
class Report:
    """What a run did: results per key, how many jobs ran or were skipped (already stored)."""

    results: dict[str, dict] = field(default_factory=dict)
    ran: int = 0
    skipped: int = 0
    wall_seconds: float = 0.0
    workers: int = 0

    @property
    def job_seconds(self) -> float:
        return sum(r["seconds"] for r in self.results.values() if r.get("ran"))


@dataclass
class Executor:
    """Runs jobs as Ray tasks, each reserving ``cpus_per_job`` CPUs and ``gpus_per_job`` GPUs (``None``: 1 when
    the cluster has GPUs, else 0; fractions allowed). CPU tasks reuse worker processes (and their caches); GPU
    tasks get a fresh process each (freeing CUDA memory) and so carry ``jobs_per_gpu_task`` jobs to amortise
    the start-up. ``workers`` caps how many tasks run at once (default: as many as resources allow)."""

    store: Store
    perf: Perf = field(default_factory=Perf)
    workers: int | None = None
    cpus_per_job: float = 1.0
    gpus_per_job: float | None = None
    jobs_per_gpu_task: int = 8
    progress: Callable[[str], None] | None = log.info  # one line per finished job; None: silent
    history: list[tuple[str, Report]] = field(default_factory=list)

    def run(self, jobs: Sequence[Job], *, title: str = "jobs") -> Report:
        """Run every job not yet in the store; stream completions with progress (done/total, ETA)."""
        start = time.perf_counter()
        unique = {job.key: job for job in jobs}
        todo = [job for key, job in unique.items() if not self.store.valid(key)]
        report = Report(skipped=len(unique) - len(todo))
        if todo:
            ensure_ray()
            for wave in waves(todo):
                self._dispatch(wave, report, title, len(todo), start)
        report.wall_seconds = time.perf_counter() - start
        self.history.append((title, report))
        return report

    def _dispatch(self, jobs: list[Job], report: Report, title: str, total: int, t0: float) -> None:
        gpus = self._gpus()
        size = self.jobs_per_gpu_task if gpus else 1
        chunks = [jobs[i : i + size] for i in range(0, len(jobs), size)]
        options = {"num_cpus": self.cpus_per_job, "num_gpus": gpus, "scheduling_strategy": "DEFAULT"}
        task = (gpu_task if gpus else cpu_task).options(**options)
        resources = ray.cluster_resources()
        slots = int(resources.get("GPU", 0) / gpus if gpus else resources.get("CPU", 1) / self.cpus_per_job)
        limit = self.workers or max(1, slots)
        report.workers = max(report.workers, min(limit, max(1, slots), len(chunks)))
        queue, pending = list(reversed(chunks)), list[Any]()
        args = (self.store.uri, to_dict(self.perf), int(max(1, self.cpus_per_job)))
        while queue or pending:
            while queue and len(pending) < limit:
                pending.append(task.remote(*args, queue.pop()))
            done, pending = ray.wait(pending, num_returns=1)
            for result in ray.get(done[0]):
                report.results[result["key"]] = result
                report.ran += int(result["ran"])
                self._progress(title, len(report.results), total, t0, result)

    def _gpus(self) -> float:
        if self.gpus_per_job is not None:
            return self.gpus_per_job
        return 1.0 if ray.cluster_resources().get("GPU", 0) else 0.0

    def _progress(self, title: str, done: int, total: int, t0: float, result: dict) -> None:
        if self.progress is None:
            return
        elapsed = time.perf_counter() - t0
        eta = elapsed / done * (total - done)
        self.progress(f"[{title} {done}/{total}] {result['label'] or result['key'][:12]} "
                      f"{result['seconds']:.1f}s  elapsed {elapsed:.0f}s  ETA {eta:.0f}s")


def waves(jobs: Sequence[Job]) -> list[list[Job]]:
    """Jobs in dependency order: a job that reads another job's artifact (``store:<key>``) runs in a later wave."""
    keys = {job.key for job in jobs}
    level: dict[str, int] = {}

    def depth(job: Job) -> int:
        if job.key not in level:
            deps = [by_key[k] for k in job_inputs(job) if k in keys]
            level[job.key] = 1 + max((depth(d) for d in deps), default=-1)
        return level[job.key]

    by_key = {job.key: job for job in jobs}
    grouped: dict[int, list[Job]] = {}
    for job in jobs:
        grouped.setdefault(depth(job), []).append(job)
    return [grouped[d] for d in sorted(grouped)]


def job_inputs(job: Job) -> list[str]:
    """Store keys a job reads."""
    refs = [getattr(job, name, None) for name in ("tokenizer", "base", "model")]
    return [r[6:] for r in refs if isinstance(r, str) and r.startswith("store:")]


def _quiet() -> None:
    """Silence per-job progress bars and warnings of HF/Opacus inside workers."""
    import warnings

    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    warnings.filterwarnings("ignore")
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
    except ImportError:
        pass
