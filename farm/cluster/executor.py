"""The executor: one queue of frozen job specs feeding long-lived Ray actors, one per GPU (or CPU).

Every job a run needs (all scenarios, trainings and inference passes) goes into ONE queue; a job
becomes ready when the jobs whose artifacts it reads (``store:`` inputs) are done, so inference of a
shadow starts as soon as that shadow is trained, while other trainings still run. Each ``JobWorker``
actor keeps its process, CUDA context and ``farm.store.run_job.Context`` (tokenized populations,
tokenizers, base weights) for the whole run, and is fed one job at a time, with the next job already
queued behind it so it never waits for the driver.

A busier queue (issue 22, item 3): ``Executor.start`` (or ``with executor:``) starts the workers --
processes importing torch -- before the driver has planned its jobs, and they stay for every later
``run`` of the executor until ``close``; jobs that other jobs read go first in the queue (the
trainings whose inference waits on them); and the job queued behind a running one has its inputs
(tokenized population, model weights) read by the worker's I/O thread while the running one
computes. Without ``start`` a run starts its workers and ends them, as before.

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
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import ray
from ray import ObjectRef
from ray.actor import ActorHandle
from tqdm import tqdm

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
    def prefetch(self, job: Job, inputs: bool = True) -> None:
        """Read the next job's model weights and, with ``inputs``, its tokenized population (in the
        worker's I/O thread) while ``run`` computes the current one."""
        self.ctx.prefetch(job, self.store, inputs=inputs)


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
    # on a terminal, one live tqdm bar per stage (done/total, rate, time left, last job) in place
    # of the INFO lines (then DEBUG); None: a bar when stderr is a terminal and ``progress`` is on
    live_bar: bool | None = None
    history: list[tuple[str, RunReport]] = field(default_factory=list)
    # where to connect (``ensure_ray``) the first time there is work: a rerun whose jobs are all
    # stored never starts or joins Ray
    address: str | None = None
    # the busier queue (module docstring): jobs that others read go first, and a queued job's
    # tokenized population is read ahead with its weights; False: first in, first out, weights only
    # (the executor of issue 12, for side-by-side measurements)
    busy_queue: bool = True
    # commands may start the workers before they plan (``farm.store.runner.start_early`` calls
    # ``start``); only for an owner that calls ``close`` (the CLI): started workers hold their slots
    early: bool = False
    # the workers ``start`` made, kept across runs until ``close``; None: each run starts its own
    _workers: _Workers | None = field(default=None, init=False, repr=False)
    # (when the last run's pool was asked for, when all its workers had started or None), as
    # ``time.perf_counter`` values: benchmarks count start-up from the first call with them
    pool_times: tuple[float, float | None] | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.device not in ("auto", "gpu", "cpu"):
            raise ValueError(f"device must be auto, gpu or cpu, not {self.device!r}")

    def start(self) -> Executor:
        """Start the workers now, before the jobs are known, so that their start-up (a process
        importing torch, a CUDA context) overlaps the driver's planning; they serve every later
        ``run`` until ``close``. Connects to Ray (``address``) if need be. The pool has
        ``pool_size`` workers, fixed until ``close``. A no-op when started. The price: a command
        whose jobs all turn out to be stored has started Ray and its workers for nothing (they are
        ended by ``close``; nothing waits for them)."""
        if self._workers is None:
            ensure_ray(self.address)
            workers = _Workers(self)
            size = self.pool_size(8, workers.gpus)
            if workers.gpus and (self.device == "gpu" or not ray.cluster_resources().get("GPU", 0)):
                _request_gpus(size * workers.gpus)
            workers.grow(size)
            self._workers = workers
            self.pool_times = (workers.requested, None)
        return self

    def close(self) -> None:
        """End the workers ``start`` made (a no-op when none)."""
        workers, self._workers = self._workers, None
        if workers is not None:
            workers.kill()

    def __enter__(self) -> Executor:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

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
            "busy_queue": self.busy_queue,
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


