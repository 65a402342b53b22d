"""The ``farm`` command line. Each sub-command's ``--help`` says what it reads and writes.

Results (tables, JSON) and the closing "what was written where" lines go to stdout; progress goes
through ``logging`` to stderr (``-v``: more, ``-q``: warnings only; before or after the command).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import warnings
from collections.abc import Callable, Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING

from farm import __version__
from farm.challenge.layouts import MICO_SST2, mico_sst2_layout
from farm.challenge.score_tree import format_table, plot_roc, score_tree
from farm.challenge.submission import Expected, pack, read_predictions
from farm.challenge.tree import Challenge, read_challenge, read_constants, read_model
from farm.commands import dry_run as dryrun
from farm.commands.attack import attack_challenge
from farm.commands.audit import audit_recipe, write_audit
from farm.commands.dry_run import format_forecast, write_table
from farm.commands.make_challenge import make_challenge
from farm.commands.model_audit import (
    DEFAULT_RECIPE,
    DEFAULT_REFERENCES,
    ModelAuditRequest,
    audit_model,
    check_model_audit,
    write_model_audit,
)
from farm.commands.tune import run_tune
from farm.config.attack import check_attack_inputs, load_attack_config
from farm.config.audit import load_audit_config, parse_data, recipe_audit
from farm.config.challenge import load_challenge_config
from farm.config.loading import check_scenarios, config_kind, config_path, shipped
from farm.config.tune import check_tune_inputs, load_tune_config
from farm.errors import ConfigError, FarmError, SubmissionError
from farm.mico.scorer import readable
from farm.report.attack_report import score_table
from farm.spec.audit import RecipeAudit
from farm.store.atomic import atomic_write_text
from farm.store.store import Store, default_store
from farm.training.bench import bench

if TYPE_CHECKING:  # the type only: importing the executor loads Ray
    from farm.cluster.executor import Executor

Handler = Callable[[argparse.Namespace], int]
DISTRIBUTION = "mia-farm"  # the name pip knows; the import name and the command are ``farm``


SIGPIPE_EXIT = 141  # 128 + SIGPIPE: what a shell reports for a writer whose reader went away
SIGINT_EXIT = 130  # 128 + SIGINT: what a shell reports for a command stopped by Ctrl-C


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: dispatch a sub-command; a ``FarmError`` prints one clear message and returns
    1. A reader that stops early (``farm score … | head``) ends the command quietly with
    ``SIGPIPE_EXIT`` (141, as a coreutils writer killed by SIGPIPE reports it), never a
    ``BrokenPipeError`` traceback; what ran until then (jobs, files) is kept. Ctrl-C (SIGINT) stops
    the command within seconds with one line and ``SIGINT_EXIT`` (130), no traceback: the running
    jobs' workers end with the run, finished jobs stay in the store (a rerun reuses them), and no
    output file is half-written (every write is atomic)."""
    try:
        args = build_parser().parse_args(argv)
        setup_logging(verbosity(args))
        _quiet()
        try:
            return int(args.handler(args))
        except FarmError as exc:
            print(f"farm {args.command}: error: {exc}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print(
                f"farm {args.command}: interrupted; finished jobs are in the store and a rerun "
                "reuses them",
                file=sys.stderr,
            )
            return SIGINT_EXIT
        finally:
            sys.stdout.flush()  # a closed pipe shows here, not at interpreter exit
    except BrokenPipeError:
        _silence_stdout()
        return SIGPIPE_EXIT


