"""Atomic local file writes: write a temporary file in the same folder, fsync, then rename.

After a crash a path either holds the complete new content or does not exist; readers never see half
a file. Files and folders get ordinary permissions (0666 / 0777 less the umask, so 0644 / 0755 under
the usual 022), not the owner-only 0600 / 0700 of ``tempfile``.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def _temp_name(parent: Path, name: str) -> Path:
    return parent / f".{name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"


def atomic_write_bytes(path: str | os.PathLike, data: bytes, *, durable: bool = True) -> Path:
    """Write ``data`` to ``path`` atomically, creating parent folders; returns the path.

    ``durable=False`` skips the fsync: readers still never see half a file while the machine runs,
    but after a power loss the path may hold an empty or partial file, so only a cache whose
    entries carry their own checksum may ask for it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_name(path.parent, path.name)
    fd = os.open(
        tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666
    )  # the umask applies, as for open()
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            if durable:
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def make_temp_dir(parent: str | os.PathLike, prefix: str = ".tmp-") -> Path:
    """A new, uniquely named, empty folder in ``parent`` (created if needed) with ordinary
    permissions, to be filled and then renamed into place (``tempfile.mkdtemp`` would make it, and
    so the result, owner-only)."""
    parent = Path(parent)
    parent.mkdir(parents=True, exist_ok=True)
    while True:
        path = parent / f"{prefix}{secrets.token_hex(6)}"
        try:
            path.mkdir()  # mode 0o777 less the umask
            return path
        except FileExistsError:
            continue
