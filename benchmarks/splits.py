"""Cost of MICO's splits: 600 models' splits and ``farm plan`` on a seeds-only MICO tree, before
(the sequential swap loop, inline below as the reference) and after (the vectorised shuffle; the
disk cache of ``farm.store.shuffles``, first run and rerun).

    python -m benchmarks.splits

The tree is the one ``tests/commands/test_dry_run.py`` plans: 3 scenarios x 200 models, train models
labelled (all three seeds), dev and final with ``seed_challenge`` only, as in MICO's release; so 600
population shuffles (68,221) and 300 rest shuffles (68,021), the splits ``farm attack`` rebuilds.
``farm plan`` rebuilds only the 600 challenge shuffles. Every split is checked equal to the
reference's, bit for bit.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.common import table
from farm.challenge.tree import read_challenge
from farm.mico.splits import mico_shuffle, split_model
from farm.store.shuffles import ShuffleCache
from tests.helpers import mico_seed_tree

POOL_24 = """attack: lira_online
params: {fixed_variance: true}
plan: {kind: pool, shadows: 24, group: 2, seed: 0}
recipe: mico-inf
scenarios:
  sst2_hi: {recipe: mico-hi, match_targets: true}
  sst2_lo: {recipe: mico-lo, match_targets: true}
"""

# ``farm plan`` in a fresh interpreter; argv[1] == "loop" puts the reference loop in place of the
# package's shuffle
PLAN = """
import sys, time
start = time.perf_counter()
import farm.challenge.tree, farm.cli
if sys.argv[1] == "loop":
    from benchmarks.splits import loop_shuffle
    farm.challenge.tree.cached_shuffle = loop_shuffle
rc = farm.cli.main(sys.argv[2:])
print(time.perf_counter() - start, file=sys.stderr)
sys.exit(rc)
"""


def loop_shuffle(seed: int, n: int) -> np.ndarray:
    """The shuffle as the package computed it before (numpy's MT19937 draws, then the swap loop in
    Python): the reference."""
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


def _splits(models, shuffle) -> tuple[float, list]:
    start = time.perf_counter()
    out = [
        split_model(m.seed_challenge, m.seed_training, m.seed_membership, shuffle=shuffle)
        for m in models
    ]
    return time.perf_counter() - start, out


def _same(a, b) -> bool:
    names = ("challenge", "rest", "training", "evaluation", "nonmember", "member", "solution")
    return all(
        (getattr(x, k) is None and getattr(y, k) is None)
        or np.array_equal(getattr(x, k), getattr(y, k))
        for x, y in zip(a, b)
        for k in names
    )


def _plan(which: str, tree: Path, config: Path, cache: Path) -> float:
    env = {**os.environ, "FARM_CACHE_DIR": str(cache), "PYTHONPATH": str(Path.cwd())}
    args = ["plan", "--challenge", str(tree), "--config", str(config), "--json"]
    args += ["--table", str(cache.parent / "none.json")]
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", PLAN, which, *args], capture_output=True, text=True, env=env
    )
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(done.stderr)
    return seconds


def main() -> None:
    argparse.ArgumentParser(description=__doc__).parse_args()
    root = Path(tempfile.mkdtemp(prefix="farm-splits-"))
    tree = mico_seed_tree(root / "mico")
    models = read_challenge(tree, require_weights=False).models
    config = root / "pool-24.yaml"
    config.write_text(POOL_24)

    loop_s, want = _splits(models, loop_shuffle)
    vec_s, got = _splits(models, mico_shuffle)
    cache = ShuffleCache(root / "cache-splits")
    first_s, first = _splits(models, cache.shuffle)
    rerun = ShuffleCache(root / "cache-splits")
    rerun_s, again = _splits(models, rerun.shuffle)
    assert _same(want, got) and _same(want, first) and _same(want, again), "splits differ"
    assert rerun.misses == 0 and rerun.hits == 900, vars(rerun)
    size = sum(f.stat().st_size for f in (root / "cache-splits").rglob("*.bin"))

    plan_cache = root / "cache-plan" / "c"
    plan_loop = _plan("loop", tree, config, root / "cache-none" / "c")
    plan_first = _plan("package", tree, config, plan_cache)
    plan_rerun = _plan("package", tree, config, plan_cache)

    rows = [
        ("600 models' splits (900 shuffles of ~68k)", "swap loop (before)", loop_s, loop_s),
        ("", "vectorised, no cache", vec_s, loop_s),
        ("", "vectorised + cache, first run (writes)", first_s, loop_s),
        ("", "cache, rerun (reads, sha256-checked)", rerun_s, loop_s),
        ("farm plan, seeds-only MICO tree", "swap loop (before)", plan_loop, plan_loop),
        ("", "vectorised + cache, first run", plan_first, plan_loop),
        ("", "cache, rerun", plan_rerun, plan_loop),
    ]
    print(
        table([{"what": w, "how": h, "seconds": s, "speedup": base / s} for w, h, s, base in rows])
    )
    print(f"\ncache: 900 entries, {size / 2**20:.1f} MiB; all splits equal to the swap loop's")


if __name__ == "__main__":
    main()