def _silence_stdout() -> None:
    """Point stdout at the null device, so the interpreter's last flush of what is still buffered
    for a closed pipe raises nothing (the recipe of Python's ``signal`` documentation)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # no file descriptor (a captured stream): nothing to flush
        pass


def verbosity(args: argparse.Namespace) -> int:
    """The net ``-v``/``-q`` count of a parsed command line, wherever the flags stood: before the
    command (``farm -v plan``), after it (``farm plan -v``) or after a nested verb (``farm store
    verify STORE -q``); each ``-v`` adds one, each ``-q`` takes one away."""
    counts = vars(args)
    return sum(
        count if name.startswith("verbose") else -count
        for name, count in counts.items()
        if name in ("verbose", "quiet") or name.startswith(("verbose_", "quiet_"))
    )


def setup_logging(verbosity: int) -> None:
    """Progress of the ``farm`` loggers to stderr: INFO by default, DEBUG (with times and logger
    names) at ``verbosity > 0``, WARNING at ``verbosity < 0``. Idempotent: replaces the handler of
    an earlier call."""
    logger = logging.getLogger("farm")
    for handler in [h for h in logger.handlers if getattr(h, "farm_cli", False)]:
        logger.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.farm_cli = True  # type: ignore[attr-defined]
    verbose = "%(asctime)s %(name)s %(levelname)s: %(message)s"
    handler.setFormatter(logging.Formatter(verbose if verbosity > 0 else "%(message)s", "%H:%M:%S"))
    logger.addHandler(handler)
    # a library that configures the root logger (Opacus does) must not print it twice
    logger.propagate = False
    logger.setLevel(
        logging.DEBUG if verbosity > 0 else logging.WARNING if verbosity < 0 else logging.INFO
    )


def _version() -> str:

    try:
        return version(DISTRIBUTION)
    except PackageNotFoundError:  # a source tree on PYTHONPATH, not installed
        return f"{__version__} (not installed)"


def _config(value: str) -> Path:
    """argparse type: a YAML path, or the name of a shipped config (``mini``, ``attack-mini``,
    ``tune-mini``)."""
    try:
        return config_path(value)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _wrote(**paths: object) -> None:
    """The closing lines of a command: what it wrote where, one ``label: path`` per line
    (stdout)."""
    width = max(len(label) for label in paths) + 2
    for label, path in paths.items():
        print(f"{label.replace('_', ' ') + ':':<{width}}{path}")


def _quiet() -> None:

    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    warnings.filterwarnings("ignore", module="opacus")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="farm",
        description="Shadow-model farm for membership inference.",
        epilog=f"Shipped configs (give a name or a path): {', '.join(shipped())}. Shipped recipes "
        f"(by name in configs): {', '.join(shipped('recipe'))}.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="more progress output (stderr)"
    )
    parser.add_argument("-q", "--quiet", action="count", default=0, help="progress: warnings only")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for register in _COMMANDS:
        register(sub)
    _add_logging_flags(sub)
    return parser


def _add_logging_flags(sub: argparse._SubParsersAction, depth: int = 1) -> None:
    """Give every command (and every verb under a command) ``-v``/``-q`` too, so they work after
    the command as well as before it. Their defaults are suppressed and each level has its own
    destinations (``verbose_1``, ``quiet_1``, ...; ``verbosity`` sums them): a subparser copies its
    namespace over its parent's, so a default would erase a flag given at an outer level and a
    shared destination would drop a count."""
    for p in set(sub.choices.values()):
        p.add_argument(
            "-v",
            "--verbose",
            dest=f"verbose_{depth}",
            action="count",
            default=argparse.SUPPRESS,
            help="more progress output (stderr); also before the command",
        )
        p.add_argument(
            "-q",
            "--quiet",
            dest=f"quiet_{depth}",
            action="count",
            default=argparse.SUPPRESS,
            help="progress: warnings only; also before the command",
        )
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                _add_logging_flags(action, depth + 1)


def _add_splits(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "splits",
        help="print one model's splits as JSON",
        description="Reads MODEL_DIR's seed files (seed_challenge, optional seed_training, "
        "seed_membership) and the split constants from challenge.json three levels up (MICO SST-2 "
        "values when absent). Writes JSON to stdout: seeds, constants and the population indices "
        "of challenge, rest, training, evaluation, nonmember, member, plus the 0/1 solution in "
        "challenge order (null where a seed is missing). Writes no file.",
    )
    p.add_argument("model_dir", type=Path, metavar="MODEL_DIR")
    p.set_defaults(handler=_cmd_splits)


def _cmd_splits(args: argparse.Namespace) -> int:

    mdir: Path = args.model_dir
    parents = mdir.resolve().parents
    constants = read_constants(parents[2] if len(parents) > 2 else mdir)
    entry = read_model(mdir, "", "", 0, constants=constants, require_weights=False)
    seeds = {
        "seed_challenge": entry.seed_challenge,
        "seed_training": entry.seed_training,
        "seed_membership": entry.seed_membership,
    }
    split = entry.split(constants)
    json.dump({"seeds": seeds, "constants": constants.to_json(), **split.as_dict()}, sys.stdout)
    sys.stdout.write("\n")
    return 0


def _add_score(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "score",
        help="score a predictions tree against solutions",
        description="Reads PRED_ROOT (a directory <scenario>/<phase>/model_<i>/prediction.csv, "
        "optionally under sst2/, or a submission zip) and the solution.csv files of TREE (a "
        "challenge or answers tree). Prints a Markdown table of the MICO metrics per scenario and "
        "phase (all models of a phase pooled under one threshold) and writes a log-log ROC PNG "
        "per scenario, roc_<scenario>.png, into --plot-dir.",
    )
    p.add_argument("pred_root", type=Path, metavar="PRED_ROOT")
    p.add_argument("--solutions", type=Path, required=True, metavar="TREE")
    p.add_argument(
        "--plot-dir", type=Path, default=Path("."), help="where ROC PNGs go (default: .)"
    )
    p.add_argument(
        "--json", type=Path, default=None, help="also write the metrics as JSON to this file"
    )
    p.set_defaults(handler=_cmd_score)


def _cmd_score(args: argparse.Namespace) -> int:

    solutions = read_challenge(args.solutions, require_weights=False)
    rows = score_tree(read_predictions(args.pred_root), solutions)
    if not rows:
        raise SubmissionError(
            [f"{args.pred_root}: no predictions for any labelled model of {args.solutions}"]
        )
    print(format_table(rows))
    plots = plot_roc(rows, args.plot_dir)
    wrote: dict[str, object] = {
        "ROC plots": ", ".join(str(p) for p in plots) or "none (no labelled phase)"
    }
    if args.json:
        payload = [
            {
                "scenario": r.scenario,
                "phase": r.phase,
                "n_models": r.n_models,
                "n_points": r.n_points,
                **readable(r.metrics),
            }
            for r in rows
        ]
        wrote["metrics JSON"] = atomic_write_text(args.json, json.dumps(payload, indent=2) + "\n")
    _wrote(**wrote)
    return 0


def _add_pack(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "pack",
        help="validate predictions and write the submission zip",
        description="Reads PRED_ROOT (directory or zip of "
        "<scenario>/<phase>/model_<i>/prediction.csv). Checks that every dev and final model is "
        "present (those of --challenge TREE, else the MICO SST-2 set: sst2_{hi,inf,lo}, models "
        "100-199) with the right count of values, all in [0, 1], no extra or path-escaping "
        "entries, and at most 2 MB. Reports every problem; writes -o only when all pass.",
    )
    p.add_argument("pred_root", type=Path, metavar="PRED_ROOT")
    p.add_argument("-o", "--output", type=Path, required=True, metavar="ZIP")
    p.add_argument(
        "--challenge",
        type=Path,
        default=None,
        metavar="TREE",
        help="challenge whose models to expect",
    )
    p.set_defaults(handler=_cmd_pack)


def _cmd_pack(args: argparse.Namespace) -> int:

    expected = (
        Expected.from_challenge(read_challenge(args.challenge, require_weights=False))
        if args.challenge
        else Expected.mico()
    )
    path = pack(args.pred_root, args.output, expected)
    _wrote(submission=f"{path} ({path.stat().st_size} bytes, {len(expected.keys)} models)")
    return 0


def _add_executor_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--store",
        default=None,
        help="artifact store: a directory or fsspec URI (default: $FARM_STORE, else the user "
        "cache's farm/store, shared by every command)",
    )
    p.add_argument(
        "--address",
        default=None,
        help="Ray cluster address (default: RAY_ADDRESS, else a local Ray)",
    )
    p.add_argument(
        "--workers", type=int, default=None, help="parallel jobs (default: one per CPU, or per GPU)"
    )
    p.add_argument("--cpus-per-job", type=float, default=1.0)
    p.add_argument(
        "--gpus-per-job", type=float, default=None, help="default: 1 on GPU clusters, else 0"
    )
    p.add_argument(
        "--device",
        choices=("auto", "gpu", "cpu"),
        default="auto",
        help="auto: GPUs when the cluster has some, else CPUs; gpu: ask the autoscaler for GPUs "
        "and wait (never falls back to CPUs); cpu: never use GPUs",
    )


def _executor(args: argparse.Namespace):
    # lazy: loads Ray
    from farm.cluster.executor import Executor, check_address

    address = check_address(
        args.address
    )  # refused now if wrong; Ray starts (or is joined) only when a job must run
    return Executor(
        store=Store(args.store or default_store()),
        workers=args.workers,
        cpus_per_job=args.cpus_per_job,
        gpus_per_job=args.gpus_per_job,
        device=args.device,
        address=address,
        early=True,  # the commands start workers before planning; each closes the executor
    )


def _jobs_line(executor: Executor) -> None:
    """The last line of every command that runs jobs; other tools parse it, so its format is
    fixed."""
    print(f"jobs: {executor.ran} run, {executor.reused} reused")


def _add_make_challenge(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "make-challenge",
        help="build a mini challenge (MICO layout) with the executor",
        description="Reads CONFIG (a path, or a shipped name: mini, mini-sst2). Trains a "
        "tokenizer, a base model and every target on Ray (jobs cached in --store, so a rerun "
        "trains nothing twice) and writes OUT/challenge (what a participant gets: challenge.json, "
        "assets/, train models with answers, dev/final models with seed_challenge only) and "
        "OUT/answers (dev/final seeds and solution.csv). Reuses a complete tree made from the "
        "same config.",
    )
    p.add_argument(
        "--config",
        type=_config,
        required=True,
        help="mini challenge config: a path or a shipped name",
    )
    p.add_argument("--out", type=Path, required=True, metavar="DIR")
    _add_executor_args(p)
    _add_dry_run(p)
    p.set_defaults(handler=_cmd_make_challenge)


def _cmd_make_challenge(args: argparse.Namespace) -> int:

    load_challenge_config(args.config)  # checked in full before Ray starts
    if args.dry_run:
        return _dry_run(args, "make-challenge")
    executor = _executor(args)
    try:
        out = make_challenge(args.config, args.out, executor)
    finally:
        executor.close()  # the workers make_challenge started early
    _wrote(challenge=out / "challenge", answers=out / "answers", store=executor.store.uri)
    _jobs_line(executor)
    return 0


def _add_attack(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "attack",
        help="attack a challenge end to end: shadows, signals, attack, submission, report",
        description="Reads TREE (a challenge tree) and CONFIG (attack config YAML, or a best.yaml "
        "from farm tune; a path or a shipped name: attack-mini, attack-mini-sst2, attack-mico). "
        "Trains the plan's shadows and runs inference on Ray (cached in --store), scores the "
        "labelled train models leave-one-out and, with --answers, dev and final. Writes "
        "OUT/predictions/, OUT/submission.zip (validated), OUT/report.md and "
        "OUT/roc_<scenario>.png.",
    )
    p.add_argument("--challenge", type=Path, required=True, metavar="TREE")
    p.add_argument(
        "--config", type=_config, required=True, help="attack config: a path or a shipped name"
    )
    p.add_argument(
        "--answers", type=Path, default=None, help="answers tree with dev/final solutions (mini)"
    )
    p.add_argument("--out", type=Path, default=Path("farm-attack"), metavar="DIR")
    _add_executor_args(p)
    _add_dry_run(p)
    p.set_defaults(handler=_cmd_attack)


def _cmd_attack(args: argparse.Namespace) -> int:

    configs = check_attack_inputs(args.config, args.challenge, args.answers)  # before Ray starts
    if args.dry_run:
        return _dry_run(args, "attack")
    executor = _executor(args)
    try:
        results = attack_challenge(
            args.challenge, configs, executor, args.out, answers_root=args.answers
        )
    finally:
        executor.close()  # the workers attack_challenge started early
    print(score_table(results))
    _wrote_attack(args.out, executor.store.uri)
    _jobs_line(executor)
    return 0


def _wrote_attack(out: Path, store: str) -> None:
    plots = sorted(out.glob("roc_*.png"))
    _wrote(
        predictions=out / "predictions",
        submission=out / "submission.zip",
        report=out / "report.md",
        metrics=out / "metrics.json",
        scores=out / "scores.parquet",
        ROC_plots=", ".join(str(p) for p in plots) or "none (no labelled phase)",
        store=store,
    )


def _add_demo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="the embedded default end to end: build the mini challenge, attack it, score it",
        description="Builds (or reuses) the mini challenge of the shipped config `mini` in "
        "OUT/challenge and OUT/answers, attacks it with the shipped `attack-mini`, and writes "
        "OUT/submission.zip, OUT/report.md and OUT/roc_<scenario>.png. Prints the score table. "
        "Needs no GPU and no download.",
    )
    p.add_argument("--out", type=Path, default=Path("farm-demo"), metavar="DIR")
    p.add_argument(
        "--config", type=_config, default="mini", help="mini challenge config (default: mini)"
    )
    p.add_argument(
        "--attack-config", type=_config, default="attack-mini", help="default: attack-mini"
    )
    _add_executor_args(p)
    p.set_defaults(handler=_cmd_demo)


def _cmd_demo(args: argparse.Namespace) -> int:

    mini = load_challenge_config(args.config)  # both configs checked in full before Ray starts
    configs = load_attack_config(args.attack_config)
    check_scenarios(
        args.attack_config, "scenarios", [s for s in configs if s != "*"], sorted(mini.scenarios)
    )
    executor = _executor(args)
    try:  # one pool of workers, started early, serves the challenge's jobs and the attack's
        make_challenge(args.config, args.out, executor)
        results = attack_challenge(
            args.out / "challenge", configs, executor, args.out, answers_root=args.out / "answers"
        )
    finally:
        executor.close()
    print(score_table(results))
    _wrote(challenge=args.out / "challenge", answers=args.out / "answers")
    _wrote_attack(args.out, executor.store.uri)
    _jobs_line(executor)
    return 0


def _add_tune(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "tune",
        help="Ray Tune: choose shadow recipe, DP variant, pool size and attack per scenario",
        description="Reads TREE and CONFIG (search space, budget; a path or a shipped name: "
        "tune-mini, tune-mini-sst2, tune-mico). Per scenario, runs a Ray Tune search (Optuna + "
        "ASHA; resumed with Tuner.restore when OUT/ray_results holds an interrupted one) whose "
        "objective is TPR@0.1FPR on a search part of the labelled train models, then scores the "
        "best and the default configuration on the held-out train models. Writes "
        "OUT/<scenario>/best.yaml (for farm attack --config), OUT/<scenario>/trials.csv and "
        "OUT/summary.md. Dev/final answers are never read.",
    )
    p.add_argument("--challenge", type=Path, required=True, metavar="TREE")
    p.add_argument(
        "--config", type=_config, required=True, help="tune config: a path or a shipped name"
    )
    p.add_argument("--out", type=Path, default=Path("farm-tune"), metavar="DIR")
    p.add_argument("--scenarios", default=None, help="comma-separated subset of scenarios")
    _add_executor_args(p)
    _add_dry_run(p)
    p.set_defaults(handler=_cmd_tune)


def _cmd_tune(args: argparse.Namespace) -> int:

    scenarios = args.scenarios.split(",") if args.scenarios else None
    check_tune_inputs(args.config, args.challenge, scenarios)  # before Ray starts
    if args.dry_run:
        return _dry_run(args, "tune")
    executor = _executor(args)
    print(run_tune(args.challenge, args.config, executor, args.out, scenarios=scenarios))
    best = [
        p
        for p in sorted(args.out.glob("*/best.yaml"))
        if scenarios is None or p.parent.name in scenarios
    ]
    _wrote(
        best_configs=", ".join(str(p) for p in best),
        trials=args.out / "<scenario>" / "trials.csv",
        summary=args.out / "summary.md",
        Tune_runs=args.out / "ray_results",
        store=executor.store.uri,
    )
    _jobs_line(executor)
    return 0


def _add_store(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "store",
        help="check a store: every entry's files against their checksums",
        description="`farm store verify STORE` reads every file of every entry of STORE (a "
        "directory or fsspec URI) and checks it against the sha256 its manifest recorded. Runs "
        "skip finished entries by a metadata check (sizes, stamps) that reads no artifact byte; "
        "this is the full check. Prints each corrupt entry and a summary line; exits 1 if any "
        "entry is corrupt. Writes nothing (a rerun recomputes corrupt entries).",
    )
    verbs = p.add_subparsers(dest="verb", required=True, metavar="VERB")
    verify = verbs.add_parser("verify", help="full checksum check of every entry")
    verify.add_argument("store", metavar="STORE")
    verify.set_defaults(handler=_cmd_store_verify)


def _cmd_store_verify(args: argparse.Namespace) -> int:

    store = Store(args.store, create=False)
    keys = store.keys()
    bad = store.verify_all()
    for key, problems in bad.items():
        print(f"corrupt {key}: {'; '.join(problems)}")
    print(f"entries: {len(keys)} checked, {len(bad)} corrupt")
    return 1 if bad else 0


def _add_dry_run(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="check the inputs and print the plan (as farm plan, 8 GPUs), run nothing",
    )


def _dry_run(args: argparse.Namespace, command: str) -> int:

    store = _plan_store(args.store)
    plan = _plan(
        command,
        args.config,
        getattr(args, "challenge", None),
        store=store,
        gpus=8,
        table=None,
        scenarios=getattr(args, "scenarios", None),
    )
    print(format_forecast(plan))
    print(_store_line(args.store, store))
    return 0


def _plan_store(given: str | None) -> Store | None:
    """The store a plan counts done jobs in (``given``, else the shared default), opened only when
    it exists: a plan writes nothing."""
    where = given or default_store()
    return Store(where) if "://" in where or Path(where).is_dir() else None


def _store_line(given: str | None, opened: Store | None) -> str:
    """A plan's closing ``store:`` line: the store it counted in, or the one it would have."""
    if opened is not None:
        return f"store: {opened.uri}"
    return f"store: {given or default_store()} (not there yet: no job counted as done)"


