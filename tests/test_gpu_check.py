"""The GPU check (benchmarks/gpu_check.py) runs every part at toy sizes on a CPU and writes every
table with sane numbers; a failing or overlong part loses only its own numbers; without a GPU and
without --tiny it refuses, writing nothing; its farm commands parse as the CLI's."""

import json
import math
import time

import pytest


def _rows(out, part):
    return json.loads((out / f"{part}.json").read_text())["rows"]


def test_tiny_run_writes_every_table(tmp_path):
    from benchmarks.gpu_check import PARTS, main
    from farm.commands.dry_run import read_table

    out, plan = tmp_path / "out", tmp_path / "cache" / "throughput.json"
    assert main([str(out), "--tiny", "--plan-table", str(plan), "--work", str(tmp_path)]) == 0
    for part in (*PARTS, "summary"):
        assert (out / f"{part}.md").read_text().startswith(f"# gpu_check: {part}\n")
        assert json.loads((out / f"{part}.json").read_text())["part"] == part
    assert [r["status"] for r in _rows(out, "summary")] == ["ok"] * len(PARTS)
    assert not list(tmp_path.glob("farm-gpu-check-*"))  # the scratch folder is gone

    def rate(row):
        assert row["seq/s"] > 0 and math.isfinite(row["seq/s"]), row
        return row["seq/s"]

    bench = _rows(out, "bench")
    assert {r["mode"] for r in bench} == {
        "train_fp32",
        "train_bf16",
        "train_tf32",
        "train_dp",
        "infer_fp32",
        "infer_bf16",
        "infer_tf32",
    }
    assert all(rate(r) for r in bench) and {r["model"] for r in bench} == {"tiny"}
    # the table farm plan reads: the copy in OUT and the one at --plan-table, measured here
    assert json.loads((out / "throughput.json").read_text()) == json.loads(plan.read_text())
    assert read_table(plan).rate("tiny", "train_dp").source.startswith("measured on cpu")
    assert "| tiny | train_dp |" in (out / "bench.md").read_text()

    train = {r["mode"]: r for r in _rows(out, "train")}
    assert list(train) == ["plain bf16", "plain fp32", "DP-SGD ghost fp32"]
    assert all(rate(r) for r in train.values())
    assert train["DP-SGD ghost fp32"]["dropout"] == "0" and train["plain fp32"]["batch"] == 8

    seed = _rows(out, "seed_recipe")
    assert [(r["loop"].split(":")[0], r["precision"]) for r in seed] == [
        ("seed recipe", "fp32"),
        ("farm.training.train, mico-inf", "fp32"),
        ("farm.training.train, mico-inf", "bf16"),
    ]
    assert seed[0]["vs seed"] == 1.0
    assert all(r["vs seed"] == pytest.approx(rate(r) / rate(seed[0]), rel=0.02) for r in seed)

    infer = _rows(out, "infer")
    assert [r["precision"] for r in infer] == ["fp32", "bf16"] and all(rate(r) for r in infer)

    mini = {r["step"]: r for r in _rows(out, "mini_mico")}
    assert list(mini) == ["farm make-challenge", "farm attack", "end to end"]
    assert mini["farm make-challenge"]["jobs run"] == 6  # tokenizer, base, 4 targets
    assert mini["end to end"]["seconds"] > 0 and mini["farm attack"]["jobs run"] > 0
    metrics = json.loads((out / "mini_mico_metrics.json").read_text())
    assert 0 <= metrics["scenarios"]["sst2_inf"]["phases"]["dev"]["metrics"]["TPR@0.1FPR"] <= 1

    memory = _rows(out, "memory")  # every mode of train, seed_recipe and infer; none on a CPU
    assert len(memory) == len(train) + len(seed) + len(infer)
    assert (
        all(r["peak GiB"] is None for r in memory) and "| n/a |" in (out / "memory.md").read_text()
    )


def test_a_failing_or_overlong_part_loses_only_its_own_numbers(tmp_path, monkeypatch):
    from benchmarks import gpu_check

    def broken(check, rows):
        rows.append({"mode": "first", "seq/s": 1.0, "peak GiB": None})
        raise RuntimeError("second mode broke")

    def slow(check, rows):
        time.sleep(30)

    monkeypatch.setitem(gpu_check.MEASURE, "train", broken)
    monkeypatch.setitem(gpu_check.MEASURE, "infer", slow)
    monkeypatch.setitem(gpu_check.BUDGET_S, "infer", 1)
    start = time.perf_counter()
    status = gpu_check.main(
        [str(tmp_path), "--tiny", "--parts", "device,train,infer,memory", "--work", str(tmp_path)]
    )
    assert status == 1 and time.perf_counter() - start < 20
    summary = {r["part"]: r for r in _rows(tmp_path, "summary")}
    assert summary["device"]["status"] == "ok" and summary["memory"]["status"] == "ok"
    assert summary["train"]["error"] == "RuntimeError: second mode broke"
    assert summary["infer"]["error"].startswith("OutOfTime: over its cap of 1 s")
    assert "INCOMPLETE: stopped by RuntimeError" in (tmp_path / "train.md").read_text()
    assert _rows(tmp_path, "train") == [{"mode": "first", "seq/s": 1.0, "peak GiB": None}]
    assert not (tmp_path / "infer.md").exists()  # nothing measured, nothing written
    assert _rows(tmp_path, "memory") == [{"part": "train", "mode": "first", "peak GiB": None}]
    assert "failed: train, infer" in (tmp_path / "summary.md").read_text()


def test_no_gpu_without_tiny_refuses_and_writes_nothing(tmp_path, monkeypatch, capsys):
    import torch

    from benchmarks.gpu_check import EXIT_NO_GPU, main

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main([str(tmp_path / "out")]) == EXIT_NO_GPU == 2
    assert "no GPU here" in capsys.readouterr().err and not (tmp_path / "out").exists()


def test_mini_mico_commands_are_the_clis(tmp_path):
    from benchmarks.gpu_check import FULL, mini_mico_commands
    from farm.cli import build_parser
    from farm.config.attack import load_attack_config
    from farm.config.challenge import load_challenge_config

    make, attack = mini_mico_commands(FULL, tmp_path)
    args = build_parser().parse_args(make)
    assert args.command == "make-challenge" and args.store == str(tmp_path / "store")
    config = load_challenge_config(args.config)  # roberta-base's layers, one scenario
    assert list(config.scenarios) == ["sst2_inf"] and config.base_recipe["model"]["tiny"] == {
        "hidden_size": 768,
        "num_hidden_layers": 12,
        "num_attention_heads": 12,
        "intermediate_size": 3072,
    }
    args = build_parser().parse_args(attack)
    assert args.command == "attack" and args.challenge == tmp_path / "built" / "challenge"
    assert load_attack_config(args.config)["*"].attack == "rmia"
