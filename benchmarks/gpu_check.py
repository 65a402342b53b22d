"""The GPU check (issue 22, item 1): every number the project needs a GPU for, measured in one run
of under 8 minutes on one H100/H200 and written as Markdown and JSON tables into one folder.

    benchmarks/gpu_check.sh OUT           # on a GPU machine; exit 2 (nothing written) without one
    benchmarks/gpu_check.sh OUT --tiny    # the same parts at toy sizes: a CPU smoke run (seconds)
    benchmarks/gpu_check.sh OUT --cpu     # full sizes on this machine's CPU (parts run out of time)

roberta-base is ``RobertaConfig``'s defaults (12 x 768, vocabulary 50,265) with random weights: no
hub, no download. Inputs are ``farm.training.bench.random_tokens``: random ids with SST-2-like
lengths (mean ~25 tokens, at most 67). Parts (``PARTS``), in this order:

* ``device``: the GPU, its memory, the versions of torch, CUDA, transformers, Opacus, Ray.
* ``bench``: ``farm bench --full`` itself (``--tiny``: without ``--full``), the throughput table
  that ``farm plan`` reads: ``OUT/throughput.json`` and, by default (not with ``--tiny``), where
  ``farm plan`` reads it (``farm.commands.dry_run.default_table_path``; ``--plan-table`` elsewhere).
  Its rates include model set-up, as ``farm bench`` defines them.
* ``train``: ``farm.training.train`` at roberta-base size: plain bf16 and fp32 (batch 96, length
  grouped, model dropout 0.1) and DP-SGD with Opacus' ghost clipping (fp32, logical batch 1,024 in
  micro-batches of 256, dropout 0; the loss computed outside the model with the criterion
  ``make_private`` returns, in train mode: what the farm's loop does). Steady-state sequences/s
  from two runs of a fixed number of steps each: (sequences of the long run - of the short one) /
  (seconds of the long run - of the short one), which cancels model loading and warm-up
  (``setup_s``: the short run's seconds less its steps at the steady rate).
* ``seed_recipe``: MICO's seed recipe as HF's Trainer ran it (every input padded to 67 tokens,
  shuffled batches of 96, fp32, AdamW lr 5e-5, grad-norm clip 1, dropout 0.1, the loss computed by
  the model), re-created as the loop the Trainer runs per step (``seed_loop``: no ``accelerate``
  needed), beside the farm's loop on the shipped ``mico-inf`` recipe in fp32 and bf16: their ratio.
* ``infer``: ``farm.training.infer.model_logits`` in fp32 and bf16 (batches of 512, length
  bucketed), after a warm-up pass.
* ``mini_mico``: a one-scenario mini challenge at roberta-base size (roberta-base's layers, the
  mini tokenizer's vocabulary; 4 targets, 2 shadows, short recipes) built by ``farm make-challenge``
  and attacked by ``farm attack`` (RMIA), timed end to end: ``--runner ray`` (default) runs the
  two commands as a user does, each in its own process on a local Ray; ``--runner local`` (default
  with ``--tiny``) calls the same command functions here with ``farm.store.run_job.InProcessRunner``
  (no Ray: seconds, for the CPU test).
* ``memory``: peak GPU memory (``torch.cuda.max_memory_allocated``) per mode of ``train``,
  ``seed_recipe`` and ``infer`` (none on a CPU).

Each part is time-boxed twice: fixed step and record counts (``Sizes``) that fit its share of 8
minutes on one H100 with room to spare, and a wall-clock cap (``BUDGET_S``, never past ``TOTAL_S``
from the start) after which it is abandoned. Each part's tables are written as soon as it ends
(``OUT/<part>.md``, ``OUT/<part>.json``); a part that fails or runs out of time loses only the
numbers it had not measured yet (its file then says it is incomplete), never another part's.
``OUT/summary.md`` and ``OUT/summary.json`` list every part with its status, seconds and error.
Exit status: 0 when every part succeeded, 1 when any failed, 2 when there is no GPU and neither
``--tiny`` nor ``--cpu`` was given.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import gc
import io
import json
import math
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np

import farm
from benchmarks.common import table
from farm.spec.costs import Shape
from farm.spec.recipes import DPConfig, ModelSpec, Perf, Recipe
from farm.training.bench import RUNS, SHAPES, random_model, random_tokens

PARTS = ("device", "bench", "train", "seed_recipe", "infer", "mini_mico", "memory")
TOTAL_S = 470.0  # the parts together, however they fare (imports and the summary: seconds more)
# Each part's wall-clock cap (seconds). Expected on one H100 at farm.spec.costs' estimated rates:
# bench ~90, train ~35, seed_recipe ~25, infer ~8, mini_mico ~90 (about 4 minutes in all); the caps
# hold the parts at half those rates too (~7 minutes), and TOTAL_S cuts the last ones short beyond.
BUDGET_S = {
    "device": 15,
    "bench": 180,
    "train": 90,
    "seed_recipe": 50,
    "infer": 25,
    "mini_mico": 150,
    "memory": 5,
}
SEED_LENGTH = 67  # MICO's seed recipe padded every input to this many tokens
EXIT_NO_GPU = 2


@dataclass(frozen=True, kw_only=True)
class Sizes:
    """What one run measures, and how much of it: the model, the records, the batches and the fixed
    step counts that time-box each measurement."""

    name: str
    shape: Shape
    heads: int
    records: int  # random SST-2-like records to train and infer on
    batch: int  # plain and seed-recipe batch (MICO: 96)
    dp_batch: int  # DP logical batch (MICO: 1,024)
    dp_micro: int  # DP micro-batch (Perf.micro_batch)
    steps: Mapping[str, tuple[int, int]]  # train mode -> (short, long) optimizer steps
    seed_steps: tuple[int, int]  # seed loop: (warm-up, timed) steps
    infer_records: int  # sequences per timed inference pass
    infer_batch: int
    bench_sequences: int  # farm bench --sequences
    bench_full: bool  # farm bench --full
    challenge: Mapping[str, Any]  # the mini MICO's make-challenge config, less its scenario recipe
    recipe: Mapping[str, Any]  # the mini MICO's scenario recipe (targets and shadows)


FULL = Sizes(
    name="roberta-base",
    shape=SHAPES["roberta-base"],
    heads=12,
    records=4_096,
    batch=96,
    dp_batch=1_024,
    dp_micro=256,
    steps={"bf16": (3, 123), "fp32": (3, 43), "dp": (1, 5)},
    seed_steps=(3, 40),
    infer_records=16_384,
    infer_batch=512,
    bench_sequences=2_048,
    bench_full=True,
    challenge={
        "description": "gpu_check: one scenario at roberta-base size",
        "seed": 22,
        "population": {"source": "synthetic", "n": 3_000, "seed": 0},
        "public": {"source": "synthetic", "n": 1_000, "seed": 1},
        "vocab_size": 8_192,
        "base_recipe": {
            "model": {
                "name": "tiny",
                "tiny": {
                    "hidden_size": 768,
                    "num_hidden_layers": 12,
                    "num_attention_heads": 12,
                    "intermediate_size": 3_072,
                },
            },
            "steps": 10,
            "learning_rate": 5.0e-5,
            "batch_size": 96,
            "precision": "bf16",
        },
        "len_challenge": 50,
        "len_training": 2_920,
        "models": {"train": 2, "dev": 1, "final": 1},
    },
    recipe={
        "model": {"name": "base"},
        "epochs": 1,
        "learning_rate": 5.0e-5,
        "batch_size": 96,
        "max_length": 67,
        "grad_clip": 1.0,
    },
)

TINY = Sizes(
    name="tiny (--tiny)",
    shape=Shape(
        vocab_size=512,
        hidden_size=32,
        num_hidden_layers=1,
        intermediate_size=64,
        max_position_embeddings=70,
    ),
    heads=2,
    records=64,
    batch=8,
    dp_batch=16,
    dp_micro=8,
    steps={"bf16": (1, 3), "fp32": (1, 3), "dp": (1, 2)},
    seed_steps=(1, 2),
    infer_records=128,
    infer_batch=32,
    bench_sequences=16,
    bench_full=False,
    challenge={
        "description": "gpu_check --tiny: one scenario, toy sizes",
        "seed": 22,
        "population": {"source": "synthetic", "n": 120, "seed": 0},
        "public": {"source": "synthetic", "n": 100, "seed": 1},
        "vocab_size": 300,
        "base_recipe": {
            "model": {
                "name": "tiny",
                "tiny": {
                    "hidden_size": 16,
                    "num_hidden_layers": 1,
                    "num_attention_heads": 2,
                    "intermediate_size": 32,
                },
            },
            "steps": 2,
            "learning_rate": 1.0e-3,
            "batch_size": 32,
        },
        "len_challenge": 5,
        "len_training": 110,
        "models": {"train": 2, "dev": 1, "final": 1},
    },
    recipe={
        "model": {"name": "base"},
        "steps": 2,
        "learning_rate": 1.0e-3,
        "batch_size": 32,
        "max_length": 67,
    },
)


class OutOfTime(BaseException):
    """A part ran past its wall-clock cap. A ``BaseException``, so that no library's ``except
    Exception`` swallows it."""


@dataclass
class Part:
    """One part's outcome: its rows (also its JSON) and a sentence on how they were measured."""

    rows: list[dict[str, Any]]
    note: str = ""
    markdown: str = ""  # written instead of a table of ``rows`` when set
    extra: dict[str, Any] = field(default_factory=dict)  # more JSON beside the rows


