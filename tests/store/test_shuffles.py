"""The disk cache of MICO's big shuffles (farm.store.shuffles): a rerun reads what the first run
computed, and an entry that is not exactly what was written is recomputed, never trusted."""

import numpy as np
import pytest

from farm.mico.splits import mico_shuffle, split_model
from farm.store import shuffles
from farm.store.shuffles import MIN_CACHED_N, ShuffleCache

N = MIN_CACHED_N + 17


def _counting(monkeypatch):
    calls = []

    def counted(seed, n):
        calls.append((seed, n))
        return mico_shuffle(seed, n)

    monkeypatch.setattr(shuffles, "mico_shuffle", counted)
    return calls


def test_a_rerun_reads_instead_of_computing(tmp_path, monkeypatch):
    calls = _counting(monkeypatch)
    first = ShuffleCache(tmp_path).shuffle(7, N)
    again = ShuffleCache(tmp_path)  # a new process: nothing held in memory
    got = again.shuffle(7, N)
    assert got.dtype == np.int64 and np.array_equal(got, first)
    assert np.array_equal(got, mico_shuffle(7, N))
    assert calls == [(7, N)] and (again.hits, again.misses, again.rejected) == (1, 0, 0)


def test_the_key_is_the_low_32_bits_of_the_seed_and_n(tmp_path):
    cache = ShuffleCache(tmp_path)
    cache.shuffle(-1, N)
    assert cache.path(-1, N) == cache.path(2**32 - 1, N) != cache.path(2**32 - 1, N + 1)
    assert np.array_equal(cache.shuffle(2**32 - 1, N), mico_shuffle(-1, N)) and cache.hits == 1
    assert np.array_equal(cache.shuffle(5, N + 1), mico_shuffle(5, N + 1))


def _corruptions(data: bytes):
    yield "empty", b""
    yield "truncated", data[: len(data) // 2]
    yield "one byte more", data + b"\0"
    flipped = bytearray(data)
    flipped[-5] ^= 0x01
    yield "payload bit flipped", bytes(flipped)
    header = bytearray(data)
    header[0] ^= 0xFF
    yield "bad magic", bytes(header)


@pytest.mark.parametrize(
    "case", ["empty", "truncated", "one byte more", "payload bit flipped", "bad magic"]
)
def test_a_corrupt_or_partial_entry_is_recomputed(tmp_path, monkeypatch, case):
    cache = ShuffleCache(tmp_path)
    want = cache.shuffle(3, N)
    path = cache.path(3, N)
    bad = dict(_corruptions(path.read_bytes()))[case]
    path.write_bytes(bad)
    calls = _counting(monkeypatch)
    again = ShuffleCache(tmp_path)
    assert np.array_equal(again.shuffle(3, N), want)
    assert calls == [(3, N)] and again.rejected == 1
    third = ShuffleCache(tmp_path)  # rewritten: trusted again
    assert np.array_equal(third.shuffle(3, N), want) and third.hits == 1


def test_another_entrys_content_is_not_trusted(tmp_path):
    """A valid file under the wrong name (say, copied by hand) is refused: its header names its
    key."""
    cache = ShuffleCache(tmp_path)
    cache.shuffle(1, N)
    cache.shuffle(2, N)
    cache.path(2, N).write_bytes(cache.path(1, N).read_bytes())
    again = ShuffleCache(tmp_path)
    assert np.array_equal(again.shuffle(2, N), mico_shuffle(2, N)) and again.rejected == 1


def test_small_shuffles_are_not_cached(tmp_path):
    cache = ShuffleCache(tmp_path)
    assert np.array_equal(cache.shuffle(9, 200), mico_shuffle(9, 200))
    assert not tmp_path.exists() or not any(tmp_path.rglob("*.bin"))


def test_an_unwritable_folder_computes_without_the_cache(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    cache = ShuffleCache(blocker / "shuffles")
    assert np.array_equal(cache.shuffle(4, N), mico_shuffle(4, N))
    assert np.array_equal(cache.shuffle(4, N), mico_shuffle(4, N)) and cache.misses == 2


def test_default_lives_under_farm_cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("FARM_CACHE_DIR", str(tmp_path / "c"))
    cache = ShuffleCache.default()
    assert cache.root == tmp_path / "c" / "shuffles" and ShuffleCache.default() is cache


def test_split_model_through_the_cache_is_the_same_split(tmp_path):
    cache = ShuffleCache(tmp_path)
    sizes = dict(n_total=3 * N, len_training=2 * N, len_challenge=50)
    plain = split_model(11, 22, 33, **sizes)
    for _ in range(2):  # computed, then read
        cached = split_model(11, 22, 33, **sizes, shuffle=cache.shuffle)
        assert all(
            np.array_equal(getattr(plain, k), getattr(cached, k))
            for k in ("challenge", "rest", "training", "evaluation", "nonmember", "member")
        )
    assert (cache.misses, cache.hits) == (2, 2)
