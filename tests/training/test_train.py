import dataclasses
import json
import math

import numpy as np
import pytest
import torch

from farm.config.recipes import load_recipe
from farm.errors import SpecError
from farm.privacy.alibi import alibi_sigma, alibi_soft_labels
from farm.privacy.label_dp import noisy_one_hot
from farm.spec.jobs import HubRef, Selection, TrainJob
from farm.spec.population import PopulationSpec
from farm.spec.recipes import DPConfig, LabelNoise, ModelSpec, Perf, Recipe, TinyModel
from farm.training.models import read_weights
from farm.training.train import (
    _batches,
    alibi_posterior,
    dp_schedule,
    matched_recipe,
    poisson_batches,
    train,
)
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
    recipe = Recipe(
        model=dataclasses.replace(TINY, dropout=None), epochs=4, learning_rate=3e-3, batch_size=20
    )
    out, meta, _ = _run(tmp_path, "plain", recipe)
    assert meta["recipe"] == dataclasses.asdict(recipe)
    assert (
        meta["steps"] == 4 * math.ceil(N / 20)
        and meta["examples_seen"] == 4 * N
        and "dp" not in meta
    )
    from farm.training.infer import logits_of

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
    """DP is a wrap of the same loop: sigma = 0 and a clip no gradient reaches give the plain
    model."""
    plain = Recipe(
        model=TINY, epochs=1, learning_rate=1e-3, batch_size=30, group_by_length=False
    )  # B divides N:
    # Opacus averages by the expected batch size, so a partial last batch would differ by design
    dp = DPConfig(noise_multiplier=0.0, delta=1e-5, max_grad_norm=1e6, sampling="shuffle")
    private = dataclasses.replace(plain, dp=dp)  # shuffle: plain's batches
    a = _run(tmp_path, "plain", plain)[2]
    b = _run(tmp_path, "dp", private, Perf(micro_batch=16))[2]
    assert _close(a, b, atol=1e-5)


def test_ghost_and_hooks_clip_identically(tmp_path):
    recipe = Recipe(
        model=TINY,
        epochs=1,
        learning_rate=1e-3,
        batch_size=40,
        dp=DPConfig(noise_multiplier=0.0, delta=1e-5, max_grad_norm=0.05, sampling="shuffle"),
    )
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
    assert meta["dp"]["noise_multiplier"] == pytest.approx(dp_schedule(N, recipe).noise_multiplier)
    assert 9.0 < meta["dp"]["epsilon"] <= 10.05
    assert meta["dp"]["clip"] == 1.0 and meta["dp"]["delta"] == 1e-5
    assert meta["dp"]["batch_size"] == 30 and meta["dp"]["sampling"] == "shuffle"
    assert meta["dp"]["adjacency"] == "add/remove" and meta["dp"]["accountant"] == "prv"
    assert meta["dp"]["assumes"].startswith(
        "as accounted for Poisson sampling; the run used shuffled batches"
    )


def test_mico_clip_scale_and_noise(tmp_path):
    recipe = load_recipe("mico-lo")
    assert recipe.dp.clip == pytest.approx(6.4)
    plan = dp_schedule(67_349, recipe)
    assert plan.steps == 198 and plan.sample_rate == pytest.approx(1024 / 67_349)
    assert plan.noise_multiplier == pytest.approx(0.689, abs=0.01)
    assert dp_schedule(67_349, load_recipe("mico-hi")).noise_multiplier == pytest.approx(
        0.502, abs=0.01
    )


