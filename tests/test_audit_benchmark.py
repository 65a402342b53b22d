"""The audit benchmark's broken mechanism really is broken: under ``noise_off`` a DP-SGD recipe
that claims epsilon 1 trains exactly as one whose noise multiplier is 0 (same clipping, same Poisson
batches), and the patch counts its calls."""

from __future__ import annotations

import dataclasses

import numpy as np

from benchmarks.audit import noise_off
from farm.spec.jobs import Selection
from farm.spec.recipes import DPConfig
from farm.store.run_job import run_job
from farm.store.store import Store
from tests.jobs_fixture import TOKENIZER, train_jobs


def test_noise_off_trains_as_a_zero_noise_recipe(tmp_path):
    store = Store(tmp_path / "store")
    run_job(TOKENIZER, store)
    (plain,) = train_jobs(1)
    plain = dataclasses.replace(plain, selection=Selection.of(300, np.arange(48)))
    claims = DPConfig(target_epsilon=1.0, delta=1e-5, max_grad_norm=1.0)
    zero = DPConfig(noise_multiplier=0.0, delta=1e-5, max_grad_norm=1.0)
    broken, honest_zero = (
        dataclasses.replace(
            plain, recipe=dataclasses.replace(plain.recipe, dp=dp, group_by_length=False)
        )
        for dp in (claims, zero)
    )
    with noise_off() as calls:
        run_job(broken, store)
    assert calls[0] > 0  # the ghost-clipping optimizer's own reference was patched too
    run_job(honest_zero, store)
    weights = [
        store.fs.cat_file(store.path(j.key, "model.safetensors")) for j in (broken, honest_zero)
    ]
    assert weights[0] == weights[1]
