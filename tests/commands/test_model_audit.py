"""farm audit --model: a tiny target trained here is audited end to end (members ranked above
non-members; report, ROC and per-record table written; a rerun runs nothing), every bad input is
refused in one line before anything runs, and every data format is read."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from farm import cli
from farm.commands.model_audit import ModelAuditRequest, check_model_audit
from farm.spec.jobs import Job
from farm.store.run_job import run_job
from farm.store.runner import RunReport
from farm.store.store import Store
from tests.conftest import write_pickle_bomb

RECIPE = "tests/data/tiny-model-audit-recipe.yaml"
N = 96


class CountingRunner:
    """Runs each job in this process with ``run_job`` (real trainings, no Ray) and counts what it
    ran and reused, as the executor does for the closing line."""

    def __init__(self, store: Store) -> None:
        self._store, self.ran, self.reused = store, 0, 0

    @property
    def store(self) -> Store:
        return self._store

    def run(self, jobs: Sequence[Job], *, title: str = "jobs") -> RunReport:
        report = RunReport()
        for job in jobs:
            result = run_job(job, self._store)
            report.results[job.key] = result
            report.ran += bool(result["ran"])
        self.ran += report.ran
        self.reused += len(jobs) - report.ran
        return report


@pytest.fixture(scope="module")
def one_thread():
    """Torch on one thread: tiny models on a shared 2-core machine run several times faster."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def world(tmp_path_factory, one_thread):
    """A population of N synthetic sentences with random labels (data.csv: id, sentence, label),
    and a target trained on about half of them with the test recipe until it memorizes them (a
    folder with config.json, model.safetensors and its tokenizer); members.txt lists its ids."""
    import pandas as pd

    from farm.config.recipes import load_recipe
    from farm.spec.population import PopulationSpec
    from farm.training.data import load_population, tokenize
    from farm.training.models import load_tokenizer, train_tokenizer
    from farm.training.synthetic import synthetic_corpus
    from farm.training.train import train

    root = tmp_path_factory.mktemp("model-audit")
    rng = np.random.default_rng(0)
    sentences, _ = synthetic_corpus(N, 7)
    ids = [f"r{i:03d}" for i in range(N)]
    frame = pd.DataFrame({"id": ids, "sentence": list(sentences), "label": rng.integers(0, 2, N)})
    frame.to_csv(root / "data.csv", index=False)
    population = load_population(
        PopulationSpec.of({"source": "file", "path": str(root / "data.csv")})
    )
    train_tokenizer(list(population.sentences), root / "tokenizer", vocab_size=600)
    tokenizer = load_tokenizer(root / "tokenizer")
    recipe = load_recipe(RECIPE)
    members = np.flatnonzero(rng.random(N) < 0.5)
    tokens = tokenize(population, tokenizer, recipe.max_length)
    train(tokens, members, recipe, out_dir=root / "target", tokenizer=tokenizer)
    (root / "members.txt").write_text(
        "# the target's members\n" + "\n".join(ids[i] for i in members) + "\n"
    )
    return {"root": root, "frame": frame, "members": members, "ids": ids}


def _argv(world, out: Path, **changes: str | None) -> list[str]:
    root = world["root"]
    flags: dict[str, str | None] = {
        "--model": str(root / "target"),
        "--data": str(root / "data.csv"),
        "--members": str(root / "members.txt"),
        "--id-column": "id",
        "--recipe": RECIPE,
        "--references": "4",
        "--out": str(out),
    }
    flags.update(changes)
    argv = ["audit"]
    for flag, value in flags.items():
        if value is not None:
            argv += [flag] if value == "" else [flag, value]
    return argv


def _run_cli(argv: list[str], store: Path) -> tuple[int, str, CountingRunner]:
    """``farm audit`` through ``cli.main`` with an in-process runner on ``store``; exit code,
    stdout, the runner."""
    runner = CountingRunner(Store(store))
    printed = io.StringIO()
    with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stdout(printed):
        patch.setattr(cli, "_executor", lambda *a: runner)
        code = cli.main(argv)
    return code, printed.getvalue(), runner


@pytest.fixture(scope="module")
def audited(world):
    """The CLI's model audit of the tiny target with 4 references, run once: (out dir, stdout)."""
    out = world["root"] / "out"
    code, printed, _ = _run_cli(_argv(world, out), out / "store")
    assert code == 0, printed
    return out, printed


