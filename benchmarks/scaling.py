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
import json
import warnings
from pathlib import Path
from typing import Any

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
    "informia",
    "quantile",
    "stacked",
    "stacked_wb",
    "learned_across",
    "learned_across_wb",
)
WHITE_BOX = ("query_logits", "grad_norm")
VARIANTS: dict[str, tuple[str, dict]] = {  # row name -> (attack, params)
    "stacked_wb": ("stacked", {"extra_signals": WHITE_BOX}),
    "learned_across_wb": ("learned_across", {"extra_signals": WHITE_BOX}),
}
WINNER = "winner: in_calibration"
RUNNER_UP = "runner-up: reference, 1 per target"
ANCHORS = (
    ("loss", "loss", {}, "none"),
    (WINNER, "in_calibration", {}, "none"),
    (RUNNER_UP, "reference", {}, "per-target"),
)


def sees(name: str) -> tuple[str, dict]:
    """``(attack, params)`` of a row name: a ``VARIANTS`` entry, or an attack of
    ``farm.attacks.registry.ATTACKS`` with its defaults."""
    return VARIANTS.get(name, (name, {}))


def extras_for(names: list[str], queries: QueryFamily | None) -> Extras:
    """What inference must compute for the rows ``names`` (``farm.attacks.registry.needs``)."""
    return Extras.needed(set().union(*(needs(*sees(n)) for n in names)), queries)


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


