from pathlib import Path

import numpy as np
import pytest

from farm.errors import SpecError
from farm.spec.jobs import HubRef, PathRef, StoreRef
from farm.spec.population import PopulationSpec
from farm.store.run_job import Context, InProcessRunner, logits_from_store, run_job
from farm.store.store import Store
from tests.jobs_fixture import TOKENIZER, infer_job, train_jobs


def test_run_job_is_idempotent_and_recomputes_corrupt_entries(tmp_path):
    store, ctx = Store(tmp_path / "store"), Context()
    assert run_job(TOKENIZER, store, ctx)["ran"]
    train = train_jobs(1)[0]
    first = run_job(train, store, ctx)
    assert first["ran"] and store.valid(train.key)
    assert store.manifest(train.key)["meta"]["train"]["steps"] == 9
    assert not run_job(train, store, ctx)["ran"]  # found: nothing runs
    infer = infer_job(train)
    run_job(infer, store, ctx)
    indices, logits = logits_from_store(store, infer)
    assert (
        indices.tolist() == list(range(300))
        and logits.shape == (300, 2)
        and logits.dtype == np.float32
    )
    weights = store.path(train.key, "model.safetensors")
    data = store.fs.cat_file(weights)
    store.fs.pipe_file(weights, data[: len(data) // 3])  # truncate
    again = run_job(train, store, Context())
    assert again["ran"] and store.valid(train.key)
    assert store.fs.cat_file(weights) == data  # recomputed bit for bit (same seed, CPU)


def test_resolve_reads_each_kind_of_reference(tmp_path):
    store, ctx = Store(tmp_path / "store"), Context()
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "f.txt").write_text("x")
    store.put_dir("k" * 64, tmp_path / "src", {})
    assert Path(ctx.resolve(StoreRef("k" * 64), store), "f.txt").read_text() == "x"
    assert ctx.resolve(PathRef("/some/where", "ab" * 32), store) == "/some/where"
    assert ctx.resolve(HubRef("roberta-base"), store) == "roberta-base"
    with pytest.raises(SpecError, match="not a model or tokenizer reference"):
        ctx.resolve("store:" + "k" * 64, store)  # type: ignore[arg-type]


def test_context_makes_no_folder_for_a_local_store_and_removes_its_cache(tmp_path):
    ctx = Context()
    assert ctx._cache is None  # local stores are read in place: nothing to clean up
    cache = ctx.cache_dir
    assert cache.is_dir()
    ctx.close()
    assert not cache.exists()


def test_prefetched_weights_are_used_once_and_not_read_again(tmp_path, monkeypatch):
    """A worker streams models: ``prefetch`` reads the next inference job's weights; ``run_job``
    uses them."""
    from farm.training import models
    from tests.jobs_fixture import TOKENIZER, infer_job, train_jobs

    store, ctx = Store(tmp_path / "store"), Context()
    train = train_jobs(1)[0]
    run_job(TOKENIZER, store, ctx)
    run_job(train, store, ctx)
    job = infer_job(train)
    reads = []
    real = models.read_weights
    monkeypatch.setattr(models, "read_weights", lambda d: reads.append(d) or real(d))
    ctx.prefetch(job, store)
    assert len(reads) == 1
    assert (
        run_job(job, store, ctx)["ran"] and len(reads) == 1
    )  # the prefetched state dict, not a second read
    assert ctx._weights == {}


def test_inference_with_queries_and_gradient_norms_in_one_entry(tmp_path):
    """One store entry holds logits, query logits ``[R, Q, 2]`` and gradient norms ``[R]`` of a tiny
    RoBERTa."""
    import dataclasses

    import torch

    from farm.spec.jobs import InferJob, Selection
    from farm.spec.queries import QueryFamily
    from farm.spec.recipes import ModelSpec, Perf, TinyModel
    from farm.training.data import tokenize
    from farm.training.grad_norm import grad_norms_of
    from farm.training.infer import logits_of
    from farm.training.models import init_model, save_model
    from tests.helpers import tiny_setup

    pop, tok, _ = tiny_setup()
    tok.save_pretrained(tmp_path / "tok")
    torch.manual_seed(0)
    model = init_model(ModelSpec(name="tiny", tiny=TinyModel(32, 1, 2, 64)), tok, max_length=67)
    save_model(model, tmp_path / "m")
    spec = {"source": "synthetic", "n": 400, "seed": 0}
    family = QueryFamily(kinds=("identity", "dropout", "swap"))
    records = np.array([3, 50, 51, 399])
    plain = InferJob(
        population=PopulationSpec.of(spec),
        tokenizer=PathRef(str(tmp_path / "tok"), "t" * 64),
        model=PathRef(str(tmp_path / "m"), "m" * 64),
        selection=Selection.of(400, records),
    )
    job = dataclasses.replace(plain, queries=family, grad_norm=True)
    store, ctx = Store(tmp_path / "store"), Context(perf=Perf(device="cpu"))
    assert run_job(job, store, ctx)["ran"] and not store.exists(plain.key)
    arrays = store.get_arrays(job.key)
    assert arrays["query_logits"].shape == (4, 3, 2) and arrays["grad_norm"].shape == (4,)
    tokens = tokenize(pop, tok, 67)
    np.testing.assert_allclose(
        arrays["logits"], logits_of(tmp_path / "m", tokens, records), atol=1e-5
    )
    np.testing.assert_array_equal(
        arrays["query_logits"][:, 0], arrays["logits"]
    )  # query 0 is the record itself
    np.testing.assert_allclose(
        arrays["grad_norm"], grad_norms_of(tmp_path / "m", tokens, records, device="cpu"), rtol=1e-5
    )
    run_job(plain, store, ctx)
    assert set(store.get_arrays(plain.key)) == {
        "indices",
        "logits",
    }  # a plain job computes nothing more


def test_the_in_process_runner_runs_jobs_in_dependency_order_and_reuses_them(tmp_path):
    (train,) = train_jobs(1)
    infer = infer_job(train)
    runner = InProcessRunner(Store(tmp_path / "store"))
    report = runner.run([infer, train, TOKENIZER])  # inputs first, whatever the order given
    assert report.ran == 3 and runner.store.complete(infer.key)
    assert runner.run([infer, train, TOKENIZER]).ran == 0 and (runner.ran, runner.reused) == (3, 3)
    with pytest.raises(SpecError, match="reads a key no job provides"):
        InProcessRunner(Store(tmp_path / "other")).run([train])


def test_prefetched_inputs_give_identical_results(tmp_path):
    """``prefetch`` of the next job's inputs (tokenized population, weights), from a second thread
    while ``run_job`` runs another job, changes no byte: the same weights and logits as a worker
    that prefetches nothing."""
    import threading

    plain, fetched = Store(tmp_path / "plain"), Store(tmp_path / "fetched")
    trains = train_jobs(2)
    infers = [infer_job(t) for t in trains]
    ctx = Context()
    for job in [TOKENIZER, *trains, *infers]:
        run_job(job, plain, ctx)
    ctx = Context()
    run_job(TOKENIZER, fetched, ctx)
    ctx.prefetch(trains[0], fetched)  # tokens made ahead, by the prefetch, with its own tokenizer
    assert len(ctx._tokens) == 1 and ctx._tokenizers == {}
    run_job(trains[0], fetched, ctx)
    for running, behind in [(trains[1], infers[0]), (infers[0], infers[1]), (infers[1], None)]:
        thread = threading.Thread(target=ctx.prefetch, args=(behind, fetched)) if behind else None
        if thread:
            thread.start()
        run_job(running, fetched, ctx)
        if thread:
            thread.join()
    assert ctx._weights == {} and len(ctx._tokens) == 1
    for job in trains:
        name = "model.safetensors"
        assert fetched.fs.cat_file(fetched.path(job.key, name)) == plain.fs.cat_file(
            plain.path(job.key, name)
        )
    for job in infers:
        assert np.array_equal(logits_from_store(fetched, job)[1], logits_from_store(plain, job)[1])


def test_a_cache_entry_two_threads_ask_for_is_made_once(tmp_path):
    import threading
    import time

    ctx, made = Context(), []

    def make():
        made.append(1)
        time.sleep(0.2)
        return "value"

    threads = [
        threading.Thread(target=ctx._once, args=(ctx._populations, "population", "k", make))
        for _ in range(3)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert made == [1] and ctx._populations == {"k": "value"}
