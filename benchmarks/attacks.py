"""Every attack side by side on a mini challenge with answers (the ``mini-sst2`` benchmark
challenge).

Per scenario and row: TPR@0.1FPR over dev+final pooled under one threshold (the MICO scorer's rule:
FPR strictly below 0.1), TPR@0.01FPR, AUC, the number of shadow trainings and the CPU-seconds of the
row's jobs (trainings and inference passes; jobs shared between rows are counted in each). Also the
held-out-free ``train`` LOO score.

    farm make-challenge --config mini-sst2 --out /tmp/msst2
    python -m benchmarks.attacks --challenge /tmp/msst2/challenge --answers /tmp/msst2/answers \
        --store /tmp/msst2/store
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from benchmarks.common import table
from farm.attacks.registry import run_attack
from farm.cluster.executor import Executor, ensure_ray
from farm.config.recipes import load_recipe
from farm.mico.scorer import pooled_scores, score
from farm.shadows.plans import PlanSpec
from farm.shadows.scenario import Collected, collect_signals, load_scenarios
from farm.store.store import Store
from farm.training.train import matched_recipe

MATCHED = {"sst2_inf": "mini-inf", "sst2_hi": "mini-sst2-hi", "sst2_lo": "mini-sst2-lo"}


def rows_for(scenario: str) -> list[tuple[str, str, dict, PlanSpec, str]]:
    """(row name, attack, params, plan, shadow recipe)."""
    none, per = PlanSpec(), PlanSpec(kind="per-target")
    pool = {k: PlanSpec(kind="pool", shadows=k, group=2) for k in (2, 4)}
    matched = MATCHED[scenario]
    rows = [
        ("loss (baseline)", "loss", {}, none, "mini-inf"),
        ("reference, per-target (runner-up)", "reference", {}, per, "mini-inf"),
        ("in_calibration (winner)", "in_calibration", {}, none, "mini-inf"),
        ("learned, provided models", "learned", {}, none, "mini-inf"),
        ("rmia, provided models", "rmia", {}, none, "mini-inf"),
        ("lira offline, provided models", "lira_offline", {}, none, "mini-inf"),
    ]
    for k, plan in pool.items():
        for kind, recipe in (("plain", "mini-inf"), ("DP-matched", matched)):
            if kind == "DP-matched" and recipe == "mini-inf":
                continue
            for attack in ("lira_online", "lira_offline", "rmia", "in_calibration", "learned"):
                params = {"labelled_only": False} if attack == "in_calibration" else {}
                rows.append((f"{attack}, pool K={k} {kind}", attack, params, plan, recipe))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--challenge", type=Path, required=True)
    parser.add_argument("--answers", type=Path, required=True)
    parser.add_argument("--store", required=True)
    parser.add_argument("--scenarios", default=None, help="comma-separated subset")
    args = parser.parse_args()
    ensure_ray()
    executor = Executor(store=Store(args.store), progress=None)
    names = args.scenarios.split(",") if args.scenarios else None
    _, scenarios = load_scenarios(args.challenge, answers_root=args.answers, names=names)
    out = []
    for name, scenario in scenarios.items():
        cache: dict[tuple[PlanSpec, str], Collected] = {}
        for row, attack, params, plan, recipe in rows_for(name):
            if (
                plan,
                recipe,
            ) not in cache:  # DP-matched rows run the targets' mechanism at the targets' n
                shadow = load_recipe(recipe)
                if recipe != "mini-inf":
                    shadow = matched_recipe(shadow, scenario.inputs.len_training)
                cache[plan, recipe] = collect_signals(scenario, plan, shadow, executor)
            got = cache[plan, recipe]
            part = got.scenario
            raw = dict(
                zip(part.ids, run_attack(attack, got.signals, np.arange(len(part.ids)), **params))
            )
            ids = [m for m in part.ids if m.phase in ("dev", "final")]
            y = np.concatenate([part.solutions[m] for m in ids])
            metrics = score(y, pooled_scores([raw[m] for m in ids]))
            loo = part.score("train", raw)
            out.append(
                {
                    "scenario": name,
                    "row": row,
                    "TPR@0.1": metrics["TPR_FPR_1000"],
                    "TPR@0.01": metrics["TPR_FPR_100"],
                    "AUC": metrics["AUC"],
                    "train LOO TPR@0.1": loo["TPR_FPR_1000"] if loo else float("nan"),
                    "trainings": got.trainings,
                    "cpu_s": got.job_seconds,
                    "points": y.size,
                }
            )
            print(table([out[-1]]).splitlines()[-1], flush=True)
    print(table(out))


if __name__ == "__main__":
    main()