class _Workers:
    """A pool's actors: those started (and when), those being placed, and how many replacements were
    asked for. Lives for one run, or, made by ``Executor.start``, until ``Executor.close``."""

    def __init__(self, executor: Executor):
        self.cpus, self.gpus = executor.resources()
        self.args = (executor.store.uri, to_dict(executor.perf), int(max(1, executor.cpus_per_job)))
        self.size = 0  # workers asked for (replacements not counted)
        self.started: dict[ActorHandle, float] = {}  # started actor -> when it started
        self.starting: dict[ObjectRef, ActorHandle] = {}  # ready ref -> actor being placed
        self.replacements = 0
        self.requested = time.perf_counter()
        self.all_started: float | None = None  # when ``size`` workers had started
        self.since = self.requested  # live time counts from here (the end of the last run)

    def grow(self, n: int) -> None:
        """Ask for ``n`` more workers."""
        self.size += n
        for _ in range(n):
            self.start_one()

    def start_one(self) -> None:
        options = {"num_cpus": self.cpus, "num_gpus": self.gpus, "scheduling_strategy": "DEFAULT"}
        actor: ActorHandle = _ACTOR.options(**options).remote(*self.args)
        self.starting[actor.__ray_ready__.remote()] = actor

    def placed(self, ref: ObjectRef) -> bool:
        """The ready call ``ref`` returned: its actor has started (True) or died starting."""
        actor = self.starting.pop(ref)
        try:
            ray.get(ref)
        except ray.exceptions.RayActorError:
            return False
        now = time.perf_counter()
        self.started[actor] = now
        if len(self.started) >= self.size and self.all_started is None:
            self.all_started = now
        return True

    def live(self, end: float) -> float:
        """Worker-seconds from each worker's start (or ``since``) to ``end``."""
        return sum(end - max(t, self.since) for t in self.started.values())

    def kill(self) -> None:
        for actor in [*self.started, *self.starting.values()]:
            ray.kill(actor, no_restart=True)
        self.started.clear()
        self.starting.clear()