@dataclass
class Check:
    """One run's settings and the state its parts share: the output folder, the sizes, the device,
    the work folder, and (made on first use) the random model and records."""

    out: Path
    sizes: Sizes
    device: str  # "cuda" or "cpu"
    work: Path
    runner: str  # mini_mico: "ray" or "local"
    plan_table: Path | None
    measured: dict[str, Part] = field(default_factory=dict)

    @cached_property
    def model_dir(self) -> Path:
        """The random model of ``sizes.shape`` (torch seed 0), saved once for every part."""
        # lazy: loads torch
        import torch

        torch.manual_seed(0)
        return random_model(self.sizes.shape, self.sizes.heads, self.work / "model")

    @cached_property
    def tokens(self) -> Any:
        """``sizes.records`` random SST-2-like records over the model's vocabulary (seed 0)."""
        return random_tokens(self.sizes.records, self.sizes.shape.vocab_size)

    @property
    def where(self) -> str:
        """The device in words (``farm.training.bench.describe``)."""
        # lazy: loads torch
        import torch

        # lazy: loads torch
        from farm.training.bench import describe

        return describe(torch.device(self.device))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the parts asked for (all by default) into ``OUT``; return the exit status (module
    docstring)."""
    args = _parser().parse_args(argv)
    # lazy: loads torch (after the arguments, so --help is instant)
    import torch

    if not torch.cuda.is_available() and not (args.tiny or args.cpu):
        print(
            f"gpu_check: no GPU here (torch {torch.__version__}, CUDA "
            f"{torch.version.cuda or 'none'}: torch.cuda.is_available() is False); nothing "
            f"measured, nothing written. Run it on a GPU machine, or add --tiny (toy sizes, a CPU "
            f"smoke run) or --cpu (full sizes on the CPU: parts will run out of time).",
            file=sys.stderr,
        )
        return EXIT_NO_GPU
    parts = _parts(args.parts)
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="farm-gpu-check-", dir=args.work))
    check = Check(
        out=out,
        sizes=TINY if args.tiny else FULL,
        device="cpu" if args.cpu or not torch.cuda.is_available() else "cuda",
        work=work,
        runner=args.runner or ("local" if args.tiny else "ray"),
        plan_table=args.plan_table if args.plan_table or args.tiny else _default_plan_table(),
    )
    start, summary, threads = time.perf_counter(), [], torch.get_num_threads()
    if args.tiny:  # toy sizes gain nothing from threads, and on a busy CPU they slow them 20x
        torch.set_num_threads(1)
    try:
        for name in parts:
            cap = min(BUDGET_S[name], TOTAL_S - (time.perf_counter() - start))
            summary.append(run_part(check, name, cap))
    finally:
        torch.set_num_threads(threads)
        if not args.keep_work:
            shutil.rmtree(work, ignore_errors=True)
    failed = [s for s in summary if s["status"] != "ok"]
    total = time.perf_counter() - start
    note = f"{len(summary) - len(failed)} of {len(summary)} parts ok in {total:.0f} s" + (
        f"; failed: {', '.join(s['part'] for s in failed)}" if failed else ""
    )
    _write(out, "summary", Part(summary, note), check, total)
    print((out / "summary.md").read_text())
    return 1 if failed else 0


def run_part(check: Check, name: str, cap: float) -> dict[str, Any]:
    """Run part ``name`` within ``cap`` seconds and write its tables (a part that fails keeps the
    rows it measured before, marked incomplete); its summary row (``status`` ok, failed or skipped,
    with the error). Never raises for the part's own failure."""
    start = time.perf_counter()
    row: dict[str, Any] = {"part": name, "status": "ok", "seconds": 0.0, "error": ""}
    if cap < 1:
        row.update(status="skipped", error=f"no time left of the {TOTAL_S:.0f} s budget")
        return row
    rows: list[dict[str, Any]] = []  # the part appends each row as it is measured
    try:
        with deadline(cap):
            part = MEASURE[name](check, rows)
        check.measured[name] = part
        _write(check.out, name, part, check, time.perf_counter() - start)
    except (Exception, OutOfTime) as exc:  # one part's failure must not lose the others' numbers
        row.update(status="failed", error=f"{type(exc).__name__}: {exc}"[:500])
        exc.__traceback__ = None  # let go of the part's tensors
        if rows:  # what it measured before it failed
            note = f"INCOMPLETE: stopped by {row['error']}. The rows measured before that:"
            check.measured[name] = Part(rows, note)
            _write(check.out, name, check.measured[name], check, time.perf_counter() - start)
    finally:
        _release_memory(check.device)
    row["seconds"] = round(time.perf_counter() - start, 1)
    print(f"gpu_check: {name}: {row['status']} in {row['seconds']} s {row['error']}", flush=True)
    return row