def _plan(
    command: str,
    config: Path,
    challenge: Path | Challenge | None,
    *,
    store: Store | None,
    gpus: int,
    table: Path | None,
    scenarios: str | None,
):
    """The ``farm.commands.dry_run`` forecast of ``command``, counting done jobs in ``store``
    (None: counting nothing)."""

    opened = store
    rates = dryrun.read_table(table)
    if command == "make-challenge":
        return dryrun.make_challenge_forecast(config, table=rates, gpus=gpus, store=opened)
    if command == "audit":
        audit = load_audit_config(config)
        return dryrun.audit_forecast(audit, table=rates, gpus=gpus, store=opened)
    if challenge is None:
        raise ConfigError(_needs_challenge(config, command))
    if command == "tune":
        names = scenarios.split(",") if scenarios else None
        return dryrun.tune_forecast(
            challenge, load_tune_config(config), table=rates, gpus=gpus, scenarios=names
        )
    return dryrun.attack_forecast(
        challenge, load_attack_config(config), table=rates, gpus=gpus, store=opened
    )


def _needs_challenge(config: Path, command: str) -> str:
    return (
        f"{config}: an {command} config needs --challenge TREE to plan (--challenge {MICO_SST2}: "
        f"MICO SST-2's published layout, before any download)"
    )


