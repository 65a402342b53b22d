"""Exact MICO splits: the MT19937 swap shuffle and one model's challenge/training/membership sets.

Pure numpy. The rules (from the MICO release, see ``mico-sst2-facts.md``):

* ``Shuffle(seed, n)``: start from ``[0, 1, ..., n-1]``; MT19937 seeded by
  ``init_genrand(seed & 0xFFFFFFFF)`` gives raw 32-bit outputs ``r_0, r_1, ...``; for
  ``i = 0 .. n-2``: ``z = r_i mod (n - i)``, swap ``i`` and ``i+z``.
* ``P = Shuffle(seed_challenge, N)``: challenge = ``P[:2m]``, rest = ``P[2m:]``.
* ``Q = Shuffle(seed_training, N - 2m)``: training = ``rest[Q[:n_train - m]]``, evaluation = the
  remainder.
* ``R = Shuffle(seed_membership, 2m)``: nonmember = ``challenge[R[:m]]``, member =
  ``challenge[R[m:]]``.
"""

from __future__ import annotations

import numbers
import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from farm.errors import SplitError

MICO_N_TOTAL = 68_221
MICO_LEN_TRAINING = 67_349
MICO_LEN_CHALLENGE = 100


def mt19937_raw(seed: int, count: int) -> np.ndarray:
    """The first ``count`` raw 32-bit outputs of MT19937 seeded with
    ``init_genrand(seed & 0xFFFFFFFF)``, as int64.

    The state is seeded here by the standard ``init_genrand`` recurrence and handed to numpy's
    ``MT19937`` bit generator, whose ``random_raw`` returns the tempered 32-bit outputs unchanged
    (checked in tests against a plain-Python MT19937): one C call for all ``count`` draws.

    >>> int(mt19937_raw(5489, 1)[0])
    3499211612
    """
    return _raw32(int(seed), int(count)).astype(np.int64)


def _raw32(seed: int, count: int) -> np.ndarray:
    """``mt19937_raw`` as uint32, drawn from one bit generator reused under a lock (building one
    costs more than a small shuffle)."""
    key = np.empty(624, dtype=np.uint32)
    x = seed & 0xFFFFFFFF
    key[0] = x
    for i in range(1, 624):  # init_genrand (Matsumoto & Nishimura's 2002 seeding)
        x = (1812433253 * (x ^ (x >> 30)) + i) & 0xFFFFFFFF
        key[i] = x
    with _GEN_LOCK:
        _GEN.state = {"bit_generator": "MT19937", "state": {"key": key, "pos": 624}}
        return _GEN.random_raw(count).astype(np.uint32)


_GEN = np.random.MT19937(0)  # any seed: _raw32 replaces the state before every draw
_GEN_LOCK = threading.Lock()


def mico_shuffle(seed: int, n: int) -> np.ndarray:
    """MICO's swap shuffle of ``range(n)`` driven by MT19937(seed); returns int64 of shape ``[n]``,
    bit for bit what the sequential loop (``for i in 0..n-2: swap i, i + r_i mod (n - i)``)
    gives, computed without a Python loop over ``n``.

    Why it is exact. Step ``i`` swaps positions ``i`` and ``j_i = i + z_i >= i``. (a) No step after
    ``i`` touches position ``i`` (step ``k > i`` touches ``k`` and ``j_k >= k``), so ``perm[i]`` is
    the value at ``j_i`` just before step ``i``. (b) Before step ``p``, position ``p`` changes only
    as the target ``j_k`` of a step ``k < p``, which moves there ``pre[k]``, the value at ``k`` just
    before step ``k``. So the value at ``p`` just before step ``t <= p`` is ``pre[k]`` for
    the last step ``k < t`` with ``j_k = p``, or ``p`` if there is none. Hence ``pre[p] =
    pre[L(p)]`` with ``L(p)`` the last step ``k < p`` targeting ``p`` (``pre[p] = p`` if none),
    ``perm[i] = pre[k]`` for the last step ``k < i`` with ``j_k = j_i`` (``j_i`` if none; a no-op
    ``z_i = 0`` gives ``pre[i]``), and ``perm[n-1] = pre[n-1]``. One sort of the keys
    ``(j_i, i)`` groups the steps by target in step order; ``pre`` follows the chains ``p -> L(p)``
    to their roots by pointer doubling (chains are short: about 20 hops at most at MICO's size, so
    5 doublings). Tests check it against the literal loop on many seeds and sizes.

    >>> mico_shuffle(5489, 6).tolist()
    [2, 3, 4, 5, 0, 1]
    """
    seed = _as_int(seed, "seed")
    if not isinstance(n, numbers.Integral) or n < 0:
        raise SplitError(f"n must be a non-negative integer, got {n!r}")
    n = int(n)
    if n >= 2**31:
        raise SplitError(f"n must be below 2**31, got {n}")
    if n < 2:
        return np.arange(n, dtype=np.int64)
    steps = n - 1
    bits = steps.bit_length()
    index = np.arange(steps, dtype=np.int64)
    target = (_raw32(seed, steps) % np.arange(n, 1, -1, dtype=np.uint32)).astype(np.int64)
    target += index  # j_i
    key = target << bits
    key |= index
    key.sort()  # keys are distinct: by target, then by step
    step = key & ((1 << bits) - 1)
    dest = key >> bits
    first = np.empty(steps, dtype=bool)  # first step of its target's group
    first[0] = True
    np.not_equal(dest[1:], dest[:-1], out=first[1:])
    last = np.flatnonzero(np.append(first[1:], True))  # last step of each group
    later, p = step[last], dest[last]
    noop = later == p  # z = 0: the step before it in the group (if any) is L(p)
    if noop.any():
        at = last[noop]
        later[noop] = np.where(first[at], p[noop], step[at - 1])
    root = np.arange(n, dtype=np.int64)
    root[p] = later  # L(p), or p itself
    while True:  # pointer doubling: root[p] becomes the end of p's chain, i.e. pre[p]
        hop = root[root]
        if np.array_equal(hop, root):
            break
        root = hop
    inner = np.flatnonzero(~first)
    dest[inner] = root[step[inner - 1]]  # pre of the previous step in the group
    perm = np.empty(n, dtype=np.int64)
    perm[step] = dest
    perm[steps] = root[steps]
    return perm


