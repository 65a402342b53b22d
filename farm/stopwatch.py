"""Where the time of a command goes: seconds per named stage, pure (no torch, no Ray).

``farm attack`` records ``STAGES`` -- reading the tree, the answers, the population and the signals
back from the store; fingerprinting inputs (population, tokenizer, base model, every provided
model's weights); scheduling (job specs, store "is it done?" checks); training and inference (the
executor's one queue runs both: its wall time is split by each kind's share of job-seconds, and the
job-seconds are kept beside); scoring; writing the outputs -- and writes them as ``stages.json``
last.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

STAGES = ("reading", "fingerprinting", "scheduling", "training", "inference", "scoring", "writing")


class Stopwatch:
    """Accumulates wall seconds per stage (``stage`` as a context manager, or ``add``) and
    job-seconds per kind of job (``jobs``: summed over workers, so it can exceed the wall time)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.job_seconds: dict[str, float] = {}
        self.reused_job_seconds: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.add(name, time.perf_counter() - start)

    def add(self, name: str, seconds: float) -> None:
        self.seconds[name] = self.seconds.get(name, 0.0) + float(seconds)

    def add_jobs(self, kind: str, seconds: float) -> None:
        self.job_seconds[kind] = self.job_seconds.get(kind, 0.0) + float(seconds)

    def add_reused(self, kind: str, seconds: float) -> None:
        """Job-seconds of jobs of ``kind`` found done in the store: what they took when they ran
        (their manifests' ``seconds``), so a rerun still says what its results cost."""
        self.reused_job_seconds[kind] = self.reused_job_seconds.get(kind, 0.0) + float(seconds)

    def as_dict(self) -> dict[str, dict[str, float]]:
        """``{"wall_seconds": {stage: s, ..., "total": s}, "job_seconds": {kind: s},
        "reused_job_seconds": {kind: s}}``, stages in ``STAGES`` order (others after);
        ``job_seconds``: jobs run now; ``reused_job_seconds``: jobs found done in the store, at what
        they took when they ran (a rerun's training wall time is 0 s, not its training's cost)."""
        order = [s for s in STAGES if s in self.seconds] + sorted(set(self.seconds) - set(STAGES))
        wall = {s: round(self.seconds[s], 3) for s in order}
        wall["total"] = round(sum(self.seconds.values()), 3)
        return {
            "wall_seconds": wall,
            "job_seconds": {k: round(v, 3) for k, v in sorted(self.job_seconds.items())},
            "reused_job_seconds": {
                k: round(v, 3) for k, v in sorted(self.reused_job_seconds.items())
            },
        }

    def line(self) -> str:
        """One human line: ``reading 1.2s, fingerprinting 0.3s, ...``."""
        return ", ".join(f"{k} {v:.1f}s" for k, v in self.as_dict()["wall_seconds"].items())
