"""One model's audit, pure: signals of a target and its references, fold scoring, an attack chosen
without the target's member list, figures with record-bootstrap intervals, the epsilon rule."""

from __future__ import annotations

import numpy as np
import pytest

from farm.attacks.model_audit import (
    CANDIDATES,
    NO_BOUND,
    attack_scores,
    audit_signals,
    audit_target,
    choose_attack,
    epsilon_bound,
    folds_of,
)
from farm.errors import SpecError


def _world(n: int = 240, k: int = 4, seed: int = 0, gap: float = 2.0):
    """Logits of a target and ``k`` references on ``n`` records: a record's margin is its
    difficulty, plus ``gap`` where the model trained on it, plus noise."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    difficulty = rng.normal(0, 2, n)
    member = (rng.random(n) < 0.5).astype(np.int64)
    keep = (rng.random((k, n)) < 0.5).astype(np.int64)

    def logits(inside: np.ndarray) -> np.ndarray:
        margin = difficulty + gap * inside + rng.normal(0, 0.5, n)
        out = np.zeros((n, 2))
        out[np.arange(n), labels] = margin
        return out

    refs = np.stack([logits(row) for row in keep])
    return audit_signals(logits(member), refs, keep, labels), member


def test_the_target_is_row_zero_unknown_and_the_references_are_labelled():
    signals, _ = _world(n=20, k=3)
    assert signals.keep.shape == (4, 20) and (signals.keep[0] == -1).all()
    assert signals.labelled.tolist() == [False, True, True, True]
    with pytest.raises(SpecError, match="logits"):
        audit_signals(np.zeros((5, 2)), np.zeros((2, 4, 2)), np.zeros((2, 5)), np.zeros(5))


def test_folds_are_balanced_seeded_and_blind_to_membership():
    fold = folds_of(101, seed=3)
    assert sorted(np.bincount(fold).tolist()) == [50, 51]
    assert np.array_equal(fold, folds_of(101, seed=3)) and not np.array_equal(
        fold, folds_of(101, seed=4)
    )


def test_a_calibrated_attack_ranks_members_above_non_members():
    signals, member = _world()
    audited = np.arange(member.size)
    result = audit_target(signals, audited, member, n_boot=200)
    assert result.choice.attack in CANDIDATES and set(result.choice.figures) == set(CANDIDATES)
    auc = result.figures["AUC"]
    assert auc.value > 0.8 and auc.lo <= auc.value <= auc.hi
    assert result.rank[np.argmax(result.scores)] == 1 and sorted(result.rank) == list(range(1, 241))
    loss = attack_scores(signals, audited, folds_of(240, seed=0), attack="loss", targets=[0])[0]
    assert np.allclose(loss, signals.logprob[0])  # per-point attacks are blind to the folds


def test_the_choice_and_the_scores_never_read_the_targets_member_list():
    signals, member = _world(seed=1)
    audited = np.arange(member.size)
    a = audit_target(signals, audited, member, n_boot=50)
    b = audit_target(signals, audited, 1 - member, n_boot=50)
    assert a.choice == b.choice and np.array_equal(a.scores, b.scores)
    assert a.figures["AUC"].value == pytest.approx(1 - b.figures["AUC"].value)
    fold = folds_of(member.size, seed=0)
    assert choose_attack(signals, audited, fold).attack == a.choice.attack


def test_a_given_attack_is_run_as_given():
    signals, member = _world(n=60)
    result = audit_target(signals, np.arange(60), member, attack="lira", n_boot=50)
    assert result.choice.attack == "lira" and result.choice.figures == {}


def test_no_epsilon_bound_without_random_inclusion_and_a_one_run_bound_with_it():
    signals, member = _world(n=200, gap=6.0)
    result = audit_target(signals, np.arange(200), member, n_boot=50)
    none = epsilon_bound(result, random_inclusion=False, delta=1e-5)
    assert none.bound is None and none.reason == NO_BOUND and "no epsilon lower bound" in NO_BOUND
    some = epsilon_bound(result, random_inclusion=True, delta=1e-5)
    assert some.bound is not None and some.bound.m == 200 and some.bound.epsilon > 0
    assert "fair coin" in some.reason and "Steinke" in some.reason
