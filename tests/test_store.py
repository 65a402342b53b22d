import numpy as np
import pytest

from farm.errors import StoreError
from farm.store import Store, fingerprint


@pytest.fixture(params=["local", "memory"])
def store(request, tmp_path):
    if request.param == "local":
        return Store(tmp_path / "store")
    import uuid

    return Store(f"memory://farm-test-{uuid.uuid4().hex}")


def test_arrays_roundtrip_and_verify(store):
    key = "ab" + "0" * 62
    assert not store.exists(key)
    store.put_arrays(key, {"logits": np.arange(6, dtype=np.float32).reshape(3, 2), "indices": np.arange(3)},
                     {"n": 3})
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
    assert (got / "a.txt").read_text() == "hello" and (got / "sub" / "b.bin").read_bytes() == b"\0\1\2"


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