@contextlib.contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Raise ``OutOfTime`` in the main thread after ``seconds`` (SIGALRM); no cap elsewhere."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def _expire(signum: int, frame: Any) -> None:
        raise OutOfTime(f"over its cap of {seconds:.0f} s")

    previous = signal.signal(signal.SIGALRM, _expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


# ---------------------------------------------------------------------------------------- parts


def measure_device(check: Check, rows: list[dict[str, Any]]) -> Part:
    """What the numbers were measured on and with."""
    # lazy: loads torch
    import torch

    rows += [
        {"item": "device", "value": check.where},
        {"item": "sizes", "value": check.sizes.name},
        {"item": "torch", "value": torch.__version__},
        {"item": "CUDA (torch built for)", "value": torch.version.cuda or "none"},
        *({"item": name, "value": _version(name)} for name in ("transformers", "opacus", "ray")),
        {"item": "farm", "value": farm.__version__},
        {"item": "python", "value": platform.python_version()},
        {"item": "CPU cores", "value": os.cpu_count()},
    ]
    if check.device == "cuda":
        props = torch.cuda.get_device_properties(0)
        rows += [
            {"item": "GPU memory (GiB)", "value": round(props.total_memory / 2**30, 1)},
            {"item": "compute capability", "value": f"{props.major}.{props.minor}"},
            {"item": "GPUs visible", "value": torch.cuda.device_count()},
        ]
    return Part(rows, "Where and with what the other tables were measured.")


def measure_bench(check: Check, rows: list[dict[str, Any]]) -> Part:
    """``farm bench`` (``--full`` at full sizes) as the command runs, its printed table kept; the
    table JSON in ``OUT/throughput.json`` and, when ``check.plan_table`` is set, copied there and
    read back as ``farm plan`` reads it."""
    # lazy: the CLI imports most of the package
    from farm.cli import main as farm_main

    # lazy: beside the CLI, which it serves
    from farm.commands.dry_run import read_table

    table_json = check.out / "throughput.json"
    argv = ["bench", "--sequences", str(check.sizes.bench_sequences), "--device", check.device]
    argv += ["--full"] * check.sizes.bench_full + ["--table", str(table_json)]
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        status = farm_main(argv)
    if status != 0:
        raise RuntimeError(f"farm {' '.join(argv)} exited {status}")
    data = json.loads(table_json.read_text())
    rows += [
        {"model": kind, "mode": mode, "seq/s": rate["seq_per_s"]}
        for kind, modes in data["rates"].items()
        for mode, rate in modes.items()
    ]
    copied = ""
    if check.plan_table is not None:
        check.plan_table.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(table_json, check.plan_table)
        read_table(check.plan_table)  # farm plan reads it: refused here if it could not
        copied = f" Copied to {check.plan_table}, where farm plan reads it."
    note = (
        f"`farm {' '.join(argv)}` on {data['device']}: sequences/s with model set-up included, "
        f"the fastest of {RUNS} runs after a warm-up (farm.training.bench).{copied}"
    )
    return Part(rows, note, markdown=printed.getvalue(), extra={"table": data})


def measure_train(check: Check, rows: list[dict[str, Any]]) -> Part:
    """Steady-state sequences/s, set-up seconds and peak memory of ``farm.training.train`` in plain
    bf16, plain fp32 and DP-SGD (ghost clipping) at ``check.sizes``."""
    s = check.sizes
    model = ModelSpec(name=str(check.model_dir))
    plain = Recipe(model=model, batch_size=s.batch, learning_rate=5e-5, max_length=67)
    dp = Recipe(
        model=dataclasses.replace(model, dropout=0.0),
        batch_size=s.dp_batch,
        learning_rate=5e-4,
        max_length=67,
        group_by_length=False,
        dp=DPConfig(
            noise_multiplier=1.0,
            delta=1e-5,
            max_grad_norm=0.1,
            clip_scale=64,
            sampling="shuffle",
            accountant="rdp",
        ),
    )
    modes = {
        "plain bf16": (dataclasses.replace(plain, precision="bf16"), s.steps["bf16"], Perf()),
        "plain fp32": (plain, s.steps["fp32"], Perf()),
        "DP-SGD ghost fp32": (
            dp,
            s.steps["dp"],
            Perf(micro_batch=s.dp_micro, grad_sample_mode="ghost"),
        ),
    }
    for mode, (recipe, steps, perf) in modes.items():
        row = farm_rate(check, recipe, steps, dataclasses.replace(perf, device=check.device))
        rows.append(
            {
                "mode": mode,
                "batch": recipe.batch_size,
                "micro-batch": min(perf.micro_batch, recipe.batch_size),
                "dropout": "0" if recipe.model.dropout == 0 else "0.1 (default)",
                **row,
            }
        )
    note = (
        f"farm.training.train on {check.where}, {s.name} with random weights, "
        f"{s.records:,} random SST-2-like records. seq/s: steady state, (sequences of the long run "
        f"- of the short one) / (seconds of the long run - of the short one), so model loading "
        f"and warm-up cancel; setup_s: the short run's seconds less its sequences at that rate. "
        f"Plain: length-grouped batches, AdamW lr 5e-5. DP-SGD: Opacus ghost clipping, the loss "
        f"computed outside the model with make_private's criterion, train mode, dropout 0, "
        f"noise multiplier 1, clip 0.1 x 64, shuffled batches, RDP accountant."
    )
    return Part(rows, note)


def measure_seed_recipe(check: Check, rows: list[dict[str, Any]]) -> Part:
    """MICO's seed recipe (``seed_loop``) against the farm's loop on ``mico-inf``, fp32 and bf16."""
    # lazy: reads the shipped recipe files
    from farm.config.recipes import load_recipe

    s = check.sizes
    warm, timed = s.seed_steps
    seed = seed_loop(check, warm, timed)
    loop = f"seed recipe: pad to {SEED_LENGTH}, HF Trainer's step"
    rows.append({"loop": loop, "precision": "fp32", **seed, "vs seed": 1.0})
    mico = dataclasses.replace(
        load_recipe("mico-inf"), model=ModelSpec(name=str(check.model_dir)), batch_size=s.batch
    )
    perf = Perf(device=check.device)
    for precision in ("fp32", "bf16"):
        recipe = dataclasses.replace(mico, precision=precision)
        got = farm_rate(check, recipe, (warm, warm + timed), perf)
        got["vs seed"] = _ratio(got["seq/s"], seed["seq/s"])
        rows.append({"loop": "farm.training.train, mico-inf", "precision": precision, **got})
    note = (
        f"On {check.where}, {s.name}, random weights, batch {s.batch}, the same random SST-2-like "
        f"records. Seed recipe (MICO's targets, as HF's Trainer ran them): every input padded to "
        f"{SEED_LENGTH} tokens, shuffled batches, fp32, AdamW lr 5e-5, grad-norm clip 1, dropout "
        f"0.1, the loss computed by the model; timed over {timed} steps after {warm}. The farm: "
        f"the shipped mico-inf recipe (the same settings, dynamic padding, length-grouped "
        f"batches), steady state from runs of {warm} and {warm + timed} steps. vs seed: seq/s over "
        f"the seed recipe's."
    )
    return Part(rows, note)


def measure_infer(check: Check, rows: list[dict[str, Any]]) -> Part:
    """Sequences/s and peak memory of ``farm.training.infer.model_logits`` in fp32 and bf16."""
    # lazy: loads torch
    from farm.training.infer import model_logits

    # lazy: loads torch
    from farm.training.models import load_model

    s = check.sizes
    model = load_model(check.model_dir)
    perf = Perf(device=check.device, infer_batch=s.infer_batch)
    every = np.resize(np.arange(s.records), s.infer_records)
    for precision in ("fp32", "bf16"):
        model_logits(model, check.tokens, every[: s.infer_batch], perf=perf, precision=precision)
        _reset_peak(check.device)
        start = time.perf_counter()
        logits = model_logits(model, check.tokens, every, perf=perf, precision=precision)
        seconds = time.perf_counter() - start
        if not np.isfinite(logits).all():
            raise RuntimeError(f"inference in {precision} gave non-finite logits")
        rows.append(
            {
                "precision": precision,
                "sequences": int(every.size),
                "seconds": round(seconds, 3),
                "seq/s": round(every.size / seconds, 1),
                "peak GiB": _peak(check.device),
            }
        )
    note = (
        f"farm.training.infer.model_logits on {check.where}, {s.name}, random weights, batches of "
        f"{s.infer_batch} (length-bucketed, dynamic padding), one timed pass over "
        f"{s.infer_records:,} random SST-2-like records after a warm-up batch; logits copied back "
        f"to the host."
    )
    return Part(rows, note)


def measure_mini_mico(check: Check, rows: list[dict[str, Any]]) -> Part:
    """A one-scenario mini MICO built and attacked end to end (``check.runner``); its report and
    metrics beside the timing table."""
    attacked = check.work / "mini_mico" / "attack"
    make, attack = mini_mico_commands(check.sizes, check.work / "mini_mico")
    run = _farm_process if check.runner == "ray" else _farm_here
    for step, argv in (("farm make-challenge", make), ("farm attack", attack)):
        start = time.perf_counter()
        jobs = run(argv, check)
        rows.append(
            {"step": step, "seconds": round(time.perf_counter() - start, 1), "jobs run": jobs}
        )
    rows.append(
        {
            "step": "end to end",
            "seconds": round(sum(r["seconds"] for r in rows), 1),
            "jobs run": sum(r["jobs run"] for r in rows),
        }
    )
    metrics = json.loads((attacked / "metrics.json").read_text())
    stages = json.loads((attacked / "stages.json").read_text())
    for name in ("report.md", "metrics.json", "stages.json"):
        shutil.copyfile(attacked / name, check.out / f"mini_mico_{name}")
    phases = metrics["scenarios"]["sst2_inf"]["phases"]
    scores = ", ".join(
        f"{phase} {p['metrics']['TPR@0.1FPR']:.3f}" for phase, p in phases.items() if p
    )
    c = check.sizes.challenge
    how = (
        "`farm` commands, each its own process on a local Ray"
        if check.runner == "ray"
        else "the commands' functions in this process with InProcessRunner (no Ray)"
    )
    note = (
        f"{how}, "
        f"on {check.where}. One scenario (sst2_inf): {c['population']['n']:,} synthetic records, "
        f"targets on {c['len_training']:,}, models {c['models']}, the base model "
        f"{c['base_recipe']['model']['tiny']} (vocabulary: the mini tokenizer's) trained "
        f"{c['base_recipe']['steps']} steps on {c['public']['n']:,} public records; targets and "
        f"2 pooled shadows: {dict(check.sizes.recipe)}; RMIA. Attack stages (wall s): "
        f"{stages['wall_seconds']}. TPR@0.1FPR: {scores}. Report: mini_mico_report.md."
    )
    return Part(rows, note, extra={"stages": stages})


def measure_memory(check: Check, rows: list[dict[str, Any]]) -> Part:
    """Peak GPU memory per mode, gathered from the parts that measured it (incomplete ones too)."""
    rows += [
        {"part": name, "mode": _mode(row), "peak GiB": row["peak GiB"]}
        for name in ("train", "seed_recipe", "infer")
        if name in check.measured
        for row in check.measured[name].rows
    ]
    if not rows:
        raise RuntimeError("none of train, seed_recipe, infer measured a mode")
    where = "torch.cuda.max_memory_allocated" if check.device == "cuda" else "none on a CPU"
    return Part(rows, f"Peak memory of each mode on {check.where} ({where}), from its part.")


MEASURE: dict[str, Callable[[Check, list[dict[str, Any]]], Part]] = {
    "device": measure_device,
    "bench": measure_bench,
    "train": measure_train,
    "seed_recipe": measure_seed_recipe,
    "infer": measure_infer,
    "mini_mico": measure_mini_mico,
    "memory": measure_memory,
}


# ------------------------------------------------------------------------------ measurements


def farm_rate(check: Check, recipe: Recipe, steps: tuple[int, int], perf: Perf) -> dict[str, Any]:
    """``farm.training.train`` of ``recipe`` on ``check.tokens``, run for ``steps[0]`` then
    ``steps[1]`` optimizer steps: the steady-state rate (difference of the two runs, read from each
    run's ``farm.json``), the set-up seconds and the peak memory of the longer run. When noise
    swamps the difference (toy sizes on a busy CPU), the long run's own rate, set-up included, and
    ``rate from`` says so."""
    # lazy: loads torch
    from farm.training.train import train

    runs = []
    for n in steps:
        _reset_peak(check.device)
        folder = train(
            check.tokens,
            np.arange(check.sizes.records),
            dataclasses.replace(recipe, steps=n),
            out_dir=check.work / "trained",
            tokenizer=None,
            perf=perf,
        )
        meta = json.loads((folder / "farm.json").read_text())
        runs.append((meta["examples_seen"], meta["seconds"]))
        shutil.rmtree(folder)
    (seen0, sec0), (seen1, sec1) = runs
    if sec1 > sec0 and seen1 > seen0:
        rate = (seen1 - seen0) / (sec1 - sec0)
        setup, method = sec0 - seen0 / rate, "difference"
    else:  # noise swamped the difference (toy sizes on a busy CPU): say so, keep a number
        rate, setup, method = seen1 / sec1, math.nan, "long run, set-up included"
    return {
        "steps": f"{steps[0]} / {steps[1]}",
        "seq/s": round(rate, 1),
        "setup_s": round(setup, 2),
        "rate from": method,
        "peak GiB": _peak(check.device),
    }


def seed_loop(check: Check, warm: int, timed: int) -> dict[str, Any]:
    """MICO's seed recipe, step for step as HF's Trainer ran it: every record padded to
    ``SEED_LENGTH`` tokens, shuffled batches of ``sizes.batch`` moved to the device per step, the
    loss computed by the model from the labels, backward, grad-norm clip 1, AdamW (lr 5e-5, no
    weight decay) in fp32 with the model's default dropout (0.1). Sequences/s over ``timed`` steps
    after ``warm`` (synchronized), and peak memory. The Trainer's own bookkeeping (callbacks,
    logging) is not run, so the farm's true lead over the Trainer is, if anything, larger."""
    # lazy: loads torch
    import torch

    # lazy: loads torch
    from farm.training.models import load_model

    tokens, n, b = check.tokens, check.sizes.records, check.sizes.batch
    ids = torch.full((n, SEED_LENGTH), tokens.pad_id, dtype=torch.long)
    mask = torch.zeros((n, SEED_LENGTH), dtype=torch.long)
    for i, row in enumerate(tokens.ids):
        ids[i, : len(row)], mask[i, : len(row)] = torch.from_numpy(row.astype(np.int64)), 1
    labels = torch.from_numpy(np.asarray(tokens.labels, dtype=np.int64))
    device = torch.device(check.device)
    torch.manual_seed(0)
    model = load_model(check.model_dir).to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-5, weight_decay=0.0)
    order = np.random.default_rng(0).permutation(np.resize(np.arange(n), (warm + timed) * b))

    def step(k: int) -> None:
        batch = torch.from_numpy(order[k * b : (k + 1) * b])
        loss = model(
            input_ids=ids[batch].to(device),
            attention_mask=mask[batch].to(device),
            labels=labels[batch].to(device),
        ).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    for k in range(warm):
        step(k)
    _sync(check.device)
    _reset_peak(check.device)
    start = time.perf_counter()
    for k in range(warm, warm + timed):
        step(k)
    _sync(check.device)
    seconds = time.perf_counter() - start
    return {
        "steps": f"{warm} + {timed}",
        "seq/s": round(timed * b / seconds, 1),
        "setup_s": math.nan,
        "rate from": "timed steps",
        "peak GiB": _peak(check.device),
    }


