"""Cost of MICO's splits: 600 models' splits and ``farm plan`` on a seeds-only MICO tree, before
(the sequential swap loop, inline below as the reference) and after (the vectorised shuffle; the
disk cache of ``farm.store.shuffles``, first run and rerun). Then what a cached ``farm plan`` rerun
cost before the rest of issue 22 item 2, put back in the same run: the pool's ``np.setdiff1d``
(inline below, in place of ``farm.shadows.plans.all_but``) and ``scipy.stats`` imported with
``farm.cli`` (as ``farm.attacks.lira`` did at its top), each alone and both.

    python -m benchmarks.splits

The tree is the one ``tests/commands/test_dry_run.py`` plans: 3 scenarios x 200 models, train models
labelled (all three seeds), dev and final with ``seed_challenge`` only, as in MICO's release; so 600
population shuffles (68,221) and 300 rest shuffles (68,021), the splits ``farm attack`` rebuilds.
``farm plan`` rebuilds only the 600 challenge shuffles. Every split is checked equal to the
reference's, bit for bit, and every ``farm plan --json`` output equal to the package's. Each
``farm plan`` is a fresh interpreter, timed from outside (interpreter start included); the cached
reruns are the best of ``--repeat``.
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
from tests.helpers import POOL_24, mico_seed_tree
from tests.oracle import loop_shuffle

# ``farm plan`` in a fresh interpreter; argv[1], a comma list, puts back what was there before:
# "loop" the reference loop in place of the package's shuffle, "setdiff" ``np.setdiff1d`` in place
# of ``all_but``, "scipy" scipy.stats imported with farm.cli ("package": none of them)
PLAN = """
import sys, time
start = time.perf_counter()
old = sys.argv[1].split(",")
if "scipy" in old:
    import scipy.stats
import farm.challenge.tree, farm.cli, farm.shadows.plans
if "loop" in old:
    from benchmarks.splits import loop_shuffle
    farm.challenge.tree.cached_shuffle = loop_shuffle
if "setdiff" in old:
    import numpy as np
    farm.shadows.plans.all_but = lambda n, out: np.setdiff1d(np.arange(n), out)
rc = farm.cli.main(sys.argv[2:])
print(time.perf_counter() - start, file=sys.stderr)
sys.exit(rc)
"""


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


def _plan(which: str, tree: Path, config: Path, cache: Path, repeat: int = 1) -> tuple[float, str]:
    """Best wall time of ``repeat`` runs of ``farm plan --json`` with ``which`` put back, and its
    output (the same every run, else ``SystemExit``)."""
    env = {**os.environ, "FARM_CACHE_DIR": str(cache), "PYTHONPATH": str(Path.cwd())}
    args = ["plan", "--challenge", str(tree), "--config", str(config), "--json"]
    args += ["--table", str(cache.parent / "none.json")]
    best, outputs = float("inf"), set()
    for _ in range(repeat):
        start = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-c", PLAN, which, *args], capture_output=True, text=True, env=env
        )
        best = min(best, time.perf_counter() - start)
        if done.returncode != 0:
            raise SystemExit(done.stderr)
        outputs.add(done.stdout)
    if len(outputs) != 1:
        raise SystemExit(f"farm plan ({which}) printed different plans on reruns")
    return best, outputs.pop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3, help="runs of each cached plan (best)")
    repeat = parser.parse_args().repeat
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
    plan_loop, want_plan = _plan("loop,setdiff,scipy", tree, config, root / "cache-none" / "c")
    plan_first, first_plan = _plan("package", tree, config, plan_cache)
    reruns = {
        which: _plan(which, tree, config, plan_cache, repeat)
        for which in ("setdiff,scipy", "setdiff", "scipy", "package")
    }
    plans = {want_plan, first_plan, *(out for _, out in reruns.values())}
    assert len(plans) == 1, "farm plan's output differs between implementations"
    plan_rerun = {which: seconds for which, (seconds, _) in reruns.items()}

    rows = [
        ("600 models' splits (900 shuffles of ~68k)", "swap loop (before)", loop_s, loop_s),
        ("", "vectorised, no cache", vec_s, loop_s),
        ("", "vectorised + cache, first run (writes)", first_s, loop_s),
        ("", "cache, rerun (reads, sha256-checked)", rerun_s, loop_s),
        (
            "farm plan, seeds-only MICO tree",
            "swap loop + setdiff1d + scipy.stats",
            plan_loop,
            plan_loop,
        ),
        ("", "vectorised + cache, first run", plan_first, plan_loop),
        ("", "cache rerun + setdiff1d + scipy.stats", plan_rerun["setdiff,scipy"], plan_loop),
        ("", "cache rerun + setdiff1d", plan_rerun["setdiff"], plan_loop),
        ("", "cache rerun + scipy.stats at import", plan_rerun["scipy"], plan_loop),
        ("", "cache rerun (now)", plan_rerun["package"], plan_loop),
    ]
    print(
        table([{"what": w, "how": h, "seconds": s, "speedup": base / s} for w, h, s, base in rows])
    )
    print(
        f"\ncache: 900 entries, {size / 2**20:.1f} MiB; all splits equal to the swap loop's; all "
        f"plans equal; cached plans best of {repeat}"
    )


if __name__ == "__main__":
    main()
