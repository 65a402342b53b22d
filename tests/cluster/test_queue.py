"""The executor's dependency queue (``farm.cluster.queue``), without Ray: release order, failures,
lost workers, the invariant after every operation, and errors on bad use."""

from __future__ import annotations

import copy
import random
from collections import Counter
from collections.abc import Callable

import pytest

from farm.cluster.queue import JobQueue, State
from farm.errors import ClusterError, FarmError, QueueError


def _queue(jobs: dict[str, list[str]]) -> JobQueue[str]:
    """A queue with ``jobs`` (key -> needs) added in order; the invariant is checked."""
    queue: JobQueue[str] = JobQueue()
    for key, needs in jobs.items():
        queue.add(key, needs=needs)
    _assert_invariant(queue)
    return queue


def _assert_invariant(queue: JobQueue[str]) -> None:
    """The invariant of the module docstring, tested here on the fields (independently of
    ``JobQueue.check``), then by ``JobQueue.check`` itself."""
    homes = Counter(
        [*queue.waiting, *queue.ready, *queue.running, *queue.done, *queue.failed, *queue.blocked]
    )
    assert set(homes) == set(queue.needs), "a key is in no state, or in a state without being added"
    assert all(count == 1 for count in homes.values()), f"keys in two states: {homes}"
    for key, needs in queue.needs.items():
        not_done = {need for need in needs if need not in queue.done}
        lost = {need for need in needs if need in queue.failed or need in queue.blocked}
        if key in queue.blocked:
            assert lost and queue.blocked[key] in queue.failed
            continue
        assert not lost, f"{key} is not blocked though {lost} failed or are blocked"
        if key in queue.waiting:
            assert not_done and queue.waiting[key] == not_done
        else:
            assert not not_done, f"{key} left waiting before {not_done} were done"
    pairs = [(need, key) for need, keys in queue.dependents.items() for key in keys]
    assert sorted(pairs) == sorted(
        (need, key) for key, needs in queue.needs.items() for need in needs
    )
    assert queue.idle == (not queue.waiting and not queue.ready and not queue.running)
    assert queue.pending() == sorted([*queue.waiting, *queue.ready, *queue.running])
    for worker in set(queue.running.values()):
        assert queue.load(worker) == list(queue.running.values()).count(worker)
    queue.check()


def test_dependencies_release_jobs_in_order():
    # c needs a and b, which need tok; d needs nothing; c is added before the jobs it needs
    queue = _queue({"c": ["a", "b"], "a": ["tok"], "tok": [], "b": ["tok", "tok"], "d": []})
    assert list(queue.ready) == ["tok", "d"] and queue.state("c") is State.WAITING
    assert queue.next_ready() == "tok"
    queue.start("tok", worker="w0")
    assert queue.next_ready() == "d" and queue.load("w0") == 1 and queue.worker("tok") == "w0"
    assert queue.finish("tok") == ["a", "b"]  # in the order they were added
    assert list(queue.ready) == ["d", "a", "b"]
    for key in ("d", "a"):
        queue.start(key, worker="w1")
    assert queue.load("w1") == 2 and queue.finish("a") == []  # c still needs b
    queue.start("b", worker="w0")
    assert queue.finish("b") == ["c"] and queue.next_ready() == "c"
    queue.start("c", worker="w0")
    assert queue.pending() == ["c", "d"] and not queue.idle
    queue.finish("c")
    queue.finish("d")
    assert queue.idle and queue.pending() == [] and queue.done == {"tok", "a", "b", "c", "d"}
    _assert_invariant(queue)


def test_a_need_done_before_its_dependent_is_added_is_met():
    queue = _queue({"tok": []})
    queue.start("tok", worker="w0")
    queue.finish("tok")
    assert queue.add("train", needs=["tok"]) is State.READY
    assert queue.add("infer", needs=["train", "tok"]) is State.WAITING
    assert queue.waiting["infer"] == {"train"}
    _assert_invariant(queue)


def test_a_job_depending_on_a_failed_job_is_reported_blocked():
    queue = _queue({"tok": [], "a": ["tok"], "b": ["tok"], "c": ["a"], "d": ["c", "b"], "e": []})
    queue.start("tok", worker="w0")
    queue.finish("tok")
    queue.start("a", worker="w0")
    assert queue.fail("a") == ["c", "d"]  # c directly, d through c, nearest first
    assert queue.blocked == {"c": "a", "d": "a"} and queue.failed == {"a"}
    assert queue.state("d") is State.BLOCKED and "d" not in queue.pending()
    assert queue.add("f", needs=["d"]) is State.BLOCKED and queue.blocked["f"] == "a"
    _assert_invariant(queue)
    for key in ("b", "e"):
        queue.start(key, worker="w1")
        assert queue.finish(key) == []  # b's dependent d stays blocked
    assert queue.idle and queue.state("d") is State.BLOCKED
    _assert_invariant(queue)