def mini_mico_commands(sizes: Sizes, folder: Path) -> tuple[list[str], list[str]]:
    """Write the mini MICO's configs under ``folder/configs`` (its make-challenge config, scenario
    recipe and attack config: RMIA on 2 pooled shadows of the targets' recipe) and return the
    arguments of ``farm make-challenge`` and of ``farm attack`` on its tree, which write into
    ``folder`` (``built``, ``attack``, one ``store``)."""
    configs = folder / "configs"
    configs.mkdir(parents=True, exist_ok=True)
    recipe = configs / "recipe.yaml"
    recipe.write_text(json.dumps(dict(sizes.recipe)))  # JSON is YAML
    challenge_cfg = configs / "challenge.yaml"
    challenge_cfg.write_text(
        json.dumps({**sizes.challenge, "scenarios": {"sst2_inf": str(recipe)}})
    )
    attack_cfg = configs / "attack.yaml"
    attack_cfg.write_text(
        json.dumps(
            {
                "attack": "rmia",
                "plan": {"kind": "pool", "shadows": 2, "group": 2, "seed": 0},
                "recipe": str(recipe),
                "normalize": "global",
            }
        )
    )
    built, store = folder / "built", str(folder / "store")
    make = ["make-challenge", "--config", str(challenge_cfg), "--out", str(built)]
    attack = ["attack", "--challenge", str(built / "challenge"), "--answers"]
    attack += [str(built / "answers"), "--config", str(attack_cfg)]
    attack += ["--out", str(folder / "attack")]
    return make + ["--store", store], attack + ["--store", store]