class _Pool:
    """One run on a pool of actors (``_Workers``: the executor's, kept after the run, or the run's
    own), and the Ray side of its job queue (driver side): the calls in flight. Which job runs next,
    what a finished job releases and what a lost worker leaves to redo is the ``JobQueue``'s
    business. Jobs go only to actors that have started (a replacement or a GPU worker the
    autoscaler has not placed yet holds no job hostage)."""

    def __init__(self, executor: Executor, report: RunReport, title: str, t0: float):
        self.ex, self.report, self.title, self.t0 = executor, report, title, t0
        self.kept = executor._workers is not None  # the executor's workers: they outlive the run
        self.workers = executor._workers or _Workers(executor)
        self.cpus, self.gpus = self.workers.cpus, self.workers.gpus
        self.queue: JobQueue[ActorHandle] = JobQueue()  # jobs by key; a worker is its actor
        self.jobs: dict[str, Job] = {}  # key -> job, for the jobs of this run
        self.inflight: dict[ObjectRef, str] = {}  # call ref -> key of the job it runs
        self.progress = Progress(total=1, start=t0)  # drain sets the real total
        self.bar: Any = None  # the stage's live bar (``Executor.live_bar``), made by ``drain``

    @property
    def started(self) -> dict[ActorHandle, float]:
        return self.workers.started

    @property
    def starting(self) -> dict[ObjectRef, ActorHandle]:
        return self.workers.starting

    def drain(self, todo: dict[str, Job]) -> None:
        self.jobs = dict(todo)
        order = read_first(todo) if self.ex.busy_queue else list(todo)
        for key in order:  # needs already in the store are met
            self.queue.add(key, needs=[d for d in job_inputs(todo[key]) if d in todo])
        size = self.workers.size if self.kept else self.ex.pool_size(len(todo), self.gpus)
        self.progress = Progress(total=len(todo), start=time.perf_counter(), workers=size)
        if self.ex.progress is not None:
            reused = f", {self.report.skipped} already in the store" if self.report.skipped else ""
            what = "on" if self.kept else "starting"
            self.ex.progress(
                f"[{self.title}] planning {len(todo)} jobs{reused}: {what} {size} workers "
                f"({self.cpus:g} CPU, {self.gpus:g} GPU each)..."
            )
        if not self.kept:
            if self.gpus and (
                self.ex.device == "gpu" or not ray.cluster_resources().get("GPU", 0)
            ):  # an autoscaling cluster starts GPU workers; a fixed one ignores it
                _request_gpus(size * self.gpus)
            self.workers.grow(size)
        self.report.workers = size
        self.bar = _live_bar(self.ex, self.title, len(todo))
        ok = False
        try:
            self._loop()
            ok = True
        finally:
            if self.bar is not None:
                self.bar.close()
            end = time.perf_counter()
            self.report.live_seconds += self.workers.live(end)
            if self.workers.all_started is not None:
                self.report.startup_seconds = max(0.0, self.workers.all_started - self.t0)
            self.ex.pool_times = (self.workers.requested, self.workers.all_started)
            self.workers.since = end
            if not (self.kept and ok):
                # a run's own workers end with it: another executor (a Tune trial) may need the
                # slots; kept workers end with a failed run (calls of it may still be in flight)
                self.workers.kill()
                if self.kept:
                    self.ex._workers = None

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
                if not self.workers.placed(ref):
                    self.report.lost_workers += 1
                continue
            key = self.inflight.pop(ref)
            try:
                result = ray.get(ref)
            except ray.exceptions.RayActorError:
                self._lost(self.queue.worker(key), key)
                continue
            self._record(result)
            self.queue.finish(key)

    def _feed(self) -> None:
        """Keep two calls on every started actor: the next job waits behind the running one."""
        queue = self.queue
        inputs = self.ex.busy_queue
        for depth in (1, 2):
            for actor in list(self.started):
                while (key := queue.next_ready()) is not None and queue.load(actor) < depth:
                    behind = queue.load(actor) > 0  # queued behind a running job
                    queue.start(key, worker=actor)
                    job = self.jobs[key]
                    self.inflight[actor.run.remote(job)] = key
                    if behind:  # stream its inputs in while the running job computes
                        actor.prefetch.remote(job, inputs)

    def _lost(self, dead: ActorHandle, key: str) -> None:
        """A worker died (its process or node): requeue its jobs (``key``, whose call reported it,
        first), drop it, ask for a replacement."""
        requeued = set(self.queue.requeue(dead, first=key))
        for ref in [ref for ref, job_key in self.inflight.items() if job_key in requeued]:
            del self.inflight[ref]
        now = time.perf_counter()
        began = self.started.pop(dead, now)
        self.report.live_seconds += now - max(began, self.workers.since)
        self.report.lost_workers += 1
        if self.workers.replacements < 4 * max(1, self.workers.size):
            self.workers.replacements += 1
            self.workers.start_one()

    def _record(self, result: dict) -> None:
        report = self.report
        report.results[result["key"]] = result
        report.ran += int(result["ran"])
        report.busy_seconds += float(result.get("seconds", 0.0))
        label = result["label"] or result["key"][:12]
        seconds = float(result.get("seconds", 0.0))
        reported = self.progress.finish(label, seconds, time.perf_counter())
        if self.bar is not None:
            self.bar.set_postfix_str(f"last: {label} {seconds:.1f}s", refresh=False)
            self.bar.update(1)
        if self.ex.progress is not None:
            line = self.progress.line(self.title)
            if reported and self.bar is None:  # the first, each 5% and the last: INFO
                self.ex.progress(line)
            else:  # the others: one per job under -v
                log.debug(line)


def _live_bar(executor: Executor, title: str, total: int) -> Any:
    """A tqdm bar for a stage of ``total`` jobs on stderr when ``executor`` shows progress and
    asks for a live bar (``live_bar``; None: when stderr is a terminal); else None."""
    live = executor.live_bar if executor.live_bar is not None else sys.stderr.isatty()
    if executor.progress is None or not live:
        return None
    return tqdm(total=total, desc=f"[{title}]", unit="job", file=sys.stderr, dynamic_ncols=True)


def read_first(jobs: dict[str, Job]) -> list[str]:
    """The keys of ``jobs`` with those another job of ``jobs`` reads first, each part in its given
    order: the queue starts the trainings whose inference waits on them before the inference that
    waits on nothing, so that the last trainings do not outlast the queue."""
    read = {need for job in jobs.values() for need in job_inputs(job)}
    return sorted(jobs, key=lambda key: key not in read)  # stable


def _request_gpus(gpus: float) -> None:
    """Ask the autoscaler for ``gpus`` GPUs (a no-op on a fixed cluster)."""
    # lazy: loads Ray
    from ray.autoscaler.sdk import request_resources

    request_resources(bundles=[{"GPU": 1}] * max(1, int(round(gpus))))
