"""Executor reliability on real Ray (loopback, 2 CPUs): reruns, driver restarts, worker death,
node loss."""

import os
import signal
import threading
import time

import pytest
import ray

from farm.cluster.executor import Executor, _Pool, ensure_ray
from farm.errors import ClusterError, FarmError
from farm.spec.recipes import Perf
from farm.store.runner import RunReport
from farm.store.store import Store
from tests.jobs_fixture import TOKENIZER, train_jobs

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")


def _wait_for_training_worker(timeout: float = 60.0) -> int:
    """The pid of a Ray worker of this test's own Ray (a descendant of this process: the local
    Ray's raylet forks its workers) busy with a job (Ray retitles a worker ``ray::<task>`` while it
    runs one). Workers of another Ray on the machine are never chosen."""
    import psutil

    deadline = time.time() + timeout
    while time.time() < deadline:
        for proc in psutil.Process(os.getpid()).children(recursive=True):
            try:
                title = " ".join(proc.cmdline())
                # Ray's title while a task runs
                if "ray::JobWorker.run" in title:
                    time.sleep(0.5)  # inside the training
                    if "ray::JobWorker.run" in " ".join(proc.cmdline()):
                        return proc.pid
            except psutil.NoSuchProcess:
                continue
        time.sleep(0.1)
    raise AssertionError("no worker started a training")


@pytest.mark.parametrize("explicit", [True, False])
def test_ensure_ray_refuses_a_jobs_server_address(monkeypatch, explicit):
    def no_init(*args, **kwargs):
        raise AssertionError("ray.init must not run")

    monkeypatch.setattr(ray, "init", no_init)
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setenv("RAY_ADDRESS", "http://head:8265")
    with pytest.raises(FarmError) as info:
        ensure_ray("https://head:8265" if explicit else None)
    message = str(info.value)
    assert "\n" not in message and "ray job submit" in message and "HOST:6379" in message
    expected = "--address=https://head:8265" if explicit else "RAY_ADDRESS=http://head:8265"
    assert message.startswith(expected)


def test_jobs_no_worker_can_run_raise_a_cluster_error(tmp_path):
    """No worker started or being placed, and jobs left (here one ready and one waiting for a job
    that is not in the run): a ``ClusterError`` naming them, not a wait forever. Ray is not
    started: no actor is asked for."""
    ex = Executor(store=Store(tmp_path / "store"), device="cpu", progress=None)
    pool = _Pool(ex, RunReport(), "stuck", time.perf_counter())
    pool.queue.add("b", needs=["gone"])
    pool.queue.add("a")
    expected = r"^2 jobs cannot run and no worker is left: \['a', 'b'\]$"
    with pytest.raises(ClusterError, match=expected):
        pool._loop()


def test_progress_lines_give_totals_and_time_left_at_info_the_rest_at_debug(tmp_path, caplog):
    """A finished job's line names done/total, percent, rate, time left and the job; the first,
    each 5% step and the last go to ``progress`` (INFO), the others to the DEBUG log. Ray is not
    started."""
    import logging

    from farm.cluster.progress import Progress

    lines: list[str] = []
    ex = Executor(store=Store(tmp_path / "store"), device="cpu", progress=lines.append)
    pool = _Pool(ex, RunReport(), "targets", time.perf_counter())
    pool.progress = Progress(total=40, start=time.perf_counter())
    with caplog.at_level(logging.DEBUG, logger="farm.cluster.executor"):
        for i in range(40):
            pool._record({"key": f"k{i}", "label": f"target {i}", "ran": True, "seconds": 0.5})
    assert len(lines) == 21 and len(caplog.records) == 19  # 1, every 2nd (5%) to 40; the rest
    assert lines[0].startswith("[targets] 1/40 (2%), ")
    assert (
        lines[-1].startswith("[targets] 40/40 (100%), ") and "ETA ~0s, last: target 39" in lines[-1]
    )
    assert "jobs/min, ETA " in caplog.records[0].getMessage()


