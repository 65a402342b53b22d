"""A content-addressed artifact store on a local directory or any fsspec URI (``s3://``, ``gs://``,
``memory://``).

An entry is ``<root>/objects/<key[:2]>/<key>/`` holding artifact files and ``manifest.json`` (each
file's sha256, size and the store's own stamp of it -- mtime, ETag -- plus small metadata). The
manifest is written last, atomically: an entry "exists" only when its manifest does.

Two checks, of different cost:
- ``complete(key)`` ("is it done?"): the manifest exists and every file has its recorded size, read
  from the file system's metadata. No artifact byte is read, so a rerun over 300 GB of weights costs
  one listing per entry. Where a file's stamp differs from the recorded one (the store was copied,
  or the file rewritten), the entry falls back to the full checksum check.
- ``verify(key)``: every file's sha256. Run explicitly (``farm store verify``) and for any entry
  that fails to load; a corrupt or truncated entry is never loaded, callers recompute it
  (``farm.store.run_job.run_job`` does).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import shutil
import sqlite3
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from farm.errors import StoreError

log = logging.getLogger(__name__)
# a file this large, not yet in the digest cache, is announced before it is read (seconds or more)
LOUD_BYTES = 64 << 20

MANIFEST = "manifest.json"
_CHUNK = 1 << 20
_RACY_NS = 2_000_000_000  # files modified within the last 2 s are hashed but not cached


class Store:
    """Keyed artifacts under ``root`` (a path or fsspec URI). Safe for concurrent writers of the
    same key: identical keys hold identical content, and the last manifest rename wins."""

    def __init__(self, root: str | Path, *, create: bool = True):
        """``create=False``: the store must exist already (a command that only reads one writes
        nothing)."""
        # lazy: fsspec loads only for a remote store
        import fsspec

        self.uri = str(root) if "://" in str(root) else str(Path(root).resolve())
        self.fs, self.root = fsspec.core.url_to_fs(self.uri)
        self.local = self.fs.protocol in ("file", ("file", "local")) or "file" in self.fs.protocol
        if not create and not self.fs.isdir(self.root):
            raise StoreError(f"{self.uri}: no such store")
        self.fs.makedirs(self.root, exist_ok=True)

    def __reduce__(self) -> tuple:
        return (Store, (self.uri,))

    def path(self, key: str, name: str = "") -> str:
        """Where ``name`` of entry ``key`` lives (a local path for local stores)."""
        base = f"{self.root}/objects/{key[:2]}/{key}"
        return f"{base}/{name}" if name else base

    def exists(self, key: str) -> bool:
        """True when the entry's manifest is present (complete, not yet verified)."""
        return bool(self.fs.exists(self.path(key, MANIFEST)))

    def manifest(self, key: str) -> dict[str, Any]:
        """The entry's manifest; ``StoreError`` when missing or unreadable."""
        try:
            return json.loads(self.fs.cat_file(self.path(key, MANIFEST)))
        except (FileNotFoundError, ValueError, OSError) as exc:
            raise StoreError(
                f"{self.path(key, MANIFEST)}: missing or unreadable manifest ({exc})"
            ) from exc

    def verify(self, key: str) -> list[str]:
        """Problems with entry ``key`` (empty when every file matches its recorded checksum and
        size)."""
        try:
            files = self.manifest(key)["files"]
        except (StoreError, KeyError) as exc:
            return [str(exc)]
        problems = []
        for name, want in files.items():
            try:
                digest, size = self._digest(self.path(key, name))
            except (FileNotFoundError, OSError) as exc:
                problems.append(f"{self.path(key, name)}: missing ({exc})")
                continue
            if size != want["size"] or digest != want["sha256"]:
                problems.append(f"{self.path(key, name)}: checksum mismatch (corrupt or truncated)")
        return problems

    def valid(self, key: str) -> bool:
        """Every file matches its checksum (reads every byte of the entry)."""
        return self.exists(key) and not self.verify(key)

    def complete(self, key: str) -> bool:
        """ "Is it done?" from metadata only: the manifest exists and every file has its recorded
        size. A file whose stamp (mtime/ETag) differs from the recorded one sends the entry to the
        full ``verify``."""
        try:
            files = self.manifest(key)["files"]
        except (StoreError, KeyError):
            return False
        try:
            infos = {name: self.fs.info(self.path(key, name)) for name in files}
        except (FileNotFoundError, OSError):
            return False
        if any(int(infos[name].get("size", -1)) != want["size"] for name, want in files.items()):
            return False
        if all(
            want.get("stamp") is not None and _stamp(infos[name]) == want["stamp"]
            for name, want in files.items()
        ):
            return True
        return not self.verify(key)

    def keys(self) -> list[str]:
        """Keys of every entry with a manifest."""
        found = self.fs.glob(f"{self.root}/objects/*/*/{MANIFEST}")
        return sorted(str(p).rstrip("/").split("/")[-2] for p in found)

    def verify_all(self) -> dict[str, list[str]]:
        """``{key: problems}`` for every entry whose files do not match their checksums (full
        read)."""
        return {key: problems for key in self.keys() if (problems := self.verify(key))}

    def remove(self, key: str) -> None:
        if self.fs.exists(self.path(key)):
            self.fs.rm(self.path(key), recursive=True)

    def put_dir(self, key: str, local_dir: str | Path, meta: dict | None = None) -> str:
        """Store every file of ``local_dir`` (recursively) as entry ``key``; the manifest goes
        last."""
        local_dir = Path(local_dir)
        files = {
            p.relative_to(local_dir).as_posix(): p
            for p in sorted(local_dir.rglob("*"))
            if p.is_file()
        }
        return self._put(key, {name: p.read_bytes for name, p in files.items()}, meta)

    def put_arrays(self, key: str, arrays: dict[str, np.ndarray], meta: dict | None = None) -> str:
        """Store numpy arrays as ``<name>.npy`` files of entry ``key``."""

        def encode(a: np.ndarray) -> Any:
            def read() -> bytes:
                buffer = io.BytesIO()
                np.save(buffer, a, allow_pickle=False)
                return buffer.getvalue()

            return read

        return self._put(key, {f"{n}.npy": encode(np.asarray(a)) for n, a in arrays.items()}, meta)

    def get_arrays(self, key: str, *, check: bool = False) -> dict[str, np.ndarray]:
        """The arrays of entry ``key``. Each file's bytes are checked against the manifest's sha256
        as they are read (they are in memory anyway); ``check=True`` verifies the whole entry first.
        ``StoreError`` on any mismatch."""
        self._check(key, check)
        files = self.manifest(key)["files"]
        out = {}
        for name in [n for n in files if n.endswith(".npy")]:
            try:
                data = self.fs.cat_file(self.path(key, name))
            except (FileNotFoundError, OSError) as exc:
                raise StoreError(f"{self.path(key, name)}: missing ({exc})") from exc
            if hashlib.sha256(data).hexdigest() != files[name]["sha256"]:
                raise StoreError(
                    f"{self.path(key, name)}: checksum mismatch (corrupt or truncated)"
                )
            out[name[:-4]] = np.load(io.BytesIO(data), allow_pickle=False)
        return out

    def get_dir(self, key: str, cache: str | Path, *, check: bool = True) -> Path:
        """A local directory with the entry's files: the entry itself on a local store, else a
        verified copy."""
        self._check(key, check)
        if self.local:
            return Path(self.path(key))
        target = Path(cache) / key
        if not (target / MANIFEST).is_file():
            Path(cache).mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(dir=cache))
            for name in [*self.manifest(key)["files"], MANIFEST]:
                (tmp / name).parent.mkdir(parents=True, exist_ok=True)
                (tmp / name).write_bytes(self.fs.cat_file(self.path(key, name)))
            if target.exists():
                shutil.rmtree(tmp)
            else:
                tmp.rename(target)
        return target

    def _check(self, key: str, check: bool) -> None:
        problems = (
            self.verify(key)
            if check
            else ([] if self.exists(key) else [f"{self.path(key)}: no entry"])
        )
        if problems:
            raise StoreError("; ".join(problems))

    def _put(self, key: str, files: dict[str, Any], meta: dict | None) -> str:
        entry: dict[str, Any] = {"files": {}, "meta": meta or {}}
        for name, read in files.items():
            data = read()
            self._write(self.path(key, name), data)
            stamp = _stamp(self.fs.info(self.path(key, name)))
            entry["files"][name] = {
                "sha256": hashlib.sha256(data).hexdigest(),
                "size": len(data),
                "stamp": stamp,
            }
        self._write(self.path(key, MANIFEST), json.dumps(entry, indent=1, sort_keys=True).encode())
        return key

    def _write(self, path: str, data: bytes) -> None:
        parent = path.rsplit("/", 1)[0]
        self.fs.makedirs(parent, exist_ok=True)
        tmp = f"{parent}/.{uuid.uuid4().hex}.tmp"
        with self.fs.open(tmp, "wb") as handle:
            handle.write(data)
        self.fs.mv(tmp, path)

    def _digest(self, path: str) -> tuple[str, int]:
        h, size = hashlib.sha256(), 0
        with self.fs.open(path, "rb") as handle:
            while chunk := handle.read(_CHUNK):
                h.update(chunk)
                size += len(chunk)
        return h.hexdigest(), size


