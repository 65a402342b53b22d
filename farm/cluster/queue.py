"""A dependency queue of jobs, by store key: the bookkeeping of the executor's loop, without Ray.

A job may read the artifacts of other jobs (its *needs*); it becomes ready when every need is done.
The queue knows nothing of futures or actors: a worker is any value the caller picks (the executor
passes its Ray actor handles; tests pass strings), compared with ``==``. The caller asks the queue
what to start next and tells it what happened::

    queue: JobQueue[str] = JobQueue()
    queue.add("tok")
    queue.add("train", needs=["tok"])
    key = queue.next_ready()            # "tok"
    queue.start(key, worker="w0")
    queue.finish(key)                   # ["train"]: now ready
    queue.requeue("w0")                 # worker w0 died: its running jobs go back, first in line

Invariant (``JobQueue.check`` tests it): every key added is in exactly one of six states:

- waiting: at least one need is not done (``waiting[key]`` is exactly the set of those needs; a need
  never added counts as not done), and none is failed or blocked;
- ready: every need is done, the job has not started; ``ready`` is first in, first out, no repeats;
- running: started on one worker (``running[key]``), every need done;
- done: finished (terminal);
- failed: its run failed (terminal);
- blocked: a need is failed or blocked, so it can never run (terminal); ``blocked[key]`` is the
  failed job at the root of it.

``dependents`` is the inverse of ``needs``: ``key in dependents[need]`` exactly when
``need in needs[key]``. A queue is ``idle`` when no key is waiting, ready or running: nothing more
can happen.

Every method that changes the state keeps the invariant, and raises ``QueueError`` (naming the key
and its state) before changing anything when asked for a move the state does not allow.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum
from typing import Generic, TypeVar

from farm.errors import QueueError

W = TypeVar("W")  # whatever identifies a worker to the caller


class State(str, Enum):
    """Where a key stands; see the module docstring for what each state means."""

    WAITING = "waiting"
    READY = "ready"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    BLOCKED = "blocked"


@dataclass
class JobQueue(Generic[W]):
    """Jobs by key, the needs between them, and which worker runs which. Built empty
    (``JobQueue()``) and changed only through its methods; the fields are there to be read."""

    # every key added -> its needs, in add order
    needs: dict[str, tuple[str, ...]] = field(init=False, default_factory=dict)
    # waiting key -> its needs not done yet
    waiting: dict[str, set[str]] = field(init=False, default_factory=dict)
    # ready keys, first in, first out
    ready: deque[str] = field(init=False, default_factory=deque)
    # running key -> its worker, in start order
    running: dict[str, W] = field(init=False, default_factory=dict)
    done: set[str] = field(init=False, default_factory=set)
    failed: set[str] = field(init=False, default_factory=set)
    # blocked key -> the failed job at the root of it
    blocked: dict[str, str] = field(init=False, default_factory=dict)
    # need -> the keys that name it, in add order (a need may not be added yet)
    dependents: dict[str, list[str]] = field(init=False, default_factory=dict)

    def add(self, key: str, needs: Iterable[str] = ()) -> State:
        """Add a job that reads the artifacts of ``needs`` (repeats are dropped). A need not added
        yet may be added later (any order works), and is waited on until it is done. The job starts
        ready (every need done), blocked (a need failed or is blocked) or waiting; its new state is
        returned. ``QueueError``: the key is already in the queue, or it needs itself, directly or
        through jobs added before it (a cycle: none of them could ever run)."""
        if key in self.needs:
            raise QueueError(f"job {key} is already in the queue ({self.state(key).value})")
        unique = tuple(dict.fromkeys(needs))
        cycle = self._cycle(key, unique)
        if cycle:
            raise QueueError(f"job {key} needs itself, it could never run: {' -> '.join(cycle)}")
        self.needs[key] = unique
        for need in unique:
            self.dependents.setdefault(need, []).append(key)
        lost = [need for need in unique if need in self.failed or need in self.blocked]
        root = self._root(lost[0]) if lost else None
        if root is not None:
            self.blocked[key] = root
            self._block_dependents(key, root=root)  # jobs added before it that named it as a need
            return State.BLOCKED
        unmet = {need for need in unique if need not in self.done}
        if unmet:
            self.waiting[key] = unmet
            return State.WAITING
        self.ready.append(key)
        return State.READY

    def next_ready(self) -> str | None:
        """The key that has waited longest among the ready ones (it stays ready), or None if none
        is."""
        return self.ready[0] if self.ready else None

    def start(self, key: str, *, worker: W) -> None:
        """Mark the ready ``key`` as running on ``worker``. ``QueueError``: the key is not ready."""
        self._expect(key, State.READY, "start")
        if self.ready[0] == key:
            self.ready.popleft()
        else:
            self.ready.remove(key)
        self.running[key] = worker

    def finish(self, key: str) -> list[str]:
        """Mark the running ``key`` done; the keys it made ready (their last need), in the order
        they were added, which is also the order they join the end of ``ready``. ``QueueError``: not
        running."""
        self._expect(key, State.RUNNING, "finish")
        del self.running[key]
        self.done.add(key)
        released = []
        for dependent in self.dependents.get(key, ()):
            unmet = self.waiting.get(dependent)
            if unmet is None:  # blocked by another need: it stays blocked
                continue
            unmet.discard(key)
            if not unmet:
                del self.waiting[dependent]
                self.ready.append(dependent)
                released.append(dependent)
        return released

    def fail(self, key: str) -> list[str]:
        """Mark the running ``key`` failed; every job that needs it, directly or through others, can
        never run and becomes blocked. Returns those jobs (nearest first). ``QueueError``: not
        running."""
        self._expect(key, State.RUNNING, "fail")
        del self.running[key]
        self.failed.add(key)
        return self._block_dependents(key, root=key)

    def requeue(self, worker: W, *, first: str | None = None) -> list[str]:
        """``worker`` is gone: every job running on it goes back to the front of ``ready`` (they
        were next in line before anything that is ready now), ``first`` (the job whose call reported
        the loss) ahead of the others, which keep their start order. Returns the keys in their new
        order (empty if the worker ran nothing). ``QueueError``: ``first`` is given and is not
        running on ``worker``."""
        keys = [key for key, running_on in self.running.items() if running_on == worker]
        if first is not None:
            if first not in keys:
                raise QueueError(
                    f"job {first} is not running on worker {worker!r} ({self.state(first).value}): "
                    f"it cannot be requeued from it"
                )
            keys.remove(first)
            keys.insert(0, first)
        for key in keys:
            del self.running[key]
        self.ready.extendleft(reversed(keys))
        return keys

    def worker(self, key: str) -> W:
        """The worker running ``key``. ``QueueError``: the key is not running."""
        self._expect(key, State.RUNNING, "ask for the worker of")
        return self.running[key]

    def load(self, worker: W) -> int:
        """How many jobs run on ``worker`` now (started and neither finished, failed nor
        requeued)."""
        return sum(1 for running_on in self.running.values() if running_on == worker)

    def pending(self) -> list[str]:
        """Keys still to finish (waiting, ready or running), sorted."""
        return sorted([*self.waiting, *self.ready, *self.running])

    @property
    def idle(self) -> bool:
        """True when no key is waiting, ready or running: every job is done, failed or blocked."""
        return not (self.waiting or self.ready or self.running)

    def state(self, key: str) -> State:
        """The state of ``key``. ``QueueError``: it was never added."""
        if key in self.waiting:
            return State.WAITING
        if key in self.running:
            return State.RUNNING
        if key in self.done:
            return State.DONE
        if key in self.failed:
            return State.FAILED
        if key in self.blocked:
            return State.BLOCKED
        if key in self.needs:  # the state left; last, as ``ready`` is a deque (a linear search)
            return State.READY
        raise QueueError(f"job {key} is not in the queue")

    def check(self) -> None:
        """Test the invariant of the module docstring; ``QueueError`` naming the first key that
        breaks it."""
        homes: dict[str, list[State]] = {key: [] for key in self.needs}
        groups: list[tuple[State, Iterable[str]]] = [
            (State.WAITING, self.waiting),
            (State.READY, self.ready),
            (State.RUNNING, self.running),
            (State.DONE, self.done),
            (State.FAILED, self.failed),
            (State.BLOCKED, self.blocked),
        ]
        for state, keys in groups:
            for key in keys:
                if key not in homes:
                    raise QueueError(f"job {key} is {state.value} but was never added")
                homes[key].append(state)
        for key, states in homes.items():
            if len(states) != 1:
                raise QueueError(
                    f"job {key} is in {len(states)} states, not 1: "
                    f"{[state.value for state in states]}"
                )
            self._check_needs(key, states[0])
        inverse = {(need, key) for key, needs in self.needs.items() for need in needs}
        listed = [(need, key) for need, keys in self.dependents.items() for key in keys]
        if len(listed) != len(set(listed)) or set(listed) != inverse:
            raise QueueError("dependents is not the inverse of needs")

    def _check_needs(self, key: str, state: State) -> None:
        """The part of the invariant about one key's needs."""
        needs = self.needs[key]
        lost = [need for need in needs if need in self.failed or need in self.blocked]
        if state is State.BLOCKED:
            if not lost or self.blocked[key] not in self.failed:
                raise QueueError(
                    f"job {key} is blocked by {self.blocked[key]}, yet its needs failed or blocked "
                    f"are {lost}"
                )
            return
        if lost:
            raise QueueError(
                f"job {key} is {state.value} though its needs {lost} failed or are blocked"
            )
        unmet = {need for need in needs if need not in self.done}
        if state is State.WAITING and (not unmet or self.waiting[key] != unmet):
            raise QueueError(
                f"job {key} waits on {sorted(self.waiting[key])}, not on its needs not done "
                f"{sorted(unmet)}"
            )
        if state is not State.WAITING and unmet:
            raise QueueError(
                f"job {key} is {state.value} before its needs {sorted(unmet)} are done"
            )

    def _cycle(self, key: str, needs: tuple[str, ...]) -> list[str]:
        """A path ``key -> ... -> key`` through ``needs`` and the needs of the jobs added, or
        ``[]`` when ``key`` needs itself nowhere."""
        came_from: dict[str, str] = {}
        frontier = deque(needs)
        for need in needs:
            came_from.setdefault(need, key)
        while frontier:
            need = frontier.popleft()
            if need == key:
                path = [key]
                while path[-1] != key or len(path) == 1:
                    path.append(came_from[path[-1]])
                return path[::-1]
            for further in self.needs.get(need, ()):
                if further not in came_from:
                    came_from[further] = need
                    frontier.append(further)
        return []

    def _block_dependents(self, key: str, *, root: str) -> list[str]:
        """Block every waiting job that needs the failed or blocked ``key``, directly or through
        others, on the failed job ``root``; those jobs, nearest first."""
        newly: list[str] = []
        frontier = deque([key])
        while frontier:
            for dependent in self.dependents.get(frontier.popleft(), ()):
                if dependent in self.waiting:  # else already blocked: never ready or beyond
                    del self.waiting[dependent]
                    self.blocked[dependent] = root
                    newly.append(dependent)
                    frontier.append(dependent)
        return newly

    def _root(self, need: str) -> str:
        """The failed job behind a failed or blocked ``need``."""
        return need if need in self.failed else self.blocked[need]

    def _expect(self, key: str, state: State, action: str) -> None:
        """``QueueError`` unless ``key`` is in ``state``."""
        now = self.state(key)
        if now is not state:
            raise QueueError(f"cannot {action} job {key}: it is {now.value}, not {state.value}")
