"""Typed errors. Each names the file or field at fault and what was expected."""

from __future__ import annotations

from typing import Any


class FarmError(Exception):
    """Base class: the CLI prints these as one line and exits non-zero."""


class ChallengeFormatError(FarmError):
    """A challenge tree (seed files, solutions, weights, folder names) is malformed."""


class SplitError(FarmError, ValueError):
    """Split constants or seeds are inconsistent."""


class SubmissionError(FarmError):
    """Predictions or a submission zip are invalid; ``problems`` lists every problem found.

    ``str()`` leads with a summary line (how many problems of each kind: missing, unexpected,
    invalid files), lists the first ``SHOWN`` problems, says how many more there are, and repeats
    the summary last, so a long list still ends with what to do; ``hint`` (e.g. "pass --challenge")
    joins the summary."""

    SHOWN = 20

    def __init__(self, problems: list[str], *, hint: str = ""):
        self.problems, self.hint = list(problems), hint
        if len(self.problems) == 1 and not hint:
            super().__init__(self.problems[0])
            return
        summary = self.summary()
        shown = self.problems[: self.SHOWN]
        more = len(self.problems) - len(shown)
        tail = [f"... and {more} more", summary] if more else []
        super().__init__("\n".join([summary, *shown, *tail]))

    def summary(self) -> str:
        """One line: the count of problems by kind, and the hint."""
        kinds = {"missing": 0, "unexpected": 0, "invalid": 0}
        for problem in self.problems:
            kind = next((k for k in ("missing", "unexpected") if f": {k} " in problem), "invalid")
            kinds[kind] += 1
        counts = ", ".join(f"{n} {kind}" for kind, n in kinds.items() if n)
        return f"{len(self.problems)} problem(s) found ({counts})" + (
            f"; {self.hint}" if self.hint else ""
        )


class ConfigError(FarmError):
    """A YAML config has a missing or wrong key; the message names the file and key."""


class SpecError(FarmError, ValueError):
    """A job spec or option dataclass is invalid. ``key``: the dotted path of the field at fault
    (``dp.delta``, ``params.gamma``; empty when unknown), ``detail``: what was expected;
    ``str()`` reads ``key: detail``."""

    def __init__(self, detail: str, *, key: str = "") -> None:
        self.key, self.detail = key, detail
        super().__init__(f"{key}: {detail}" if key else detail)


class StoreError(FarmError):
    """A store entry is missing, corrupt or unreadable."""


class ClusterError(FarmError):
    """A run on the cluster cannot go on: jobs are left that no worker is there to run, or no worker
    could be placed in time; the message names the jobs, or the resources each worker asked for."""


class QueueError(ClusterError, ValueError):
    """The job queue (``farm.cluster.queue``) was used against its contract: a key added twice, a
    job started that is not ready, a job finished that is not running, ...; the message names the
    key and its state."""


def require(ok: bool, key: str, expected: str, got: Any = None) -> None:
    """``SpecError`` naming ``key`` (relative to the object checked) unless ``ok``."""
    if not ok:
        raise SpecError(
            f"expected {expected}" + ("" if got is None else f", got {shown(got)}"), key=key
        )


def shown(value: Any) -> str:
    """``repr(value)`` cut to 60 characters, as error messages quote what they got."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