def _plan_challenge(name: str | None) -> Path | Challenge | None:
    """``farm plan``'s ``--challenge``: ``mico-sst2`` exactly is MICO SST-2's published layout
    (``farm.challenge.layouts``; a folder of that name is ``./mico-sst2``), anything else a tree's
    path, None when not given."""
    if name is None:
        return None
    return mico_sst2_layout() if name == MICO_SST2 else Path(name)


def _add_plan(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "plan",
        help="print what attack, tune, make-challenge or audit would run and cost, without "
        "running anything",
        description="Reads CONFIG (an attack, tune, make-challenge or audit config, told apart by "
        "its folder when shipped, else by its keys: `space` is a tune config, `population` a "
        "make-challenge config, `canaries` an audit config) and TREE (attack and tune only; "
        "seed files are enough, weights are not needed; `--challenge mico-sst2` plans MICO "
        "SST-2's published layout with stand-in seeds, before any download: exact job counts, "
        "GPU-hours within a few tenths of a percent), checks them, and prints per scenario "
        "and stage the trainings and inference passes (and how many --store already holds), "
        "records per job, bytes to store, estimated GPU-hours and the wall time on --gpus GPUs, "
        "from the throughput table (--table, else the one farm bench wrote, else the documented "
        "estimates of farm.spec.costs). Starts no Ray and writes nothing; loads data only when a "
        "config does not say its size.",
    )
    p.add_argument(
        "--config", type=_config, required=True, help="attack, tune, make-challenge or audit config"
    )
    p.add_argument(
        "--challenge",
        default=None,
        metavar="TREE",
        help=f"challenge tree (attack, tune); {MICO_SST2}: MICO SST-2's published layout, no "
        f"download (./{MICO_SST2} for a folder of that name)",
    )
    p.add_argument(
        "--store",
        default=None,
        help="count the jobs this store already holds (default: the shared store of every "
        "command, $FARM_STORE or the user cache's farm/store)",
    )
    p.add_argument(
        "--gpus", type=int, default=8, help="cluster size for the wall time (default: 8)"
    )
    p.add_argument(
        "--table", type=Path, default=None, help="throughput table JSON (default: farm bench's)"
    )
    p.add_argument("--scenarios", default=None, help="tune: comma-separated subset of scenarios")
    p.add_argument("--json", action="store_true", help="print the plan as JSON")
    p.set_defaults(handler=_cmd_plan)


