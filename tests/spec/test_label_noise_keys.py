"""Adding ALIBI moved no job key: randomized response's keys are pinned (computed by the code
before ALIBI existed), and appending the ``alibi_e1`` scenario to a defence comparison leaves every
other scenario's jobs as they were (targets' seeds are drawn in scenario order)."""

from __future__ import annotations

import dataclasses

import pytest

from farm.commands.make_challenge import challenge_jobs
from farm.config.challenge import load_challenge_config
from tests.helpers import SHARED_SST2


def _keys(config, n: int) -> dict[str, list[str]]:
    built = challenge_jobs(config, n)
    keys: dict[str, list[str]] = {"shared": [built.tokenizer.key, built.base.key]}
    for t in built.targets:
        keys.setdefault(t.scenario, []).extend(job.key for job in t.build.jobs)
    return keys


def _appending_alibi_moves_nothing(config, n: int) -> dict[str, list[str]]:
    assert list(config.scenarios)[-1] == "alibi_e1"
    before = dataclasses.replace(
        config, scenarios={k: v for k, v in config.scenarios.items() if k != "alibi_e1"}
    )
    after, old = _keys(config, n), _keys(before, n)
    assert {k: v for k, v in after.items() if k != "alibi_e1"} == old
    assert len(after["alibi_e1"]) == len(after["rr_e1"])
    assert not set(after["alibi_e1"]) & {key for keys in old.values() for key in keys}
    return after


def test_appending_alibi_moves_no_key_of_the_test_sized_comparison():
    _appending_alibi_moves_nothing(load_challenge_config("tests/data/tiny-defences.yaml"), 300)


@pytest.mark.skipif(
    not SHARED_SST2.exists(), reason="needs ../shared/data/sst2 (defences-sst2 reads it)"
)
def test_defences_sst2_keys_with_alibi(monkeypatch):
    monkeypatch.setenv("FARM_SST2_DIR", str(SHARED_SST2))
    keys = _appending_alibi_moves_nothing(load_challenge_config("defences-sst2"), 1000)
    # computed by the code before ALIBI (commit 779662d)
    assert keys["rr_e1"][0] == "c3bdf63a4c8fb4b412c9b3229cb8ad015dad4dde687847aaf701f775fa83931a"
    # ALIBI's first target, pinned from now on
    assert keys["alibi_e1"][0] == "d9eabbcce3f811c34f2c118e852c4d3e52e5322129ce7fc4b8b320a0d7619f65"
