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


# Seconds the slowest test files took in a serial run (docs/benchmarks.md, "The suite's time at
# the end of stop 29"). ``pytest -n 2 --dist loadfile`` hands files out in collection order, so
# these go first, longest first, and the short files fill in at the end: a long file handed out
# last held one core alone for its whole length. Stale figures cost speed, never correctness.
SLOW_FILES = {
    "tests/cluster/test_executor.py": 123,
    "tests/cluster/test_tune_resume.py": 91,
    "tests/test_ray_jobs.py": 41,
    "tests/commands/test_attack.py": 37,
    "tests/commands/test_dry_run.py": 35,
    "tests/defences/test_sisa.py": 34,
    "tests/privacy/test_pate.py": 33,
    "tests/training/test_train.py": 31,
    "tests/test_defences_benchmark.py": 26,
    "tests/test_cli.py": 26,
    "tests/store/test_store_s3.py": 20,
    "tests/cluster/test_tune.py": 19,
    "tests/test_assets.py": 16,
    "tests/attacks/test_intervals.py": 13,
    "tests/test_scaling_benchmark.py": 10,
    "tests/test_gpu_check.py": 10,
}


def pytest_collection_modifyitems(session, config, items):
    """The slow files first, longest first (``SLOW_FILES``); every file's tests keep their order,
    and the other files theirs."""
    rank = {path: i for i, path in enumerate(sorted(SLOW_FILES, key=SLOW_FILES.get, reverse=True))}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(rank)))


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
def _farm_logger_as_python_leaves_it():
    """Each test starts with the ``farm`` logger as Python leaves it (no handler of the CLI's, level
    unset, propagating): a CLI call's ``setup_logging`` -- in an earlier test or in a module
    fixture -- must not hide this test's records from ``caplog``, whichever tests a test process
    happens to run before it."""
    import logging

    logger = logging.getLogger("farm")
    for handler in [h for h in logger.handlers if getattr(h, "farm_cli", False)]:
        logger.removeHandler(handler)
    logger.setLevel(logging.NOTSET)
    logger.propagate = True
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


def ensure_local_ray() -> None:
    """The test session's private Ray instance on loopback with 2 CPUs: started on first use (or
    again after a test that needed a Ray of its own shut it down), shared by every later user, shut
    down at the session's end (``_session_ray``). A Ray start costs about 6 s on 2 cores; one per
    module was a minute of the suite."""
    import ray

    if not ray.is_initialized():
        ray.init(**local_ray_options())


def local_ray_options(**extra) -> dict:
    """``ray.init`` keywords of a test's private Ray: loopback, 2 CPUs, no dashboard, and a session
    folder of this test process's own (``pytest -n 2`` runs two test processes, each with its own
    Ray: they share no file under Ray's default ``/tmp/ray``)."""
    return {
        "address": "local",
        "num_cpus": 2,
        "include_dashboard": False,
        "log_to_driver": False,
        "_temp_dir": f"/tmp/farm-test-ray-{os.getpid()}",
        **extra,
    }


@pytest.fixture(scope="session", autouse=True)
def _session_ray():
    """Shuts down the Ray that the session's tests left running in this process, at the end."""
    yield
    import shutil

    _shutdown_local_ray()
    shutil.rmtree(local_ray_options()["_temp_dir"], ignore_errors=True)


def _shutdown_local_ray() -> None:
    """Shut down this process's Ray, if one is up (without importing Ray when none was)."""
    import sys

    if "ray" in sys.modules and sys.modules["ray"].is_initialized():
        sys.modules["ray"].shutdown()


@pytest.fixture(scope="module")
def local_ray():
    """The session's private Ray (``ensure_local_ray``), up for this module's tests."""
    ensure_local_ray()


@pytest.fixture(scope="module")
def no_local_ray():
    """No Ray instance of this test process is alive during this module (its tests start their own
    in subprocesses, on the same 2 cores): the shared one is shut down, and restarted by the next
    module that asks."""
    _shutdown_local_ray()


@pytest.fixture(scope="session")
def tiny_built(tmp_path_factory):
    """The test-sized mini challenge (tests/data/tiny-mini.yaml), built once per session with its
    store."""
    from farm.cluster.executor import Executor
    from farm.commands.make_challenge import make_challenge
    from farm.store.store import Store

    out = tmp_path_factory.mktemp("tiny-built")
    ensure_local_ray()
    make_challenge(
        "tests/data/tiny-mini.yaml", out, Executor(store=Store(out / "store"), progress=None)
    )
    return out
