"""Cost of a rerun's "is it done?" check against a full checksum check, on one roberta-base-sized
entry.

    python -m benchmarks.store_check [--mb 499 --entries 3]

``Store.complete`` (what every run does before skipping a job) reads the manifest and file metadata
only; ``Store.verify`` (``farm store verify``) reads and hashes every byte.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from benchmarks.common import table
from farm.store.store import Store


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--mb", type=int, default=499, help="weights per entry, MB (roberta-base fp32: 499)"
    )
    parser.add_argument("--entries", type=int, default=3)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="farm-storecheck-"))
    store = Store(root / "store")
    keys = []
    for i in range(args.entries):
        src = root / f"src{i}"
        src.mkdir()
        (src / "model.safetensors").write_bytes(os.urandom(args.mb << 20))
        keys.append(f"{i:02x}" + "0" * 62)
        store.put_dir(keys[-1], src)
    start = time.perf_counter()
    assert all(store.complete(k) for k in keys)
    complete = (time.perf_counter() - start) / len(keys)
    start = time.perf_counter()
    assert not any(store.verify(k) for k in keys)
    verify = (time.perf_counter() - start) / len(keys)
    print(
        table(
            [
                {
                    "MB per entry": args.mb,
                    "complete() s/entry": complete,
                    "verify() s/entry": verify,
                    "ratio": verify / complete,
                }
            ]
        )
    )


if __name__ == "__main__":
    main()
