"""farm audit (recipe mode): bad input refused first, the game's jobs, and a real tiny run."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from farm import cli
from farm.attacks.canaries import inclusion
from farm.commands.audit import RecipeAudit, audit_jobs, audit_recipe, write_audit
from farm.config.recipes import load_recipe
from farm.spec.jobs import Job
from farm.spec.population import PopulationSpec
from farm.store.run_job import run_job
from farm.store.runner import RunReport
from farm.store.store import Store

RECIPE = "tests/data/tiny-audit-recipe.yaml"


class InProcessRunner:
    """Runs each job in this process with ``run_job`` (real trainings, no Ray)."""

    def __init__(self, store: Store) -> None:
        self._store, self.ran = store, 0

    @property
    def store(self) -> Store:
        return self._store

    def run(self, jobs: Sequence[Job], *, title: str = "jobs") -> RunReport:
        report = RunReport()
        for job in jobs:
            result = run_job(job, self._store)
            report.results[job.key] = result
            report.ran += bool(result.get("ran"))
        self.ran += report.ran
        return report


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--data", "/no/such/file"], "--data /no/such/file: no such file or folder"),
        (["--data", "synthetic:x"], "expected synthetic:N"),
        (["--canaries", "loud:10"], "--canaries: data.canaries.kind: expected mislabelled"),
        (["--canaries", "mislabelled:ten"], "expected KIND:COUNT[:SEED]"),
        (["--canaries", "mislabelled:500"], "500 canaries from 200 records"),
        (["--recipe", "mini-inf"], "--recipe: recipe.model.name: expected tiny"),
        (["--recipe", "sisa-s5-r1"], "a defence; an audit takes a training recipe"),
        (["--runs", "0"], "runs: expected an integer >= 1"),
    ],
)
def test_bad_input_is_refused_before_anything_runs(argv, message, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(cli, "_executor", lambda *a: pytest.fail("started an executor"))
    base = {"--data": "synthetic:200", "--recipe": RECIPE, "--canaries": "ood:20"}
    base.update(dict(zip(argv[::2], argv[1::2])))
    out = tmp_path / "out"
    args = ["audit", *[x for kv in base.items() for x in kv], "--out", str(out)]
    assert cli.main(args) == 1
    assert message in capsys.readouterr().err
    assert not out.exists()


def _audit(runs: int = 2, kind: str = "ood") -> RecipeAudit:
    spec = {"source": "synthetic", "n": 200, "canaries": {"kind": kind, "count": 20, "seed": 1}}
    return RecipeAudit(population=PopulationSpec.of(spec), recipe=load_recipe(RECIPE), runs=runs)


def test_each_run_trains_on_half_the_data_and_its_included_canaries():
    audit = _audit()
    jobs = audit_jobs(audit, n_total=220)
    assert jobs.tokenizer is not None and len(jobs.trains) == len(jobs.infers) == 2
    for run, train in enumerate(jobs.trains):
        members = train.selection.indices()
        canaries = members[members >= 200]
        expected = 200 + np.flatnonzero(inclusion(audit.population.canaries, run=run))
        assert canaries.tolist() == expected.tolist()
        assert 70 < (members < 200).sum() < 130 and train.recipe.seed == run
        assert jobs.infers[run].selection.indices().tolist() == list(range(200, 220))
    assert [j.key for j in audit_jobs(audit, n_total=220).trains] == [j.key for j in jobs.trains]


def test_a_tiny_game_runs_scores_every_canary_and_reruns_nothing(tmp_path):
    runner = InProcessRunner(Store(tmp_path / "store"))
    result = audit_recipe(_audit(runs=1, kind="mislabelled"), runner)
    assert result.scores.shape == result.included.shape == (1, 20)
    assert np.isfinite(result.scores).all() and (result.scores <= 0).all()  # log-probabilities
    head = result.one_run[0]
    assert head.m == 20 and 0 <= head.epsilon and "Steinke" in head.validity
    paths = write_audit(result, tmp_path / "out")
    assert "one-run (run 0)" in paths["report"].read_text()
    assert len(paths["scores"].read_text().splitlines()) == 21
    before = runner.ran
    audit_recipe(_audit(runs=1, kind="mislabelled"), runner)
    assert runner.ran == before  # every job reused from the store


def test_canary_originals_never_train_as_themselves():
    from farm.attacks.canaries import canary_sources

    audit = _audit(runs=3, kind="mislabelled")
    sources = canary_sources(200, audit.population.canaries)
    for train in audit_jobs(audit, n_total=220).trains:
        assert not set(train.selection.indices().tolist()) & set(sources.tolist())


def test_a_duplicated_canary_is_reported_as_a_group_beside_the_groups_claim(tmp_path):
    from farm.attacks.one_run import one_run_audit
    from farm.commands.audit import AuditResult

    rng = np.random.default_rng(0)
    scores, included = rng.random((1, 50)), rng.integers(0, 2, (1, 50))
    result = AuditResult(
        scores=scores,
        included=included,
        one_run=(one_run_audit(scores[0], included[0], delta=1e-5),),
        multi_run=None,
        privacy={"epsilon": 1.0, "delta": 1e-5, "assumes": "prv accountant"},
        group=3,
    )
    text = write_audit(result, tmp_path)["report"].read_text()
    assert "group of 3 records" in text and "(3, 0.000222)" in text
    assert "delta 1e-05" in text and "their maximum is not" in text


def test_a_recipe_audit_needs_its_recipe_and_canaries(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(cli, "_executor", lambda *a: pytest.fail("started an executor"))
    args = ["audit", "--data", "synthetic:200", "--recipe", RECIPE, "--out", str(tmp_path / "o")]
    assert cli.main(args) == 1
    assert "--canaries: a recipe audit needs --recipe and --canaries" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