def test_poisson_batches_include_each_record_at_rate_q():
    """Poisson sampling as the accountant assumes it: batch sizes vary as Binomial(n, q), and every
    record is in about q of the steps. Tolerances: 5 binomial standard deviations (a correct sampler
    fails the per-record check, the widest, with probability about 300 x 6e-7 = 2e-4); the rng is
    fixed, so the test is deterministic either way. A recipe's training draws its batches so."""
    n, q, steps = 300, 0.1, 2000
    indices = np.arange(1000, 1000 + n)  # population indices, not positions
    batches = list(poisson_batches(indices, q, steps, np.random.default_rng(5)))
    assert len(batches) == steps
    assert all(np.isin(b, indices).all() and np.unique(b).size == b.size for b in batches)
    sizes = np.array([b.size for b in batches])
    size_sd = math.sqrt(n * q * (1 - q))  # 5.2 records
    assert abs(sizes.mean() - n * q) < 5 * size_sd / math.sqrt(steps)
    assert abs(sizes.std() - size_sd) < 5 * size_sd / math.sqrt(2 * steps)  # the sd's std. error
    assert sizes.min() < n * q - 2 * size_sd and sizes.max() > n * q + 2 * size_sd  # not fixed
    counts = np.bincount(np.concatenate(batches) - 1000, minlength=n)  # steps holding each record
    count_sd = math.sqrt(steps * q * (1 - q))  # 13.4 of 200
    assert np.abs(counts - steps * q).max() < 5 * count_sd
    assert abs(counts.mean() / steps - q) < 5 * count_sd / steps / math.sqrt(n)
    _, _, tokens = tiny_setup()
    recipe = Recipe(batch_size=30, epochs=2, dp=DPConfig(noise_multiplier=1.0, delta=1e-5))
    assert recipe.dp.sampling == "poisson"  # the default
    drawn = list(_batches(tokens, np.arange(N), recipe, np.random.default_rng(5)))
    expected = list(poisson_batches(np.arange(N), 30 / N, 20, np.random.default_rng(5)))
    assert len(drawn) == 20 and all(np.array_equal(a, b) for a, b in zip(drawn, expected))


def test_poisson_dp_training_spends_what_an_independent_accountant_says(tmp_path):
    """A farm DP recipe (Poisson by default) trained for real: it takes exactly the steps it
    accounts, and the epsilon farm.json records (Opacus' PRV accountant) is what Google's
    dp_accounting PLD accountant gives for the same mechanism -- ``steps`` Poisson-subsampled
    Gaussian steps at q = batch / n and the noise the run used, add/remove adjacency (the relation
    Opacus' accountants assume) -- and below dp_accounting's RDP bound.

    Tolerance 1%: both are upper estimates of the same curve, PRV within eps_error 0.01 of its
    discretised privacy-loss distribution, PLD pessimistically discretised (grid 1e-4); here they
    agree to about 0.3% (PRV 3.994, PLD 3.984 at target 4). One step more or less would move the
    oracle by 1.8% and q = 30/290 instead of 30/300 by 3%, so either fails the test. RDP is looser
    (4.689 here) and only an upper bound: farm's epsilon must lie below it."""
    import dp_accounting as dpa
    from dp_accounting import pld, rdp

    recipe = Recipe(
        model=TINY,
        epochs=2,
        learning_rate=1e-3,
        batch_size=30,
        dp=DPConfig(target_epsilon=4.0, delta=1e-5),
    )
    assert recipe.dp.sampling == "poisson" and recipe.group_by_length is False
    _, meta, _ = _run(tmp_path, "poisson", recipe, Perf(micro_batch=16))
    assert meta["steps"] == meta["dp"]["accounted_steps"] == 2 * math.ceil(N / 30) == 20
    assert abs(meta["examples_seen"] - 20 * 30) < 5 * math.sqrt(20 * N * 0.1 * 0.9)  # Bin(6000, q)
    assert {k: meta["dp"][k] for k in ("sampling", "accountant", "adjacency", "assumes")} == {
        "sampling": "poisson",
        "accountant": "prv",
        "adjacency": "add/remove",
        "assumes": "prv accountant, Poisson sampling, add/remove adjacency",
    }
    step = dpa.PoissonSampledDpEvent(30 / N, dpa.GaussianDpEvent(meta["dp"]["noise_multiplier"]))
    event = dpa.SelfComposedDpEvent(step, meta["steps"])
    oracle = pld.PLDAccountant(dpa.NeighboringRelation.ADD_OR_REMOVE_ONE)
    oracle.compose(event)
    loose = rdp.RdpAccountant(neighboring_relation=dpa.NeighboringRelation.ADD_OR_REMOVE_ONE)
    loose.compose(event)
    eps = meta["dp"]["epsilon"]
    assert eps == pytest.approx(oracle.get_epsilon(1e-5), rel=0.01)
    assert eps == pytest.approx(4.0, abs=0.05)  # the noise was solved for the target (to 0.05)
    assert eps < loose.get_epsilon(1e-5)


