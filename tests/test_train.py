import dataclasses
import json
import math

import numpy as np
import pytest
import torch

from farm.config import load_recipe
from farm.models import read_weights
from farm.recipes import DPConfig, ModelSpec, Perf, Recipe, TinyModel
from farm.train import plan_dp, train
from tests.helpers import tiny_setup

TINY = ModelSpec(name="tiny", tiny=TinyModel(32, 1, 2, 64), dropout=0.0)
N = 300


def _run(tmp_path, name, recipe, perf=Perf()):
    _, tok, tokens = tiny_setup()
    out = train(tokens, np.arange(N), recipe, out_dir=tmp_path / name, tokenizer=tok, perf=perf)
    return out, json.loads((out / "farm.json").read_text()), read_weights(out)


def _close(a, b, atol=1e-5):
    return all(torch.allclose(a[k], b[k], atol=atol) for k in a)


def test_plain_run_records_recipe_and_learns(tmp_path):
    recipe = Recipe(model=dataclasses.replace(TINY, dropout=None), epochs=4, learning_rate=3e-3, batch_size=20)
    out, meta, _ = _run(tmp_path, "plain", recipe)
    assert meta["recipe"] == dataclasses.asdict(recipe)
    assert meta["steps"] == 4 * math.ceil(N / 20) and meta["examples_seen"] == 4 * N and "dp" not in meta
    from farm.infer import logits_of

    pop, _, tokens = tiny_setup()
    acc = (logits_of(out, tokens, np.arange(N)).argmax(1) == pop.labels[:N]).mean()
    assert acc > 0.65  # a 1-layer model fits 300 records well above chance in 4 epochs


def test_same_seed_same_model(tmp_path):
    recipe = Recipe(model=TINY, epochs=1, learning_rate=1e-3, batch_size=32, seed=7)
    assert _close(_run(tmp_path, "a", recipe)[2], _run(tmp_path, "b", recipe)[2], atol=0)
    other = _run(tmp_path, "c", dataclasses.replace(recipe, seed=8))[2]
    assert not _close(_run(tmp_path, "a2", recipe)[2], other)


def test_micro_batches_accumulate_to_the_same_update(tmp_path):
    recipe = Recipe(model=TINY, epochs=1, learning_rate=1e-3, batch_size=40, group_by_length=False)
    big = _run(tmp_path, "big", recipe, Perf(micro_batch=256))[2]
    small = _run(tmp_path, "small", recipe, Perf(micro_batch=7))[2]
    assert _close(big, small, atol=1e-5)


def test_dp_without_noise_or_clipping_equals_plain(tmp_path):
    """DP is a wrap of the same loop: sigma = 0 and a clip no gradient reaches give the plain model."""
    plain = Recipe(model=TINY, epochs=1, learning_rate=1e-3, batch_size=30, group_by_length=False)  # B divides N:
    # Opacus averages by the expected batch size, so a partial last batch would differ by design
    private = dataclasses.replace(plain, dp=DPConfig(noise_multiplier=0.0, delta=1e-5, max_grad_norm=1e6))
    a = _run(tmp_path, "plain", plain)[2]
    b = _run(tmp_path, "dp", private, Perf(micro_batch=16))[2]
    assert _close(a, b, atol=1e-5)


def test_ghost_and_hooks_clip_identically(tmp_path):
    recipe = Recipe(model=TINY, epochs=1, learning_rate=1e-3, batch_size=40,
                    dp=DPConfig(noise_multiplier=0.0, delta=1e-5, max_grad_norm=0.05))
    ghost = _run(tmp_path, "ghost", recipe, Perf(micro_batch=16, grad_sample_mode="ghost"))[2]
    hooks = _run(tmp_path, "hooks", recipe, Perf(micro_batch=64, grad_sample_mode="hooks"))[2]
    plain = _run(tmp_path, "plain", dataclasses.replace(recipe, dp=None))[2]
    assert _close(ghost, hooks, atol=1e-5)
    assert not _close(ghost, plain, atol=1e-5)  # clipping at 0.05 really changed the update