@dataclass(frozen=True, kw_only=True)
class ModelSplit:
    """Population indices of one challenge model's sets; ``None`` where the seed needed is missing.

    ``solution`` is 0/1 in challenge order (1 = member), ``None`` without ``seed_membership``.
    """

    challenge: np.ndarray
    rest: np.ndarray
    training: np.ndarray | None
    evaluation: np.ndarray | None
    nonmember: np.ndarray | None
    member: np.ndarray | None
    solution: np.ndarray | None

    def train_set(self) -> np.ndarray:
        """Indices a target model is trained on: members followed by the training split."""
        if self.member is None or self.training is None:
            raise SplitError("train_set needs seed_training and seed_membership")
        return np.concatenate([self.member, self.training])

    def as_dict(self) -> dict[str, list[int] | None]:
        """JSON-ready dict of the sets."""
        names = ("challenge", "rest", "training", "evaluation", "nonmember", "member", "solution")
        return {k: None if getattr(self, k) is None else getattr(self, k).tolist() for k in names}


def check_constants(n_total: int, len_training: int, len_challenge: int) -> None:
    """Raise ``SplitError`` unless ``0 < m <= len_training - m <= n_total - 2m`` holds (as
    integers)."""
    for name, value in (
        ("n_total", n_total),
        ("len_training", len_training),
        ("len_challenge", len_challenge),
    ):
        _as_int(value, name)
    if len_challenge < 1:
        raise SplitError(f"len_challenge must be >= 1, got {len_challenge}")
    if not len_challenge <= len_training <= n_total - len_challenge:
        raise SplitError(
            f"inconsistent split sizes: need len_challenge <= len_training <= n_total - "
            f"len_challenge, got n_total={n_total}, len_training={len_training}, "
            f"len_challenge={len_challenge}"
        )


def split_model(
    seed_challenge: int,
    seed_training: int | None = None,
    seed_membership: int | None = None,
    *,
    n_total: int = MICO_N_TOTAL,
    len_training: int = MICO_LEN_TRAINING,
    len_challenge: int = MICO_LEN_CHALLENGE,
    shuffle: Callable[[int, int], np.ndarray] = mico_shuffle,
) -> ModelSplit:
    """Rebuild one model's splits bit-exactly from its seeds (see the module docstring).

    ``shuffle(seed, n)`` computes the two big shuffles (P and Q); it must return exactly what
    ``mico_shuffle`` returns (``farm.store.shuffles`` passes a disk cache of it). R, of ``2m``
    records, is always computed."""
    check_constants(n_total, len_training, len_challenge)
    m = int(len_challenge)
    perm = shuffle(_as_int(seed_challenge, "seed_challenge"), int(n_total))
    challenge, rest = perm[: 2 * m], perm[2 * m :]
    training = evaluation = nonmember = member = solution = None
    if seed_training is not None:
        q = shuffle(_as_int(seed_training, "seed_training"), int(rest.size))
        training, evaluation = rest[q[: len_training - m]], rest[q[len_training - m :]]
    if seed_membership is not None:
        r = mico_shuffle(_as_int(seed_membership, "seed_membership"), 2 * m)
        nonmember, member = challenge[r[:m]], challenge[r[m:]]
        solution = np.zeros(2 * m, dtype=np.int64)
        solution[r[m:]] = 1
    return ModelSplit(
        challenge=challenge,
        rest=rest,
        training=training,
        evaluation=evaluation,
        nonmember=nonmember,
        member=member,
        solution=solution,
    )


def _as_int(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise SplitError(f"{name} must be an integer, got {value!r}")
    return int(value)
