"""A content-addressed artifact store on a local directory or any fsspec URI (``s3://``, ``gs://``, ``memory://``).

An entry is ``<root>/objects/<key[:2]>/<key>/`` holding artifact files and ``manifest.json`` (each file's
sha256 and size, plus small metadata). The manifest is written last, atomically: an entry "exists" only when
its manifest does, and it is *valid* only when every file matches its checksum. A corrupt or truncated entry is
reported by ``verify`` and never loaded; callers recompute it (``farm.run.run_job`` does).
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from farm.errors import StoreError

MANIFEST = "manifest.json"
_CHUNK = 1 << 20


class Store:
    """Keyed artifacts under ``root`` (a path or fsspec URI). Safe for concurrent writers of the same key:
    identical keys hold identical content, and the last manifest rename wins."""

    def __init__(self, root: str | Path):
        import fsspec

        self.uri = str(root) if "://" in str(root) else str(Path(root).resolve())
        self.fs, self.root = fsspec.core.url_to_fs(self.uri)
        self.local = self.fs.protocol in ("file", ("file", "local")) or "file" in self.fs.protocol
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
            raise StoreError(f"{self.path(key, MANIFEST)}: missing or unreadable manifest ({exc})") from exc

    def verify(self, key: str) -> list[str]:
        """Problems with entry ``key`` (empty when every file matches its recorded checksum and size)."""
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
        return self.exists(key) and not self.verify(key)

    def remove(self, key: str) -> None:
        if self.fs.exists(self.path(key)):
            self.fs.rm(self.path(key), recursive=True)

    def put_dir(self, key: str, local_dir: str | Path, meta: dict | None = None) -> str:
        """Store every file of ``local_dir`` (recursively) as entry ``key``; the manifest goes last."""
        local_dir = Path(local_dir)
        files = {p.relative_to(local_dir).as_posix(): p for p in sorted(local_dir.rglob("*")) if p.is_file()}
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

    def get_arrays(self, key: str, *, check: bool = True) -> dict[str, np.ndarray]:
        """The arrays of entry ``key`` (checksums verified first unless ``check=False``)."""
        self._check(key, check)
        names = [n for n in self.manifest(key)["files"] if n.endswith(".npy")]
        return {n[:-4]: np.load(io.BytesIO(self.fs.cat_file(self.path(key, n))), allow_pickle=False) for n in names}

    def get_dir(self, key: str, cache: str | Path, *, check: bool = True) -> Path:
        """A local directory with the entry's files: the entry itself on a local store, else a verified copy."""
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
        problems = self.verify(key) if check else ([] if self.exists(key) else [f"{self.path(key)}: no entry"])
        if problems:
            raise StoreError("; ".join(problems))

    def _put(self, key: str, files: dict[str, Any], meta: dict | None) -> str:
        entry: dict[str, Any] = {"files": {}, "meta": meta or {}}
        for name, read in files.items():
            data = read()
            entry["files"][name] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
            self._write(self.path(key, name), data)
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


def fingerprint(path: str | Path) -> str:
    """sha256 over the names and contents of the files under ``path`` (a file or a directory).

    Memoised per process on each file's (size, mtime): a driver or a Tune trial that builds job specs for the
    same model folders again does not re-hash hundreds of MB of weights.
    """
    path = Path(path).resolve()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    stamp = tuple((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in files)
    return _fingerprint(path, stamp)


@functools.lru_cache(maxsize=4096)
def _fingerprint(path: Path, stamp: tuple) -> str:
    files = [Path(name) for name, _, _ in stamp]
    h = hashlib.sha256()
    for p in files:
        h.update(p.relative_to(path).as_posix().encode() if p != path else p.name.encode())
        with p.open("rb") as handle:
            while chunk := handle.read(_CHUNK):
                h.update(chunk)
    return h.hexdigest()