def _cmd_plan(args: argparse.Namespace) -> int:

    kind = config_kind(args.config)
    command = "make-challenge" if kind == "challenge" else kind
    challenge = _plan_challenge(args.challenge)
    if command not in ("make-challenge", "audit") and challenge is None:
        raise ConfigError(_needs_challenge(args.config, command))
    if command == "attack":
        assert challenge is not None
        check_attack_inputs(args.config, challenge, require_weights=False)
    elif command == "tune":
        assert challenge is not None
        scenarios = args.scenarios.split(",") if args.scenarios else None
        check_tune_inputs(args.config, challenge, scenarios, require_weights=False)
    stand_in = isinstance(challenge, Challenge) and bool(challenge.stand_in)
    store = None if stand_in else _plan_store(args.store)  # stand-in seeds match no stored key
    plan = _plan(
        command,
        args.config,
        challenge,
        store=store,
        gpus=args.gpus,
        table=args.table,
        scenarios=args.scenarios,
    )
    if args.json:
        print(json.dumps({**plan.to_json(), "store": store and store.uri}, indent=2))
    else:
        print(format_forecast(plan))
        print(
            "store: none (a published layout's stand-in seeds match no stored job)"
            if stand_in
            else _store_line(args.store, store)
        )
    return 0


def _add_bench(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bench",
        help="measure training and inference throughput here; write the table farm plan reads",
        description="Trains and infers a tiny RoBERTa with random weights on random SST-2-like "
        "inputs (a few hundred sequences: seconds) in every mode (training fp32, bf16, tf32, DP "
        "with ghost clipping; inference fp32, bf16, tf32) on this machine's GPU, else its CPU; "
        "--full adds roberta-base (RobertaConfig defaults, random weights, no download; minutes "
        "on a CPU). Prints the table and writes it as JSON to --table (default: "
        "$XDG_CACHE_HOME/farm/throughput.json, which farm plan reads).",
    )
    p.add_argument("--full", action="store_true", help="also measure roberta-base")
    p.add_argument(
        "--sequences", type=int, default=384, help="sequences per measurement (default: 384)"
    )
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda")
    p.add_argument("--table", type=Path, default=None, help="where to write the table JSON")
    p.set_defaults(handler=_cmd_bench)


