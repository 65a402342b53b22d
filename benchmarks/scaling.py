"""Attack power against the number of shadows K, under the comparison protocol
(``farm.attacks.protocol``).

Per scenario, attack and K: TPR@0.1FPR on the labelled ``train`` models' leave-one-out scores (what
the protocol chooses on), on dev and on final (each under its own threshold, with 95% bootstrap
intervals over target models), their mean (the headline) and its paired ratio to the winner's IN
calibration; the anchors (loss; the runner-up's reference with one reference per dev/final target;
the winner's IN calibration on the labelled models) likewise. Then, per scenario, the protocol's
verdict: the candidate chosen on the leave-one-out scores alone, within the runner-up's training
budget, scored once on dev and final against every anchor with paired intervals. Writes a PNG of the
headline against K (symlog x axis: K = 0 is the labelled models alone).

Shadows come from one pool per scenario (``plan: pool``, groups of 2) trained with the scenario's
shadow recipe of ``--config`` (DP scenarios: the targets' mechanism); a pool of K shadows is the
first K of the largest, so growing K retrains nothing. Each phase is scored on its own (MICO's
rule), never dev and final pooled.

Attacks on more than logits: ``lira_queries`` (LiRA over the ``queries`` family of ``--config``,
default ``farm.spec.queries.QueryFamily()``), ``lira_grad`` (LiRA on per-example gradient norms) and
``stacked_wb`` (the ``stacked`` attack seeing every signal: its features add the gradient-norm loss
and LiRA and the several-query LiRA; ``stacked`` itself sees the logits only). Inference computes
query logits and gradient norms only when an attack of ``--attacks`` reads them (one more store
entry per model: its logits, query logits and norms).

    farm make-challenge --config mini-sst2 --out /tmp/msst2 --store /tmp/msst2/store
    python -m benchmarks.scaling --challenge /tmp/msst2/challenge --answers /tmp/msst2/answers \\
        --store /tmp/msst2/store --config attack-mini-sst2 --ks 0,2,4,8,16 --png /tmp/scaling.png
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import numpy as np

from benchmarks.common import table
from farm.attacks.intervals import bootstrap_by_model
from farm.attacks.protocol import REPORT_ON, Scored, choose, compare, ratio_cell
from farm.attacks.registry import needs, run_attack
from farm.attacks.signals import Signals
from farm.config.attack import load_attack_config
from farm.shadows.plans import PlanSpec
from farm.shadows.scenario import Extras, collect_many, collect_signals, load_scenarios, shadow_jobs
from farm.spec.queries import QueryFamily

ATTACKS = (
    "lira_farm",
    "lira_online",
    "lira_queries",
    "lira_grad",
    "rmia",
    "rmia_fit",
    "stacked",
    "stacked_wb",
)
WHITE_BOX = frozenset({"query_logits", "grad_norm"})
VARIANTS = {
    "stacked_wb": ("stacked", WHITE_BOX)
}  # row name -> (attack, the optional signals it sees)
RUNNER_UP = "runner-up: reference, 1 per target"
ANCHORS = (
    ("loss", "loss", {}, "none"),
    ("winner: in_calibration", "in_calibration", {}, "none"),
    (RUNNER_UP, "reference", {}, "per-target"),
)


def sees(name: str) -> tuple[str, frozenset[str]]:
    """``(attack, optional Signals fields it sees)`` of a row name: a ``VARIANTS`` entry, or an
    attack of ``farm.attacks.registry.ATTACKS`` seeing what it needs
    (``farm.attacks.registry.needs``)."""
    return VARIANTS[name] if name in VARIANTS else (name, needs(name))


def extras_for(names: list[str], queries: QueryFamily | None) -> Extras:
    """What inference must compute for the rows ``names``."""
    return Extras.needed(set().union(*(sees(n)[1] for n in names)), queries)


def view(signals: Signals, fields: frozenset[str]) -> Signals:
    """``signals`` without the optional fields outside ``fields``, so an attack whose features use
    whatever the signals carry (``learned``, ``stacked``) is measured on what its row says."""
    return dataclasses.replace(
        signals,
        query_logits=signals.query_logits if "query_logits" in fields else None,
        grad_norm=signals.grad_norm if "grad_norm" in fields else None,
    )


def scored(
    label: str, attack: str, params: dict, k: int | str, collected, signals: Signals | None = None
) -> Scored:
    """One candidate's pooled scores on every labelled phase (train: leave-one-out; dev, final:
    answered), on ``signals`` (default: the collected ones)."""
    part = collected.scenario
    signals = collected.signals if signals is None else signals
    raw = dict(zip(part.ids, run_attack(attack, signals, np.arange(len(part.ids)), **params)))
    labels, scores = {}, {}
    for phase in ("train", "dev", "final"):
        ids = [m for m in part.phase(phase) if m in part.solutions]
        pool = part.pooled(phase, raw) if ids else None
        if pool is None:
            continue
        labels[phase] = [part.solutions[m] for m in ids]
        scores[phase] = np.split(pool[1], np.cumsum([y.size for y in labels[phase]])[:-1])
    return Scored(name=label, k=k, trainings=collected.trainings, labels=labels, scores=scores)


def rows(scenario: str, candidate: Scored, winner: Scored, *, n_boot: int = 1000) -> dict:
    """The table row of one candidate: its leave-one-out figure (what the protocol chooses on), dev
    and final with their 95% intervals over target models, the dev+final mean and its paired ratio
    to the winner's IN calibration."""
    row = {
        "scenario": scenario,
        "attack": candidate.name,
        "K": candidate.k,
        "trainings": candidate.trainings,
        "LOO train": candidate.figure("train"),
    }
    for phase in REPORT_ON:
        if phase in candidate.scores:
            iv = bootstrap_by_model(candidate.labels[phase], candidate.scores[phase], n_boot=n_boot)
            row[f"{phase} [95%]"] = f"{iv['TPR_FPR_1000'].value:.3f} {iv['TPR_FPR_1000'].cell()}"
    row["TPR@0.1FPR"] = candidate.headline()
    row["vs winner (paired)"] = ratio_cell(compare(candidate, winner, n_boot=n_boot))
    return row


