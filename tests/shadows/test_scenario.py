"""The scenario seam on a tiny tree: identities, keep masks, subsets, pooled scores, and signal
collection wired to a store (a fake executor writes made-up logits: no Ray, no torch)."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pytest

from farm.attacks.signals import IN, OUT, UNKNOWN
from farm.challenge.tree import read_challenge
from farm.errors import ConfigError
from farm.shadows.plans import PlanSpec
from farm.shadows.scenario import (
    Extras,
    ModelId,
    build_scenario,
    challenge_inputs,
    collect_signals,
    infer_jobs,
    load_scenarios,
    model_ref,
    plan_shadows,
    train_jobs,
)
from farm.spec.jobs import HubRef, InferJob, Job, PathRef, StoreRef
from farm.spec.recipes import Recipe
from farm.store.runner import RunReport
from farm.store.store import Store

N_TOTAL = 60  # tests/conftest.py TINY


def _scenario(challenge, answers=None, name="sst2_inf"):
    ch = read_challenge(challenge)
    labels = np.arange(N_TOTAL) % 2
    ans = read_challenge(answers, require_weights=False) if answers else None
    return build_scenario(ch, name, challenge_inputs(ch), labels, answers=ans)


@dataclass
class FakeExecutor:
    """Runs nothing: each inference job gets logits that encode its model and record (1000 * row +
    record)."""

    store: Store
    titles: list[str] = field(default_factory=list)
    models: dict[str, int] = field(default_factory=dict)

    def run(self, jobs: Sequence[Job], *, title: str = "jobs") -> RunReport:
        self.titles.append(title)
        for job in jobs:
            if isinstance(job, InferJob):
                idx = job.selection.indices()
                row = self.models.setdefault(job.model.token, len(self.models))
                logits = np.stack([1000.0 * row + idx, np.zeros(idx.size)], axis=1).astype(
                    np.float32
                )
                arrays = {"indices": idx, "logits": logits}
                if job.queries is not None:  # query q: the logits plus q
                    arrays["query_logits"] = (
                        logits[:, None] + np.arange(job.queries.n_queries)[None, :, None]
                    )
                if job.grad_norm:
                    arrays["grad_norm"] = 1.0 + row + idx / 1000.0
                self.store.put_arrays(job.key, arrays, {"seconds": 1.0})
            else:
                self.store.put_arrays(job.key, {}, {"seconds": 2.0})
        return RunReport()


def test_models_are_keyed_by_identity_with_keep_masks(tiny_challenge, tiny_answers):
    sc = _scenario(tiny_challenge, tiny_answers)
    assert sc.ids == [
        ModelId("sst2_inf", p, i)
        for p, i in [
            ("train", 0),
            ("train", 1),
            ("train", 2),
            ("dev", 3),
            ("dev", 4),
            ("final", 5),
            ("final", 6),
        ]
    ]
    assert str(sc.ids[3]) == "sst2_inf/dev/model_3" and sc.ids[3].as_tuple() == (
        "sst2_inf",
        "dev",
        3,
    )
    assert (
        sc.records.tolist() == sorted(set(sc.records.tolist()))
        and sc.labels.tolist() == (sc.records % 2).tolist()
    )
    assert sc.keep.shape == (7, sc.records.size) and sc.columns.shape == (7, 10)
    assert (sc.keep[3:] == UNKNOWN).all() and set(np.unique(sc.keep[:3])) <= {IN, OUT}
    for m in sc.phase(
        "train"
    ):  # a labelled model's keep mask on its challenge points is its solution
        np.testing.assert_array_equal(sc.keep[sc.row(m), sc.columns[sc.row(m)]], sc.solutions[m])
    assert set(sc.solutions) == set(sc.ids)  # answers label dev and final
    assert set(_scenario(tiny_challenge).solutions) == set(sc.phase("train"))


def test_subset_keeps_records_and_rows(tiny_challenge):
    sc = _scenario(tiny_challenge)
    part = sc.subset([sc.ids[2], sc.ids[0]])
    assert part.ids == [sc.ids[0], sc.ids[2]] and part.records is sc.records
    np.testing.assert_array_equal(part.keep, sc.keep[[0, 2]])
    np.testing.assert_array_equal(part.challenge(sc.ids[2]), sc.challenge(sc.ids[2]))
    assert set(part.solutions) == {sc.ids[0], sc.ids[2]}
    with pytest.raises(KeyError, match="model_9"):
        sc.subset([ModelId("sst2_inf", "dev", 9)])


def test_pooled_scores_of_a_phase(tiny_challenge, tiny_answers):
    sc = _scenario(tiny_challenge, tiny_answers)
    raw = {m: sc.solutions[m] * 2.0 - 1.0 for m in sc.ids}  # a perfect attack
    raw[sc.ids[3]] = np.full(10, np.nan)  # an attack without an opinion on one model
    y, s = sc.pooled("dev", raw)
    assert y.size == s.size == 20 and (s[:10] == 0.5).all()
    assert sc.score("final", raw)["AUC"] == 1.0
    assert _scenario(tiny_challenge).pooled("dev", raw) is None  # unlabelled


def test_refs_pin_content_not_place(tiny_challenge, tmp_path):
    sc = _scenario(tiny_challenge)
    assert isinstance(sc.inputs.tokenizer, HubRef)  # roberta-base is not in the tree
    moved = shutil.copytree(tiny_challenge, tmp_path / "elsewhere" / "challenge")
    other = _scenario(moved)
    ref, ref2 = model_ref(sc.models[sc.ids[0]]), model_ref(other.models[other.ids[0]])
    assert isinstance(ref, PathRef) and ref.path != ref2.path and ref == ref2
    assert [j.key for j in infer_jobs(sc, [])] == [j.key for j in infer_jobs(other, [])]


def test_collect_signals_stacks_models_then_shadows(tiny_challenge, tmp_path):
    sc = _scenario(tiny_challenge)
    executor = FakeExecutor(Store(tmp_path / "store"))
    plan = PlanSpec(kind="pool", shadows=2, group=2)
    only = sc.phase("train")[::2]
    got = collect_signals(sc, plan, Recipe(), executor, only=only, title="t")
    part, signals = got.scenario, got.signals
    assert part.ids == only and executor.titles == [
        "t"
    ]  # one queue: trainings and inference in one call
    assert (
        signals.logits.shape == (4, sc.records.size, 2)
        and got.trainings == 2
        and len(got.train_keys) == 2
    )
    assert got.job_seconds == 2 * 2.0 + 4 * 1.0
    np.testing.assert_array_equal(
        signals.logits[:, :, 0] % 1000, np.broadcast_to(sc.records, (4, sc.records.size))
    )
    np.testing.assert_array_equal(signals.keep[:2], sc.keep[[0, 2]])
    assert (signals.challenge[2:] == -1).all() and signals.labelled.tolist() == [
        True,
        True,
        False,
        False,
    ]
    np.testing.assert_array_equal(signals.solution(1), sc.solutions[only[1]])
    # shadows are planned over the whole scenario: the same trainings whatever part is inferred
    whole = collect_signals(sc, plan, Recipe(), executor)
    assert whole.train_keys == got.train_keys and whole.signals.logits.shape[0] == 7 + 2
    jobs = infer_jobs(sc, train_jobs(sc, Recipe(), plan_shadows(sc, plan)))
    assert [type(j.model) for j in jobs] == [PathRef] * 7 + [StoreRef] * 2
    assert [j.label for j in jobs[:2]] == ["sst2_inf/train/model_0", "sst2_inf/train/model_1"]


def test_per_target_plan_serves_the_phases_it_names(tiny_challenge, tmp_path):
    sc = _scenario(tiny_challenge)
    executor = FakeExecutor(Store(tmp_path / "store"))
    got = collect_signals(sc, PlanSpec(kind="per-target", phases=("dev",)), Recipe(), executor)
    assert got.trainings == 2
    shadow_keep = got.signals.keep[7:]
    for row, m in zip(
        shadow_keep, sc.phase("dev")
    ):  # each reference leaves its target's challenge points out
        assert (row[sc.columns[sc.row(m)]] == OUT).all()


def test_load_scenarios_names_a_missing_scenario(tiny_challenge):
    with pytest.raises(ConfigError, match="no scenario sst2_xx"):
        load_scenarios(tiny_challenge, names=["sst2_xx"])


def test_collect_signals_fills_the_extras_asked_for(tiny_challenge, tmp_path):
    from farm.spec.queries import QueryFamily

    sc = _scenario(tiny_challenge)
    executor = FakeExecutor(Store(tmp_path / "store"))
    plan = PlanSpec(kind="pool", shadows=2, group=2)
    plain = collect_signals(sc, plan, Recipe(), executor)
    assert plain.signals.query_logits is None and plain.signals.grad_norm is None
    family = QueryFamily(kinds=("identity", "swap", "dropout"))
    got = collect_signals(
        sc, plan, Recipe(), executor, extras=Extras(queries=family, grad_norm=True)
    )
    signals, r = got.signals, sc.records.size
    assert signals.query_logits is not None and signals.query_logits.shape == (9, r, 3, 2)
    np.testing.assert_array_equal(
        signals.query_logits[:, :, 0], signals.logits
    )  # rows line up with the logits
    assert signals.grad_norm is not None and signals.grad_norm.shape == (9, r)
    np.testing.assert_allclose(signals.grad_norm % 1, (signals.logits[:, :, 0] % 1000) / 1000)
    assert (
        got.train_keys == plain.train_keys
    )  # extras change inference, never the shadows' trainings
    plain_keys = {j.key for j in infer_jobs(sc, [])}
    assert plain_keys.isdisjoint(j.key for j in infer_jobs(sc, [], Extras(grad_norm=True)))


def test_extras_needed_by_an_attack():
    from farm.attacks.registry import needs
    from farm.spec.queries import QueryFamily

    assert Extras.needed(needs("lira_online")) == Extras()
    assert Extras.needed(needs("lira_queries")) == Extras(queries=QueryFamily())
    assert Extras.needed(needs("lira_queries"), QueryFamily(seed=3)).queries == QueryFamily(seed=3)
    assert Extras.needed(needs("gradient"), QueryFamily(seed=3)) == Extras(
        grad_norm=True
    )  # no queries needed
    with pytest.raises(ValueError, match="hidden"):
        Extras.needed({"hidden"})


def test_forgotten_members_are_out_in_the_keep_mask(tiny_challenge):
    """An unlearning challenge: forgotten.csv beside model_1's solution marks 2 of its members
    forgotten. Those two columns turn OUT in its keep row; nothing else changes (other points, other
    models, the solution)."""
    from farm.challenge.tree import FORGOTTEN_CSV, format_row

    before = _scenario(tiny_challenge)
    m = before.ids[1]
    members = np.flatnonzero(before.solutions[m] == 1)
    forgotten = np.zeros(10, np.int64)
    forgotten[members[[0, 2]]] = 1
    (before.models[m].path / FORGOTTEN_CSV).write_text(format_row(forgotten) + "\n")
    after = _scenario(tiny_challenge)
    assert after.models[m].forgotten.tolist() == forgotten.tolist()
    cols = after.columns[1]
    expected = before.keep.copy()
    expected[1, cols[members[[0, 2]]]] = OUT
    np.testing.assert_array_equal(after.keep, expected)
    assert (before.keep[1, cols[members[[0, 2]]]] == IN).all()
    assert (after.keep[1, cols] == OUT).sum() == 7
    np.testing.assert_array_equal(after.solutions[m], before.solutions[m])  # answers unchanged


def test_forgotten_csv_may_not_mark_a_non_member(tiny_challenge):
    from farm.challenge.tree import FORGOTTEN_CSV, format_row
    from farm.errors import ChallengeFormatError

    sc = _scenario(tiny_challenge)
    m = sc.ids[0]
    path = sc.models[m].path / FORGOTTEN_CSV
    path.write_text(format_row((sc.solutions[m] == 0).astype(np.int64)) + "\n")
    with pytest.raises(ChallengeFormatError, match="forgotten.csv: marks a non-member"):
        read_challenge(tiny_challenge)
