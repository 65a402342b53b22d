"""The audit benchmark (issue 20): validity and power of ``farm audit``'s canary games.

Every game is ``farm audit``'s own (``farm.config.audit.recipe_audit`` -> ``audit_recipe``), run in
this process (``farm.store.run_job.InProcessRunner``) on the project's synthetic corpus with the
shipped ``audit-tiny`` recipe (a small RoBERTa trained from scratch) or variants of it. Sections:

* ``power``: a non-DP recipe, 1,000 mislabelled canaries on 3,000 records, one run: the one-run
  bound (target: at least 2).
* ``noise-off``: the same game on a DP-SGD recipe that claims epsilon 1 (Poisson, PRV) while the
  Gaussian noise is switched off in process (Opacus' ``_generate_noise`` returns zeros; the
  clipping stays): a broken implementation. Flagged when the one-run bound exceeds 1 at 95%. Its
  jobs go to a store of their own (the keys are the honest recipe's).
* ``validity``: correctly noised Poisson DP-SGD at epsilon 1, 4 and 10, ``--seeds`` game seeds
  each (halves, canaries and coins all from the seed; each game is one training run): the share
  of one-run bounds above the claimed epsilon against the 5% the 95% confidence allows (a one-sided
  binomial test), and the median bound.
* ``multi``: the multi-run game at epsilon 10 with ``--runs`` runs; the bounds, and how many runs
  the Clopper-Pearson analysis would need for a bound of 5 even with a perfect test
  (``runs_needed``).
* ``sst2``: the one-run game on real SST-2 (a seeded subset of 3,000 GLUE training records, 1,000
  mislabelled canaries made from them, ``audit-tiny``), timed: the issue's "minutes on 2 CPU
  cores" check, on real text.
* ``label``: the label game (relabelled canaries) on plain, DP-SGD (epsilon 4), randomized
  response (label-DP 1), ALIBI (label-DP 1) and PATE (10 teachers, GNMax sigma 20 on 500 public
  queries): the label-DP one-run bound beside each claim, and the label-memorization rates.

It prints one Markdown table per section and writes ``OUT/audit-benchmark.json``. Stores under
``OUT`` are reused: a rerun trains nothing.

    python -m benchmarks.audit --out /tmp/audit-bench                       # every section
    python -m benchmarks.audit --out /tmp/audit-bench --sections power,noise-off
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from benchmarks.common import SST2, table
from farm.attacks.audit import epsilon_lower_bound
from farm.commands.audit import AuditResult, audit_recipe, unit_claim
from farm.config.audit import recipe_audit
from farm.config.loading import config_path, read_yaml
from farm.store.run_job import InProcessRunner
from farm.store.store import Store

SECTIONS = ("power", "noise-off", "validity", "multi", "label", "sst2")
CONFIDENCE, DELTA = 0.95, 1e-5


def base_recipe(**changes: Any) -> dict[str, Any]:
    """The shipped ``audit-tiny`` recipe as a mapping, with ``changes``."""
    return {**read_yaml(config_path("audit-tiny", "recipe")), **changes}


def dp_recipe(epsilon: float, **changes: Any) -> dict[str, Any]:
    """``audit-tiny`` with DP-SGD at ``epsilon`` (delta 1e-5, clip 1, Poisson, PRV)."""
    dp = {"target_epsilon": epsilon, "delta": DELTA, "max_grad_norm": 1.0, "sampling": "poisson"}
    return base_recipe(group_by_length=False, dp=dp, **changes)


@contextlib.contextmanager
def noise_off() -> Iterator[list[int]]:
    """Opacus adds no noise inside this block (its clipping is unchanged): a broken DP-SGD. Every
    Opacus optimizer module that imported ``_generate_noise`` by name is patched (the ghost-clipping
    optimizer has its own reference). Yields a one-item list counting the patched calls, so a
    caller can tell the patch took effect."""
    # lazy: torch and Opacus load only for the section that patches them (and the optimizers'
    # modules must be loaded before they can be patched)
    import opacus.optimizers  # noqa: F401
    import torch

    calls = [0]

    def zeros(std: float, reference: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        calls[0] += 1
        return torch.zeros_like(reference)

    patched = {
        name: module
        for name, module in sys.modules.items()
        if name.startswith("opacus.optimizers") and hasattr(module, "_generate_noise")
    }
    originals = {name: module._generate_noise for name, module in patched.items()}
    for module in patched.values():
        module._generate_noise = zeros
    try:
        yield calls
    finally:
        for name, module in patched.items():
            module._generate_noise = originals[name]


def run_game(out: Path, store: str, **inputs: Any) -> tuple[AuditResult, float]:
    """One game of ``farm audit`` (``recipe_audit``'s inputs) in process; its result and wall
    seconds."""
    audit = recipe_audit(**inputs, confidence=CONFIDENCE, delta=DELTA)
    start = time.perf_counter()
    result = audit_recipe(audit, InProcessRunner(Store(out / store)))
    return result, time.perf_counter() - start


def claim_text(result: AuditResult) -> str:
    """The claim the game tests, for its neighbouring datasets."""
    claim = unit_claim(result)
    return "none (inf)" if claim is None else f"{claim[0]:.3g} (delta {claim[1]:.2g})"


def power(out: Path) -> list[dict[str, Any]]:
    result, wall = run_game(
        out, "store", data="synthetic:3000", recipe="audit-tiny", canaries="mislabelled:1000"
    )
    head = result.one_run[0]
    return [
        {
            "game": "audit-tiny (no DP), 1,000 mislabelled, 3,000 records, 1 run",
            "one-run bound": f"{head.epsilon:.2f}",
            "target": ">= 2",
            "met": head.epsilon >= 2,
            "guesses (correct)": f"{head.guesses} ({head.correct})",
            "wall_s": round(wall),
        }
    ]


def noise_off_section(out: Path) -> list[dict[str, Any]]:
    with noise_off() as calls:
        result, wall = run_game(
            out,
            "store-noise-off",
            data="synthetic:3000",
            recipe=dp_recipe(1.0),
            canaries="mislabelled:1000",
        )
    head = result.one_run[0]
    return [
        {
            "game": "audit-tiny + DP-SGD claiming eps 1, noise switched off, 1,000 mislabelled",
            "claim": claim_text(result),
            "one-run bound": f"{head.epsilon:.2f}",
            "flagged (bound > 1)": head.epsilon > 1,
            "noise draws zeroed": calls[0],
            "wall_s": round(wall),
        }
    ]


def validity(out: Path, seeds: int) -> list[dict[str, Any]]:
    rows = []
    for eps in (1.0, 4.0, 10.0):
        bounds, wall = [], 0.0
        for seed in range(seeds):
            result, seconds = run_game(
                out,
                "store",
                data="synthetic:1000",
                recipe=dp_recipe(eps, epochs=10),
                canaries=f"mislabelled:300:{seed}",
                seed=seed,
            )
            bounds.append(result.one_run[0].epsilon)
            wall += seconds
        above = sum(b > eps for b in bounds)
        test = stats.binomtest(above, len(bounds), 1 - CONFIDENCE, alternative="greater")
        rows.append(
            {
                "claimed eps (Poisson, PRV, add/remove)": eps,
                "games": len(bounds),
                "bounds > eps": above,
                "binomial p (H0: rate <= 5%)": f"{test.pvalue:.2f}",
                "median bound": f"{float(np.median(bounds)):.3f}",
                "max bound": f"{max(bounds):.3f}",
                "median < eps": float(np.median(bounds)) < eps,
                "wall_s": round(wall),
            }
        )
    return rows


def runs_needed(target: float, *, delta: float = DELTA, confidence: float = CONFIDENCE) -> int:
    """Runs a multi-run game needs for a Clopper-Pearson bound of ``target`` with a perfect test
    (no error on any counted run): half the runs are counted, half of those OUT, half IN."""
    per_side = 1
    while True:
        bound = epsilon_lower_bound(0, per_side, 0, per_side, delta=delta, confidence=confidence)
        if float(bound) >= target:
            return 4 * per_side
        per_side = math.ceil(per_side * 1.05) + 1


def multi(out: Path, runs: int) -> list[dict[str, Any]]:
    result, wall = run_game(
        out,
        "store",
        data="synthetic:1000",
        recipe=dp_recipe(10.0, epochs=10),
        canaries="mislabelled:300:0",
        runs=runs,
    )
    m = result.multi_run
    assert m is not None
    return [
        {
            "game": f"DP-SGD eps 10 (Poisson), 300 mislabelled, {runs} runs",
            "counted runs": m.tp + m.fp + m.tn + m.fn,
            "Clopper-Pearson": f"{m.clopper_pearson:.3f}",
            "joint beta": f"{m.joint_beta:.3f}",
            "GDP fit": f"{m.gdp:.3f}",
            "one-run (run 0)": f"{result.one_run[0].epsilon:.3f}",
            "runs for CP bound 5 (perfect test)": runs_needed(5.0),
            "wall_s": round(wall),
        }
    ]


def label(out: Path) -> list[dict[str, Any]]:
    rr = {"mechanism": "randomized_response", "epsilon": 1.0}
    pate = {
        "defence": "pate",
        "recipe": "audit-tiny",
        "student": "audit-tiny",
        "teachers": 10,
        "sigma": 20.0,
        "queries": 500,
        "delta": DELTA,
    }
    settings = {
        "plain": ("audit-tiny", None),
        "DP-SGD eps 4": (dp_recipe(4.0), None),
        "randomized response eps 1": (base_recipe(label_noise=rr), None),
        "ALIBI eps 1": (base_recipe(label_noise={**rr, "mechanism": "alibi"}), None),
        "PATE (10 teachers, sigma 20, 500 queries)": (pate, "synthetic:2000"),
    }
    rows = []
    for name, (recipe, public) in settings.items():
        result, wall = run_game(
            out,
            "store",
            data="synthetic:3000",
            recipe=recipe,
            canaries="relabelled:1000",
            public=public,
        )
        (memo,) = result.memorization
        rows.append(
            {
                "mechanism": name,
                "label-DP claim": claim_text(result),
                "one-run label bound": f"{result.one_run[0].epsilon:.2f}",
                "outputs flipped: trained flipped": f"{memo.trained_flipped:.1%}",
                "trained own": f"{memo.trained_own:.1%}",
                "unseen": f"{memo.unseen:.1%}",
                "wall_s": round(wall),
            }
        )
    return rows


def sst2(out: Path) -> list[dict[str, Any]]:
    if not (SST2 / "train.tsv").is_file():
        raise SystemExit(f"SST-2 not found at {SST2} (set FARM_SST2_DIR)")
    data = {"source": "file", "path": str(SST2), "subset": {"n": 3000, "seed": 0}}
    result, wall = run_game(
        out, "store", data=data, recipe="audit-tiny", canaries="mislabelled:1000"
    )
    head = result.one_run[0]
    return [
        {
            "game": "audit-tiny (no DP) on 3,000 SST-2 records, 1,000 mislabelled, 1 run",
            "one-run bound": f"{head.epsilon:.2f}",
            "guesses (correct)": f"{head.guesses} ({head.correct})",
            "wall_s": round(wall),
        }
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--sections", default=",".join(SECTIONS))
    parser.add_argument("--seeds", type=int, default=10, help="validity: game seeds per epsilon")
    parser.add_argument("--runs", type=int, default=16, help="multi: runs of the game")
    args = parser.parse_args(argv)
    sections = args.sections.split(",")
    unknown = sorted(set(sections) - set(SECTIONS))
    if unknown:
        parser.error(f"--sections: unknown {unknown[0]!r} (known: {', '.join(SECTIONS)})")
    args.out.mkdir(parents=True, exist_ok=True)
    build = {
        "power": lambda: power(args.out),
        "noise-off": lambda: noise_off_section(args.out),
        "validity": lambda: validity(args.out, args.seeds),
        "multi": lambda: multi(args.out, args.runs),
        "label": lambda: label(args.out),
        "sst2": lambda: sst2(args.out),
    }
    results = {}
    for name in sections:
        results[name] = build[name]()
        print(f"\n## {name}\n\n{table(results[name])}", flush=True)
    path = args.out / "audit-benchmark.json"
    path.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