def test_a_terminal_gets_one_live_bar_per_stage_in_place_of_the_info_lines(tmp_path, caplog):
    """With ``live_bar`` (by default: stderr is a terminal) a stage's completions move one tqdm bar
    (done/total, rate, time left, last job) and its lines all go to DEBUG; without a terminal (logs,
    ``ray job submit``) no bar is made. Ray is not started."""
    import io
    import logging

    from tqdm import tqdm

    from farm.cluster.executor import _live_bar

    lines: list[str] = []
    ex = Executor(store=Store(tmp_path / "s"), device="cpu", progress=lines.append, live_bar=True)
    pool = _Pool(ex, RunReport(), "targets", time.perf_counter())
    sink = io.StringIO()
    pool.bar = tqdm(total=4, desc="[targets]", unit="job", file=sink, mininterval=0)
    with caplog.at_level(logging.DEBUG, logger="farm.cluster.executor"):
        for i in range(4):
            pool._record({"key": f"k{i}", "label": f"target {i}", "ran": True, "seconds": 0.5})
    pool.bar.close()
    shown = sink.getvalue()
    assert "[targets]" in shown and "4/4" in shown and "job" in shown and "target 3" in shown
    assert lines == [] and len(caplog.records) == 4
    bar = _live_bar(ex, "targets", 4)
    assert bar is not None
    bar.close()
    piped = Executor(store=Store(tmp_path / "s"), device="cpu", progress=lines.append)
    assert _live_bar(piped, "targets", 4) is None  # pytest's stderr is no terminal
    quiet = Executor(store=Store(tmp_path / "s"), device="cpu", progress=None, live_bar=True)
    assert _live_bar(quiet, "targets", 4) is None


def _executor(store, **kw):
    return Executor(store=store, perf=Perf(), workers=2, progress=None, **kw)


def test_runs_then_restarted_driver_runs_nothing(local_ray, tmp_path):
    store = Store(tmp_path / "store")
    jobs = train_jobs(4)
    with _executor(store) as ex:  # one pool for both runs, as a command's executor
        assert ex.run([TOKENIZER]).ran == 1
        half = ex.run(jobs[:2])
    assert half.ran == 2
    restarted = _executor(store)  # a new driver: finished jobs come from the store
    report = restarted.run(jobs)
    assert report.ran == 2 and report.skipped == 2
    again = restarted.run([TOKENIZER, *jobs])
    assert again.ran == 0 and again.skipped == 5


def test_corrupt_entry_is_recomputed(local_ray, tmp_path):
    store = Store(tmp_path / "store")
    jobs = train_jobs(2)
    with _executor(store) as ex:  # one pool for both runs, as a command's executor
        ex.run([TOKENIZER, *jobs])
        path = store.path(jobs[1].key, "model.safetensors")
        good = store.fs.cat_file(path)
        store.fs.pipe_file(path, good[:100])
        report = ex.run(jobs)
    assert report.ran == 1 and report.skipped == 1 and store.fs.cat_file(path) == good


def test_worker_killed_mid_job_is_retried_with_same_results(local_ray, tmp_path):
    clean, killed = Store(tmp_path / "clean"), Store(tmp_path / "killed")
    jobs = train_jobs(4, epochs=20)
    ex = _executor(clean)
    ex.run([TOKENIZER, *jobs])
    ex = _executor(killed)
    ex.run([TOKENIZER])
    box = {}
    thread = threading.Thread(target=lambda: box.setdefault("report", ex.run(jobs)))
    thread.start()
    victim = _wait_for_training_worker()
    os.kill(victim, signal.SIGKILL)
    thread.join(timeout=240)
    assert not thread.is_alive()
    report = box["report"]
    assert len(report.results) == 4 and all(killed.valid(j.key) for j in jobs)
    # the worker was lost mid-job; its job went back to the queue and finished elsewhere (jobs it
    # had finished before it died stay finished: a worker runs several jobs)
    assert report.lost_workers >= 1 and victim > 0
    for job in jobs:
        assert killed.fs.cat_file(killed.path(job.key, "model.safetensors")) == clean.fs.cat_file(
            clean.path(job.key, "model.safetensors")
        )


def test_node_removed_mid_run_still_completes(tmp_path):
    from ray.cluster_utils import Cluster

    if ray.is_initialized():
        ray.shutdown()
    cluster = Cluster(
        initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False}
    )
    nodes = [cluster.add_node(num_cpus=1) for _ in range(2)]
    try:
        ray.init(address=cluster.address, log_to_driver=False)
        cluster.wait_for_nodes()
        store = Store(tmp_path / "store")
        ex = _executor(store)
        ex.run([TOKENIZER])
        jobs = train_jobs(6, epochs=20)  # ~2 s each: both nodes are busy when one goes
        box = {}
        thread = threading.Thread(target=lambda: box.setdefault("report", ex.run(jobs)))
        thread.start()
        time.sleep(2.0)
        cluster.remove_node(nodes[1])
        thread.join(timeout=300)
        assert not thread.is_alive()
        report = box["report"]
        assert len(report.results) == 6 and all(store.valid(j.key) for j in jobs)
        assert report.wall_seconds > 2.0  # the run went on after the node was removed
    finally:
        ray.shutdown()
        cluster.shutdown()


