"""PATE's pure core (Papernot et al. 2017, 2018): teacher partitions, noisy vote aggregation and its privacy cost.

* ``partition``: a target's training records split into T disjoint teacher partitions, from a seed.
* ``gnmax`` / ``confident_gnmax``: the noisy argmax of teacher vote counts (``[n_queries, n_classes]``), with
  Gaussian noise; the confident variant answers a query only when its noisy top count clears a threshold.
* ``pate_rdp`` / ``rdp_epsilon``: the data-independent RDP of the answered queries, converted to (epsilon, delta).

The accountant is this module's closed form, written in numpy so that the pure ring needs no torch. It is the
Gaussian mechanism of Opacus' RDP accountant at sampling rate 1 (``opacus.accountants.analysis.rdp``:
``compute_rdp(q=1, noise_multiplier=sigma / sensitivity)`` is ``alpha / (2 (sigma / sensitivity)^2)`` per query),
and the conversion is the one of Opacus' ``get_privacy_spent`` (Balle et al. 2020, Theorem 21); tests check both
against Opacus and against a hand-computed case.

Sensitivities, for one record changed in a teacher's partition (only that teacher's vote can change):

* GNMax on the vote histogram: one count goes down by 1 and another up by 1, so the L2 sensitivity is sqrt(2) and
  a query answered with noise sigma is ``(alpha, alpha / sigma^2)``-RDP (Papernot et al. 2018, Prop. 8);
* confident-GNMax's threshold check on the top count (noise sigma1): the top count moves by at most 1, so each
  query (answered or not) costs ``alpha / (2 sigma1^2)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from farm.recipes import require

# RDP orders: Opacus' DEFAULT_ALPHAS, then larger ones for large noise (few answered queries, sigma >> 1).
ORDERS: tuple[float, ...] = (*(1 + x / 10 for x in range(1, 100)), *map(float, range(12, 64)),
                             80.0, 100.0, 128.0, 256.0, 512.0, 1024.0)
_PARTITION, _THRESHOLD, _GNMAX = 0x7EAC4E, 0x7412E5, 0x6E3A


@dataclass(frozen=True)
class Aggregation:
    """How teacher votes become labels (all fields semantic: they are part of a vote job's key).

    ``sigma``: GNMax noise on every vote count (sigma2 of confident-GNMax); ``0`` is the plain plurality vote (and
    no privacy). ``threshold`` with ``sigma1``: confident-GNMax, a query is answered only when its top count plus
    ``N(0, sigma1^2)`` is at least ``threshold`` (both or neither). ``seed``: the noise's seed. ``delta``: the delta
    of the (epsilon, delta) the answered queries are reported at.
    """

    sigma: float
    threshold: float | None = None
    sigma1: float | None = None
    seed: int = 0
    delta: float = 1e-5

    def __post_init__(self) -> None:
        require(self.sigma >= 0, "sigma", "a number >= 0", self.sigma)
        require((self.threshold is None) == (self.sigma1 is None), "sigma1",
                "given together with threshold (confident-GNMax) or not at all", self.sigma1)
        require(self.sigma1 is None or self.sigma1 > 0, "sigma1", "a number > 0", self.sigma1)
        require(0 < self.delta < 1, "delta", "a probability in (0, 1), such as 1.0e-5", self.delta)

    def labels(self, counts: np.ndarray) -> np.ndarray:
        """Labels of the queries (``[n_queries]`` int64, ``-1`` where confident-GNMax declined to answer)."""
        if self.threshold is None:
            return gnmax(counts, self.sigma, np.random.default_rng([self.seed, _GNMAX]))
        assert self.sigma1 is not None
        return confident_gnmax(counts, threshold=self.threshold, sigma1=self.sigma1, sigma2=self.sigma,
                               seed=self.seed)

    def epsilon(self, *, queries: int, answered: int) -> float:
        """The (epsilon at ``delta``) of ``queries`` queries of which ``answered`` were answered."""
        rdp = pate_rdp(np.asarray(ORDERS), queries=queries, answered=answered, sigma=self.sigma, sigma1=self.sigma1)
        return rdp_epsilon(np.asarray(ORDERS), rdp, self.delta)[0]


def partition(indices: np.ndarray, teachers: int, seed: int | Sequence[int]) -> list[np.ndarray]:
    """``teachers`` disjoint sorted int64 arrays whose union is ``indices`` (repeats dropped), sizes differing by at
    most one: a seeded permutation cut into consecutive pieces. Deterministic in ``seed``.

    >>> parts = partition(np.arange(10), 3, seed=0)
    >>> [p.size for p in parts], np.array_equal(np.sort(np.concatenate(parts)), np.arange(10))
    ([4, 3, 3], True)
    """
    indices = np.unique(np.asarray(indices, dtype=np.int64))
    require(1 <= teachers <= max(1, indices.size), "teachers", f"an integer in [1, {indices.size}]", teachers)
    seeds = [seed] if isinstance(seed, int) else list(seed)
    perm = np.random.default_rng([*seeds, _PARTITION]).permutation(indices)
    return [np.sort(part) for part in np.array_split(perm, teachers)]


def vote_counts(votes: np.ndarray, n_classes: int) -> np.ndarray:
    """``[n_queries, n_classes]`` int64 histogram of teacher votes ``[n_teachers, n_queries]`` (class ids)."""
    votes = np.asarray(votes, dtype=np.int64)
    require(votes.ndim == 2, "votes", "a [n_teachers, n_queries] array of class ids", votes.shape)
    require(bool(((votes >= 0) & (votes < n_classes)).all()), "votes", f"class ids in [0, {n_classes})")
    counts = np.zeros((votes.shape[1], n_classes), dtype=np.int64)
    for teacher in votes:
        counts[np.arange(votes.shape[1]), teacher] += 1
    return counts


def gnmax(counts: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """GNMax: ``argmax_c(counts[q, c] + N(0, sigma^2))`` per query (``[n_queries]`` int64). ``sigma=0`` draws
    nothing and gives the plurality vote (ties to the lowest class)."""
    counts = np.asarray(counts, dtype=np.float64)
    noisy = counts + rng.normal(0.0, sigma, counts.shape) if sigma > 0 else counts
    return np.argmax(noisy, axis=1).astype(np.int64)


def confident_gnmax(counts: np.ndarray, *, threshold: float, sigma1: float, sigma2: float,
                    seed: int | Sequence[int]) -> np.ndarray:
    """Confident-GNMax (Papernot et al. 2018, Alg. 1): query ``q`` is answered, by ``gnmax`` with ``sigma2``, only
    when ``max_c counts[q, c] + N(0, sigma1^2) >= threshold``; ``-1`` marks the others. The threshold noise and the
    GNMax noise come from two streams of ``seed`` (each query's draws do not depend on which others are answered)."""
    counts = np.asarray(counts, dtype=np.float64)
    seeds = [seed] if isinstance(seed, int) else list(seed)
    check = counts.max(axis=1) + np.random.default_rng([*seeds, _THRESHOLD]).normal(0.0, sigma1, counts.shape[0])
    labels = gnmax(counts, sigma2, np.random.default_rng([*seeds, _GNMAX]))
    return np.where(check >= threshold, labels, -1).astype(np.int64)


def gaussian_rdp(orders: np.ndarray, noise_multiplier: float) -> np.ndarray:
    """RDP of one Gaussian mechanism with noise ``noise_multiplier`` x its L2 sensitivity: ``alpha / (2 nm^2)``
    (Mironov 2017, Prop. 7; Opacus' ``compute_rdp`` at ``q=1``); ``inf`` for ``nm=0``."""
    orders = np.asarray(orders, dtype=np.float64)
    if noise_multiplier == 0:
        return np.full(orders.shape, np.inf)
    return orders / (2 * noise_multiplier**2)


def pate_rdp(orders: np.ndarray, *, queries: int, answered: int, sigma: float,
             sigma1: float | None = None) -> np.ndarray:
    """Data-independent RDP of PATE's aggregation, composed over queries: ``answered`` GNMax answers with noise
    ``sigma`` (L2 sensitivity sqrt(2): ``alpha / sigma^2`` each) plus, for confident-GNMax (``sigma1`` given), the
    threshold check of all ``queries`` (sensitivity 1: ``alpha / (2 sigma1^2)`` each)."""
    require(0 <= answered <= queries, "answered", f"an integer in [0, queries={queries}]", answered)
    orders = np.asarray(orders, dtype=np.float64)
    gnmax_rdp = orders / sigma**2 if sigma > 0 else np.full(orders.shape, np.inf)  # gaussian_rdp(sigma / sqrt(2))
    rdp = answered * gnmax_rdp if answered else np.zeros(orders.shape)
    if sigma1 is not None and queries:
        rdp = rdp + queries * gaussian_rdp(orders, sigma1)
    return rdp


def rdp_epsilon(orders: np.ndarray, rdp: np.ndarray, delta: float) -> tuple[float, float]:
    """``(epsilon, best order)`` at ``delta`` from an RDP curve: ``min_alpha rdp + log((alpha-1)/alpha)
    - (log(delta) + log(alpha)) / (alpha - 1)`` (Balle et al. 2020, Thm. 21; Opacus' ``get_privacy_spent``), never
    above the classic ``rdp + log(1/delta) / (alpha - 1)`` (Mironov 2017). ``(0, nan)`` when ``rdp`` is all zero."""
    orders, rdp = np.asarray(orders, dtype=np.float64), np.asarray(rdp, dtype=np.float64)
    if not rdp.any():
        return 0.0, math.nan
    with np.errstate(invalid="ignore"):
        eps = rdp - (math.log(delta) + np.log(orders)) / (orders - 1) + np.log((orders - 1) / orders)
    if np.isnan(eps).all() or np.isinf(eps).all():
        return math.inf, math.nan
    best = int(np.nanargmin(eps))
    return max(0.0, float(eps[best])), float(orders[best])



def mix_seeds(*seeds: int) -> int:
    """One non-negative 63-bit seed from several (a SeedSequence hash: stable across processes)."""
    return int(np.random.SeedSequence([s & (2**63 - 1) for s in seeds]).generate_state(1, np.uint64)[0] >> 1)
