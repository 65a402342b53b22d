"""Independent reference implementations for tests: plain-Python MT19937 and the MICO swap loop."""

from __future__ import annotations

import numpy as np


class MT19937:
    """Textbook MT19937 (Matsumoto & Nishimura 1998), init_genrand seeding, 32-bit tempered
    outputs."""

    def __init__(self, seed: int):
        self.mt = [0] * 624
        self.mt[0] = seed & 0xFFFFFFFF
        for i in range(1, 624):
            prev = self.mt[i - 1]
            self.mt[i] = (1812433253 * (prev ^ (prev >> 30)) + i) & 0xFFFFFFFF
        self.index = 624

    def _twist(self) -> None:
        for i in range(624):
            y = (self.mt[i] & 0x80000000) | (self.mt[(i + 1) % 624] & 0x7FFFFFFF)
            self.mt[i] = self.mt[(i + 397) % 624] ^ (y >> 1) ^ (0x9908B0DF if y & 1 else 0)
        self.index = 0

    def next(self) -> int:
        if self.index >= 624:
            self._twist()
        y = self.mt[self.index]
        self.index += 1
        y ^= y >> 11
        y ^= (y << 7) & 0x9D2C5680
        y ^= (y << 15) & 0xEFC60000
        y ^= y >> 18
        return y & 0xFFFFFFFF


def swap_shuffle(seed: int, n: int) -> list[int]:
    """The facts file's loop, literally: for i in 0..n-2, z = r_i mod (n - i), swap i and i + z."""
    gen = MT19937(seed & 0xFFFFFFFF)
    perm = list(range(n))
    for i in range(n - 1):
        z = gen.next() % (n - i)
        perm[i], perm[i + z] = perm[i + z], perm[i]
    return perm


def loop_shuffle(seed: int, n: int) -> np.ndarray:
    """The shuffle as the package computed it before it was vectorised (numpy's MT19937 draws, then
    the sequential swap loop in Python): the reference the vectorised one must match bit for bit
    (``tests/mico/test_splits.py``, ``benchmarks/splits.py``)."""
    if n < 2:
        return np.arange(n, dtype=np.int64)
    raw = np.random.RandomState(int(seed) & 0xFFFFFFFF).randint(
        0, 2**32, size=n - 1, dtype=np.uint32
    )
    offsets = (raw.astype(np.int64) % np.arange(n, 1, -1, dtype=np.int64)).tolist()
    perm = list(range(n))
    for i, z in enumerate(offsets):
        j = i + z
        perm[i], perm[j] = perm[j], perm[i]
    return np.asarray(perm, dtype=np.int64)
