"""farm audit (recipe mode): bad input refused first, the game's jobs, and a real tiny run."""

from __future__ import annotations

import math

import numpy as np
import pytest

from farm import cli
from farm.attacks.canaries import inclusion
from farm.attacks.one_run import one_run_audit
from farm.commands.audit import AuditResult, audit_jobs, audit_recipe, unit_claim, write_audit
from farm.commands.dry_run import audit_forecast
from farm.config.audit import load_audit_config, recipe_audit
from farm.config.recipes import load_recipe
from farm.errors import ConfigError
from farm.spec.audit import RecipeAudit
from farm.spec.costs import Table
from farm.spec.population import PopulationSpec
from farm.store.run_job import InProcessRunner
from farm.store.store import Store

RECIPE = "tests/data/tiny-audit-recipe.yaml"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--data", "/no/such/file"], "--data /no/such/file: no such file or folder"),
        (["--data", "synthetic:x"], "expected synthetic:N"),
        (["--canaries", "loud:10"], "--canaries: data.canaries.kind: expected mislabelled"),
        (["--canaries", "mislabelled:ten"], "expected KIND:COUNT[:SEED]"),
        (["--canaries", "mislabelled:500"], "500 canaries from 200 records"),
        (["--recipe", "mini-inf"], "--recipe: recipe.model.name: expected tiny"),
        (["--recipe", "sisa-s5-r1"], "SISA releases an ensemble; the audit scores one model"),
        (["--recipe", "pate-t10-s5"], "PATE needs --public"),
        (["--recipe", "pate-t10-s5", "--public", "synthetic:10"], "at least its 200 queries"),
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
    assert paths["tradeoff"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "Trade-off curve: tradeoff.png" in paths["report"].read_text()
    before = runner.ran
    audit_recipe(_audit(runs=1, kind="mislabelled"), runner)
    assert runner.ran == before  # every job reused from the store
    game = _audit(runs=2, kind="mislabelled")
    plan = audit_forecast(game, table=Table(), gpus=1, store=runner.store)
    stages = {s.name: (s.jobs, s.done) for s in plan.stages}
    assert stages == {"tokenizer": (1, 1), "runs": (2, 1), "canary scores": (2, 1)}


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
    assert "group of 3 records" in text and "(3, 0.000111)" in text
    assert "delta 1e-05" in text and "their maximum is not" in text


def test_an_audit_config_reads_like_the_flags_and_plans(tmp_path, capsys):
    config = tmp_path / "game.yaml"
    config.write_text(
        f"data: synthetic:200\nrecipe: {RECIPE}\ncanaries: ood:20:1\nruns: 3\nseed: 4\n"
    )
    audit = load_audit_config(config)
    flags = recipe_audit(data="synthetic:200", recipe=RECIPE, canaries="ood:20:1", runs=3, seed=4)
    assert audit == flags
    assert cli.main(["plan", "--config", str(config)]) == 0
    printed = capsys.readouterr().out
    assert "# farm audit: plan" in printed and "| audit | runs | 3 |" in printed


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("data: synthetic:200\nrecipe: RECIPE\n", "canaries: missing"),
        ("data: synthetic:200\nrecipe: RECIPE\ncanaries: ood:2\nrun: 3\n", "run: unknown key"),
        ("data: synthetic:200\nrecipe: RECIPE\ncanaries: ood:2\nruns: x\n", "runs: expected"),
        ("data: synthetic:200\nrecipe: RECIPE\ncanaries: {kind: loud, count: 2}\n", "canaries:"),
        ("data: /no/such\nrecipe: RECIPE\ncanaries: ood:2\n", "data /no/such: no such file"),
    ],
)
def test_a_bad_audit_config_is_named_by_file_and_key(text, message, tmp_path):
    config = tmp_path / "game.yaml"
    config.write_text(text.replace("RECIPE", RECIPE))
    with pytest.raises(ConfigError, match=f"{config}: {message}"):
        load_audit_config(config)


def test_a_label_game_bounds_label_dp_and_reports_memorization(tmp_path):
    runner = InProcessRunner(Store(tmp_path / "store"))
    result = audit_recipe(_audit(runs=1, kind="relabelled"), runner)
    assert result.adjacency == "label" and "label adjacency" in result.one_run[0].validity
    jobs = audit_jobs(_audit(runs=1, kind="relabelled"), n_total=240)
    trained = set(jobs.trains[0].selection.indices().tolist())
    assert jobs.controls[0].size == 20 and not trained & set(jobs.controls[0].tolist())
    (memo,) = result.memorization
    assert memo.n_flipped + memo.n_own == 20 and memo.n_unseen == 20
    text = write_audit(result, tmp_path / "out")["report"].read_text()
    assert "Label game (relabelled canaries)" in text and "| run | trained flipped |" in text
    assert "claims no finite epsilon for a label change" in text  # the test recipe claims nothing


