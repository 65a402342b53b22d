"""The executor: one queue of frozen job specs feeding long-lived Ray actors, one per GPU (or CPU).

Every job a run needs (all scenarios, trainings and inference passes) goes into ONE queue; a job
becomes ready when the jobs whose artifacts it reads (``store:`` inputs) are done, so inference of a
shadow starts as soon as that shadow is trained, while other trainings still run. Each ``JobWorker``
actor keeps its process, CUDA context and ``farm.store.run_job.Context`` (tokenized populations,
tokenizers, base weights) for the whole run, and is fed one job at a time, with the next job already
queued behind it so it never waits for the driver.

Faults: when a worker or its node dies, its in-flight job goes back to the queue and a replacement
actor is asked for; the run goes on with the survivors (it never waits for the replacement to be
placed), and ``run_job`` skips whatever is already in the store, so only unfinished work is redone.
A lost driver reruns nothing that finished: jobs whose key holds a complete store entry are never
sent. Workers write results to the store; calls return only keys and timings (a few hundred bytes).

Devices: ``auto`` uses GPUs when the cluster has some now, else CPUs (a laptop); ``gpu`` asks the
autoscaler for GPUs (``ray.autoscaler.sdk.request_resources``) and waits for them, never falling
back to CPUs; ``cpu`` never uses GPUs.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import ray
from ray import ObjectRef
from ray.actor import ActorHandle

from farm.cluster.progress import Progress
from farm.cluster.queue import JobQueue
from farm.errors import ClusterError, FarmError
from farm.spec.jobs import Job, job_inputs
from farm.spec.recipes import Perf, to_dict
from farm.store.run_job import Context, run_job
from farm.store.runner import RunReport
from farm.store.store import Store

log = logging.getLogger(__name__)


def ensure_ray(address: str | None = None, *, num_cpus: int | None = None) -> None:
    """Connect to Ray: ``address`` (or ``RAY_ADDRESS``, as under ``ray job submit``) if given, else
    start a private local instance bound to loopback. An ``http(s)://`` address (the Ray Jobs /
    dashboard server, what ``ray job submit`` users export) is no cluster address: ``FarmError`` in
    one line, before anything starts."""
    address = check_address(address)
    if ray.is_initialized():
        return
    if address:
        ray.init(address=address, log_to_driver=False)
    else:  # a private single-machine instance on loopback; FARM_RAY_TMPDIR picks its session folder
        ray.init(
            address="local",
            num_cpus=num_cpus or os.cpu_count(),
            include_dashboard=False,
            log_to_driver=False,
            _node_ip_address="127.0.0.1",
            _temp_dir=os.environ.get("FARM_RAY_TMPDIR"),
        )


def check_address(address: str | None = None) -> str | None:
    """The cluster address to use (``address``, else ``RAY_ADDRESS``, else None: a private local
    instance), checked without connecting: ``FarmError`` in one line for an ``http(s)://`` (Ray
    Jobs) address."""
    source = "--address" if address else "RAY_ADDRESS"
    address = address or os.environ.get("RAY_ADDRESS")
    if address and address.startswith(("http://", "https://")):
        raise FarmError(
            f"{source}={address} is a Ray Jobs (dashboard) address, not a cluster address: submit "
            f"the run with `ray job submit --address {address} -- farm ...` (see ray_jobs/), or "
            f"give the cluster's GCS address (HOST:6379) or `auto`"
        )
    return address


class JobWorker:
    """A long-lived worker: one process (and, on a GPU, one CUDA context) that runs jobs one after
    another, keeping its ``Context`` caches across them."""

    def __init__(self, store_uri: str, perf: dict, threads: int):
        # lazy: loads torch, in the worker process only
        from farm.training.runtime import setup_worker

        setup_worker(threads)
        self.store = Store(store_uri)
        self.ctx = Context(perf=Perf(**perf))

    def run(self, job: Job) -> dict:
        """Run one job (idempotent: a stored job is skipped); a small dict of key, timings, pid and
        node."""

        try:
            node = ray.get_runtime_context().get_node_id()
            return {**run_job(job, self.store, self.ctx), "pid": os.getpid(), "node": node}
        finally:
            # lazy: loads torch (already loaded in a worker)
            from farm.training.runtime import free_accelerator_memory

            free_accelerator_memory()

    @ray.method(concurrency_group="io")
    def prefetch(self, job: Job) -> None:
        """Read the next job's model weights (in the worker's I/O thread) while ``run`` computes the
        current one."""
        self.ctx.prefetch(job, self.store)


# Two concurrency groups: ``run`` one job at a time (the default group), ``prefetch`` beside it.
_ACTOR = ray.remote(  # type: ignore[call-overload]
    max_restarts=0, concurrency_groups={"io": 1}
)(JobWorker)


@dataclass(kw_only=True)
class Executor:
    """Runs jobs on a pool of ``JobWorker`` actors, each reserving ``cpus_per_job`` CPUs and
    ``gpus_per_job`` GPUs (``None``: 1 on GPUs, fractions allowed). ``workers`` caps the pool
    (default: every slot the cluster has, or for ``device="gpu"`` on a cluster with no GPU yet, as
    many as there are ready jobs, up to 8, requested from the autoscaler). ``device``: ``auto``,
    ``gpu`` or ``cpu`` (see the module docstring)."""

    store: Store
    perf: Perf = field(default_factory=Perf)
    workers: int | None = None
    cpus_per_job: float = 1.0
    gpus_per_job: float | None = None
    device: str = "auto"
    gpu_wait_s: float = 3600.0
    # what a stage is doing: its plan, then a progress line (done/total, percent, rate, time left)
    # per 5% of the stage and at its end; the others, one per job, go to this module's DEBUG log
    # (``-v``); None: silent
    progress: Callable[[str], None] | None = log.info
    history: list[tuple[str, RunReport]] = field(default_factory=list)
    # where to connect (``ensure_ray``) the first time there is work: a rerun whose jobs are all
    # stored never starts or joins Ray
    address: str | None = None

    def __post_init__(self) -> None:
        if self.device not in ("auto", "gpu", "cpu"):
            raise ValueError(f"device must be auto, gpu or cpu, not {self.device!r}")

    def options(self) -> dict[str, Any]:
        """The settings another process needs to build an equivalent executor (a Tune trial does):
        ``Executor(store=store, **executor.options())``."""
        return {
            "perf": self.perf,
            "workers": self.workers,
            "cpus_per_job": self.cpus_per_job,
            "gpus_per_job": self.gpus_per_job,
            "device": self.device,
            "gpu_wait_s": self.gpu_wait_s,
        }

    @property
    def ran(self) -> int:
        """Jobs run by this executor so far (all calls)."""
        return sum(r.ran for _, r in self.history)

    @property
    def reused(self) -> int:
        """Jobs found complete in the store so far (all calls)."""
        return sum(r.skipped for _, r in self.history)

    def run(self, jobs: Sequence[Job], *, title: str = "jobs") -> RunReport:
        """Run every job not yet in the store, in dependency order, streaming completions with
        progress."""
        start = time.perf_counter()
        unique = {job.key: job for job in jobs}
        if self.progress is not None:
            log.debug("[%s] checking %d jobs against the store", title, len(unique))
        todo = {key: job for key, job in unique.items() if not self.store.complete(key)}
        report = RunReport(
            skipped=len(unique) - len(todo), check_seconds=time.perf_counter() - start
        )
        if todo:
            ensure_ray(self.address)
            _Pool(self, report, title, start).drain(todo)
        report.wall_seconds = time.perf_counter() - start
        self.history.append((title, report))
        return report

    def resources(self) -> tuple[float, float]:
        """(cpus, gpus) each worker reserves."""
        gpus = 0.0 if self.device == "cpu" else self.gpus_per_job
        if gpus is None:
            gpus = 1.0 if self.device == "gpu" or ray.cluster_resources().get("GPU", 0) else 0.0
        if self.device == "gpu" and not gpus:
            raise ValueError("device gpu needs gpus_per_job > 0")
        return self.cpus_per_job, gpus

    def pool_size(self, ready: int, gpus: float) -> int:
        """How many workers to start for ``ready`` jobs."""
        resources = ray.cluster_resources()
        if gpus:
            slots = int(resources.get("GPU", 0) / gpus)
        else:
            slots = int(resources.get("CPU", 1) / self.cpus_per_job)
        if self.workers:
            return self.workers
        if gpus and slots == 0:  # GPUs asked for (device gpu, --gpus-per-job); the cluster has none
            return max(1, min(ready, 8))
        return max(1, slots)


class _Pool:
    """One run's actors, and the Ray side of its job queue (driver side): the calls in flight and
    the actors being placed. Which job runs next, what a finished job releases and what a lost
    worker leaves to redo is the ``JobQueue``'s business. Jobs go only to actors that have started
    (a replacement or a GPU worker the autoscaler has not placed yet holds no job hostage)."""

    def __init__(self, executor: Executor, report: RunReport, title: str, t0: float):
        self.ex, self.report, self.title, self.t0 = executor, report, title, t0
        self.cpus, self.gpus = executor.resources()
        self.args = (executor.store.uri, to_dict(executor.perf), int(max(1, executor.cpus_per_job)))
        self.queue: JobQueue[ActorHandle] = JobQueue()  # jobs by key; a worker is its actor
        self.jobs: dict[str, Job] = {}  # key -> job, for the jobs of this run
        self.started: dict[ActorHandle, float] = {}  # started actor -> when it started
        self.starting: dict[ObjectRef, ActorHandle] = {}  # ready ref -> actor being placed
        self.inflight: dict[ObjectRef, str] = {}  # call ref -> key of the job it runs
        self.replacements = 0
        self.progress = Progress(total=1, start=t0)  # drain sets the real total

    def drain(self, todo: dict[str, Job]) -> None:
        self.jobs = dict(todo)
        for key, job in todo.items():  # needs already in the store are met
            self.queue.add(key, needs=[d for d in job_inputs(job) if d in todo])
        size = self.ex.pool_size(len(todo), self.gpus)
        self.progress = Progress(total=len(todo), start=time.perf_counter(), workers=size)
        if self.ex.progress is not None:
            reused = f", {self.report.skipped} already in the store" if self.report.skipped else ""
            self.ex.progress(
                f"[{self.title}] planning {len(todo)} jobs{reused}: starting {size} workers "
                f"({self.cpus:g} CPU, {self.gpus:g} GPU each)..."
            )
        if self.gpus and (self.ex.device == "gpu" or not ray.cluster_resources().get("GPU", 0)):
            # an autoscaling cluster starts GPU workers; a fixed one ignores it
            _request_gpus(size * self.gpus)
        for _ in range(size):
            self._start_actor()
        self.report.workers = size
        try:
            self._loop()
        finally:
            end = time.perf_counter()
            self.report.live_seconds += sum(end - t for t in self.started.values())
            # a run's workers end with it: another executor (a Tune trial) may need the slots
            for actor in [*self.started, *self.starting.values()]:
                ray.kill(actor, no_restart=True)

    def _start_actor(self) -> None:
        options = {"num_cpus": self.cpus, "num_gpus": self.gpus, "scheduling_strategy": "DEFAULT"}
        actor: ActorHandle = _ACTOR.options(**options).remote(*self.args)
        self.starting[actor.__ray_ready__.remote()] = actor

    def _loop(self) -> None:
        """Until every job is done: feed started workers, collect one result, tell the queue."""
        waited = time.perf_counter()
        while not self.queue.idle:
            self._feed()
            refs = [*self.inflight, *self.starting]
            if not refs:
                pending = self.queue.pending()
                raise ClusterError(
                    f"{len(pending)} jobs cannot run and no worker is left: {pending[:3]}"
                )
            finished, _ = ray.wait(refs, num_returns=1, timeout=60.0)
            if not finished:
                if not self.started and time.perf_counter() - waited > self.ex.gpu_wait_s:
                    raise ClusterError(
                        f"no worker could be placed in {self.ex.gpu_wait_s:.0f} s (needs "
                        f"{self.cpus} CPU, {self.gpus} GPU each)"
                    )
                continue
            ref = finished[0]
            if ref in self.starting:
                self._started(ref)
                continue
            key = self.inflight.pop(ref)
            try:
                result = ray.get(ref)
            except ray.exceptions.RayActorError:
                self._lost(self.queue.worker(key), key)
                continue
            self._record(result)
            self.queue.finish(key)

    def _started(self, ref: ObjectRef) -> None:
        actor = self.starting.pop(ref)
        try:
            ray.get(ref)
        except ray.exceptions.RayActorError:
            self.report.lost_workers += 1
            return
        self.started[actor] = time.perf_counter()
        if len(self.started) >= self.report.workers and not self.report.startup_seconds:
            self.report.startup_seconds = time.perf_counter() - self.t0

    def _feed(self) -> None:
        """Keep two calls on every started actor: the next job waits behind the running one."""
        queue = self.queue
        for depth in (1, 2):
            for actor in list(self.started):
                while (key := queue.next_ready()) is not None and queue.load(actor) < depth:
                    behind = queue.load(actor) > 0  # queued behind a running job
                    queue.start(key, worker=actor)
                    job = self.jobs[key]
                    self.inflight[actor.run.remote(job)] = key
                    if behind:  # stream its weights in while the running job computes
                        actor.prefetch.remote(job)

    def _lost(self, dead: ActorHandle, key: str) -> None:
        """A worker died (its process or node): requeue its jobs (``key``, whose call reported it,
        first), drop it, ask for a replacement."""
        requeued = set(self.queue.requeue(dead, first=key))
        for ref in [ref for ref, job_key in self.inflight.items() if job_key in requeued]:
            del self.inflight[ref]
        now = time.perf_counter()
        self.report.live_seconds += now - self.started.pop(dead, now)
        self.report.lost_workers += 1
        if self.replacements < 4 * max(1, self.report.workers):
            self.replacements += 1
            self._start_actor()

    def _record(self, result: dict) -> None:
        report = self.report
        report.results[result["key"]] = result
        report.ran += int(result["ran"])
        report.busy_seconds += float(result.get("seconds", 0.0))
        label = result["label"] or result["key"][:12]
        seconds = float(result.get("seconds", 0.0))
        reported = self.progress.finish(label, seconds, time.perf_counter())
        if self.ex.progress is not None:
            line = self.progress.line(self.title)
            if reported:  # the first, each 5% of the stage and the last: INFO
                self.ex.progress(line)
            else:  # the others: one per job under -v
                log.debug(line)


def _request_gpus(gpus: float) -> None:
    """Ask the autoscaler for ``gpus`` GPUs (a no-op on a fixed cluster)."""
    # lazy: loads Ray
    from ray.autoscaler.sdk import request_resources

    request_resources(bundles=[{"GPU": 1}] * max(1, int(round(gpus))))