def verdicts(
    scenario: str, candidates: list[Scored], anchors: dict[str, Scored], *, n_boot: int = 1000
) -> dict:
    """The protocol's row for one scenario: the candidate chosen on the labelled models'
    leave-one-out scores within the runner-up's training budget (one training per dev/final target),
    then scored once on dev and final against each anchor, paired."""
    runner_up = anchors[RUNNER_UP]
    chosen = choose(candidates, budget=runner_up.trainings)
    row = {
        "scenario": scenario,
        "chosen (LOO)": f"{chosen.name}, K={chosen.k}",
        "trainings": chosen.trainings,
        "LOO train": chosen.figure("train"),
        "dev": chosen.figure("dev"),
        "final": chosen.figure("final"),
        "TPR@0.1FPR (mean)": chosen.headline(),
    }
    for label, anchor in anchors.items():
        row[f"vs {label.split(':')[0]}"] = ratio_cell(compare(chosen, anchor, n_boot=n_boot))
    return row


def plot(results: list[dict], path: Path) -> Path:
    """TPR@0.1FPR (mean of dev and final) against K, one line per attack and scenario; anchors
    dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for (scenario, attack), group in _groups(results).items():
        ks = sorted({r["K"] for r in group if isinstance(r["K"], int)})
        if len(ks) > 1:
            ys = [next(r["TPR@0.1FPR"] for r in group if r["K"] == k) for k in ks]
            ax.plot(ks, ys, marker="o", label=f"{scenario} {attack}")
        elif not ks:
            y = float(group[0]["TPR@0.1FPR"])
            ax.axhline(y, linestyle="--", linewidth=0.8, label=f"{scenario} {attack}")
    ax.set_xscale("symlog", linthresh=1)
    ax.set_xlabel("shadows K (0: labelled models only)")
    ax.set_ylabel("TPR@0.1FPR (mean of dev and final)")
    ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _groups(results: list[dict]) -> dict[tuple[str, str], list[dict]]:
    out: dict[tuple[str, str], list[dict]] = {}
    for r in results:
        out.setdefault((r["scenario"], r["attack"]), []).append(r)
    return out


def warm_up(scenarios: dict, configs: dict, plain, k_max: int, extras, executor) -> None:
    """Every training and inference the benchmark needs -- each scenario's largest pool and the
    anchors' per-target references -- in ONE executor call, so both CPU (or GPU) slots stay busy
    across scenarios; the per-K passes afterwards find everything in the store."""
    planned = []
    for name, scenario in scenarios.items():
        config = configs.get(name, configs["*"])
        recipe = config.shadow_recipe(scenario.inputs.len_training)
        pool = (
            dataclasses.replace(config.plan, kind="pool", shadows=k_max, group=2)
            if k_max
            else PlanSpec(kind="none")
        )
        planned += [
            shadow_jobs(scenario, pool, recipe, extras=extras),
            shadow_jobs(scenario, PlanSpec(kind="none"), recipe),
            shadow_jobs(scenario, PlanSpec(kind="per-target"), plain),
        ]
    collect_many(planned, executor, title="scaling: every shadow and inference")


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--challenge", type=Path, required=True)
    parser.add_argument("--answers", type=Path, required=True)
    parser.add_argument("--store", required=True)
    parser.add_argument(
        "--config", default="attack-mini-sst2", help="attack config giving each scenario's shadows"
    )
    parser.add_argument("--ks", default="0,2,4,8,16", help="comma-separated K values (even)")
    parser.add_argument("--attacks", default=",".join(ATTACKS))
    parser.add_argument("--scenarios", default=None)
    parser.add_argument("--png", type=Path, default=Path("scaling.png"))
    parser.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples per interval")
    args = parser.parse_args(argv)
    from farm.cluster.executor import Executor, ensure_ray
    from farm.store.store import Store

    configs = load_attack_config(args.config)
    ensure_ray()
    executor = Executor(store=Store(args.store), progress=None)
    names = args.scenarios.split(",") if args.scenarios else None
    _, scenarios = load_scenarios(args.challenge, answers_root=args.answers, names=names)
    results: list[dict] = []
    chosen: list[dict] = []
    plain = configs.get("sst2_inf", configs["*"]).named_recipe()
    ks = [int(x) for x in args.ks.split(",")]
    warm_up(
        scenarios,
        configs,
        plain,
        max(ks),
        extras_for(args.attacks.split(","), configs["*"].queries),
        executor,
    )
    for name, scenario in scenarios.items():
        config = configs.get(name, configs["*"])
        recipe = config.shadow_recipe(scenario.inputs.len_training)
        anchors = {}
        for (
            label,
            attack,
            params,
            kind,
        ) in ANCHORS:  # the runner-up trained its references with the plain recipe
            shadow = plain if kind == "per-target" else recipe
            got = collect_signals(scenario, PlanSpec(kind=kind), shadow, executor)
            anchors[label] = scored(label, attack, params, kind, got)
        winner = anchors["winner: in_calibration"]
        results += [rows(name, a, winner, n_boot=args.n_boot) for a in anchors.values()]
        names = args.attacks.split(",")
        extras = extras_for(names, config.queries)
        candidates: list[Scored] = []
        for k in ks:
            plan = (
                dataclasses.replace(config.plan, kind="pool", shadows=k, group=2)
                if k
                else PlanSpec(kind="none")
            )
            got = collect_signals(scenario, plan, recipe, executor, extras=extras)
            for row_name in names:
                attack, fields = sees(row_name)
                candidates.append(scored(row_name, attack, {}, k, got, view(got.signals, fields)))
                results.append(rows(name, candidates[-1], winner, n_boot=args.n_boot))
            print(table(results[-len(names) :]), flush=True)
        chosen.append(verdicts(name, candidates, anchors, n_boot=args.n_boot))
    print(table(results))
    print("\nChosen on the labelled models (leave-one-out), then scored once on dev and final:\n")
    print(table(chosen))
    print(f"png: {plot(results, args.png)}")
    return results + chosen


if __name__ == "__main__":
    main()
