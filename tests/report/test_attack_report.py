"""The report's numbers on a tiny tree without training (a fake executor writes seeded random
logits): intervals and counts per phase, the epsilon audit and the targets' privacy, readable
columns, metrics.json and scores.parquet."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
import pytest

from farm.attacks.intervals import bootstrap_by_model
from farm.commands.attack import MICO_DELTA, attack_scenario, phase_intervals, target_privacy
from farm.config.attack import AttackConfig
from farm.report.attack_report import (
    SCORE_COLUMNS,
    audit_table,
    score_table,
    scores_frame,
    write_metrics,
    write_report,
    write_scores,
)
from farm.report.results import ScenarioResult
from farm.shadows.plans import PlanSpec
from farm.spec.jobs import InferJob, Job
from farm.store.runner import RunReport
from farm.store.store import Store
from tests.shadows.test_scenario import FakeExecutor, _scenario

CONFIG = AttackConfig(attack="lira_online", plan=PlanSpec(kind="none"))
POINTS = 10  # 2 x len_challenge of tests/conftest.py TINY


@pytest.fixture
def tiny_challenge(tiny_challenge):
    """tests/conftest.py's tree with distinct weights per model (there they share one file, so one
    store key)."""
    from safetensors.numpy import save_file

    for i, path in enumerate(sorted(tiny_challenge.glob("*/*/model_*/model.safetensors"))):
        save_file({"w": np.full((2, 2), i, np.float32)}, str(path))
    return tiny_challenge


class NoisyExecutor(FakeExecutor):
    """Each model's logits on each record: standard normal, seeded by the model's label."""

    def run(self, jobs: Sequence[Job], *, title: str = "jobs") -> RunReport:
        for job in jobs:
            if isinstance(job, InferJob):
                idx = job.selection.indices()
                rng = np.random.default_rng(
                    int(hashlib.sha256(job.label.encode()).hexdigest()[:8], 16)
                )
                logits = rng.normal(size=(idx.size, 2)).astype(np.float32)
                self.store.put_arrays(job.key, {"indices": idx, "logits": logits}, {"seconds": 1.0})
            else:
                self.store.put_arrays(job.key, {}, {"seconds": 2.0})
        return RunReport()


def _result(challenge, tmp_path, answers=None, config=CONFIG, **kw) -> ScenarioResult:
    return attack_scenario(
        _scenario(challenge, answers), config, NoisyExecutor(Store(tmp_path / "store")), **kw
    )


def test_phases_carry_intervals_counts_and_the_audit_on_answered_models(
    tiny_challenge, tiny_answers, tmp_path
):
    r = _result(tiny_challenge, tmp_path, tiny_answers)
    assert (
        list(r.phases)
        == list(r.intervals)
        == list(r.counts)
        == list(r.baseline_intervals)
        == ["train", "dev", "final"]
    )
    assert r.counts["train"]["models"] == 3 and r.counts["dev"]["models"] == 2
    for phase, c in r.counts.items():
        assert c["members"] + c["non_members"] == c["models"] * POINTS
        for key, iv in r.intervals[
            phase
        ].items():  # each interval's value is the report's pooled figure
            assert iv.value == r.phases[phase][key] and not iv.known  # 2-3 models: no interval
        assert set(r.intervals[phase]) == {"TPR_FPR_1000", "TPR_FPR_100", "AUC"}
    assert r.intervals["train"]["AUC"].cell() == "[n<5 models]"
    assert set(r.train_scores) == set(_scenario(tiny_challenge).phase("train")) and len(r.raw) == 4
    a = r.audit
    assert (
        a is not None
        and a.held_out == "answered dev/final (4 models)"
        and a.fit_on.startswith("train (3 models")
    )
    assert a.audit.negatives + a.audit.positives == 4 * POINTS and a.audit.delta == MICO_DELTA
    assert (
        a.audit.epsilon_lb >= 0 and a.target.epsilon is None
    )  # a tree with challenge.json records no recipe


def test_without_answers_the_audit_holds_out_half_the_train_models(tiny_challenge, tmp_path):
    r = _result(tiny_challenge, tmp_path)
    assert list(r.phases) == ["train"] and all(m.phase != "train" for m in r.raw)
    assert r.audit is not None and r.audit.held_out.startswith("train, the other half")
    assert (
        r.audit.audit.negatives + r.audit.audit.positives == 1 * POINTS
    )  # 3 train models: fit on 2, held 1


def test_phase_intervals_bootstrap_the_pooled_scores_over_models(
    tiny_challenge, tiny_answers, tmp_path
):
    sc = _scenario(tiny_challenge, tiny_answers)
    raw = {m: np.where(sc.solutions[m] == 1, 1.0, 0.0) + 0.1 * np.arange(POINTS) for m in sc.ids}
    raw[sc.ids[0]][:] = np.nan  # pooled as 0.5, as the report pools
    got, n = phase_intervals(sc, "train", raw, n_boot=50)
    y, s = sc.pooled("train", raw)
    want = bootstrap_by_model(np.split(y, 3), np.split(s, 3), n_boot=50)
    assert got == want and n == {
        "models": 3,
        "members": int(y.sum()),
        "non_members": int((1 - y).sum()),
    }


def test_target_privacy_is_micos_without_challenge_json(tmp_path, tiny_challenge):
    assert (
        target_privacy(tmp_path, "sst2_hi").epsilon == 10.0
        and target_privacy(tmp_path, "sst2_lo").epsilon == 4
    )
    inf = target_privacy(tmp_path, "sst2_inf")
    assert math.isinf(inf.epsilon) and inf.delta == 1e-5 and inf.source == "MICO SST-2"
    assert target_privacy(tmp_path, "other").epsilon is None
    assert (
        target_privacy(tiny_challenge, "sst2_hi").epsilon is None
    )  # a project-written tree: unknown


def test_report_metrics_json_and_scores_parquet(tiny_challenge, tiny_answers, tmp_path):
    mico = target_privacy(tmp_path / "no-json", "sst2_inf")
    results = [_result(tiny_challenge, tmp_path, tiny_answers, target=mico)]
    out = tmp_path / "out"
    text = write_report(out, results, tiny_challenge).read_text()
    assert "TPR_FPR" not in text and "| TPR@0.1FPR | TPR@0.01FPR | TPR@0.001FPR | AUC |" in text
    assert (
        "| models | members | non-members |" in text
        and "| sst2_inf | dev | lira_online | none | 2 |" in text
    )
    assert "| sst2_inf | inf (no DP) (MICO SST-2) | inf | 1e-05 |" in audit_table(results)
    assert "Empirical ε lower bound" in text and "**substitution** ε" in text
    assert "- sst2_inf, one point per model: independent trials: one point per held-out" in text
    assert text.count(" [") >= 3 * 2 * 3  # 3 intervals on each attack and baseline row of 3 phases

    data = json.loads(write_metrics(out, results, tiny_challenge).read_text())
    sc = data["scenarios"]["sst2_inf"]
    dev = sc["phases"]["dev"]
    assert dev["models"] == 2 and dev["members"] + dev["non_members"] == 2 * POINTS
    assert (
        set(dev["intervals"]) == {"TPR@0.1FPR", "TPR@0.01FPR", "AUC"}
        and "MIA advantage" in dev["metrics"]
    )
    assert (
        dev["intervals"]["AUC"]["value"] == dev["metrics"]["AUC"] == results[0].phases["dev"]["AUC"]
    )
    assert sc["phases"]["train"]["leave_one_out"] and sc["baseline"]["phases"]["final"]["intervals"]
    audit = sc["epsilon_audit"]
    assert audit["target"] == {"epsilon": "inf", "delta": 1e-5, "source": "MICO SST-2"}
    assert audit["epsilon_lb"] == audit["epsilon_lb_heuristic"] == results[0].audit.audit.epsilon_lb
    assert audit["held_out"].startswith("answered") and audit["validity"].startswith("heuristic:")
    one = audit["one_point_per_model"]
    independent = results[0].audit.independent
    assert one["trials"] == 4  # the 4 answered dev/final models
    assert one["validity"].startswith("independent trials")
    assert one["epsilon_lb"] == (independent.epsilon_lb if independent else None)
    assert audit["adjacency"] == {
        "audit": "substitution",
        "targets": "not recorded",
        "targets_as_substitution": None,
    }
    assert sc["compute"] == {"shadow_trainings": 0, "job_seconds": results[0].job_seconds}

    frame = pd.read_parquet(write_scores(out, results))
    assert list(frame.columns) == list(SCORE_COLUMNS) and len(frame) == 7 * POINTS
    assert (frame["attack"] == "lira_online").all()
    assert (
        str(frame["label"].dtype) == "Int8" and frame["label"].notna().all()
    )  # answers label every model
    train = frame[frame.phase == "train"]
    m0 = results[0].train_scores[next(iter(results[0].train_scores))]
    np.testing.assert_array_equal(
        train[train.model == 0]["score"].to_numpy(), m0
    )  # leave-one-out raw scores
    assert frame.groupby("model")["record"].nunique().eq(POINTS).all()


def test_unlabelled_models_have_null_labels(tiny_challenge, tmp_path):
    frame = scores_frame([_result(tiny_challenge, tmp_path)])
    assert len(frame) == 7 * POINTS
    assert (
        frame[frame.phase == "train"]["label"].notna().all()
        and frame[frame.phase != "train"]["label"].isna().all()
    )


def test_score_table_columns_are_readable(tiny_challenge, tmp_path):
    table = score_table([_result(tiny_challenge, tmp_path)])
    header = table.splitlines()[0]
    assert "TPR@0.1FPR" in header and "TPR_FPR" not in header and "balanced accuracy" in header
    assert "| sst2_inf | train (leave-one-out) | lira_online | none | 3 |" in table


@pytest.mark.parametrize("attack", ["lira_farm", "rmia_fit", "rmia_offline", "stacked"])
def test_new_attacks_run_through_the_driver(attack, tiny_challenge, tmp_path):
    from farm.config.tune import ATTACK_GRID

    for params in ATTACK_GRID[attack]:
        config = AttackConfig(attack=attack, params=params, plan=PlanSpec(kind="none"))
        r = _result(tiny_challenge, tmp_path, config=config)
        assert r.phases["train"]["AUC"] >= 0 and all(v.shape == (POINTS,) for v in r.raw.values())


def test_target_privacy_recorded_in_challenge_json(tmp_path):
    from farm.challenge.tree import ChallengeConstants, write_constants
    from farm.commands.make_challenge import privacy_record as recorded
    from farm.spec.recipes import DPConfig, Recipe

    targets = {
        "sst2_inf": recorded(Recipe()),
        "sst2_lo": recorded(Recipe(dp=DPConfig(target_epsilon=4.0, delta=1e-6))),
    }
    write_constants(
        tmp_path,
        ChallengeConstants(
            n_total=60,
            len_training=40,
            len_challenge=5,
            population={"source": "test"},
            targets=targets,
        ),
    )
    assert math.isinf(target_privacy(tmp_path, "sst2_inf").epsilon)
    lo = target_privacy(tmp_path, "sst2_lo")
    assert (lo.epsilon, lo.delta, lo.source) == (4.0, 1e-6, "challenge.json")
    assert target_privacy(tmp_path, "sst2_hi").epsilon is None  # not recorded: unknown


def test_attack_writes_the_time_of_each_stage_last(tiny_built, tmp_path):
    from farm.commands.attack import attack_challenge
    from farm.stopwatch import STAGES

    out = tmp_path / "out"

    def attack() -> dict:
        attack_challenge(
            tiny_built / "challenge",
            {"*": CONFIG},
            NoisyExecutor(Store(tmp_path / "store")),
            out,
            answers_root=tiny_built / "answers",
        )
        return json.loads((out / "stages.json").read_text())

    stages = attack()
    assert list(stages["wall_seconds"]) == [*STAGES, "total"]
    assert stages["wall_seconds"]["total"] == pytest.approx(
        sum(v for k, v in stages["wall_seconds"].items() if k != "total"), abs=0.01
    )
    assert (out / "stages.json").stat().st_mtime_ns >= (out / "scores.parquet").stat().st_mtime_ns
    # a rerun still says what its reused jobs cost when they ran
    again = attack()
    # the fake reports no job as run: every job counts as reused, at its manifest's seconds (the
    # fake records 1 s per inference; no shadows, so no training)
    assert not any(again["job_seconds"].values())
    models = sum(1 for d in (tiny_built / "challenge").glob("*/*/*") if d.is_dir())
    assert again["reused_job_seconds"] == {"inference": float(models), "training": 0.0}


def test_targets_epsilon_prints_with_its_assumptions(tiny_challenge, tiny_answers, tmp_path):
    """MICO's sst2_hi (no challenge.json): eps 10 as accounted for Poisson sampling on shuffled
    batches, add/remove; as substitution (20, (1 + e^10) 1e-5 = 0.22). A challenge.json record
    without assumptions says so."""
    from farm.report.attack_report import metrics_json
    from farm.report.results import TargetPrivacy

    hi = target_privacy(tmp_path / "no-json", "sst2_hi")
    shuffled = (
        "as accounted for Poisson sampling; the run used shuffled batches (prv accountant, "
        "add/remove adjacency)"
    )
    assert hi.record["assumes"] == shuffled and hi.adjacency == "add/remove"
    old = TargetPrivacy(4.0, 1e-5, "challenge.json", {"epsilon": 4.0, "delta": 1e-5})
    results = [_result(tiny_challenge, tmp_path, tiny_answers, target=t) for t in (hi, old)]
    table = audit_table(results)
    assert f"| sst2_inf | ε = 10 ({shuffled}) (MICO SST-2) | ε = 20, δ = 0.22 | 1e-05 |" in table
    assert (
        "| ε = 4 (assumptions not recorded) (challenge.json) | ε = 8, δ = 0.00056 if add/remove "
        "(adjacency not recorded) |"
    ) in table
    mico, older = (
        metrics_json([r], "x")["scenarios"]["sst2_inf"]["epsilon_audit"] for r in results
    )
    assert mico["target"] == {
        "epsilon": 10.0,
        "delta": 1e-5,
        "source": "MICO SST-2",
        "accountant": "prv",
        "sampling": "shuffle",
        "adjacency": "add/remove",
        "assumes": shuffled,
    }
    as_sub = mico["adjacency"]["targets_as_substitution"]
    assert as_sub == {"epsilon": 20.0, "delta": pytest.approx((1 + math.exp(10)) * 1e-5)}
    assert older["target"] == {
        "epsilon": 4.0,
        "delta": 1e-5,
        "source": "challenge.json",
        "assumes": "assumptions not recorded",
    }
    assert older["adjacency"]["targets"] == "not recorded"
    assert older["adjacency"]["targets_as_substitution"]["epsilon"] == 8.0


def test_shadows_mechanism_line_says_what_its_epsilon_assumes():
    from farm.report.attack_report import mechanism_text
    from farm.shadows.scenario import Mechanism

    m = Mechanism(
        shadows=2,
        n_train=(100, 100),
        batch_size=32,
        steps=(9, 9),
        noise_multiplier=(0.7, 0.7),
        clip=1.0,
        sampling="shuffle",
        sample_rate=(0.32, 0.32),
        epsilon=(5.0, 5.0),
        delta=1e-5,
        accountant="prv",
    )
    assert mechanism_text(m).endswith(
        "epsilon spent 5.00 (delta 1e-05), as accounted for Poisson sampling; the run used "
        "shuffled batches (prv accountant, add/remove adjacency)"
    )
    poisson = dataclasses.replace(m, sampling="poisson", accountant=None)
    assert mechanism_text(poisson).endswith(
        "(delta 1e-05), unrecorded accountant, Poisson sampling, add/remove adjacency"
    )


def test_metrics_json_and_scores_parquet_carry_the_same_provenance(tiny_challenge, tmp_path):
    import datetime

    from farm import __version__
    from farm.report.attack_report import config_digest, provenance, read_provenance

    results = [_result(tiny_challenge, tmp_path)]
    origin = provenance(results)
    out = tmp_path / "out"
    data = json.loads(write_metrics(out, results, tiny_challenge, origin=origin).read_text())
    stamp = read_provenance(write_scores(out, results, origin=origin))
    assert data["provenance"] == stamp == origin
    assert origin["farm_version"] == __version__ and origin["attacks"] == {
        "sst2_inf": "lira_online"
    }
    created = datetime.datetime.strptime(origin["created_utc"], "%Y-%m-%dT%H:%M:%SZ")
    now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    assert abs((now - created).total_seconds()) < 3600  # UTC, not local time
    digest = data["scenarios"]["sst2_inf"]["config_digest"]
    assert digest == config_digest(results[0].config) and len(origin["config_digest"]) == 64
    other = dataclasses.replace(results[0].config, attack="loss")
    assert config_digest(other) != digest  # a different configuration, a different digest
    # without an explicit origin each file stamps itself
    assert read_provenance(write_scores(out, results))["config_digest"] == origin["config_digest"]


def test_one_roc_plot_per_scenario_holds_the_attack_and_the_loss_baseline(
    tiny_challenge, tiny_answers, tmp_path, monkeypatch
):
    import farm.report.attack_report as attack_report

    drawn = []

    def capture(curves, negatives, path, *, title, dashed=()):
        drawn.append((dict(curves), dict(negatives), path.name, title, list(dashed)))
        return path

    monkeypatch.setattr(attack_report, "roc_png", capture)
    result = _result(tiny_challenge, tmp_path, tiny_answers)
    write_report(tmp_path / "out", [result], tiny_challenge)
    ((curves, negatives, name, title, dashed),) = drawn
    assert name == "roc_sst2_inf.png" and title == "sst2_inf: lira_online and loss baseline"
    phases = list(result.curves)
    names = {label.split(" (")[0] for label in curves}  # the figure and interval follow
    assert names == {f"{p}: {a}" for p in phases for a in ("lira_online", "loss baseline")}
    assert len(curves) == 2 * len(phases) and len(dashed) == len(phases)
    assert all(label.split(" (")[0].endswith("loss baseline") for label in dashed)
    for label in curves:
        phase = label.split(":")[0]
        assert negatives[label] == result.counts[phase]["non_members"]