def rows(
    scenario: str,
    candidate: Scored,
    winner: Scored,
    *,
    runner_up: Scored | None = None,
    n_boot: int = 1000,
) -> dict:
    """The table row of one candidate: its leave-one-out figure (what the protocol chooses on), dev
    and final with their 95% intervals over target models, the dev+final mean and its paired ratio
    to the winner's IN calibration (and to ``runner_up``'s reference, when given)."""
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
    if runner_up is not None:
        row["vs runner-up (paired)"] = ratio_cell(compare(candidate, runner_up, n_boot=n_boot))
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
    """TPR@0.1FPR (mean of dev and final) against K, one line per attack and scenario (one colour
    per attack; pool groups other than 2 dashed); anchors as grey horizontal lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    colours: dict[str, Any] = {}
    palette = plt.get_cmap("tab20").colors
    anchor_styles = iter([":", "--", "-.", (0, (1, 3))])
    for (scenario, attack), group in _groups(results).items():
        ks = sorted({r["K"] for r in group if isinstance(r["K"], int)})
        base = attack.split("/")[0]
        if len(ks) > 1:
            colour = colours.setdefault(base, palette[len(colours) % len(palette)])
            ys = [next(r["TPR@0.1FPR"] for r in group if r["K"] == k) for k in ks]
            style = "--" if "/" in attack else "-"
            ax.plot(ks, ys, style, marker="o", color=colour, label=f"{scenario} {attack}")
        elif not ks:
            y = float(group[0]["TPR@0.1FPR"])
            style = next(anchor_styles, ":")
            ax.axhline(y, linestyle=style, color="0.4", linewidth=1, label=f"{scenario} {attack}")
    ax.set_xscale("symlog", linthresh=1)
    ax.set_xlabel("shadows K (0: labelled models only)")
    ax.set_ylabel("TPR@0.1FPR (mean of dev and final)")
    ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _plain(value: object) -> object:
    """A numpy scalar as its Python value (``json.dumps``' default); anything else as text."""
    item = getattr(value, "item", None)
    return item() if callable(item) else str(value)


def _groups(results: list[dict]) -> dict[tuple[str, str], list[dict]]:
    out: dict[tuple[str, str], list[dict]] = {}
    for r in results:
        out.setdefault((r["scenario"], r["attack"]), []).append(r)
    return out


def pool(config, k: int, group: int) -> PlanSpec:
    """The first ``k`` shadows of the scenario's pool in groups of ``group`` (``k = 0``: none)."""
    if not k:
        return PlanSpec(kind="none")
    return dataclasses.replace(config.plan, kind="pool", shadows=k, group=group)


def pools(ks: list[int], groups: list[int]) -> list[tuple[int, int]]:
    """``(K, group)`` pairs measured: K = 0 once, then every K a multiple of each group."""
    return [(0, groups[0])] * (0 in ks) + [(k, g) for g in groups for k in ks if k and k % g == 0]


def shadow_fit(signals: Signals, *, statistic: str = "margin") -> dict[str, float | str]:
    """How close the shadows' IN and OUT distributions are to the labelled models' on the same
    records (what LiRA fits): per record seen IN (OUT) by at least 2 shadows and 2 labelled
    models, the gap between the shadows' and the labelled models' mean ``statistic``, in units of
    the labelled models' IN-OUT gap; averaged over records. 0: the shadows' fits are the targets'
    own; 1: as far off as IN is from OUT. Also the shadows' spread over the labelled models'."""
    stat = signals.statistic(statistic)
    shadows = signals.known & ~signals.labelled
    out: dict[str, float] = {}
    lab_in, lab_out = _side_means(stat, signals, signals.labelled)
    sh_in, sh_out = _side_means(stat, signals, shadows)
    scale = np.nanmean(np.abs(lab_in[0] - lab_out[0]))
    for name, sh, lab in (("IN", sh_in, lab_in), ("OUT", sh_out, lab_out)):
        ok = ~np.isnan(sh[0]) & ~np.isnan(lab[0])
        if not ok.any():  # e.g. K = 2: no record is seen IN (OUT) by 2 shadows
            out[f"{name} mean gap / (IN-OUT)"] = out[f"{name} sd ratio"] = "n/a (< 2 shadows)"
            continue
        out[f"{name} mean gap / (IN-OUT)"] = round(
            float(np.mean(np.abs(sh[0][ok] - lab[0][ok])) / scale), 3
        )
        out[f"{name} sd ratio"] = round(float(np.nanmedian(sh[1][ok] / lab[1][ok])), 3)
    return out


def _side_means(
    stat: np.ndarray, signals: Signals, models: np.ndarray
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Per record: (mean, sd) of ``stat`` over ``models`` IN on it, then over those OUT (NaN
    where fewer than 2)."""
    rows = np.flatnonzero(models)
    out = []
    for side in (1, 0):
        mask = signals.keep[rows] == side
        count = mask.sum(0)
        values = np.where(mask, stat[rows], np.nan)
        with np.errstate(invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            mean = np.where(count >= 2, np.nanmean(values, 0), np.nan)
            sd = np.where(count >= 2, np.nanstd(values, 0, ddof=1), np.nan)
        out.append((mean, sd))
    return out[0], out[1]


def warm_up(
    scenarios: dict, configs: dict, plain, k_max: list[tuple[int, int]], extras, executor
) -> None:
    """Every training and inference the benchmark needs -- each scenario's largest pools
    (``k_max``: ``(K, group)`` pairs) and the
    anchors' per-target references -- in ONE executor call, so both CPU (or GPU) slots stay busy
    across scenarios; the per-K passes afterwards find everything in the store."""
    planned = []
    for name, scenario in scenarios.items():
        config = configs.get(name, configs["*"])
        recipe = config.shadow_recipe(scenario.inputs.len_training)
        planned += [
            *(shadow_jobs(scenario, pool(config, k, g), recipe, extras=extras) for k, g in k_max),
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
    parser.add_argument(
        "--groups",
        default="2",
        help="comma-separated pool group sizes: a shadow leaves out 1/group of the challenge union "
        "(rows of a group other than 2 are named attack/g<group>)",
    )
    parser.add_argument("--attacks", default=",".join(ATTACKS))
    parser.add_argument("--scenarios", default=None)
    parser.add_argument("--png", type=Path, default=Path("scaling.png"))
    parser.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples per interval")
    parser.add_argument(
        "--json",
        type=Path,
        default=None,
        help="also write every row (candidates, anchors, the protocol's choice) as JSON, for "
        "benchmarks.pick_across",
    )
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
    fits: list[dict] = []
    plain = configs.get("sst2_inf", configs["*"]).named_recipe()
    ks = [int(x) for x in args.ks.split(",")]
    groups = [int(x) for x in args.groups.split(",")]
    measured = pools(ks, groups)
    largest = [(max([k for k, g2 in measured if g2 == g] or [0]), g) for g in groups]
    warm_up(
        scenarios,
        configs,
        plain,
        largest,
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
        winner, runner_up = anchors[WINNER], anchors[RUNNER_UP]
        results += [
            rows(name, a, winner, runner_up=runner_up, n_boot=args.n_boot) for a in anchors.values()
        ]
        names = args.attacks.split(",")
        extras = extras_for(names, config.queries)
        candidates: list[Scored] = []
        for k, g in measured:
            got = collect_signals(scenario, pool(config, k, g), recipe, executor, extras=extras)
            if k:
                fits.append({"scenario": name, "K": k, "group": g, **shadow_fit(got.signals)})
            for row_name in names:
                attack, params = sees(row_name)
                label = row_name if g == 2 or not k else f"{row_name}/g{g}"
                candidates.append(scored(label, attack, params, k, got))
                row = rows(name, candidates[-1], winner, runner_up=runner_up, n_boot=args.n_boot)
                results.append(row)
            print(table(results[-len(names) :]), flush=True)
        chosen.append(verdicts(name, candidates, anchors, n_boot=args.n_boot))
    print(table(results))
    print("\nChosen on the labelled models (leave-one-out), then scored once on dev and final:\n")
    print(table(chosen))
    if fits:
        print("\nShadows against the labelled models on the same records (LiRA's fits):\n")
        print(table(fits))
    print(f"png: {plot(results, args.png)}")
    if args.json is not None:
        args.json.write_text(json.dumps(results + chosen, indent=1, default=_plain))
        print(f"json: {args.json}")
    return results + chosen


if __name__ == "__main__":
    main()
