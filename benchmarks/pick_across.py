"""One attack for every corpus: the comparison protocol's choice on several scaling runs at once.

``benchmarks.scaling`` chooses per scenario. A default shipped for every corpus must not be tuned to
one, so this picks the candidate (attack and K) with the best mean of its leave-one-out figures
(``LOO train``: the labelled models only, no dev/final answer read) over the scenarios given,
among those measured in all of them and within every scenario's runner-up budget (one training per
dev/final target). Ties go to fewer trainings, then to the earlier row of the first scenario. It
then reads, per scenario, what the rows already hold for that candidate: its dev/final figure and
its paired ratios to the winner's IN calibration and the runner-up, and whether it beats IN
calibration on the leave-one-out scores (the rule for a shipped default: where nothing does, ship IN
calibration or a stack that contains it).

    python -m benchmarks.scaling ... --scenarios sst2_inf --json /tmp/sst2.json
    python -m benchmarks.scaling ... --scenarios cb_inf --json /tmp/cb.json
    python -m benchmarks.pick_across /tmp/sst2.json /tmp/cb.json
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

from benchmarks.common import table
from benchmarks.scaling import RUNNER_UP, WINNER


def scenario_rows(rows: Sequence[dict]) -> dict[str, list[dict]]:
    """The candidate and anchor rows of a scaling run (``--json``), by scenario (the protocol's
    own choice rows dropped)."""
    out: dict[str, list[dict]] = {}
    for row in rows:
        if "attack" in row:
            out.setdefault(row["scenario"], []).append(row)
    return out


def pick_across(scenarios: Sequence[Sequence[dict]]) -> tuple[str, int]:
    """``(attack, K)`` of the candidate with the best mean ``LOO train`` over ``scenarios`` (each a
    scaling run's rows for one scenario), among the candidates (integer ``K``) present in every
    scenario within its runner-up's budget; ties: fewer trainings, then the earlier row of the first
    scenario. ``ValueError`` when no candidate qualifies."""
    allowed = [_candidates(rows) for rows in scenarios]
    first = list(allowed[0])
    shared = [c for c in first if all(c in a for a in allowed[1:])]
    if not shared:
        raise ValueError("no candidate is measured within budget in every scenario")

    def rank(i: int) -> tuple[float, int, int]:
        c = shared[i]
        loo = sum(a[c]["LOO train"] for a in allowed) / len(allowed)
        return (loo, -max(a[c]["trainings"] for a in allowed), -i)

    return shared[max(range(len(shared)), key=rank)]


def _candidates(rows: Sequence[dict]) -> dict[tuple[str, int], dict]:
    budget = next(r["trainings"] for r in rows if r["attack"] == RUNNER_UP)
    return {
        (r["attack"], r["K"]): r
        for r in rows
        if isinstance(r["K"], int) and r["trainings"] <= budget
    }


def report(scenarios: dict[str, list[dict]], pick: tuple[str, int]) -> list[dict]:
    """Per scenario, the picked candidate's figures as the scaling run measured them, beside IN
    calibration's leave-one-out figure and the scenario's own choice."""
    out = []
    for name, rows in scenarios.items():
        candidates = _candidates(rows)
        row = candidates[pick]
        winner = next(r for r in rows if r["attack"] == WINNER)
        own = max(
            candidates.values(), key=lambda r: (r["LOO train"], -r["trainings"])
        )  # earlier rows win ties (max keeps the first)
        beats = row["LOO train"] > winner["LOO train"]
        out.append(
            {
                "scenario": name,
                "picked (mean LOO)": f"{pick[0]}, K={pick[1]}",
                "trainings": row["trainings"],
                "LOO train": row["LOO train"],
                "IN calibration LOO": winner["LOO train"],
                "beats IN calibration on LOO": "yes" if beats else "no",
                "dev": row["dev [95%]"],
                "final": row["final [95%]"],
                "TPR@0.1FPR (mean)": row["TPR@0.1FPR"],
                "vs winner (paired)": row["vs winner (paired)"],
                "vs runner-up (paired)": row.get("vs runner-up (paired)", "n/a"),
                "own choice (LOO)": f"{own['attack']}, K={own['K']}",
            }
        )
    return out


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("runs", nargs="+", type=Path, help="benchmarks.scaling --json files")
    args = parser.parse_args(argv)
    scenarios: dict[str, list[dict]] = {}
    for path in args.runs:
        for name, rows in scenario_rows(json.loads(path.read_text())).items():
            if name in scenarios:
                parser.error(f"{path}: scenario {name} is in two runs")
            scenarios[name] = rows
    pick = pick_across(list(scenarios.values()))
    out = report(scenarios, pick)
    print(table(out))
    return out


if __name__ == "__main__":
    main()