@pytest.mark.parametrize("mode", ["ghost", "hooks"])
def test_empty_poisson_batches_take_noise_only_steps(tmp_path, mode):
    """q = 1/300: about a third of the Poisson batches are empty; each still takes one (noise-only)
    DP step."""
    recipe = Recipe(
        model=TINY,
        epochs=1,
        learning_rate=1e-3,
        batch_size=1,
        dp=DPConfig(noise_multiplier=1.0, delta=1e-5, max_grad_norm=1.0, sampling="poisson"),
    )
    out, meta, after = _run(tmp_path, f"empty-{mode}", recipe, Perf(grad_sample_mode=mode))
    assert (
        meta["steps"] == N and 200 < meta["examples_seen"] < 400
    )  # ~110 of the 300 batches are empty
    assert all(torch.isfinite(v).all() for v in after.values())


def test_bf16_trains_on_cpu_and_differs_from_fp32(tmp_path):
    from farm.training.infer import logits_of

    recipe = Recipe(model=TINY, epochs=1, learning_rate=1e-3, batch_size=32, seed=3)
    fp32 = _run(tmp_path, "fp32", recipe, Perf(device="cpu"))
    bf16 = _run(tmp_path, "bf16", dataclasses.replace(recipe, precision="bf16"), Perf(device="cpu"))
    assert bf16[1]["recipe"]["precision"] == "bf16"
    assert not _close(fp32[2], bf16[2], atol=0) and _close(fp32[2], bf16[2], atol=5e-2)
    _, _, tokens = tiny_setup()
    exact = logits_of(fp32[0], tokens, np.arange(50), perf=Perf(device="cpu"))
    half = logits_of(fp32[0], tokens, np.arange(50), perf=Perf(device="cpu"), precision="bf16")
    assert (
        half.dtype == np.float32
        and not np.array_equal(exact, half)
        and np.allclose(exact, half, atol=0.1)
    )
    same = logits_of(fp32[0], tokens, np.arange(50), perf=Perf(device="cpu"), precision="tf32")
    assert np.array_equal(exact, same)  # TF32 is a CUDA matmul mode: on CPU tf32 computes fp32


def test_matched_shadows_run_the_mico_targets_mechanism():
    """MICO's own numbers: targets on 67,349 records, shadows on 52,000. A matched shadow keeps the
    targets' sigma (solved at q = 1024/67,349 over 198 steps), clip, batch, lr, schedule, sampling
    and 198 steps; on its own, smaller set it spends more epsilon than the targets did."""
    n_target, n_shadow = 67_349, 52_000
    for name, sigma, eps in (("mico-lo", 0.689, 4.0), ("mico-hi", 0.502, 10.0)):
        target = load_recipe(name)
        matched = matched_recipe(target, n_target)
        assert matched.steps == 198 == 3 * math.ceil(n_target / 1024)
        assert matched.dp.target_epsilon is None and matched.dp.noise_multiplier == pytest.approx(
            sigma, abs=0.005
        )
        same = (
            "batch_size",
            "learning_rate",
            "schedule",
            "epochs",
            "max_length",
            "model",
            "group_by_length",
        )
        assert all(getattr(matched, f) == getattr(target, f) for f in same)
        assert (matched.dp.clip, matched.dp.sampling, matched.dp.delta) == (
            pytest.approx(6.4),
            "shuffle",
            1e-5,
        )
        at_target = dp_schedule(n_target, matched)
        assert at_target == dp_schedule(
            n_target, target
        )  # exactly the targets' plan: sigma, q, steps
        assert at_target.sample_rate == pytest.approx(1024 / n_target)
        shadow = dp_schedule(n_shadow, matched)
        assert (shadow.noise_multiplier, shadow.steps) == (at_target.noise_multiplier, 198)
        assert shadow.sample_rate == pytest.approx(1024 / n_shadow)
        assert at_target.epsilon(matched.dp) == pytest.approx(
            eps, abs=0.05
        )  # within the solver's tolerance
        assert (
            shadow.epsilon(matched.dp) > 1.15 * eps
        )  # the same mechanism on fewer records spends more (4.9, 11.9)