def _farm_here(argv: list[str], check: Check) -> int:
    """Run the body of a ``farm`` command in this process with ``InProcessRunner`` (no Ray): the
    functions ``farm make-challenge`` and ``farm attack`` call. The jobs it ran."""
    # lazy: the commands import most of the package
    from farm.commands.attack import attack_challenge

    # lazy: as above
    from farm.commands.make_challenge import make_challenge

    # lazy: as above
    from farm.config.attack import check_attack_inputs

    # lazy: the in-process runner is only for --runner local
    from farm.store.run_job import InProcessRunner

    # lazy: as above
    from farm.store.store import Store

    opts = dict(zip(argv[1::2], argv[2::2]))  # "--flag value" pairs after the command
    runner = InProcessRunner(Store(opts["--store"]))
    if argv[0] == "make-challenge":
        make_challenge(opts["--config"], opts["--out"], runner)
    else:
        configs = check_attack_inputs(opts["--config"], opts["--challenge"], opts["--answers"])
        attack_challenge(
            opts["--challenge"], configs, runner, opts["--out"], answers_root=opts["--answers"]
        )
    return runner.ran


def _farm_process(argv: list[str], check: Check) -> int:
    """Run ``farm ARGV`` as its own process (its own local Ray), as a user does; its process group
    is killed if this part runs out of time. The jobs it ran (its ``jobs: N run`` line)."""
    device = ["--device", "cpu"] if check.device == "cpu" else []
    proc = subprocess.Popen(
        [sys.executable, "-m", "farm.cli", *argv, *device],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own group: Ray's processes go with it on a timeout
    )
    try:
        stdout, stderr = proc.communicate()
    except BaseException:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise
    if proc.returncode != 0:
        tail = " | ".join(stderr.strip().splitlines()[-3:])
        raise RuntimeError(f"farm {argv[0]} exited {proc.returncode}: {tail}")
    found = re.search(r"^jobs: (\d+) run", stdout, re.MULTILINE)
    return int(found.group(1)) if found else -1