def _cmd_bench(args: argparse.Namespace) -> int:

    table = bench(
        ["tiny", "roberta-base"] if args.full else ["tiny"],
        sequences=args.sequences,
        device=args.device,
    )
    print("| model | mode | sequences/s |\n|---|---|---|")
    for kind, modes in table.rates.items():
        for mode, rate in modes.items():
            print(f"| {kind} | {mode} | {rate.seq_per_s:,.1f} |")
    _wrote(throughput_table=f"{write_table(table, args.table)} ({table.device})")
    return 0


def _add_audit(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "audit",
        help="audit a training recipe (canary game: epsilon lower bounds) or a trained model "
        "(how exposed its members are)",
        description="Two modes. Recipe audit (--data, --recipe, --canaries, or --config naming "
        "them): reads DATA (synthetic:N, or a TSV/CSV/parquet/JSON-lines file with label and "
        "sentence columns, a saved HF dataset or a GLUE-style folder), RECIPE (a shipped name or a"
        " path; its model must be tiny, a directory or a hub name; or a defence that releases one "
        "model, PATE, with --public) and CANARIES (KIND:COUNT[:SEED] with KIND mislabelled, ood, "
        "duplicated or relabelled -- the label-DP game --, or a YAML file). Trains --runs runs on "
        "Ray, each on a seeded half of DATA plus the canaries its coins include (jobs cached in "
        "--store), scores the canaries with every run's model and writes OUT/audit.md, "
        "OUT/audit.json, OUT/canary_scores.csv and OUT/tradeoff.png: the one-run bound of run 0 "
        "and, with 4 runs or more, the multi-run bounds, beside the recipe's theoretical epsilon "
        "(farm plan --config prints a game's cost). Model audit (--model, --members): reads MODEL "
        "(a Hugging Face classifier folder: config.json, model.safetensors, its tokenizer; pickle "
        "files are refused), DATA and the member list (record ids: a text file one per line, a CSV"
        " with an id column, or a JSON list; ids are --id-column's values, else 0-based row "
        "positions), optionally --non-members (else every other record). Trains --references "
        "reference models with RECIPE (default audit-reference) on seeded random halves of DATA, "
        "runs every model over DATA (jobs cached in --store), attacks the target with the attack "
        "the references choose (never the member list) and writes OUT/audit.md (TPR at 10/1/0.1% "
        "FPR and AUC with bootstrap-over-records intervals, the most exposed records, an epsilon "
        "bound only under --random-inclusion), OUT/audit.json, OUT/roc.png and "
        "OUT/records.parquet.",
    )
    p.add_argument("--data", default=None, metavar="DATA")
    p.add_argument(
        "--config",
        type=_config,
        default=None,
        metavar="CONFIG",
        help="recipe audit: an audit config (data, recipe, canaries, runs, ...) instead of flags",
    )
    p.add_argument(
        "--recipe",
        default=None,
        metavar="RECIPE",
        help=f"training recipe (model audit: of the references, default {DEFAULT_RECIPE})",
    )
    p.add_argument("--canaries", default=None, metavar="CANARIES", help="recipe audit: canaries")
    p.add_argument("--runs", type=int, default=None, help="recipe audit: training runs (default 1)")
    p.add_argument("--model", default=None, metavar="MODEL", help="model audit: the target folder")
    p.add_argument("--members", default=None, metavar="FILE", help="model audit: member ids")
    p.add_argument("--non-members", default=None, metavar="FILE", help="model audit: non-members")
    p.add_argument("--text-column", default=None, help="DATA's text column (default: sentence)")
    p.add_argument("--label-column", default=None, help="DATA's label column (default: label)")
    p.add_argument("--id-column", default=None, help="model audit: DATA's record-id column")
    p.add_argument(
        "--references",
        type=int,
        default=None,
        help=f"model audit: reference models (default {DEFAULT_REFERENCES})",
    )
    p.add_argument(
        "--attack",
        default=None,
        help="model audit: an attack of farm.attacks.registry, or auto (default): the protocol's "
        "choice on the references' leave-one-out scores",
    )
    p.add_argument(
        "--random-inclusion",
        action="store_true",
        help="model audit: assert that each listed member and non-member was included by its own "
        "fair coin, which alone makes a one-run epsilon bound valid",
    )
    p.add_argument(
        "--seed", type=int, default=0, help="the audit's seed (halves of DATA; model audit: folds)"
    )
    p.add_argument(
        "--delta",
        type=float,
        default=None,
        help="delta of the bounds (default: the recipe's, else 1e-5)",
    )
    p.add_argument("--confidence", type=float, default=0.95, help="confidence (default 0.95)")
    p.add_argument(
        "--public",
        default=None,
        metavar="DATA",
        help="a defence's public corpus (PATE's student queries): synthetic:N or a path",
    )
    p.add_argument("--out", type=Path, required=True, metavar="DIR")
    _add_executor_args(p)
    p.set_defaults(handler=_cmd_audit)