def test_matched_non_dp_recipe_keeps_the_targets_steps():
    matched = matched_recipe(load_recipe("mico-inf"), 67_349)
    assert (
        matched.steps == 3 * math.ceil(67_349 / 96) and matched.total_steps(52_000) == matched.steps
    )
    assert matched.dp is None and matched.grad_clip == 1.0


def test_steps_override_epochs_by_cycling_shuffled_epochs(tmp_path):
    recipe = Recipe(
        model=TINY, epochs=1, steps=7, learning_rate=1e-3, batch_size=64, group_by_length=False
    )
    _, meta, _ = _run(tmp_path, "steps", recipe)
    assert (
        meta["steps"] == 7 and meta["examples_seen"] == N + 2 * 64
    )  # one epoch (5 batches, last partial) + 2


def test_grad_clip_changes_training_and_is_in_the_key(tmp_path):
    recipe = Recipe(model=TINY, epochs=1, learning_rate=1e-3, batch_size=40, group_by_length=False)
    free = _run(tmp_path, "free", recipe)[2]
    loose = _run(tmp_path, "loose", dataclasses.replace(recipe, grad_clip=1e6))[2]
    tight = _run(tmp_path, "tight", dataclasses.replace(recipe, grad_clip=1e-3))[2]
    assert _close(free, loose, atol=0) and not _close(free, tight)
    sel = Selection.of(N, np.arange(N))
    keys = {
        TrainJob(
            population=PopulationSpec.of({"source": "synthetic", "n": N}),
            tokenizer=HubRef("t"),
            selection=sel,
            recipe=dataclasses.replace(recipe, grad_clip=c),
        ).key
        for c in (None, 1.0, 0.5)
    }
    assert len(keys) == 3
    with pytest.raises(SpecError, match="grad_clip"):
        dataclasses.replace(recipe, grad_clip=1.0, dp=DPConfig(noise_multiplier=1.0, delta=1e-5))
    assert load_recipe("mico-inf").grad_clip == 1.0 and load_recipe("mico-lo").grad_clip is None


ALIBI = LabelNoise(epsilon=1.0, mechanism="alibi")


def _softmax(logits):
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_alibi_posterior_in_torch_is_the_numpy_posterior():
    """The loop's soft labels (torch, on the logits' device) are farm.privacy.alibi's posterior with
    the model's prediction as the prior, and carry no gradient."""
    rng = np.random.default_rng(0)
    z, logits = rng.normal(0.5, 1.5, (64, 2)), rng.normal(0.0, 3.0, (64, 2))
    for sigma in (0.1, 1.0, 5.0):
        got = alibi_posterior(
            torch.tensor(z, dtype=torch.float32), torch.tensor(logits, requires_grad=True), sigma
        )
        want = alibi_soft_labels(z, _softmax(logits), sigma=sigma)
        assert not got.requires_grad
        assert np.allclose(got.numpy(), want, atol=1e-5)


