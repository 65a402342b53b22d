"""Atomic writes: complete files only, no temporary left behind, ordinary permissions (umask
applies)."""

import os
import stat

import pytest

from farm.store.atomic import atomic_write_bytes, atomic_write_text, make_temp_dir


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def _mode(path):
    return stat.S_IMODE(path.stat().st_mode)


def test_atomic_write_creates_parents_and_replaces(tmp_path, umask_022):
    path = atomic_write_text(tmp_path / "a" / "b.txt", "one")
    assert atomic_write_bytes(path, b"two") == path and path.read_bytes() == b"two"
    assert [p.name for p in path.parent.iterdir()] == ["b.txt"]  # no temporary left behind
    assert _mode(path) == 0o644 and _mode(path.parent) == 0o755


def test_umask_is_honoured(tmp_path):
    old = os.umask(0o077)
    try:
        assert _mode(atomic_write_text(tmp_path / "private.txt", "x")) == 0o600
        assert _mode(make_temp_dir(tmp_path)) == 0o700
    finally:
        os.umask(old)


def test_failed_write_leaves_nothing(tmp_path, monkeypatch):
    def boom(*args):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_text(tmp_path / "x.txt", "data")
    assert list(tmp_path.iterdir()) == []


def test_make_temp_dir_is_new_and_ordinary(tmp_path, umask_022):
    first, second = (
        make_temp_dir(tmp_path / "p", prefix=".x-"),
        make_temp_dir(tmp_path / "p", prefix=".x-"),
    )
    assert first != second and first.name.startswith(".x-") and not any(first.iterdir())
    assert _mode(first) == 0o755