# ------------------------------------------------------------------------------------ helpers


def _sync(device: str) -> None:
    # lazy: loads torch
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


def _reset_peak(device: str) -> None:
    # lazy: loads torch
    import torch

    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()


def _peak(device: str) -> float | None:
    """GiB of peak allocated GPU memory since the last ``_reset_peak``; None on a CPU."""
    # lazy: loads torch
    import torch

    if device != "cuda":
        return None
    return round(torch.cuda.max_memory_allocated() / 2**30, 2)


def _release_memory(device: str) -> None:
    # lazy: loads torch
    import torch

    gc.collect()
    if device == "cuda":
        torch.cuda.empty_cache()


def _version(distribution: str) -> str:
    try:
        return version(distribution)
    except PackageNotFoundError:
        return "not installed"


def _ratio(a: float, b: float) -> float:
    return round(a / b, 2) if b and b > 0 and not math.isnan(a) else math.nan


def _mode(row: Mapping[str, Any]) -> str:
    """A row's mode in words, from the columns that name it in its part."""
    return " ".join(str(row[k]) for k in ("mode", "loop", "precision") if k in row)


def _cell(value: Any) -> Any:
    """Markdown cell text: thousands separated, small numbers to 3 significant digits, None n/a."""
    if value is None:
        return "n/a"
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        return f"{value:,.1f}" if abs(value) >= 100 else f"{value:.3g}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return value


