"""Every attack side by side on a mini challenge with answers (the ``mini-sst2`` benchmark challenge).

Per scenario and row: TPR@0.1FPR over dev+final pooled under one threshold (the MICO scorer's rule: FPR strictly
below 0.1), TPR@0.01FPR, AUC, the number of shadow trainings and the CPU-seconds of the row's jobs (trainings and
inference passes; jobs shared between rows are counted in each). Also the held-out-free ``train`` LOO score.

    farm make-challenge --config mini-sst2 --out /tmp/msst2
    python -m benchmarks.attacks --challenge /tmp/msst2/challenge --answers /tmp/msst2/answers \
        --store /tmp/msst2/store
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from benchmarks.common import table
from farm.attacks import run_attack
from farm.challenge import read_challenge
from farm.cluster import Executor, ensure_ray
from farm.data import load_population
from farm.driver import (
    AttackConfig,
    collect_signals,
    read_inputs,
    scenario_data,
    score_phase,
)
from farm.metrics import score
from farm.plans import PlanSpec
from farm.store import Store

MATCHED = {"sst2_inf": "mini-inf", "sst2_hi": "mini-sst2-hi", "sst2_lo": "mini-sst2-lo"}


def rows_for(scenario: str) -> list[tuple[str, str, dict, PlanSpec, str]]:
    """(row name, attack, params, plan, shadow recipe)."""
    none, per = PlanSpec(), PlanSpec(kind="per-target")
    pool = {k: PlanSpec(kind="pool", shadows=k, group=2) for k in (2, 4)}
    matched = MATCHED[scenario]
    rows = [("loss (baseline)", "loss", {}, none, "mini-inf"),
            ("reference, per-target (runner-up)", "reference", {}, per, "mini-inf"),
            ("in_calibration (winner)", "in_calibration", {}, none, "mini-inf"),
            ("learned, provided models", "learned", {}, none, "mini-inf"),
            ("rmia, provided models", "rmia", {}, none, "mini-inf"),
            ("lira offline, provided models", "lira_offline", {}, none, "mini-inf")]
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
    executor = Executor(Store(args.store), progress=None)
    ch, inputs = read_inputs(args.challenge)
    answers = read_challenge(args.answers, require_weights=False)
    labels = load_population(inputs.population).labels
    scenarios = args.scenarios.split(",") if args.scenarios else ch.scenarios()
    out = []
    for scenario in scenarios:
        data = scenario_data(ch, scenario)
        solutions = {m.model_id: m.solution for m in [*data.models, *answers.select(scenario)]
                     if m.solution is not None}
        cache: dict = {}
        for name, attack, params, plan, recipe in rows_for(scenario):
            config = AttackConfig(attack=attack, params=params, plan=plan, recipe=recipe)
            key = (plan, recipe)
            if key not in cache:
                got = collect_signals(data, config, inputs, executor, labels)
                cache[key] = (got.signals, got.trainings, got.job_seconds)
            signals, n_train, seconds = cache[key]
            scores = run_attack(attack, signals, np.arange(len(data.models)), **params)
            raw = {m.model_id: scores[i] for i, m in enumerate(data.models)}
            ids = [m.model_id for m in data.models if m.phase in ("dev", "final")]
            y = np.concatenate([solutions[i] for i in ids])
            s = np.nan_to_num(np.concatenate([raw[i] for i in ids]), nan=0.0)
            metrics = score(y, s)
            loo = score_phase(data, "train", raw, solutions)
            out.append({"scenario": scenario, "row": name, "TPR@0.1": metrics["TPR_FPR_1000"],
                        "TPR@0.01": metrics["TPR_FPR_100"], "AUC": metrics["AUC"],
                        "train LOO TPR@0.1": loo["TPR_FPR_1000"] if loo else float("nan"),
                        "trainings": n_train, "cpu_s": seconds, "points": y.size})
            print(table([out[-1]]).splitlines()[-1], flush=True)
    print(table(out))


if __name__ == "__main__":
    main()