def _stamp(info: dict[str, Any]) -> str | None:
    """The file system's own change marker of a file: ETag (object stores) or mtime (local), if it
    has one."""
    for name in ("ETag", "etag", "md5Hash", "mtime", "LastModified", "last_modified", "created"):
        if info.get(name) is not None:
            value = info[name]
            return f"{name}={value.isoformat() if hasattr(value, 'isoformat') else value}"
    return None


def fingerprint(path: str | Path) -> str:
    """Content fingerprint of ``path`` (a file or a directory): sha256 over each file's name
    relative to ``path`` (the file's own name for a file) and the sha256 of its bytes. Independent
    of where ``path`` lives.

    File digests are cached across runs and processes in ``FileDigests`` keyed by (absolute path,
    size, mtime), so a rerun over hundreds of model folders reads no weight bytes.
    """
    path = Path(path).resolve()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    h = hashlib.sha256()
    digests = FileDigests.default()
    for p in files:
        name = p.name if p == path else p.relative_to(path).as_posix()
        h.update(f"{name}\0{digests.get(p)}\n".encode())
    return h.hexdigest()


def file_sha256(path: Path) -> str:
    """sha256 of a local file's bytes, streamed."""
    h = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def cache_root() -> Path:
    """The farm's per-user cache folder, the one place it is computed: ``$FARM_CACHE_DIR``, else
    ``$XDG_CACHE_HOME/farm``, else ``~/.cache/farm`` (an empty variable counts as unset). It holds
    the default store, the file-digest cache, the shuffle cache and ``farm bench``'s table."""
    explicit = os.environ.get("FARM_CACHE_DIR")
    if explicit:
        return Path(explicit)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "farm"


