import numpy as np
import pytest

from farm.errors import StoreError
from farm.store.store import Store, fingerprint


@pytest.fixture(params=["local", "memory"])
def store(request, tmp_path):
    if request.param == "local":
        return Store(tmp_path / "store")
    import uuid

    return Store(f"memory://farm-test-{uuid.uuid4().hex}")


def test_arrays_roundtrip_and_verify(store):
    key = "ab" + "0" * 62
    assert not store.exists(key)
    store.put_arrays(
        key,
        {"logits": np.arange(6, dtype=np.float32).reshape(3, 2), "indices": np.arange(3)},
        {"n": 3},
    )
    assert store.exists(key) and store.valid(key) and store.verify(key) == []
    arrays = store.get_arrays(key)
    assert arrays["logits"].dtype == np.float32 and arrays["indices"].tolist() == [0, 1, 2]
    assert store.manifest(key)["meta"] == {"n": 3}


def test_dir_roundtrip(store, tmp_path):
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "a.txt").write_text("hello")
    (src / "sub" / "b.bin").write_bytes(b"\0\1\2")
    key = "cd" + "1" * 62
    store.put_dir(key, src)
    got = store.get_dir(key, tmp_path / "cache")
    assert (got / "a.txt").read_text() == "hello" and (
        got / "sub" / "b.bin"
    ).read_bytes() == b"\0\1\2"


