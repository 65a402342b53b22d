"""MICO's big shuffles cached on disk: a rerun reads a model's splits instead of recomputing them.

A shuffle depends on its seed's low 32 bits and its size ``n`` only (``farm.mico.splits``), so an
entry is keyed by exactly those: ``<cache_root>/shuffles/v1/<n>/<seed32 as 8 hex digits>.bin``.
The file is a 56-byte header (magic ``farmshf1``, ``n`` and the seed as little-endian uint64, the
sha256 of the payload) and the permutation as little-endian uint32 (``4n`` bytes: 273 KB for the
68,221-record population; a MICO tree's 600 challenge and 300 training shuffles take ~245 MB).

An entry is trusted only when its size, header and checksum all match; anything else (a partial
write, a truncated or corrupted file, another entry's content) is recomputed and rewritten.
Entries are written atomically (temporary file, then rename) without fsync: after a power loss a
file may be empty or partial, which the checks above reject. When the folder cannot be written,
shuffles are computed without it. Shuffles below ``MIN_CACHED_N`` are computed every time (cheaper
than a file read).
"""

from __future__ import annotations

import hashlib
import struct
from pathlib import Path

import numpy as np

from farm.mico.splits import mico_shuffle
from farm.store.atomic import atomic_write_bytes
from farm.store.store import cache_root

MAGIC = b"farmshf1"
_HEADER = struct.Struct("<8sQQ32s")  # magic, n, seed32, sha256(payload)
MIN_CACHED_N = 10_000


class ShuffleCache:
    """``shuffle(seed, n)``: ``mico_shuffle(seed, n)``, read from ``root`` when a valid entry is
    there, else computed and stored. ``hits``, ``misses`` and ``rejected`` (entries found invalid,
    then recomputed) count lookups."""

    _instances: dict[str, ShuffleCache] = {}

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.hits = self.misses = self.rejected = 0
        self._unwritable = False

    @classmethod
    def default(cls) -> ShuffleCache:
        """One instance per cache folder: ``<cache_root()>/shuffles`` (``$FARM_CACHE_DIR``)."""
        root = str(cache_root() / "shuffles")
        if root not in cls._instances:
            cls._instances[root] = cls(root)
        return cls._instances[root]

    def path(self, seed: int, n: int) -> Path:
        """Where the entry of ``(seed & 0xFFFFFFFF, n)`` lies."""
        return self.root / "v1" / str(int(n)) / f"{int(seed) & 0xFFFFFFFF:08x}.bin"

    def shuffle(self, seed: int, n: int) -> np.ndarray:
        """Exactly ``mico_shuffle(seed, n)`` (int64, shape ``[n]``)."""
        if n < MIN_CACHED_N:
            return mico_shuffle(seed, n)
        seed32, path = int(seed) & 0xFFFFFFFF, self.path(seed, n)
        found = self._read(path, seed32, int(n))
        if found is not None:
            self.hits += 1
            return found
        self.misses += 1
        perm = mico_shuffle(seed, n)
        self._write(path, seed32, perm)
        return perm

    def _read(self, path: Path, seed32: int, n: int) -> np.ndarray | None:
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError:
            self.rejected += 1
            return None
        if len(data) != _HEADER.size + 4 * n:
            self.rejected += 1
            return None
        magic, got_n, got_seed, digest = _HEADER.unpack_from(data)
        payload = memoryview(data)[_HEADER.size :]
        if (magic, got_n, got_seed) != (MAGIC, n, seed32) or hashlib.sha256(
            payload
        ).digest() != digest:
            self.rejected += 1
            return None
        return np.frombuffer(payload, dtype="<u4").astype(np.int64)

    def _write(self, path: Path, seed32: int, perm: np.ndarray) -> None:
        if self._unwritable:
            return
        payload = perm.astype("<u4").tobytes()
        header = _HEADER.pack(MAGIC, perm.size, seed32, hashlib.sha256(payload).digest())
        try:
            atomic_write_bytes(path, header + payload, durable=False)
        except OSError:
            self._unwritable = True  # a read-only or full disk: compute without the cache


def cached_shuffle(seed: int, n: int) -> np.ndarray:
    """``mico_shuffle`` through the default cache (``ShuffleCache.default()``)."""
    return ShuffleCache.default().shuffle(seed, n)
