"""The seam between the code that plans jobs and the executor that runs them. Ray-free.

``JobRunner`` is what every command and the scenario seam need of an executor: a store, and ``run``,
which brings each job's result into that store (running it or finding it done) and returns a
``RunReport``. ``farm.cluster.executor.Executor`` is the implementation on Ray;
``farm.store.run_job.InProcessRunner`` runs jobs in this process; a test may pass anything with the
same shape (``tests/shadows/test_scenario.FakeExecutor`` fakes their results).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from farm.spec.jobs import Job
from farm.store.store import Store


@dataclass(kw_only=True)
class RunReport:
    """What one ``JobRunner.run`` did: per job key its result (``ran``: whether it ran now or was
    found done; ``seconds``; ``meta`` as the store keeps it), how many jobs ran or were reused, and
    how busy the workers were."""

    results: dict[str, dict[str, Any]] = field(default_factory=dict)
    ran: int = 0
    skipped: int = 0
    wall_seconds: float = 0.0
    workers: int = 0
    busy_seconds: float = 0.0  # sum over jobs of their seconds inside a worker
    lost_workers: int = 0
    # from the start of the run until every worker of the pool had started
    startup_seconds: float = 0.0
    live_seconds: float = 0.0  # sum over workers of the time from their start to the end of the run
    check_seconds: float = 0.0  # the store's "is it done?" checks before anything is queued

    @property
    def job_seconds(self) -> float:
        """Seconds spent in the jobs that ran now."""
        return sum(r["seconds"] for r in self.results.values() if r.get("ran"))

    @property
    def utilisation(self) -> float:
        """busy worker-seconds / (workers x wall)."""
        return self.busy_seconds / max(self.workers * self.wall_seconds, 1e-9)


class JobRunner(Protocol):
    """What the farm needs of an executor: run jobs into its store (see the module docstring)."""

    @property
    def store(self) -> Store: ...

    def run(self, jobs: Sequence[Job], *, title: str = ...) -> RunReport: ...


def start_early(runner: JobRunner) -> None:
    """Start ``runner``'s workers now when it asks for that (``Executor(early=True)``, as the CLI
    builds it, closing it at the end), so that they start -- import torch, make a CUDA context --
    while the caller still plans its jobs; they serve every later run until the runner is closed.
    Any other runner (``InProcessRunner``, a test's fake, an executor its caller never closes) is
    left alone: its runs start and end their own workers."""
    if getattr(runner, "early", False):
        runner.start()  # type: ignore[attr-defined]
