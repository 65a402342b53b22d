"""Shared fixtures: tiny challenge trees written with the project's own writer."""

from __future__ import annotations

import os

os.environ.setdefault(
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0"
)  # before any import of ray: stay on loopback

from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from safetensors.numpy import save_file  # noqa: E402

from farm.challenge.tree import ChallengeConstants, write_constants, write_model  # noqa: E402

TINY = ChallengeConstants(
    n_total=60, len_training=40, len_challenge=5, population={"source": "test"}
)
SCENARIOS = ("sst2_hi", "sst2_inf", "sst2_lo")


def make_tree(
    root: Path, *, answers: bool = False, counts=(3, 2, 2), constants=TINY, weights=True
) -> Path:
    """A MICO-layout tree. ``answers=False``: a challenge (dev/final hold only seed_challenge and
    weights); ``answers=True``: labels for every model, no weights."""
    write_constants(root, constants)
    rng = np.random.default_rng(0)
    model_id = 0
    files = {}
    if weights and not answers:
        src = root.parent / f".src_{root.name}"
        src.mkdir(parents=True, exist_ok=True)
        (src / "config.json").write_text('{"model_type": "roberta"}')
        save_file(
            {"w": np.zeros((2, 2), np.float32)}, str(src / "model.safetensors")
        )  # a real, tiny file
        (src / "model.safetensors").chmod(
            0o644
        )  # safetensors writes 0600; a released tree is world-readable
        files = {"config.json": src / "config.json", "model.safetensors": src / "model.safetensors"}
    for scenario in SCENARIOS:
        model_id = 0
        for phase, count in zip(("train", "dev", "final"), counts):
            for _ in range(count):
                seeds = [int(s) for s in rng.integers(-(2**63), 2**63 - 1, size=3, dtype=np.int64)]
                labelled = answers or phase == "train"
                split = None
                if labelled:
                    from farm.mico.splits import split_model

                    split = split_model(
                        *seeds,
                        n_total=constants.n_total,
                        len_training=constants.len_training,
                        len_challenge=constants.len_challenge,
                    )
                write_model(
                    root / scenario / phase / f"model_{model_id}",
                    seed_challenge=seeds[0],
                    seed_training=seeds[1] if labelled else None,
                    seed_membership=seeds[2] if labelled else None,
                    solution=split.solution if labelled else None,
                    model_files=files,
                )
                model_id += 1
    return root


class _TouchOnUnpickle:
    """Unpickling this calls ``open(marker, "w")``: the marker file proves that code ran."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def write_pickle_bomb(path: Path, marker: Path) -> Path:
    """A ``pytorch_model.bin`` look-alike whose plain unpickling would create ``marker``."""
    import pickle

    path.write_bytes(
        pickle.dumps({"w": _TouchOnUnpickle(marker)}, protocol=2)
    )  # torch.save's protocol
    return path


@pytest.fixture(scope="session", autouse=True)
def _private_caches(tmp_path_factory):
    """No test reads or writes the user's caches: ``FARM_CACHE_DIR`` (digests, shuffles, the bench
    table) and ``FARM_STORE`` (the default store of every command) point into the session's temp
    folder, for the session's fixtures and every subprocess a test starts."""
    root = tmp_path_factory.mktemp("farm-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FARM_CACHE_DIR", str(root))
        patch.setenv("FARM_STORE", str(root / "session-store"))
        yield


@pytest.fixture(autouse=True)
def _private_store(tmp_path_factory, monkeypatch):
    """Each test's default store is its own, not there yet (as ``OUT/store`` was before the store
    was shared): no test sees the jobs of another through the default."""
    monkeypatch.setenv("FARM_STORE", str(tmp_path_factory.mktemp("default-store") / "store"))


@pytest.fixture
def tiny_challenge(tmp_path: Path) -> Path:
    return make_tree(tmp_path / "challenge")


@pytest.fixture
def tiny_answers(tmp_path: Path) -> Path:
    return make_tree(tmp_path / "answers", answers=True)


@pytest.fixture(scope="module")
def local_ray():
    """A private Ray instance on loopback with 2 CPUs for one test module (shut down after it)."""
    import ray

    if ray.is_initialized():
        ray.shutdown()
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="session")
def tiny_built(tmp_path_factory):
    """The test-sized mini challenge (tests/data/tiny-mini.yaml), built once per session with its
    store."""
    import ray

    from farm.cluster.executor import Executor
    from farm.commands.make_challenge import make_challenge
    from farm.store.store import Store

    out = tmp_path_factory.mktemp("tiny-built")
    started = not ray.is_initialized()
    if started:
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        make_challenge(
            "tests/data/tiny-mini.yaml", out, Executor(store=Store(out / "store"), progress=None)
        )
    finally:
        if started:
            ray.shutdown()
    return out