def default_store() -> str:
    """The store every command uses without ``--store``, shared by all of them so that a new
    ``--out`` reruns nothing: ``$FARM_STORE`` (a directory or fsspec URI), else
    ``cache_root() / "store"``. Nothing is created here."""
    return os.environ.get("FARM_STORE") or str(cache_root() / "store")


class FileDigests:
    """sha256 of local files, cached in an SQLite file keyed by (absolute path, size, mtime_ns).

    The cache lives in ``cache_root()`` (``$FARM_CACHE_DIR``, default ``~/.cache/farm``); a file
    whose size or mtime changed is hashed again. When the cache cannot be opened or written,
    digests are computed without it.
    """

    _instances: dict[str, FileDigests] = {}

    def __init__(self, db: Path):
        self.db = db
        self.hits = self.misses = 0
        self._con: sqlite3.Connection | None = None
        self._failed = False

    @classmethod
    def default(cls) -> FileDigests:
        db = str(cache_root() / "file-digests.sqlite")
        if db not in cls._instances:
            cls._instances[db] = cls(Path(db))
        return cls._instances[db]

    def get(self, path: Path) -> str:
        st = path.stat()
        row = (str(path), st.st_size, st.st_mtime_ns)
        cached = self._query(row)
        if cached:
            self.hits += 1
            return cached
        self.misses += 1
        if st.st_size >= LOUD_BYTES:  # a silent pause otherwise
            log.info("fingerprinting %s (%.0f MB, once: cached after)...", path, st.st_size / 1e6)
        digest = file_sha256(path)
        if (
            time.time_ns() - st.st_mtime_ns > _RACY_NS
        ):  # as git does: a just-written file may change within its stamp
            self._insert(row, digest)
        return digest

    def _connect(self) -> sqlite3.Connection | None:
        """One connection per instance (per process), opened on first use; None when the cache is
        unusable."""
        if self._con is None and not self._failed:
            try:
                self.db.parent.mkdir(parents=True, exist_ok=True)
                con = sqlite3.connect(self.db, timeout=30, check_same_thread=False)
                con.execute(
                    "CREATE TABLE IF NOT EXISTS digests (path TEXT, size INTEGER, mtime INTEGER, "
                    "sha256 TEXT, PRIMARY KEY (path, size, mtime))"
                )
                self._con = con
            except (OSError, sqlite3.Error):
                self._failed = True
        return self._con

    def _query(self, row: tuple) -> str | None:
        con = self._connect()
        if con is None:
            return None
        got = con.execute(
            "SELECT sha256 FROM digests WHERE path=? AND size=? AND mtime=?", row
        ).fetchone()
        return got[0] if got else None

    def _insert(self, row: tuple, digest: str) -> None:
        con = self._connect()
        if con is None:
            return
        with contextlib.suppress(sqlite3.Error), con:  # a transaction: committed on leaving
            con.execute("DELETE FROM digests WHERE path=?", row[:1])
            con.execute("INSERT OR REPLACE INTO digests VALUES (?, ?, ?, ?)", (*row, digest))