MODEL_ONLY = ("members", "non_members", "id_column", "references", "attack", "random_inclusion")


def _cmd_audit(args: argparse.Namespace) -> int:
    if args.model is not None:
        return _cmd_model_audit(args)
    given = [
        f"--{name.replace('_', '-')}"
        for name in MODEL_ONLY
        if getattr(args, name) is not None and getattr(args, name) is not False
    ]
    if given:
        raise ConfigError(f"{given[0]}: a model-audit flag; a model audit needs --model")
    audit = _recipe_audit(args)  # every input checked before Ray starts or any job runs
    executor = _executor(args)
    result = audit_recipe(audit, executor)
    paths = write_audit(result, args.out)
    print(paths["report"].read_text(), end="")
    _wrote(**paths, store=executor.store.uri)
    _jobs_line(executor)
    return 0


def _cmd_model_audit(args: argparse.Namespace) -> int:
    pairs = (("--canaries", args.canaries), ("--runs", args.runs))
    mixed = [flag for flag, value in pairs if value is not None]
    if mixed:
        raise ConfigError(
            f"--model with {mixed[0]}: two modes; give --model and --members (model audit) or "
            "--recipe and --canaries (recipe audit)"
        )
    if args.members is None or args.data is None:
        flag = "--members FILE (the member ids)" if args.data else "--data DATA"
        raise ConfigError(f"--model: a model audit needs {flag}")
    if args.config is not None:
        raise ConfigError("--model with --config: an audit config describes a recipe audit")
    recipe = args.recipe or DEFAULT_RECIPE
    request = ModelAuditRequest(
        model=args.model,
        data=args.data,
        members=args.members,
        non_members=args.non_members,
        recipe=recipe,
        text_column=args.text_column,
        label_column=args.label_column,
        id_column=args.id_column,
        references=DEFAULT_REFERENCES if args.references is None else args.references,
        seed=args.seed,
        attack=args.attack or "auto",
        random_inclusion=args.random_inclusion,
        delta=1e-5 if args.delta is None else args.delta,
        confidence=args.confidence,
    )
    audit = check_model_audit(request)  # every input checked before Ray starts or any job runs
    executor = _executor(args)
    paths = write_model_audit(audit_model(audit, executor), args.out)
    print(paths["report"].read_text(), end="")
    _wrote(**paths, store=executor.store.uri)
    _jobs_line(executor)
    return 0