def test_a_need_added_late_and_blocked_blocks_the_jobs_waiting_on_it():
    queue = _queue({"x": ["y"], "a": []})  # x waits on y, not added yet
    queue.start("a", worker="w0")
    queue.fail("a")
    assert queue.add("y", needs=["a"]) is State.BLOCKED
    assert queue.blocked == {"y": "a", "x": "a"} and queue.idle
    _assert_invariant(queue)


def test_a_dead_workers_jobs_go_back_to_the_front_of_the_line():
    queue = _queue({"a": [], "b": [], "c": [], "d": [], "e": ["a"]})
    for key, worker in (("a", "w0"), ("b", "w1"), ("c", "w0")):
        queue.start(key, worker=worker)
    assert list(queue.ready) == ["d"] and queue.load("w0") == 2
    assert queue.requeue("w0", first="c") == ["c", "a"]  # c reported the loss; then start order
    assert list(queue.ready) == ["c", "a", "d"] and queue.running == {"b": "w1"}
    assert queue.load("w0") == 0 and queue.state("e") is State.WAITING
    _assert_invariant(queue)
    assert queue.requeue("w0") == [] and queue.requeue("nobody") == []
    queue.start("a", worker="w2")
    queue.start("d", worker="w2")
    assert queue.requeue("w2") == ["a", "d"]  # no ``first``: start order
    assert list(queue.ready) == ["a", "d", "c"]
    _assert_invariant(queue)


def _bad_uses() -> list[tuple[str, Callable[[JobQueue[str]], object], str]]:
    """(name, call on the queue of ``_queue_for_bad_use``, what the message must say)."""
    return [
        ("add twice", lambda q: q.add("ready"), "ready is already in the queue (ready)"),
        (
            "needs itself",
            lambda q: q.add("new", needs=["new"]),
            "job new needs itself, it could never run: new -> new",
        ),
        (
            "start waiting",
            lambda q: q.start("waiting", worker="w1"),
            "cannot start job waiting: it is waiting, not ready",
        ),
        ("start running", lambda q: q.start("running", worker="w1"), "it is running, not ready"),
        ("start unknown", lambda q: q.start("ghost", worker="w1"), "job ghost is not in the queue"),
        ("finish ready", lambda q: q.finish("ready"), "cannot finish job ready: it is ready"),
        ("finish twice", lambda q: q.finish("done"), "cannot finish job done: it is done"),
        ("fail blocked", lambda q: q.fail("blocked"), "cannot fail job blocked: it is blocked"),
        (
            "requeue from another worker",
            lambda q: q.requeue("w1", first="running"),
            "job running is not running on worker 'w1' (running)",
        ),
        ("worker of a done job", lambda q: q.worker("done"), "it is done, not running"),
        ("state of unknown", lambda q: q.state("ghost"), "job ghost is not in the queue"),
    ]


def _queue_for_bad_use() -> JobQueue[str]:
    """One key in each state (``blocked`` through ``failed``); ``running`` runs on w0."""
    queue = _queue(
        {
            "done": [],
            "failed": [],
            "running": [],
            "ready": [],
            "blocked": ["failed"],
            "waiting": ["running"],
        }
    )
    for key in ("done", "failed", "running"):
        queue.start(key, worker="w0")
    queue.finish("done")
    queue.fail("failed")
    assert {key: queue.state(key).value for key in queue.needs} == {key: key for key in queue.needs}
    return queue


@pytest.mark.parametrize("name,call,message", _bad_uses(), ids=[b[0] for b in _bad_uses()])
def test_bad_use_raises_a_queue_error_and_changes_nothing(name, call, message):
    queue = _queue_for_bad_use()
    before = copy.deepcopy(queue)
    with pytest.raises(QueueError) as info:
        call(queue)
    assert message in str(info.value)
    assert isinstance(info.value, ClusterError) and isinstance(info.value, FarmError)
    assert queue == before


