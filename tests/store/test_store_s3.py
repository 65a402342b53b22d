"""The store on an S3-compatible server that Ray worker processes share: moto's server mode on
loopback, started and stopped by the test (not the in-process ``memory://``). Jobs run in Ray actors
that write to the bucket; a rerun skips every entry by the manifest check (sizes and ETags), reading
no artifact byte."""

from __future__ import annotations

import os
import socket

import pytest

pytest.importorskip("s3fs")
server_mod = pytest.importorskip("moto.server")

from tests.conftest import local_ray_options  # noqa: E402

BUCKET = "farm-test"


@pytest.fixture
def s3_env(monkeypatch):
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    server = server_mod.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    env = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()
    s3fs.S3FileSystem().mkdir(BUCKET)
    try:
        yield env
    finally:
        s3fs.S3FileSystem.clear_instance_cache()
        server.stop()


def test_store_on_s3_shared_by_ray_workers(s3_env, monkeypatch):
    import ray

    from farm.cluster.executor import Executor
    from farm.store.store import Store
    from tests.jobs_fixture import TOKENIZER, infer_job, train_jobs

    if ray.is_initialized():
        ray.shutdown()
    # worker processes reach the same server
    ray.init(**local_ray_options(runtime_env={"env_vars": s3_env}))
    try:
        store = Store(f"s3://{BUCKET}/store")
        trains = train_jobs(2)
        jobs = [TOKENIZER, *trains, *(infer_job(t) for t in trains)]
        first = Executor(store=store, progress=None, workers=2).run(jobs)
        assert first.ran == 5 and {r["pid"] for r in first.results.values()} - {
            os.getpid()
        }  # in workers
        assert all(store.complete(j.key) and not store.verify(j.key) for j in jobs)
        stamps = [f["stamp"] for f in store.manifest(trains[0].key)["files"].values()]
        assert stamps and all(
            s.lower().startswith("etag=") for s in stamps
        )  # the object store's own marker
        read = []
        for name in ("open", "cat_file", "cat"):
            real = getattr(store.fs, name)
            monkeypatch.setattr(
                store.fs,
                name,
                lambda p, *a, _real=real, **k: read.append(str(p)) or _real(p, *a, **k),
            )
        again = Executor(store=store, progress=None, workers=2).run(
            jobs
        )  # a new driver: everything from the bucket
        assert again.ran == 0 and again.skipped == 5
        assert (
            read and [p for p in read if not p.endswith("manifest.json")] == []
        )  # manifests only, no artifact
        assert store.get_arrays(infer_job(trains[0]).key)["logits"].shape == (300, 2)
        assert any(
            p.endswith("logits.npy") for p in read
        )  # the spy sees artifact reads when there are some
    finally:
        ray.shutdown()