def test_dp_run_records_steps_noise_and_epsilon(tmp_path):
    recipe = dataclasses.replace(load_recipe("mini-hi"), model=TINY, batch_size=30)
    _, meta, _ = _run(tmp_path, "dp", recipe, Perf(micro_batch=16))
    assert meta["recipe"]["dp"]["target_epsilon"] == 10.0
    assert meta["steps"] == 3 * 10 and meta["dp"]["accounted_steps"] == 30
    assert meta["dp"]["sample_rate"] == pytest.approx(30 / N)
    assert meta["dp"]["noise_multiplier"] == pytest.approx(plan_dp(N, recipe).noise_multiplier)
    assert 9.0 < meta["dp"]["epsilon"] <= 10.05
    assert meta["dp"]["clip"] == 1.0 and meta["dp"]["delta"] == 1e-5


def test_mico_clip_scale_and_noise(tmp_path):
    recipe = load_recipe("mico-lo")
    assert recipe.dp.clip == pytest.approx(6.4)
    plan = plan_dp(67_349, recipe)
    assert plan.steps == 198 and plan.sample_rate == pytest.approx(1024 / 67_349)
    assert plan.noise_multiplier == pytest.approx(0.689, abs=0.01)
    assert plan_dp(67_349, load_recipe("mico-hi")).noise_multiplier == pytest.approx(0.502, abs=0.01)


def test_poisson_sampling_run(tmp_path):
    recipe = Recipe(model=TINY, epochs=2, learning_rate=1e-3, batch_size=25,
                    dp=DPConfig(noise_multiplier=1.0, delta=1e-5, max_grad_norm=1.0, sampling="poisson"))
    _, meta, _ = _run(tmp_path, "poisson", recipe, Perf(micro_batch=16))
    assert meta["steps"] == 2 * 12
    assert 0.6 * 2 * N < meta["examples_seen"] < 1.4 * 2 * N
    assert meta["dp"]["epsilon"] > 0


@pytest.mark.parametrize("mode", ["ghost", "hooks"])
def test_empty_poisson_batches_take_noise_only_steps(tmp_path, mode):
    """q = 1/300: about a third of the Poisson batches are empty; each still takes one (noise-only) DP step."""
    recipe = Recipe(model=TINY, epochs=1, learning_rate=1e-3, batch_size=1,
                    dp=DPConfig(noise_multiplier=1.0, delta=1e-5, max_grad_norm=1.0, sampling="poisson"))
    out, meta, after = _run(tmp_path, f"empty-{mode}", recipe, Perf(grad_sample_mode=mode))
    assert meta["steps"] == N and 200 < meta["examples_seen"] < 400  # ~110 of the 300 batches are empty
    assert all(torch.isfinite(v).all() for v in after.values())


def test_bf16_trains_on_cpu_and_differs_from_fp32(tmp_path):
    from farm.infer import logits_of

    recipe = Recipe(model=TINY, epochs=1, learning_rate=1e-3, batch_size=32, seed=3)
    fp32 = _run(tmp_path, "fp32", recipe, Perf(device="cpu"))
    bf16 = _run(tmp_path, "bf16", dataclasses.replace(recipe, precision="bf16"), Perf(device="cpu"))
    assert bf16[1]["recipe"]["precision"] == "bf16"
    assert not _close(fp32[2], bf16[2], atol=0) and _close(fp32[2], bf16[2], atol=5e-2)
    _, _, tokens = tiny_setup()
    exact = logits_of(fp32[0], tokens, np.arange(50), perf=Perf(device="cpu"))
    half = logits_of(fp32[0], tokens, np.arange(50), perf=Perf(device="cpu"), precision="bf16")
    assert half.dtype == np.float32 and not np.array_equal(exact, half) and np.allclose(exact, half, atol=0.1)
    same = logits_of(fp32[0], tokens, np.arange(50), perf=Perf(device="cpu"), precision="tf32")
    assert np.array_equal(exact, same)  # TF32 is a CUDA matmul mode: on CPU tf32 computes fp32