def test_alibi_noise_is_drawn_once_per_population_record(tmp_path, monkeypatch):
    """Every step's targets come from the same noisy vectors, indexed by population record: fixed
    across epochs and the same for a record whichever records it is trained with; the prior is the
    model's prediction on the batch."""
    import farm.training.train as loop

    pop, tok, tokens = tiny_setup()
    seen: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    batches: list[np.ndarray] = []
    real_posterior, real_pad = loop.alibi_posterior, loop.pad_batch

    def spy(z, logits, sigma):
        out = real_posterior(z, logits, sigma)
        seen.append((z.numpy().copy(), logits.detach().numpy().copy(), out.numpy().copy()))
        return out

    monkeypatch.setattr(loop, "alibi_posterior", spy)
    monkeypatch.setattr(loop, "pad_batch", lambda t, b: batches.append(b.copy()) or real_pad(t, b))
    recipe = Recipe(model=TINY, epochs=2, learning_rate=1e-3, batch_size=50, label_noise=ALIBI)
    recipe = dataclasses.replace(recipe, seed=5)
    want = noisy_one_hot(pop.labels, ALIBI, seed=5)
    for sel in (np.arange(0, 200), np.arange(100, 300)):
        seen.clear()
        batches.clear()
        train(tokens, sel, recipe, out_dir=tmp_path / f"from_{sel[0]}", tokenizer=tok)
        assert len(seen) == len(batches) == 2 * 4  # 2 epochs of 4 batches
        assert np.array_equal(np.sort(np.concatenate(batches)), np.sort(np.tile(sel, 2)))
        for (z, logits, soft), batch in zip(seen, batches):
            assert np.array_equal(z, want[batch].astype(np.float32))
            prior = _softmax(logits)
            expected = alibi_soft_labels(want[batch], prior, sigma=alibi_sigma(1.0))
            assert np.allclose(soft, expected, atol=1e-5)
        assert not np.allclose(seen[0][1], seen[-1][1])  # the prior moves as the model learns


def test_alibi_training_reads_labels_only_through_the_noisy_vectors(tmp_path, monkeypatch):
    """With the noisy vectors held fixed, flipping every true label changes nothing: the loop never
    reads a true label (ALIBI's label-DP is post-processing of the noisy vectors)."""
    import farm.training.train as loop

    pop, tok, tokens = tiny_setup()
    fixed = noisy_one_hot(pop.labels, ALIBI, seed=0)
    monkeypatch.setattr(loop, "noisy_one_hot", lambda labels, noise, seed: fixed)
    recipe = Recipe(model=TINY, epochs=1, learning_rate=1e-3, batch_size=40, label_noise=ALIBI)
    flipped = dataclasses.replace(tokens, labels=1 - tokens.labels)
    a = train(tokens, np.arange(N), recipe, out_dir=tmp_path / "a", tokenizer=tok)
    b = train(flipped, np.arange(N), recipe, out_dir=tmp_path / "b", tokenizer=tok)
    assert _close(read_weights(a), read_weights(b), atol=0)


def test_alibi_learns_at_large_epsilon(tmp_path):
    """At label-DP eps 8 (sigma 0.35) the noisy vectors keep the labels: a 1-layer model fits the
    records well above chance, as without noise (test_plain_run_records_recipe_and_learns)."""
    recipe = Recipe(
        model=dataclasses.replace(TINY, dropout=None),
        epochs=4,
        learning_rate=3e-3,
        batch_size=20,
        label_noise=LabelNoise(epsilon=8.0, mechanism="alibi"),
    )
    out, meta, _ = _run(tmp_path, "alibi", recipe)
    assert meta["recipe"]["label_noise"] == {"epsilon": 8.0, "mechanism": "alibi"}
    from farm.training.infer import logits_of

    pop, _, tokens = tiny_setup()
    acc = (logits_of(out, tokens, np.arange(N)).argmax(1) == pop.labels[:N]).mean()
    assert acc > 0.65


@pytest.mark.parametrize("mode", ["ghost", "hooks"])
def test_alibi_with_dp_without_noise_or_clipping_equals_plain_alibi(tmp_path, mode):
    """ALIBI with DP-SGD is supported: Opacus' criterion takes the soft labels as targets, and with
    sigma = 0 and a clip no gradient reaches, the DP run is the plain ALIBI run."""
    plain = Recipe(
        model=TINY,
        epochs=1,
        learning_rate=1e-3,
        batch_size=30,
        group_by_length=False,
        label_noise=LabelNoise(epsilon=2.0, mechanism="alibi"),
    )
    dp = DPConfig(noise_multiplier=0.0, delta=1e-5, max_grad_norm=1e6, sampling="shuffle")
    a = _run(tmp_path, "plain", plain)[2]
    perf = Perf(micro_batch=16, grad_sample_mode=mode)
    b = _run(tmp_path, "dp", dataclasses.replace(plain, dp=dp), perf)[2]
    assert _close(a, b, atol=1e-5)
