"""The attacks by name (``ATTACKS``: every attack of ``farm.attacks.base`` plus the learned ones),
what optional signals each needs (``needs``) and ``run_attack``. Pure.

The contract every attack keeps: pure, keyword-only functions of cached signals with one signature
and one direction.

Every attack is ``attack(signals, targets, **params) -> scores`` with ``scores[t, j]`` the
membership score of target ``targets[t]`` on its ``j``-th challenge point (challenge order); higher
= member. References of a target are models of ``signals`` with known membership (labelled models
and shadows) *except the target itself*, so a labelled target is never its own reference;
``in_from`` / ``out_from`` (``SOURCES``) narrow where IN and OUT references come from. Variants are
parameters (see ``ATTACKS``), not copies. Attacks with fitted parameters (``learned``, ``rmia`` with
grids) cross-fit: a labelled target is scored only by a fit that did not see it, neither as a model
fitted on nor as a reference of one.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import numpy as np

from farm.attacks.base import BASE, Attack
from farm.attacks.learned import check_extra_signals, learned
from farm.attacks.signals import Signals

ATTACKS: dict[str, Attack] = {
    **BASE,
    "learned": learned,
    "stacked": functools.partial(learned, stack=("rmia", "lira_farm"), classifier="logistic"),
    # LT-MIA's reading: one classifier fitted across every model of known membership, shadows too
    "learned_across": functools.partial(learned, fit_on="known"),
}


# The optional ``Signals`` field each statistic reads; everything else reads the logits alone.
NEEDS: dict[str, str] = {"query_margin": "query_logits", "grad_norm": "grad_norm"}


def needs(name: str, params: Mapping[str, Any] | None = None) -> frozenset[str]:
    """The optional ``Signals`` fields (``query_logits``, ``grad_norm``) attack ``name`` with
    ``params`` cannot run without: those of its ``statistic`` (``NEEDS``; a variant's fixed one or a
    param), and for the learned attacks those their features name (``extra_signals``) and those of
    every attack in their ``stack``. Inference computes exactly these (``AttackConfig.extras``).
    ``ValueError`` for an ``extra_signals`` name no signal has.

    >>> sorted(needs("lira_queries")), sorted(needs("stacked", {"stack": ["lira_grad", "rmia"]}))
    (['query_logits'], ['grad_norm'])
    >>> sorted(needs("stacked", {"extra_signals": ["grad_norm", "query_logits"]}))
    ['grad_norm', 'query_logits']
    """
    if name not in ATTACKS:
        raise KeyError(f"unknown attack {name!r} (expected one of {sorted(ATTACKS)})")
    fn = ATTACKS[name]
    bound = {**(fn.keywords if isinstance(fn, functools.partial) else {}), **(params or {})}
    out = {NEEDS[bound["statistic"]]} if bound.get("statistic") in NEEDS else set()
    for inner in bound.get("stack", ()):
        out |= needs(str(inner))
    extra = [str(field) for field in bound.get("extra_signals", ())]
    check_extra_signals(extra)
    out |= set(extra)
    return frozenset(out)


def run_attack(name: str, signals: Signals, targets: np.ndarray, **params: object) -> np.ndarray:
    """Look up ``name`` in ``ATTACKS`` and apply it with ``params``."""
    if name not in ATTACKS:
        raise KeyError(f"unknown attack {name!r} (expected one of {sorted(ATTACKS)})")
    return ATTACKS[name](signals, targets, **params)