@pytest.mark.parametrize(
    "corrupt,message",
    [
        (lambda q: q.done.add("ready"), "ready is in 2 states"),
        (lambda q: q.ready.append("ready"), "ready is in 2 states"),
        (lambda q: q.running.pop("running"), "running is in 0 states"),
        (lambda q: q.ready.append("ghost"), "ghost is ready but was never added"),
        (
            lambda q: (q.ready.remove("ready"), q.waiting.__setitem__("ready", {"x"})),
            "waits on ['x']",
        ),
        (
            lambda q: (q.waiting.pop("waiting"), q.ready.append("waiting")),
            "waiting is ready before its needs ['running'] are done",
        ),
        (lambda q: (q.blocked.pop("blocked"), q.ready.append("blocked")), "though its needs"),
        (
            lambda q: q.dependents["running"].append("ready"),
            "dependents is not the inverse of needs",
        ),
    ],
)
def test_check_finds_a_broken_invariant(corrupt, message):
    queue = _queue_for_bad_use()
    queue.check()
    corrupt(queue)
    with pytest.raises(QueueError) as info:
        queue.check()
    assert message in str(info.value)


def test_a_cycle_is_refused_when_its_last_job_is_added():
    queue = _queue({"b": ["a"], "c": ["b", "x"], "d": ["c"]})
    before = copy.deepcopy(queue)
    with pytest.raises(
        QueueError,
        match=r"^job a needs itself, it could never run: "
        r"a -> d -> c -> b -> a$",
    ):
        queue.add("a", needs=["tok", "d"])
    assert queue == before
    assert queue.add("a", needs=["tok"]) is State.WAITING  # without the cycle it is fine
    _assert_invariant(queue)


def _random_jobs(rng: random.Random, n: int) -> dict[str, list[str]]:
    """``n`` jobs, each needing up to 3 earlier ones (acyclic), in a shuffled order: some needs are
    added after the jobs that need them."""
    keys = [f"j{i}" for i in range(n)]
    jobs = {key: rng.sample(keys[:i], k=min(i, rng.randint(0, 3))) for i, key in enumerate(keys)}
    order = list(jobs)
    rng.shuffle(order)
    return {key: jobs[key] for key in order}


@pytest.mark.parametrize("seed", range(30))
def test_the_invariant_holds_after_every_operation_of_a_random_run(seed):
    rng = random.Random(seed)
    jobs = _random_jobs(rng, n=rng.randint(1, 14))
    to_add = list(jobs)
    workers = ["w0", "w1", "w2"]
    queue: JobQueue[str] = JobQueue()
    for _ in range(2000):
        if queue.idle and not to_add:
            break
        op = rng.choice(["add", "start", "start", "finish", "finish", "fail", "requeue"])
        before = copy.deepcopy(queue)
        if op == "add" and to_add:
            key = to_add.pop(0)
            state = queue.add(key, needs=jobs[key])
            assert queue.state(key) is state
        elif op == "start" and queue.ready:
            key = queue.next_ready()
            assert key == before.ready[0]
            queue.start(key, worker=rng.choice(workers))
            assert list(queue.ready) == list(before.ready)[1:]
        elif op == "finish" and queue.running:
            key = rng.choice(sorted(queue.running))
            released = queue.finish(key)
            assert released == [k for k in before.waiting if k not in queue.waiting]
            assert list(queue.ready) == [*before.ready, *released]
            assert all(set(jobs[k]) <= queue.done for k in released)
        elif op == "fail" and queue.running and rng.random() < 0.3:
            key = rng.choice(sorted(queue.running))
            newly = queue.fail(key)
            assert set(newly) == set(queue.blocked) - set(before.blocked)
            assert all(queue.blocked[k] == key for k in newly)
        elif op == "requeue":
            worker = rng.choice(workers)
            mine = [k for k, w in queue.running.items() if w == worker]
            first = rng.choice(mine) if mine and rng.random() < 0.5 else None
            keys = queue.requeue(worker, first=first)
            assert sorted(keys) == sorted(mine) and (first is None or keys[0] == first)
            assert list(queue.ready) == [*keys, *before.ready] and queue.load(worker) == 0
        _assert_invariant(queue)
    else:
        pytest.fail("the random run did not end")
    # every job ends done, failed, or blocked by a failed job it needs: none is stuck
    assert set(queue.done) | queue.failed | set(queue.blocked) == set(jobs)
    for key, root in queue.blocked.items():
        assert _needs_transitively(jobs, key, root)


def _needs_transitively(jobs: dict[str, list[str]], key: str, root: str) -> bool:
    frontier, seen = list(jobs[key]), set()
    while frontier:
        need = frontier.pop()
        if need == root:
            return True
        if need not in seen:
            seen.add(need)
            frontier += jobs[need]
    return False


