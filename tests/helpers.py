"""Small real parts for tests: a synthetic population, a tokenizer trained on it, tokenized
records."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

from farm.spec.population import PopulationSpec

SHARED_SST2 = Path(__file__).resolve().parents[2] / "shared" / "data" / "sst2"


@lru_cache(maxsize=4)
def tiny_setup(n: int = 400, seed: int = 0, tok_dir: str | None = None):
    """(population, tokenizer, tokens) for a synthetic population of ``n`` records."""
    import tempfile

    from farm.training.data import load_population, tokenize
    from farm.training.models import load_tokenizer, train_tokenizer

    pop = load_population(PopulationSpec.of({"source": "synthetic", "n": n, "seed": seed}))
    out = Path(tok_dir or tempfile.mkdtemp(prefix="farm-tok-")) / "tokenizer"
    train_tokenizer(list(pop.sentences), out, vocab_size=600)
    tok = load_tokenizer(out)
    return pop, tok, tokenize(pop, tok, 67)


def indices(n: int) -> np.ndarray:
    return np.arange(n, dtype=np.int64)


def kill_ray_instance(temp_dir: str, pid: int) -> None:
    """Kill exactly one Ray instance started by a test: the processes whose command line names its
    temp dir, and the process group led by ``pid`` (the command that started it). Never other Ray
    instances."""
    import os
    import signal

    import psutil

    victims = [
        p
        for p in psutil.process_iter(["pid", "cmdline"])
        if temp_dir in " ".join(p.info["cmdline"] or [])
    ]
    for p in victims:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    psutil.wait_procs(victims, timeout=10)


def mico_seed_tree(root, seed=0):
    """MICO's layout: 3 scenarios x 200 models, seed files only (no weights, no challenge.json):
    ``farm.challenge.layouts.mico_sst2_layout(seed)`` written out."""
    from farm.challenge.layouts import mico_sst2_layout
    from farm.challenge.tree import write_model

    for m in mico_sst2_layout(seed).models:
        write_model(
            root / m.scenario / m.phase / f"model_{m.model_id}",
            seed_challenge=m.seed_challenge,
            seed_training=m.seed_training,
            seed_membership=m.seed_membership,
        )
    return root


POOL_24 = """# attack-mico's issue-11 shape: LiRA online over a pool of 24,
# DP-matched shadows for hi and lo
attack: lira_online
params: {fixed_variance: true}
plan: {kind: pool, shadows: 24, group: 2, seed: 0}
recipe: mico-inf
scenarios:
  sst2_hi: {recipe: mico-hi, match_targets: true}
  sst2_lo: {recipe: mico-lo, match_targets: true}
"""