def _recipe_audit(args: argparse.Namespace) -> RecipeAudit:
    if args.config is not None:
        given = [f for f, v in (("--data", args.data), ("--recipe", args.recipe)) if v]
        given += [f for f, v in (("--canaries", args.canaries), ("--runs", args.runs)) if v]
        if given:
            raise ConfigError(f"--config with {given[0]}: the config holds the whole game")
        return load_audit_config(args.config)
    missing = [f for f, v in (("--data", args.data), ("--recipe", args.recipe)) if not v]
    missing += ["--canaries"] if not args.canaries else []
    if missing:
        raise ConfigError(
            f"{missing[0]}: a recipe audit needs --data, --recipe and --canaries, or --config "
            "(or --model for a model audit)"
        )
    columns = {"text_column": args.text_column, "label_column": args.label_column}
    data = {**parse_data(args.data), **{k: v for k, v in columns.items() if v is not None}}
    return recipe_audit(
        data=data,
        recipe=args.recipe,
        canaries=args.canaries,
        runs=1 if args.runs is None else args.runs,
        seed=args.seed,
        delta=args.delta,
        confidence=args.confidence,
        public=args.public,
    )


_COMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [
    _add_splits,
    _add_score,
    _add_pack,
    _add_make_challenge,
    _add_attack,
    _add_demo,
    _add_tune,
    _add_plan,
    _add_bench,
    _add_store,
    _add_audit,
]

if __name__ == "__main__":
    sys.exit(main())