def test_a_tiny_target_is_audited_end_to_end(world, audited):
    out, printed = audited
    assert printed.rstrip().endswith("jobs: 9 run, 0 reused")  # target + 4 x (train, infer)
    report = json.loads((out / "audit.json").read_text())
    auc = report["figures"]["AUC"]
    assert auc["value"] > 0.7 and auc["lo"] > 0.5, auc  # members ranked above non-members
    members = len(world["members"])
    assert report["members"] == members and report["non_members"] == N - members
    assert report["epsilon"] is None and "no epsilon lower bound" in report["epsilon_reason"]
    assert report["attack"] in report["candidates"] and report["references"] == 4
    text = (out / "audit.md").read_text()
    assert "No epsilon lower bound" in text and "bootstrap over records" in text
    assert "| TPR@0.001FPR |" in text and "most exposed records" in text
    assert (out / "roc.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    import pandas as pd

    table = pd.read_parquet(out / "records.parquet")
    columns = ["position", "id", "text", "label", "member", "score", "raw_score", "rank"]
    assert list(table.columns) == columns
    assert (
        table["rank"].tolist() == list(range(1, N + 1)) and table["score"].is_monotonic_decreasing
    )
    assert sorted(table.loc[table["member"] == 1, "position"]) == world["members"].tolist()
    for row in table.head(3).itertuples():
        assert row.text == world["frame"]["sentence"][row.position]
        assert row.id == world["ids"][row.position]


def test_a_rerun_runs_nothing_and_reports_the_same(world, audited):
    out, _ = audited
    before = json.loads((out / "audit.json").read_text())
    code, printed, runner = _run_cli(_argv(world, out), out / "store")
    assert code == 0 and printed.rstrip().endswith("jobs: 0 run, 9 reused")
    assert json.loads((out / "audit.json").read_text()) == before


def test_an_epsilon_bound_only_under_asserted_random_inclusion(world, audited):
    from farm.commands.model_audit import audit_model

    root, (out, _) = world["root"], audited
    non = np.setdiff1d(np.arange(N), world["members"])
    (root / "non_members.json").write_text(json.dumps([world["ids"][i] for i in non]))
    request = ModelAuditRequest(
        model=str(root / "target"),
        data=str(root / "data.csv"),
        members=str(root / "members.txt"),
        non_members=str(root / "non_members.json"),
        recipe=RECIPE,
        id_column="id",
        references=4,
        random_inclusion=True,
    )
    runner = CountingRunner(Store(out / "store"))
    result = audit_model(check_model_audit(request), runner)
    assert runner.ran == 0  # listing the non-members changes no job
    bound = result.epsilon.bound
    assert bound is not None and bound.m == N and bound.epsilon >= 0
    assert "as asserted (--random-inclusion)" in result.epsilon.reason


def _copy_target(world, tmp_path: Path) -> Path:
    target = tmp_path / "target"
    shutil.copytree(world["root"] / "target", target)
    return target


def _write(tmp_path: Path, name: str, text: str) -> str:
    (tmp_path / name).write_text(text)
    return str(tmp_path / name)


def _pickled(world, tmp_path):
    target = _copy_target(world, tmp_path)
    write_pickle_bomb(target / "pytorch_model.bin", tmp_path / "unpickled")
    return {"--model": str(target)}


def _nested_pickle(world, tmp_path):
    target = _copy_target(world, tmp_path)
    (target / "checkpoint-10").mkdir()
    write_pickle_bomb(target / "checkpoint-10" / "optimizer.pt", tmp_path / "unpickled")
    return {"--model": str(target)}


def _without(*names: str):
    def change(world, tmp_path):
        target = _copy_target(world, tmp_path)
        for name in names:
            (target / name).unlink()
        return {"--model": str(target)}

    return change


def _three_labels(world, tmp_path):
    target = _copy_target(world, tmp_path)
    config = json.loads((target / "config.json").read_text())
    config["id2label"] = {"0": "a", "1": "b", "2": "c"}
    (target / "config.json").write_text(json.dumps(config))
    return {"--model": str(target)}


def _corrupt_weights(world, tmp_path):
    target = _copy_target(world, tmp_path)
    (target / "model.safetensors").write_bytes(b"not safetensors at all")
    return {"--model": str(target)}


def _label_two(world, tmp_path):
    frame = world["frame"].copy()
    frame.loc[5, "label"] = 2
    frame.to_csv(tmp_path / "data.csv", index=False)
    return {"--data": str(tmp_path / "data.csv")}


def _members(*extra: str, keep: bool = True):
    def change(world, tmp_path):
        ids = [world["ids"][i] for i in world["members"]] if keep else []
        return {"--members": _write(tmp_path, "bad.txt", "\n".join([*ids, *extra]) + "\n")}

    return change


def _overlap(world, tmp_path):
    return {"--non-members": _write(tmp_path, "non.txt", world["ids"][world["members"][0]] + "\n")}


def _everyone(world, tmp_path):
    return {"--members": _write(tmp_path, "all.txt", "\n".join(world["ids"]) + "\n")}


BAD = {
    "text column": (lambda w, t: {"--text-column": "body"}, ["data.csv", "text column 'body'"]),
    "label column": (lambda w, t: {"--label-column": "y"}, ["data.csv", "label column 'y'"]),
    "id column": (lambda w, t: {"--id-column": "key"}, ["data.csv", "id column 'key'"]),
    "labels not 0/1": (_label_two, ["--data", "data.csv", "labels must be 0 or 1"]),
    "unknown member": (_members("r999"), ["--members", "bad.txt", "'r999'", "not in --data"]),
    "member twice": (_members("r000", "r000"), ["--members", "bad.txt", "listed twice"]),
    "no member ids": (_members("# none", keep=False), ["--members", "bad.txt", "no record ids"]),
    "no member file": (lambda w, t: {"--members": str(t / "no.txt")}, ["no.txt", "no such file"]),
    "no --members": (lambda w, t: {"--members": None}, ["--members FILE"]),
    "everyone a member": (_everyone, ["--members", "all.txt", "every record"]),
    "overlap": (_overlap, ["--non-members", "non.txt", "also in --members"]),
    "pickle": (_pickled, ["--model", "pytorch_model.bin", "refused, never unpickled"]),
    "nested pickle": (_nested_pickle, ["checkpoint-10/optimizer.pt", "never unpickled"]),
    "no config": (_without("config.json"), ["--model", "config.json: missing"]),
    "three labels": (_three_labels, ["config.json", "id2label/num_labels: 3 labels"]),
    "no weights": (_without("model.safetensors"), ["model.safetensors: missing"]),
    "bad weights": (_corrupt_weights, ["model.safetensors: not a safetensors file"]),
    "no tokenizer": (_without("tokenizer.json", "tokenizer_config.json"), ["no tokenizer"]),
    "no model": (lambda w, t: {"--model": "/no/such/model"}, ["--model /no/such/model"]),
    "inclusion": (lambda w, t: {"--random-inclusion": ""}, ["--random-inclusion: needs"]),
    "two modes": (lambda w, t: {"--canaries": "ood:5"}, ["--model with --canaries", "two modes"]),
    "runs": (lambda w, t: {"--runs": "2"}, ["--model with --runs"]),
    "references": (lambda w, t: {"--references": "1"}, ["--references 1", ">= 2"]),
    "attack": (lambda w, t: {"--attack": "nope"}, ["--attack nope", "unknown attack"]),
    "query attack": (lambda w, t: {"--attack": "lira_queries"}, ["--attack lira_queries: needs"]),
    "too long": (lambda w, t: {"--recipe": None}, ["max_position_embeddings: 35", "max_length 67"]),
    "base recipe": (lambda w, t: {"--recipe": "mini-inf"}, ["--recipe mini-inf", "model.name"]),
    "recipe mode": (lambda w, t: {"--model": None, "--canaries": "ood:5"}, ["--members: a mo"]),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_is_refused_in_one_line_before_anything_runs(world, tmp_path, case, capsys):
    change, fragments = BAD[case]
    out = tmp_path / "out"
    argv = _argv(world, out, **change(world, tmp_path))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(cli, "_executor", lambda *a: pytest.fail("started an executor"))
        assert cli.main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("farm audit: error: "), err
    for fragment in fragments:
        assert fragment in err[0], err[0]
    assert not out.exists()  # no output folder, no store
    assert not (tmp_path / "unpickled").exists()  # a pickle is never unpickled


def _formats(world, tmp_path: Path) -> dict[str, Path]:
    """The world's data with columns renamed (id, body, y) in every format the audit reads."""
    import datasets

    frame = world["frame"].rename(columns={"sentence": "body", "label": "y"})
    paths = {
        "csv": tmp_path / "d.csv",
        "tsv": tmp_path / "d.tsv",
        "parquet": tmp_path / "d.parquet",
        "jsonl": tmp_path / "d.jsonl",
        "save_to_disk": tmp_path / "d_ds",
    }
    frame.to_csv(paths["csv"], index=False)
    frame.to_csv(paths["tsv"], sep="\t", index=False)
    frame.to_parquet(paths["parquet"])
    frame.to_json(paths["jsonl"], orient="records", lines=True)
    datasets.Dataset.from_pandas(frame).save_to_disk(str(paths["save_to_disk"]))
    return paths


def test_every_data_format_is_read_with_named_columns(world, tmp_path):
    root = world["root"]
    seen = {}
    for kind, path in _formats(world, tmp_path).items():
        audit = check_model_audit(
            ModelAuditRequest(
                model=str(root / "target"),
                data=str(path),
                members=str(root / "members.txt"),
                recipe=RECIPE,
                text_column="body",
                label_column="y",
                id_column="id",
            )
        )
        assert audit.data.sentences == tuple(world["frame"]["sentence"]), kind
        assert audit.data.labels.tolist() == world["frame"]["label"].tolist(), kind
        assert audit.ids == tuple(world["ids"]) and audit.member.sum() == len(world["members"])
        seen[kind] = audit.population.identity()
    assert all("sha256" in spec and spec["text_column"] == "body" for spec in seen.values())


def test_without_an_id_column_ids_are_row_positions(world, tmp_path):
    root = world["root"]
    members = [str(i) for i in world["members"]]
    path = _write(tmp_path, "members.csv", "id\n" + "\n".join(members) + "\n")
    audit = check_model_audit(
        ModelAuditRequest(
            model=str(root / "target"), data=str(root / "data.csv"), members=path, recipe=RECIPE
        )
    )
    assert audit.ids[:3] == ("0", "1", "2")
    assert np.array_equal(audit.audited[audit.member == 1], world["members"])