def test_device_gpu_waits_for_gpus_asks_the_autoscaler_and_never_uses_cpus(tmp_path, monkeypatch):
    """A cluster that starts with no GPU (as the example autoscaling cluster does): ``device="gpu"``
    asks the autoscaler for GPUs and waits; when a GPU node joins mid-run, every job runs there,
    none on the head's CPUs.

    Ray's fake multi-node autoscaler provider starts its worker nodes on the machine's outward
    address (it takes no node IP), and tests here stay on loopback, so a ``cluster_utils`` node
    added mid-run stands in for the node the autoscaler would start."""
    from ray.cluster_utils import Cluster

    from farm.cluster import executor as cluster_mod

    asked = []
    monkeypatch.setattr(cluster_mod, "_request_gpus", lambda gpus: asked.append(gpus))
    if ray.is_initialized():
        ray.shutdown()
    cluster = Cluster(
        initialize_head=True, head_node_args={"num_cpus": 2, "include_dashboard": False}
    )
    try:
        ray.init(address=cluster.address, log_to_driver=False)
        store = Store(tmp_path / "store")
        Executor(store=store, progress=None, device="cpu").run([TOKENIZER])
        ex = Executor(store=store, perf=Perf(), progress=None, device="gpu", workers=1)
        jobs = train_jobs(2)
        box = {}
        thread = threading.Thread(target=lambda: box.setdefault("report", ex.run(jobs)))
        thread.start()
        time.sleep(8.0)
        # waiting, not running on the CPUs
        assert thread.is_alive() and not any(store.exists(j.key) for j in jobs)
        assert asked == [1.0]
        gpu_node = cluster.add_node(num_cpus=1, num_gpus=1)
        thread.join(timeout=240)
        assert not thread.is_alive()
        report = box["report"]
        ran_on = {r["node"] for r in report.results.values()}
        assert report.ran == 2 and ran_on == {gpu_node.node_id}
    finally:
        ray.shutdown()
        cluster.shutdown()


def test_read_first_puts_jobs_that_others_read_first_in_order():
    """The busier queue starts the trainings that inference waits on before inference that waits
    on nothing (each part in its given order); Ray is not started."""
    from farm.cluster.executor import read_first
    from tests.jobs_fixture import infer_job

    trains = train_jobs(3)
    given = [infer_job(trains[0]), trains[0], infer_job(trains[1]), trains[1], trains[2]]
    order = read_first({job.key: job for job in given})
    assert order == [trains[0].key, trains[1].key, given[0].key, given[2].key, trains[2].key]


def test_started_workers_serve_every_run_until_close(local_ray, tmp_path):
    """``start`` starts the pool before any job is known; every later run uses those same workers
    (no start-up of its own) until ``close`` ends them; a run with nothing to do starts none."""
    store = Store(tmp_path / "store")
    ex = _executor(store)
    assert ex.run([]).workers == 0 and ex._workers is None  # nothing to do: no pool
    with ex:
        pool = ex._workers
        assert pool is not None and pool.size == 2
        ray.get(list(pool.starting))  # started while the "driver plans"
        first = ex.run([TOKENIZER])
        between = time.perf_counter()
        actors = set(pool.started)
        second = ex.run(train_jobs(3))
        assert ex._workers is pool and set(pool.started) == actors and len(actors) == 2
        assert first.startup_seconds < 1.0 and second.startup_seconds == 0.0  # already up
        assert second.ran == 3 and second.workers == 2
        pids = {r["pid"] for r in [*first.results.values(), *second.results.values()]}
        assert len(pids) <= 2  # the same two processes ran all four jobs
        assert 0 < second.live_seconds < 2 * (time.perf_counter() - between) + 0.5  # since run 1
    assert ex._workers is None and not pool.started
    again = _executor(store, busy_queue=False).run(train_jobs(3))  # today's executor: all stored
    assert again.ran == 0 and again.skipped == 3


def test_start_early_starts_only_an_executor_that_asks_for_it(tmp_path):
    """Commands call ``start_early``: only an executor built with ``early=True`` (the CLI's, which
    closes it) starts workers; a library caller's executor and ``InProcessRunner`` keep per-run
    workers. Ray is not started."""
    from farm.store.run_job import InProcessRunner
    from farm.store.runner import start_early

    calls: list[str] = []

    class Owned:
        early = True

        def start(self) -> None:
            calls.append("start")

    store = Store(tmp_path / "store")
    start_early(Owned())
    ex = Executor(store=store, device="cpu", progress=None)
    start_early(ex)
    start_early(InProcessRunner(store))
    assert calls == ["start"] and ex._workers is None