class _OldLoop:
    """The executor loop's bookkeeping as it was before the queue (lists and dicts in ``_Pool``),
    kept as the oracle of job order: ``feed``, ``finish`` and ``lose`` copy its ``_feed``, the end
    of its ``_loop`` and its ``_lost``."""

    def __init__(self, todo: dict[str, list[str]]):
        self.pending = dict(todo)
        self.unmet = {key: {d for d in needs if d in todo} for key, needs in todo.items()}
        self.dependents: dict[str, list[str]] = {}
        for key, inputs in self.unmet.items():
            for d in inputs:
                self.dependents.setdefault(d, []).append(key)
        self.ready = [k for k in todo if not self.unmet[k]]
        self.live: dict[str, int] = {}
        self.inflight: dict[int, tuple[str, str]] = {}
        self.calls = 0

    def feed(self, log: list[tuple[int, str, str, bool]]) -> None:
        for depth in (1, 2):
            for actor in list(self.live):
                while self.ready and self.live[actor] < depth:
                    key = self.ready.pop(0)
                    self.calls += 1
                    self.inflight[self.calls] = (actor, key)
                    log.append((self.calls, actor, key, bool(self.live[actor])))
                    self.live[actor] += 1

    def finish(self, ref: int) -> None:
        actor, key = self.inflight.pop(ref)
        self.live[actor] = self.live.get(actor, 1) - 1
        self.pending.pop(key)
        for dependent in self.dependents.get(key, ()):
            self.unmet[dependent].discard(key)
            if not self.unmet[dependent]:
                self.ready.append(dependent)

    def lose(self, ref: int) -> None:
        dead, key = self.inflight.pop(ref)
        self.live[dead] = self.live.get(dead, 1) - 1
        lost = [r for r, (actor, _) in self.inflight.items() if actor is dead]
        self.ready[:0] = [key, *[self.inflight.pop(r)[1] for r in lost]]
        self.live.pop(dead, None)


class _NewLoop:
    """The same bookkeeping through ``JobQueue``, as ``_Pool`` does it now."""

    def __init__(self, todo: dict[str, list[str]]):
        self.queue: JobQueue[str] = JobQueue()
        for key, needs in todo.items():
            self.queue.add(key, needs=[d for d in needs if d in todo])
        self.live: dict[str, None] = {}
        self.inflight: dict[int, str] = {}
        self.calls = 0

    def feed(self, log: list[tuple[int, str, str, bool]]) -> None:
        queue = self.queue
        for depth in (1, 2):
            for actor in list(self.live):
                while (key := queue.next_ready()) is not None and queue.load(actor) < depth:
                    behind = queue.load(actor) > 0
                    queue.start(key, worker=actor)
                    self.calls += 1
                    self.inflight[self.calls] = key
                    log.append((self.calls, actor, key, behind))

    def finish(self, ref: int) -> None:
        self.queue.finish(self.inflight.pop(ref))

    def lose(self, ref: int) -> None:
        key = self.inflight.pop(ref)
        dead = self.queue.worker(key)
        requeued = set(self.queue.requeue(dead, first=key))
        for r in [r for r, k in self.inflight.items() if k in requeued]:
            del self.inflight[r]
        self.live.pop(dead, None)


@pytest.mark.parametrize("seed", range(30))
def test_the_queue_gives_the_same_job_order_as_the_loop_it_replaced(seed):
    rng = random.Random(seed)
    jobs = _random_jobs(rng, n=rng.randint(1, 16))
    # some jobs also need "stored", a job already in the store: it is not in the run
    todo = {key: [*needs, "stored"] if rng.random() < 0.3 else needs for key, needs in jobs.items()}
    old, new = _OldLoop(todo), _NewLoop(todo)
    logs: tuple[list, list] = ([], [])
    actors = 0
    for _ in range(500):
        if not old.pending:
            break
        if not old.live or rng.random() < 0.1:  # a worker starts (first ones, or a replacement)
            actors += 1
            old.live[f"a{actors}"] = 0
            new.live[f"a{actors}"] = None
        old.feed(logs[0])
        new.feed(logs[1])
        assert logs[0] == logs[1]
        if not old.inflight:
            continue
        ref = rng.choice(sorted(old.inflight))
        if rng.random() < 0.15:
            old.lose(ref)
            new.lose(ref)
        else:
            old.finish(ref)
            new.finish(ref)
        assert list(old.ready) == list(new.queue.ready)
        assert sorted(old.pending) == new.queue.pending()
        _assert_invariant(new.queue)
    else:
        pytest.fail("the random run did not end")
    assert new.queue.idle and logs[0] == logs[1] and len(logs[0]) >= len(todo)
