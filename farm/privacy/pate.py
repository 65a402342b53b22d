"""PATE's pure core (Papernot et al. 2017, 2018): teacher partitions, noisy vote aggregation and its
privacy cost.

* ``partition``: a target's training records split into T disjoint teacher partitions, each record
  placed by a keyed hash of (seed, record id) alone (``teacher_of``), whatever the other records
  are.
* ``gnmax`` / ``confident_gnmax``: the noisy argmax of teacher vote counts
  (``[n_queries, n_classes]``), with Gaussian noise; the confident variant answers a query only when
  its noisy top count clears a threshold.
* ``pate_rdp`` / ``rdp_epsilon``: the data-independent RDP of the answered queries, converted to
  (epsilon, delta).

What the partition guarantees. Record ``i`` goes to teacher
``splitmix64(splitmix64(i) ^ key) mod T``, ``key`` a splitmix64 fold of the seed (``teacher_of``):
exact 64-bit integer arithmetic, the same in every process and on every platform, and a function of
that record's id and the seed only. So for two neighbouring training sets:

* add or remove one record: exactly one teacher's data changes (the record's teacher gains or loses
  it);
* substitute one record for another: at most two teachers' data change (the old record's and the
  new's).

The price: partition sizes are binomial(n, 1/T) (mean n/T, sd about sqrt(n/T)), not equal;
``partition`` raises ``SpecError`` rather than leave a teacher with no records (for the shipped
settings, 900 records over at most 50 teachers, the chance of that is below T (1 - 1/T)^n = 6e-7 per
target). Cutting a seeded permutation into equal pieces, as before, balances sizes but moves the cut
points when one record is added, changing many teachers' data, which no per-teacher sensitivity
covers.

What epsilon assumes. The accountant is this module's closed form, in numpy so that the pure ring
needs no torch: the data-independent RDP of the answered queries, composed over queries (no
data-dependent or smooth-sensitivity analysis; it covers the vote, not the teachers' training, which
is never released). It is the Gaussian mechanism of Opacus' RDP accountant at sampling rate 1
(``opacus.accountants.analysis.rdp``: ``compute_rdp(q=1, noise_multiplier=sigma / sensitivity)`` is
``alpha / (2 (sigma / sensitivity)^2)`` per query), and the conversion is the one of Opacus'
``get_privacy_spent`` (Balle et al. 2020, Theorem 21); tests check both against Opacus and against a
hand-computed case. Each teacher casts one vote per query, a function of its own data only, so the
sensitivities follow from how many teachers' data a neighbouring dataset changes
(``ADJACENCY_TEACHERS``: 1 under add/remove, 2 under substitution;
``farm.privacy.accounting.ADJACENCIES``):

* GNMax on the vote histogram: each changed teacher moves one vote (a count down by 1, another up by
  1), so the L2 sensitivity is sqrt(2) under add/remove and 2 sqrt(2) under substitution (both
  teachers moving a vote between the same two classes); a query answered with noise sigma is
  ``(alpha, alpha Delta^2 / (2 sigma^2))``-RDP: ``alpha / sigma^2`` (Papernot et al. 2018, Prop. 8),
  or ``4 alpha / sigma^2`` under substitution;
* confident-GNMax's threshold check on the top count (noise sigma1): the top count moves by at most
  1 under add/remove, 2 under substitution, so each query (answered or not) costs
  ``alpha / (2 sigma1^2)``, or ``2 alpha / sigma1^2``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from farm.errors import SpecError, require
from farm.privacy.accounting import ADJACENCIES

# RDP orders: Opacus' DEFAULT_ALPHAS, then larger ones for large noise (few answered queries, sigma
# >> 1).
ORDERS: tuple[float, ...] = (
    *(1 + x / 10 for x in range(1, 100)),
    *map(float, range(12, 64)),
    80.0,
    100.0,
    128.0,
    256.0,
    512.0,
    1024.0,
)
_PARTITION, _THRESHOLD, _GNMAX = 0x7EAC4E, 0x7412E5, 0x6E3A
# how many teachers' data one neighbouring dataset changes, by adjacency (``ADJACENCIES``),
# given a partition that places each record by its own id (``partition``)
ADJACENCY_TEACHERS = {"add/remove": 1, "substitution": 2}
_U64 = 2**64 - 1
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)  # splitmix64's constants
_MIX1, _MIX2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)


@dataclass(frozen=True, kw_only=True)
class Aggregation:
    """How teacher votes become labels (all fields semantic: they are part of a vote job's key).

    ``sigma``: GNMax noise on every vote count (sigma2 of confident-GNMax); ``0`` is the plain
    plurality vote (and no privacy). ``threshold`` with ``sigma1``: confident-GNMax, a query is
    answered only when its top count plus ``N(0, sigma1^2)`` is at least ``threshold`` (both or
    neither). ``seed``: the noise's seed. ``delta``: the delta of the (epsilon, delta) the answered
    queries are reported at. ``adjacency``: the neighbouring datasets that epsilon is for
    (``farm.privacy.accounting.ADJACENCIES``); it sets the sensitivities (``pate_rdp``).
    """

    sigma: float
    threshold: float | None = None
    sigma1: float | None = None
    seed: int = 0
    delta: float = 1e-5
    adjacency: str = "add/remove"

    def __post_init__(self) -> None:
        require(
            self.adjacency in ADJACENCIES, "adjacency", " or ".join(ADJACENCIES), self.adjacency
        )
        require(self.sigma >= 0, "sigma", "a number >= 0", self.sigma)
        require(
            (self.threshold is None) == (self.sigma1 is None),
            "sigma1",
            "given together with threshold (confident-GNMax) or not at all",
            self.sigma1,
        )
        require(self.sigma1 is None or self.sigma1 > 0, "sigma1", "a number > 0", self.sigma1)
        require(0 < self.delta < 1, "delta", "a probability in (0, 1), such as 1.0e-5", self.delta)

    def labels(self, counts: np.ndarray) -> np.ndarray:
        """Labels of the queries (``[n_queries]`` int64, ``-1`` where confident-GNMax declined to
        answer)."""
        if self.threshold is None:
            return gnmax(counts, self.sigma, np.random.default_rng([self.seed, _GNMAX]))
        assert self.sigma1 is not None
        return confident_gnmax(
            counts, threshold=self.threshold, sigma1=self.sigma1, sigma2=self.sigma, seed=self.seed
        )

    def epsilon(self, *, queries: int, answered: int) -> float:
        """The (epsilon at ``delta``) of ``queries`` queries of which ``answered`` were answered,
        for neighbouring datasets of ``adjacency`` (data-independent RDP, ``pate_rdp``)."""
        rdp = pate_rdp(
            np.asarray(ORDERS),
            queries=queries,
            answered=answered,
            sigma=self.sigma,
            sigma1=self.sigma1,
            adjacency=self.adjacency,
        )
        return rdp_epsilon(np.asarray(ORDERS), rdp, self.delta)[0]


def splitmix64(x: np.ndarray | int) -> np.ndarray:
    """splitmix64's output function (Steele, Lea & Flood 2014; Vigna's reference C) on each 64-bit
    word of ``x``, all mod 2^64 (uint64)::

        z = x + 0x9E3779B97F4A7C15
        z = (z ^ z >> 30) * 0xBF58476D1CE4E5B9
        z = (z ^ z >> 27) * 0x94D049BB133111EB
        return z ^ z >> 31

    A bijection of 64-bit words; exact integer arithmetic, so the same in every process and on
    every platform. Negative int64s enter as their two's complement.

    >>> hex(int(splitmix64(0)))  # the first output of splitmix64 seeded with 0
    '0xe220a8397b1dcdaf'
    """
    z = np.asarray(x)
    z = z if z.dtype == np.uint64 else z.astype(np.int64).view(np.uint64)
    with np.errstate(over="ignore"):
        z = z + _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * _MIX1
        z = (z ^ (z >> np.uint64(27))) * _MIX2
        return z ^ (z >> np.uint64(31))


def teacher_of(ids: np.ndarray, teachers: int, seed: int | Sequence[int]) -> np.ndarray:
    """The teacher (in ``[0, teachers)``, int64) of each record id:
    ``splitmix64(splitmix64(id) ^ key) mod teachers``, where ``key`` starts at
    ``splitmix64(0x7EAC4E)`` and folds in each of the seed's integers ``s`` (mod 2^64) as
    ``key = splitmix64(key ^ s)``. A keyed hash: a record's teacher depends on its own id and the
    seed only, so records' teachers are independent and uniform (up to a bias below
    ``teachers / 2^64``)."""
    require(teachers >= 1, "teachers", "an integer >= 1", teachers)
    key = splitmix64(_PARTITION)
    for s in [seed] if isinstance(seed, int) else list(seed):
        key = splitmix64(key ^ np.uint64(int(s) & _U64))
    hashed = splitmix64(splitmix64(np.asarray(ids, dtype=np.int64)) ^ key)
    return (hashed % np.uint64(teachers)).astype(np.int64)


def partition(indices: np.ndarray, teachers: int, seed: int | Sequence[int]) -> list[np.ndarray]:
    """``teachers`` disjoint sorted int64 arrays whose union is ``indices`` (repeats dropped):
    record ``i`` goes to teacher ``teacher_of(i, teachers, seed)``, whatever the other records are.
    Deterministic in ``seed``.

    Neighbouring record sets have neighbouring partitions: adding or removing one record changes
    exactly one teacher's array, substituting one record for another at most two. Sizes are
    binomial(n, 1/T), not equal. ``SpecError`` (key ``teachers``) when there are more teachers than
    records or a teacher would have no records.

    >>> parts = partition(np.arange(10), 3, seed=0)
    >>> [p.tolist() for p in parts]
    [[2, 4, 6, 7, 9], [5], [0, 1, 3, 8]]
    """
    indices = np.unique(np.asarray(indices, dtype=np.int64))
    require(
        1 <= teachers <= max(1, indices.size),
        "teachers",
        f"an integer in [1, {indices.size}]",
        teachers,
    )
    owner = teacher_of(indices, teachers, seed)
    sizes = np.bincount(owner, minlength=teachers)
    if not sizes.all():
        raise SpecError(
            f"{teachers} teachers over {indices.size} records leave teacher "
            f"{int(np.argmin(sizes))} with no records (partition sizes are binomial); use fewer "
            f"teachers",
            key="teachers",
        )
    # a stable sort of sorted indices: each teacher's group stays sorted
    grouped = indices[np.argsort(owner, kind="stable")]
    return np.split(grouped, np.cumsum(sizes)[:-1])


def vote_counts(votes: np.ndarray, n_classes: int) -> np.ndarray:
    """``[n_queries, n_classes]`` int64 histogram of teacher votes ``[n_teachers, n_queries]``
    (class ids)."""
    votes = np.asarray(votes, dtype=np.int64)
    require(votes.ndim == 2, "votes", "a [n_teachers, n_queries] array of class ids", votes.shape)
    require(
        bool(((votes >= 0) & (votes < n_classes)).all()), "votes", f"class ids in [0, {n_classes})"
    )
    counts = np.zeros((votes.shape[1], n_classes), dtype=np.int64)
    for teacher in votes:
        counts[np.arange(votes.shape[1]), teacher] += 1
    return counts


def gnmax(counts: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """GNMax: ``argmax_c(counts[q, c] + N(0, sigma^2))`` per query (``[n_queries]`` int64).
    ``sigma=0`` draws nothing and gives the plurality vote (ties to the lowest class)."""
    counts = np.asarray(counts, dtype=np.float64)
    noisy = counts + rng.normal(0.0, sigma, counts.shape) if sigma > 0 else counts
    return np.argmax(noisy, axis=1).astype(np.int64)


def confident_gnmax(
    counts: np.ndarray, *, threshold: float, sigma1: float, sigma2: float, seed: int | Sequence[int]
) -> np.ndarray:
    """Confident-GNMax (Papernot et al. 2018, Alg. 1): query ``q`` is answered, by ``gnmax`` with
    ``sigma2``, only when ``max_c counts[q, c] + N(0, sigma1^2) >= threshold``; ``-1`` marks the
    others. The threshold noise and the GNMax noise come from two streams of ``seed`` (each query's
    draws do not depend on which others are answered)."""
    counts = np.asarray(counts, dtype=np.float64)
    seeds = [seed] if isinstance(seed, int) else list(seed)
    check = counts.max(axis=1) + np.random.default_rng([*seeds, _THRESHOLD]).normal(
        0.0, sigma1, counts.shape[0]
    )
    labels = gnmax(counts, sigma2, np.random.default_rng([*seeds, _GNMAX]))
    return np.where(check >= threshold, labels, -1).astype(np.int64)


def gaussian_rdp(orders: np.ndarray, noise_multiplier: float) -> np.ndarray:
    """RDP of one Gaussian mechanism with noise ``noise_multiplier`` x its L2 sensitivity: ``alpha /
    (2 nm^2)`` (Mironov 2017, Prop. 7; Opacus' ``compute_rdp`` at ``q=1``); ``inf`` for ``nm=0``."""
    orders = np.asarray(orders, dtype=np.float64)
    if noise_multiplier == 0:
        return np.full(orders.shape, np.inf)
    return orders / (2 * noise_multiplier**2)


def pate_rdp(
    orders: np.ndarray,
    *,
    queries: int,
    answered: int,
    sigma: float,
    sigma1: float | None = None,
    adjacency: str = "add/remove",
) -> np.ndarray:
    """Data-independent RDP of PATE's aggregation, composed over queries, for neighbouring datasets
    of ``adjacency``, where k = ``ADJACENCY_TEACHERS[adjacency]`` teachers' data differ (1
    add/remove, 2 substitution): ``answered`` GNMax answers with noise ``sigma`` (L2 sensitivity k
    sqrt(2): ``alpha k^2 / sigma^2`` each) plus, for confident-GNMax (``sigma1`` given), the
    threshold check of all ``queries`` (sensitivity k: ``alpha k^2 / (2 sigma1^2)`` each)."""
    require(0 <= answered <= queries, "answered", f"an integer in [0, queries={queries}]", answered)
    require(
        adjacency in ADJACENCY_TEACHERS, "adjacency", " or ".join(ADJACENCY_TEACHERS), adjacency
    )
    k = ADJACENCY_TEACHERS[adjacency]
    orders = np.asarray(orders, dtype=np.float64)
    # gaussian_rdp(orders, sigma / (k sqrt(2))), written so that k = 1 gives alpha / sigma^2 exactly
    gnmax_rdp = orders * k**2 / sigma**2 if sigma > 0 else np.full(orders.shape, np.inf)
    rdp = answered * gnmax_rdp if answered else np.zeros(orders.shape)
    if sigma1 is not None and queries:
        # queries * gaussian_rdp(orders, sigma1 / k)
        rdp = rdp + queries * k**2 * gaussian_rdp(orders, sigma1)
    return rdp


def rdp_epsilon(orders: np.ndarray, rdp: np.ndarray, delta: float) -> tuple[float, float]:
    """``(epsilon, best order)`` at ``delta`` from an RDP curve (Balle et al. 2020, Thm. 21;
    Opacus' ``get_privacy_spent``)::

        min over alpha of  rdp + log((alpha - 1) / alpha) - (log(delta) + log(alpha)) / (alpha - 1)

    never above the classic ``rdp + log(1/delta) / (alpha - 1)`` (Mironov 2017). ``(0, nan)`` when
    ``rdp`` is all zero."""
    orders, rdp = np.asarray(orders, dtype=np.float64), np.asarray(rdp, dtype=np.float64)
    if not rdp.any():
        return 0.0, math.nan
    with np.errstate(invalid="ignore"):
        eps = (
            rdp - (math.log(delta) + np.log(orders)) / (orders - 1) + np.log((orders - 1) / orders)
        )
    if np.isnan(eps).all() or np.isinf(eps).all():
        return math.inf, math.nan
    best = int(np.nanargmin(eps))
    return max(0.0, float(eps[best])), float(orders[best])


def mix_seeds(*seeds: int) -> int:
    """One non-negative 63-bit seed from several (a SeedSequence hash: stable across processes)."""
    return int(
        np.random.SeedSequence([s & (2**63 - 1) for s in seeds]).generate_state(1, np.uint64)[0]
        >> 1
    )