@pytest.mark.parametrize(
    ("privacy", "adjacency", "group", "claim"),
    [
        ({"epsilon": "inf"}, "label", 1, None),
        ({"epsilon": "inf", "label_epsilon": 1.0}, "label", 1, (1.0, 0.0)),
        ({"epsilon": 1.0, "delta": 1e-5}, "label", 1, (2.0, (1 + math.e) * 1e-5)),
        ({"epsilon": 1.0, "delta": 1e-5, "adjacency": "substitution"}, "label", 1, (1.0, 1e-5)),
        ({"epsilon": 1.0, "delta": 1e-5}, "add/remove", 1, (1.0, 1e-5)),
        ({"epsilon": 1.0, "delta": 1e-5}, "add/remove", 3, (3.0, (1 + math.e + math.e**2) * 1e-5)),
    ],
)
def test_the_claim_a_game_tests_is_for_its_neighbouring_datasets(privacy, adjacency, group, claim):
    head = one_run_audit(np.zeros(4), np.array([0, 1, 0, 1]), delta=1e-5)
    result = AuditResult(
        scores=np.zeros((1, 4)),
        included=np.zeros((1, 4), dtype=int),
        one_run=(head,),
        multi_run=None,
        privacy=privacy,
        group=group,
        adjacency=adjacency,
    )
    got = unit_claim(result)
    assert got == claim if claim is None else np.allclose(got, claim)


def test_a_pate_game_scores_the_student_and_tests_pates_claim(tmp_path):
    pate = {
        "defence": "pate",
        "recipe": RECIPE,
        "student": RECIPE,
        "teachers": 2,
        "sigma": 2.0,
        "queries": 30,
    }
    audit = recipe_audit(
        data="synthetic:200", recipe=pate, canaries="relabelled:20:1", public="synthetic:60"
    )
    jobs = audit_jobs(audit, n_total=240)
    (build,) = jobs.builds
    assert len(jobs.trains) == 3  # two teachers and the student
    assert jobs.infers[0].model.key == build.members[0]  # the student is what is scored
    result = audit_recipe(audit, InProcessRunner(Store(tmp_path / "store")))
    assert result.privacy["defence"] == "pate" and result.adjacency == "label"
    eps, delta = unit_claim(result)
    assert eps == 2 * result.privacy["epsilon"]  # a label change is a substitution
    assert 0 <= result.one_run[0].epsilon


def test_a_recipe_audit_needs_its_recipe_and_canaries(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(cli, "_executor", lambda *a: pytest.fail("started an executor"))
    args = ["audit", "--data", "synthetic:200", "--recipe", RECIPE, "--out", str(tmp_path / "o")]
    assert cli.main(args) == 1
    assert (
        "--canaries: a recipe audit needs --data, --recipe and --canaries"
        in capsys.readouterr().err
    )
    assert not (tmp_path / "o").exists()


def test_farm_audit_takes_the_game_from_a_config_and_refuses_mixing(tmp_path, monkeypatch, capsys):
    config = tmp_path / "game.yaml"
    config.write_text(f"data: synthetic:200\nrecipe: {RECIPE}\ncanaries: ood:20:1\nruns: 2\n")
    out = str(tmp_path / "o")
    args = cli.build_parser().parse_args(["audit", "--config", str(config), "--out", out])
    assert cli._recipe_audit(args) == load_audit_config(config)
    monkeypatch.setattr(cli, "_executor", lambda *a: pytest.fail("started an executor"))
    mixed = ["audit", "--config", str(config), "--runs", "3", "--out", out]
    assert cli.main(mixed) == 1
    assert "--config with --runs: the config holds the whole game" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_bounds_are_taken_at_the_claims_delta_when_it_is_larger():
    from farm.commands.audit import bound_delta

    assert bound_delta(1e-5, None) == 1e-5 and bound_delta(1e-5, (1.0, 0.0)) == 1e-5
    assert bound_delta(1e-5, (2.0, 3e-3)) == 3e-3  # a substitution's (1 + e^eps) delta
    assert bound_delta(1e-5, (16.0, 1.0)) == 1e-5  # a vacuous claim: nothing to match