def _json_value(value: Any) -> Any:
    """NaN as null: JSON has no NaN."""
    return None if isinstance(value, float) and math.isnan(value) else value


def _write(out: Path, name: str, part: Part, check: Check, seconds: float) -> None:
    """``OUT/<name>.md`` (a heading, the note, the table) and ``OUT/<name>.json``, each written
    whole (a temporary file renamed into place)."""
    body = part.markdown or table([{k: _cell(v) for k, v in r.items()} for r in part.rows])
    md = f"# gpu_check: {name}\n\n{part.note}\n\n{body.rstrip()}\n"
    data = {
        "part": name,
        "sizes": check.sizes.name,
        "device": check.device,
        "seconds": round(seconds, 1),
        "note": part.note,
        "rows": [{k: _json_value(v) for k, v in r.items()} for r in part.rows],
        **part.extra,
    }
    for suffix, text in ((".md", md), (".json", json.dumps(data, indent=2, default=str) + "\n")):
        tmp = out / f".{name}{suffix}.tmp"
        tmp.write_text(text)
        tmp.replace(out / f"{name}{suffix}")


def _default_plan_table() -> Path:
    # lazy: the command module imports the spec and config layers
    from farm.commands.dry_run import default_table_path

    return default_table_path()


def _parts(text: str | None) -> list[str]:
    names = text.split(",") if text else list(PARTS)
    unknown = [n for n in names if n not in PARTS]
    if unknown:
        raise SystemExit(
            f"gpu_check: unknown part(s) {', '.join(unknown)} (known: {', '.join(PARTS)})"
        )
    return [n for n in PARTS if n in names]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="gpu_check", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("out", type=Path, help="the folder the tables go to (created)")
    p.add_argument("--tiny", action="store_true", help="toy sizes: a CPU smoke run in seconds")
    p.add_argument("--cpu", action="store_true", help="measure on the CPU even if a GPU is here")
    p.add_argument("--parts", default=None, help=f"comma-separated subset of {','.join(PARTS)}")
    p.add_argument(
        "--plan-table",
        type=Path,
        default=None,
        help="where farm plan reads the bench table (default: farm's default path; --tiny: none)",
    )
    p.add_argument(
        "--runner",
        choices=("ray", "local"),
        default=None,
        help="mini_mico: farm commands on Ray (default) or in-process (default with --tiny)",
    )
    p.add_argument("--work", type=Path, default=None, help="scratch folder (default: system tmp)")
    p.add_argument("--keep-work", action="store_true", help="keep the scratch folder")
    return p


if __name__ == "__main__":
    raise SystemExit(main())