@pytest.mark.parametrize("damage", ["truncate", "flip", "delete"])
def test_corruption_is_detected_and_never_loaded(store, damage):
    key = "ef" + "2" * 62
    store.put_arrays(key, {"x": np.arange(1000)})
    path = store.path(key, "x.npy")
    data = store.fs.cat_file(path)
    if damage == "truncate":
        store.fs.pipe_file(path, data[: len(data) // 2])
    elif damage == "flip":
        store.fs.pipe_file(path, data[:-1] + bytes([data[-1] ^ 0xFF]))
    else:
        store.fs.rm(path)
    assert store.exists(key) and not store.valid(key)
    assert "x.npy" in store.verify(key)[0]
    with pytest.raises(StoreError, match="x.npy"):
        store.get_arrays(key)


def test_missing_manifest_means_absent(store):
    key = "99" + "3" * 62
    store.fs.makedirs(store.path(key), exist_ok=True)
    store.fs.pipe_file(store.path(key, "x.npy"), b"partial")  # a crash before the manifest
    assert not store.exists(key) and not store.valid(key)


def test_fingerprint_tracks_content(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "f").write_text("1")
    a = fingerprint(tmp_path / "d")
    (tmp_path / "d" / "f").write_text("2")
    assert fingerprint(tmp_path / "d") != a


def test_complete_reads_no_artifact_bytes_and_verify_catches_same_size_corruption(
    tmp_path, monkeypatch
):
    import os

    store = Store(tmp_path / "store")
    key = "aa" + "4" * 62
    store.put_arrays(key, {"w": np.arange(100_000, dtype=np.float32)})
    path = store.path(key, "w.npy")
    st = os.stat(path)
    data = bytearray(open(path, "rb").read())
    data[-5] ^= 0xFF  # same size, different bytes; bit rot keeps the stamp
    open(path, "wb").write(bytes(data))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    opened = []
    real_open = store.fs.open
    monkeypatch.setattr(
        store.fs, "open", lambda p, *a, **k: opened.append(p) or real_open(p, *a, **k)
    )
    assert (
        store.complete(key) and [p for p in opened if not p.endswith("manifest.json")] == []
    )  # metadata only
    assert "w.npy" in store.verify(key)[0] and store.verify_all() == {key: store.verify(key)}
    with pytest.raises(StoreError, match="w.npy"):  # a load checks what it reads
        store.get_arrays(key)


def test_complete_falls_back_to_checksums_when_stamps_differ(tmp_path):
    import os
    import shutil

    store = Store(tmp_path / "a")
    key = "bb" + "5" * 62
    store.put_arrays(key, {"w": np.arange(10)})
    shutil.copytree(tmp_path / "a", tmp_path / "b")  # a copy: new mtimes, same bytes
    copy = Store(tmp_path / "b")
    os.utime(copy.path(key, "w.npy"), ns=(1, 1))
    assert copy.complete(key)
    with open(copy.path(key, "w.npy"), "r+b") as handle:
        handle.seek(-1, 2)
        handle.write(b"\xff")
    assert not copy.complete(key)  # stamp differs -> checksums -> corrupt


def test_fingerprint_is_cached_across_processes_and_independent_of_location(tmp_path, monkeypatch):
    import os
    import shutil

    from farm.store import store as store_mod

    monkeypatch.setenv("FARM_CACHE_DIR", str(tmp_path / "cache"))
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "w.bin").write_bytes(b"x" * 1000)
    os.utime(tmp_path / "d" / "w.bin", ns=(10**18, 10**18))  # an old file: safe to cache
    shutil.copytree(tmp_path / "d", tmp_path / "moved")
    assert fingerprint(tmp_path / "d") == fingerprint(tmp_path / "moved")
    store_mod.FileDigests._instances.clear()  # a new process: only the SQLite cache remains
    monkeypatch.setattr(
        store_mod, "file_sha256", lambda p: (_ for _ in ()).throw(AssertionError("re-hashed"))
    )
    fingerprint(tmp_path / "d")


def test_fingerprinting_a_large_uncached_file_says_so_once(tmp_path, monkeypatch):
    import logging
    import os

    from farm.store import store as store_mod

    monkeypatch.setenv("FARM_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(store_mod, "LOUD_BYTES", 1000)  # "large" for the test
    store_mod.FileDigests._instances.clear()
    for name, size in (("big.bin", 1000), ("small.bin", 999)):
        (tmp_path / name).write_bytes(b"x" * size)
        os.utime(tmp_path / name, ns=(10**18, 10**18))  # an old file: cached after one read
    said: list[str] = []
    heard = logging.Handler(logging.INFO)
    heard.emit = lambda record: said.append(record.getMessage())  # type: ignore[method-assign]
    logger = logging.getLogger("farm.store.store")
    logger.addHandler(heard)  # heard even where an earlier `farm` run stopped propagation
    level = logger.level
    logger.setLevel(logging.INFO)
    try:
        for _ in range(2):
            fingerprint(tmp_path / "big.bin")
            fingerprint(tmp_path / "small.bin")
    finally:
        logger.removeHandler(heard)
        logger.setLevel(level)
    assert len(said) == 1 and said[0].startswith(f"fingerprinting {tmp_path / 'big.bin'} ("), said


def test_one_cache_folder_holds_the_default_store_and_the_bench_table(tmp_path, monkeypatch):
    """``cache_root``: ``$FARM_CACHE_DIR``, else ``$XDG_CACHE_HOME/farm``, else ``~/.cache/farm``
    (empty counts as unset); the default store is ``$FARM_STORE``, else ``cache_root()/store``,
    and ``farm bench``'s table lies in the same folder."""
    from farm.commands.dry_run import default_table_path
    from farm.store.store import cache_root, default_store

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    for name in ("FARM_CACHE_DIR", "XDG_CACHE_HOME", "FARM_STORE"):
        monkeypatch.setenv(name, "")
    assert cache_root() == tmp_path / "home" / ".cache" / "farm"
    assert default_store() == str(tmp_path / "home" / ".cache" / "farm" / "store")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_store() == str(tmp_path / "xdg" / "farm" / "store")
    assert default_table_path() == tmp_path / "xdg" / "farm" / "throughput.json"
    monkeypatch.setenv("FARM_CACHE_DIR", str(tmp_path / "c"))
    assert default_store() == str(tmp_path / "c" / "store") and cache_root() == tmp_path / "c"
    monkeypatch.setenv("FARM_STORE", "memory://shared")
    assert default_store() == "memory://shared"
