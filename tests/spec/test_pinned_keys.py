"""Job keys are interfaces: stores written before the package layout (issue 19) are reused after it.

The values were computed by the code before the move (commit 5be25fc, modules flat in ``farm/``); a
change of any of them would make every store written before it redo its work.

The defence keys were re-pinned once, after the move: make-challenge keyed a file population by the
absolute path of its data, so CI (data elsewhere) computed other keys. It now pins a file population
by the fingerprint of its data, as attacks already did, and a test below holds
that.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from farm.commands.make_challenge import challenge_jobs
from farm.config.challenge import load_challenge_config
from farm.spec.jobs import InferJob, Selection, StoreRef, VoteJob
from farm.spec.population import PopulationSpec
from tests.helpers import SHARED_SST2


@pytest.fixture(scope="module")
def mini():
    return challenge_jobs(load_challenge_config("mini"), 3000)


def test_make_challenge_keys_of_the_mini_challenge(mini):
    assert mini.tokenizer.key == "dd8670dd7f6373c075987601af43762b1d8a88277c19b2f53f2a01c0d448763c"
    assert mini.base.key == "4310405a3242f7dfad0b89cb5aabb9b4376c9dcc19d5998ac8b2c1d5cd29fa9f"
    first = mini.targets[0]
    assert (first.scenario, first.phase, first.model_id) == ("sst2_inf", "train", 0)
    assert (
        first.build.jobs[0].key
        == "01ac196e9450d8bc9f0cbe24dccd851ac1e71b987e5b9866a4a3a082d40d05e2"
    )
    dp = next(t for t in mini.targets if t.scenario == "sst2_hi")
    assert (
        dp.build.jobs[0].key == "d487425ed312946796715d0bf83c20628f17fb63c4f7889abf3c0bb6cfb23bb2"
    )


def test_an_inference_key(mini):
    job = InferJob(
        population=PopulationSpec.of(mini.tokenizer.population),
        tokenizer=StoreRef(mini.tokenizer.key),
        model=StoreRef(mini.targets[0].build.jobs[0].key),
        selection=Selection.of(3000, np.arange(10)),
    )
    assert job.key == "63f4e00f25897081f68dc523456e590cf2da840f71c1649aa9a010d2246914d9"


@pytest.mark.skipif(
    not SHARED_SST2.exists(), reason="needs ../shared/data/sst2 (defences-sst2 reads it)"
)
def test_defence_keys(monkeypatch):
    monkeypatch.setenv("FARM_SST2_DIR", str(SHARED_SST2))
    built = challenge_jobs(load_challenge_config("defences-sst2"), 1000)
    votes = next(j for t in built.targets for j in t.build.jobs if isinstance(j, VoteJob))
    assert votes.key == "e164b1172685593124c7ded059c3010492848dbe02760fc4874d13e214b057f6"
    sisa = next(t for t in built.targets if "sisa" in t.scenario)
    assert sisa.scenario == "sisa_s1_r1"
    assert (
        sisa.build.jobs[-1].key
        == "5d6a8bd0b421ec981698f45ee5f00774b0acc1d83fff3d1a5b7a2044feb3418e"
    )


@pytest.mark.skipif(
    not SHARED_SST2.exists(), reason="needs ../shared/data/sst2 (defences-sst2 reads it)"
)
def test_defence_keys_do_not_depend_on_where_the_data_lies(monkeypatch, tmp_path):
    copy = tmp_path / "elsewhere" / "sst2"
    shutil.copytree(SHARED_SST2, copy)
    keys = []
    for where in (SHARED_SST2, copy):
        monkeypatch.setenv("FARM_SST2_DIR", str(where))
        built = challenge_jobs(load_challenge_config("defences-sst2"), 1000)
        keys.append([built.tokenizer.key, built.base.key, built.target_jobs()[0].key])
    assert keys[0] == keys[1]
