"""A stage's progress, as the executor reports it: jobs done of the total, percent, rate, time left.

Pure (no Ray, no clock of its own): the caller feeds ``finish`` each completion with the time it
happened (any monotonic clock, ``time.perf_counter`` in the executor), so tests drive it with fake
times. ``finish`` also says whether a completion is worth an INFO line: the first, each one that
crosses a ``step`` percent boundary, and the last; the others are DEBUG (one per job under ``-v``).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(kw_only=True)
class Progress:
    """``total`` jobs (> 0) started at ``start`` on ``workers`` workers; ``step``: percent between
    the completions ``finish`` marks as reported."""

    total: int
    start: float
    workers: int = 1
    step: float = 5.0
    done: int = 0
    busy: float = 0.0  # the finished jobs' own seconds, summed
    now: float = 0.0  # the time of the last completion (``start`` before any)
    last: str = ""  # the last finished job's label
    last_seconds: float = 0.0

    def __post_init__(self) -> None:
        if self.total < 1:
            raise ValueError(f"total must be at least 1, not {self.total}")
        if self.step <= 0:
            raise ValueError(f"step must be positive, not {self.step}")
        self.now = max(self.now, self.start)

    def finish(self, label: str, seconds: float, now: float) -> bool:
        """Count one finished job (``label``, which ran ``seconds``) at time ``now`` (not before the
        last); True when this completion should be reported: the first, the last, and each one
        whose percent reaches a new multiple of ``step``."""
        before = self._bucket()
        self.done += 1
        self.busy += seconds
        self.now = max(now, self.now)
        self.last, self.last_seconds = label, seconds
        return self.done in (1, self.total) or self._bucket() > before

    def _bucket(self) -> int:
        return int(self.percent // self.step)

    @property
    def percent(self) -> float:
        """Jobs done as a percent of ``total`` (may pass 100 if more finish than announced)."""
        return 100.0 * self.done / self.total

    @property
    def elapsed(self) -> float:
        """Seconds from ``start`` to the last completion."""
        return self.now - self.start

    @property
    def rate(self) -> float:
        """Jobs per minute so far (wall clock); 0.0 before any job or time has passed."""
        return 60.0 * self.done / self.elapsed if self.done and self.elapsed > 0 else 0.0

    @property
    def eta(self) -> float | None:
        """Seconds left: the remaining jobs at ``rate``, or, while no wall time has passed, at the
        mean job's seconds spread over ``workers``; 0.0 when all are done, None before any job."""
        remaining = max(0, self.total - self.done)
        if not remaining:
            return 0.0
        if not self.done:
            return None
        if self.rate > 0:
            return 60.0 * remaining / self.rate
        return remaining * (self.busy / self.done) / max(1, self.workers)

    def line(self, title: str) -> str:
        """``[title] 8/20 (40%), 3.2 jobs/min, ETA ~3m 45s, last: LABEL 1.2s``."""
        eta = self.eta
        return (
            f"[{title}] {self.done}/{self.total} ({self.percent:.0f}%), {self.rate:.1f} jobs/min, "
            f"ETA {'?' if eta is None else duration(eta)}, "
            f"last: {self.last} {self.last_seconds:.1f}s"
        )


def duration(seconds: float) -> str:
    """``~45s``, ``~3m 05s`` or ``~2h 07m`` (rounded to the second; negative counts as 0)."""
    s = max(0, round(seconds))
    if s < 60:
        return f"~{s}s"
    if s < 3600:
        return f"~{s // 60}m {s % 60:02d}s"
    return f"~{s // 3600}h {s % 3600 // 60:02d}m"
