"""The defence comparison (issue 14, section 4): privacy and utility of plain training, DP-SGD,
SISA, PATE, randomized response and ALIBI on SST-2 at mini scale, audited by the farm's attack.

One make-challenge config (shipped ``defences-sst2``) holds one scenario per setting (``plain``,
``dp_e4``, ``sisa_s5_r1``, ``pate_t10_s5``, ``rr_e1``, ``alibi_e1``, ...; its defence and recipe
YAMLs are the shipped ``def-*``). The benchmark builds it with ``farm make-challenge``, attacks it
with ``farm attack`` unchanged (``attack-defences``: RMIA, no shadows: each scenario's labelled
train targets are its references), then adds per setting:

* ``test_acc``: accuracy of the released models as the attacker sees them (SISA's ensemble, PATE's
  student), averaged over every target of the setting, on GLUE SST-2 validation rows in neither the
  population nor the public corpus (a synthetic population: a fresh synthetic corpus);
* TPR@0.1FPR on dev and on final (each under its own threshold, 95% bootstrap intervals over target
  models, none from fewer than 5), and the headline, their mean, with an interval resampling both
  phases' models jointly (``farm.attacks.protocol``; the attack is fixed, so nothing is chosen with
  answers);
* the empirical epsilon lower bounds of the attack's audit (``metrics.json``): ``eps_lb heuristic``
  pools a model's points as if independent; ``eps_lb valid`` uses one point per held-out model
  (independent trials);
* ``eps``: the theoretical epsilon that ``challenge.json`` records with what it assumes (accountant,
  sampling, adjacency: ``farm.privacy.accounting.describe_epsilon``; ``inf`` without one; randomized
  response and ALIBI: their label-DP epsilon, which bounds nothing about membership);
* ``train_s``: job-seconds of one target's training (every job of its build, from the store's
  metadata);
* SISA: ``unlearn``: jobs and job-seconds redone to forget ``--forget`` challenge members per target
  against a full retrain (``farm.defences.sisa.unlearn``, ``farm.defences.seam.redone``; seconds of
  jobs not run are their pre-unlearning counterparts'); the unlearning scenario (``forget:``) adds
  the attack's TPR on forgotten, kept and never-seen points at the 0.1-FPR threshold
  (``farm.defences.sisa.forgetting_rates``).

It prints a Markdown table, writes ``OUT/defences.md``, ``OUT/defences.json`` and one
privacy-utility PNG (``OUT/defences.png``: test accuracy against TPR@0.1FPR). The run reuses the
store: a second run trains nothing.

    # every setting: about 80 minutes on 2 CPU cores
    python -m benchmarks.defences --out /tmp/defences
    # a subset
    python -m benchmarks.defences --out /tmp/d --settings plain,sisa_s5_r1,pate_t10_s5
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from benchmarks.common import table
from farm.attacks.intervals import Interval, headline_bootstrap
from farm.attacks.protocol import REPORT_ON
from farm.challenge.tree import FORGOTTEN_CSV, read_challenge, read_solution
from farm.commands.make_challenge import ChallengeJobs, challenge_jobs
from farm.config.challenge import load_challenge_config
from farm.defences.seam import TargetBuild, build_target, redone
from farm.defences.sisa import SisaState, forget_members, forgetting_rates
from farm.mico.scorer import pooled_scores
from farm.privacy.accounting import describe_epsilon
from farm.spec.population import PopulationSpec
from farm.store.run_job import job_seconds

GLUE_TRAIN, GLUE_ALL = 67_349, 68_221  # GLUE SST-2: train rows, then 872 validation rows


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--config", default="defences-sst2", help="make-challenge config, one scenario per setting"
    )
    parser.add_argument("--attack", default="attack-defences", help="attack config for farm attack")
    parser.add_argument(
        "--out", type=Path, required=True, help="working folder (challenge, store, attack, results)"
    )
    parser.add_argument(
        "--settings", default=None, help="comma-separated scenario names (default: all)"
    )
    parser.add_argument(
        "--forget", type=int, default=20, help="members forgotten per target for the SISA cost"
    )
    parser.add_argument("--workers", type=int, default=None)
    args = parser.parse_args(argv)
    from farm.cli import main as farm

    args.out.mkdir(parents=True, exist_ok=True)
    config_file = _config_subset(args.config, args.settings, args.out)
    workers = ["--workers", str(args.workers)] if args.workers else []
    built, attack = args.out / "built", args.out / "attack"
    made = ["make-challenge", "--config", str(config_file), "--out", str(built)]
    if farm([*made, "--store", str(built / "store"), *workers]) != 0:
        raise SystemExit("make-challenge failed")
    if (
        farm(
            [
                "attack",
                "--challenge",
                str(built / "challenge"),
                "--answers",
                str(built / "answers"),
                "--config",
                args.attack,
                "--out",
                str(attack),
                "--store",
                str(built / "store"),
                *workers,
            ]
        )
        != 0
    ):
        raise SystemExit("farm attack failed")
    rows = results(config_file, built, attack, forget=args.forget)
    text = table([{k: v for k, v in r.items() if not k.startswith("_")} for r in rows])
    print(text)  # noqa: T201 - a benchmark prints its table
    (args.out / "defences.md").write_text(f"# Defence comparison ({config_file})\n\n{text}\n")
    (args.out / "defences.json").write_text(json.dumps(rows, indent=2, default=str) + "\n")
    privacy_utility_png(rows, args.out / "defences.png")
    return rows


def _config_subset(name: str, settings: str | None, out: Path) -> Path:
    """The config file, or a copy in ``out`` with only the ``settings`` scenarios."""
    from farm.config.loading import config_path, read_yaml

    path = config_path(name)
    if not settings:
        return path
    data = read_yaml(path)
    chosen = settings.split(",")
    unknown = [s for s in chosen if s not in data["scenarios"]]
    if unknown:
        raise SystemExit(f"{path}: no scenario {unknown[0]!r} (has {', '.join(data['scenarios'])})")
    data["scenarios"] = {s: data["scenarios"][s] for s in chosen}
    copy = out / f"{path.stem}-subset.yaml"
    copy.write_text(yaml.safe_dump(data, sort_keys=False))
    return copy


def results(config_file: Path, built: Path, attack: Path, *, forget: int) -> list[dict[str, Any]]:
    """One row per scenario (see the module docstring)."""
    from farm.store.store import Store
    from farm.training.data import load_population

    config = load_challenge_config(config_file)
    store = Store(built / "store")
    p = challenge_jobs(config, len(load_population(config.population_spec)))
    ch = read_challenge(built / "challenge")
    metrics = json.loads((attack / "metrics.json").read_text())["scenarios"]
    accuracy = held_out_accuracy(config, built / "challenge", ch)
    rows = []
    for scenario in config.scenarios:
        targets = [t for t in p.targets if t.scenario == scenario]
        m = metrics[scenario]
        head = headline(attack / "scores.parquet", scenario)
        row: dict[str, Any] = {
            "setting": scenario,
            "test_acc": accuracy[scenario],
            **{
                f"{p} TPR@0.1FPR": _with_interval(m["phases"][p], "TPR@0.1FPR")
                for p in REPORT_ON
                if p in m["phases"]
            },
            "TPR@0.1FPR dev+final [95%]": f"{head.value:.3f} {head.cell()}",
            **_audit_cells(m.get("epsilon_audit") or {}),
            "eps": _epsilon(ch.constants.targets[scenario]),
            "train_s": float(np.mean([job_seconds(store, list(t.build.jobs)) for t in targets])),
            "unlearn": "-",
            "forgetting": "-",
            "_tpr": head.value,
        }
        if isinstance(targets[0].build.state, SisaState):
            row["unlearn"] = _unlearning_cost(targets, store, p, forget)
            if targets[0].forgotten is not None:
                row["forgetting"] = _forgetting(built, attack, scenario, ch)
        rows.append(row)
    return rows


def headline(scores_parquet: Path, scenario: str, *, n_boot: int = 1000) -> Interval:
    """The scenario's TPR@0.1FPR headline as the protocol states it (``farm.attacks.protocol``): the
    mean of the dev and final figures, each phase pooled under its own threshold
    (``farm.mico.scorer.pooled_scores``), with a bootstrap interval over the phases' models
    resampled jointly (none from fewer than 5 models a phase)."""
    import pandas as pd

    scores = pd.read_parquet(scores_parquet)
    phases = {}
    for phase in REPORT_ON:
        rows = scores[
            (scores.scenario == scenario) & (scores.phase == phase) & scores.label.notna()
        ]
        if rows.empty:
            continue
        models = [g for _, g in rows.groupby("model", sort=True)]
        labels = [g.label.to_numpy(dtype=np.int64) for g in models]
        pooled = pooled_scores([g.score.to_numpy(dtype=np.float64) for g in models])
        phases[phase] = (labels, np.split(pooled, np.cumsum([y.size for y in labels])[:-1]))
    return headline_bootstrap(phases, n_boot=n_boot)


def _with_interval(phase: dict[str, Any], name: str) -> str:
    value, iv = phase["metrics"][name], phase["intervals"].get(name)
    known = (
        iv and iv.get("lo") is not None and iv.get("hi") is not None
    )  # metrics.json: NaN ends as null
    return f"{value:.3f} [{iv['lo']:.3f}, {iv['hi']:.3f}]" if known else f"{value:.3f} [n<5 models]"


def _audit_cells(audit: dict[str, Any]) -> dict[str, Any]:
    """The empirical epsilon lower bounds of ``farm attack``'s audit: the pooled one (heuristic: a
    model's points share its training run, so they are not independent trials) and the one whose
    trials are independent (one point per held-out model)."""
    independent = audit.get("one_point_per_model") or {}
    return {
        "eps_lb heuristic": audit.get("epsilon_lb_heuristic", audit.get("epsilon_lb")),
        "eps_lb valid": independent.get("epsilon_lb"),
    }


def _epsilon(record: dict[str, Any]) -> str:
    """The theoretical epsilon with what it assumes (``farm.privacy.accounting.describe_epsilon``);
    label DP (randomized response, ALIBI): its label-DP epsilon (pure) and mechanism, which bound
    nothing about membership."""
    if record.get("label_dp"):
        mechanism = record.get("mechanism", "randomized_response")
        name = {"randomized_response": "randomized response", "alibi": "ALIBI, noised once"}
        return (
            f"{record['label_epsilon']:g} (label DP, {name.get(mechanism, mechanism)}; "
            "membership: inf)"
        )
    return describe_epsilon(record)


def _unlearning_cost(targets: list[Any], store: Any, p: ChallengeJobs, forget: int) -> str:
    """Jobs and job-seconds redone to forget ``forget`` challenge members of each target, against
    retraining the whole ensemble, summed over targets: ``redone/all jobs, redone/all s``."""
    from farm.mico.splits import split_model

    n_redone = n_all = 0
    s_redone = s_all = 0.0
    for t in targets:
        state: SisaState = t.build.state
        before = build_target(state.defence, state.target)
        split = split_model(
            *t.seeds,
            n_total=p.constants.n_total,
            len_training=p.constants.len_training,
            len_challenge=p.constants.len_challenge,
        )
        assert split.solution is not None
        after, _ = (
            (t.build, None)
            if t.forgotten is not None
            else forget_members(
                before,
                split.challenge,
                split.solution,
                min(forget, p.constants.len_challenge),
                seed=t.seeds[2],
            )
        )
        again = redone(before, after)
        n_redone, n_all = n_redone + len(again), n_all + len(after.jobs)
        s_redone += _seconds(store, again, before)
        s_all += _seconds(store, list(after.jobs), before)
    return f"{n_redone}/{n_all} jobs, {s_redone:.1f}/{s_all:.1f} s"


def _seconds(store: Any, jobs: list[Any], before: TargetBuild) -> float:
    """Job-seconds of ``jobs``: stored, or for a job never run that of the job of ``before`` with
    its label."""
    by_label = {j.label: j for j in before.jobs}
    return sum(
        job_seconds(store, [j if store.complete(j.key) else by_label[j.label]]) for j in jobs
    )


def _forgetting(built: Path, attack: Path, scenario: str, ch: Any) -> str:
    """The attack's flagged fractions of kept / forgotten / never-seen points at the 0.1-FPR
    threshold."""
    import pandas as pd

    scores = pd.read_parquet(attack / "scores.parquet")
    pooled: dict[str, list[np.ndarray]] = {"scores": [], "solution": [], "forgotten": []}
    for model in ch.select(scenario):
        root = built / "challenge" if model.phase == "train" else built / "answers"
        folder = root / scenario / model.phase / f"model_{model.model_id}"
        n = ch.constants.len_challenge * 2
        rows = scores[(scores.scenario == scenario) & (scores.model == model.model_id)]
        pooled["scores"].append(np.nan_to_num(rows.score.to_numpy(), nan=-np.inf))
        pooled["solution"].append(read_solution(folder / "solution.csv", n))
        pooled["forgotten"].append(read_solution(folder / FORGOTTEN_CSV, n))
    r = forgetting_rates(*(np.concatenate(v) for v in pooled.values()), max_fpr=0.1)
    return f"kept {r['kept']:.2f}, forgotten {r['forgotten']:.2f}, never {r['never']:.2f}"


def held_out_accuracy(config: Any, challenge: Path, ch: Any) -> dict[str, float]:
    """Per scenario: the mean accuracy of its released models on held-out records (see the module
    docstring)."""
    from farm.training.data import Population, load_population, tokenize
    from farm.training.infer import logits_of
    from farm.training.models import load_tokenizer

    spec = dict(config.population)
    if spec["source"] == "synthetic":
        test = load_population(
            PopulationSpec.of({**spec, "seed": int(spec.get("seed", 0)) + 1000, "n": 500})
        )
    else:
        full = load_population(PopulationSpec.of({k: v for k, v in spec.items() if k != "subset"}))
        rows = np.arange(GLUE_TRAIN, len(full)) if len(full) == GLUE_ALL else np.arange(len(full))
        rows = np.setdiff1d(
            rows, np.concatenate([_subset_rows(s, len(full)) for s in (spec, config.public)])
        )
        test = Population(
            tuple(full.sentences[i] for i in rows), full.labels[rows], {"rows": "held out"}
        )
    tokens = tokenize(test, load_tokenizer(challenge / "assets" / "tokenizer"), 67)
    idx = np.arange(len(test.labels))
    return {
        scenario: float(
            np.mean(
                [
                    (logits_of(m.path, tokens, idx).argmax(1) == test.labels).mean()
                    for m in ch.select(scenario)
                ]
            )
        )
        for scenario in config.scenarios
    }


def _subset_rows(spec: dict[str, Any], n: int) -> np.ndarray:
    """The rows of the full source that a spec's ``subset`` keeps (``farm.training.data``'s rule),
    all without one."""
    subset = spec.get("subset")
    if not subset:
        return np.arange(n)
    perm = np.random.default_rng(int(subset.get("seed", 0))).permutation(n)
    offset = int(subset.get("offset", 0))
    return perm[offset : offset + int(subset["n"])]


def privacy_utility_png(rows: list[dict[str, Any]], path: Path) -> Path:
    """Test accuracy against TPR@0.1FPR, one labelled point per setting, coloured by defence
    family."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 5), dpi=100)
    colours = {
        "plain": "black",
        "dp": "tab:blue",
        "sisa": "tab:green",
        "pate": "tab:red",
        "rr": "tab:purple",
        "alibi": "tab:orange",
    }
    for r in rows:
        family = r["setting"].split("_")[0]
        ax.scatter(r["_tpr"], r["test_acc"], color=colours.get(family, "grey"), s=30)
        ax.annotate(
            r["setting"],
            (r["_tpr"], r["test_acc"]),
            fontsize=7,
            xytext=(3, 3),
            textcoords="offset points",
        )
    ax.axvline(0.1, color="grey", linestyle="--", linewidth=1, label="chance (TPR = FPR = 0.1)")
    ax.set(
        xlabel="TPR@0.1FPR (attack power: lower is more private)",
        ylabel="test accuracy",
        title="Defences on SST-2 (mini): privacy vs utility",
    )
    ax.legend(loc="lower right", fontsize=7)
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    main()
