"""Published challenge layouts, built in memory so a run can be priced before its download.

``farm plan --challenge mico-sst2`` plans against MICO SST-2's published layout: scenarios
``sst2_hi``, ``sst2_inf`` and ``sst2_lo``, each with models 0-99 in ``train`` (three seeds each),
100-149 in ``dev`` and 150-199 in ``final`` (a challenge seed each), 200 challenge points per model
under the MICO constants, no weights and no ``solution.csv``: what a seeds-only copy of the release
tree reads as. The release's own seeds are inside its ~256 GB archives, so the layout draws stand-in
seeds: job counts come out exactly as on the release; records per job (the union of a scenario's
challenge points) and so bytes and GPU-hours differ from the release's by the spread of that union
over seeds, a few tenths of a percent at MICO's scale.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from farm.challenge.tree import Challenge, ChallengeConstants, ModelEntry

MICO_SST2 = "mico-sst2"
MICO_SST2_SCENARIOS = ("sst2_hi", "sst2_inf", "sst2_lo")
MICO_SST2_PHASES = (("train", 100), ("dev", 50), ("final", 50))
MICO_SST2_STAND_IN = (
    "no tree given: MICO SST-2's published layout (3 scenarios x 100 train + 50 dev + 50 final "
    "models, 200 challenge points each) with stand-in seeds: job counts are exact; records per "
    "job, bytes and GPU-hours follow the union of challenge points, which the release's own seeds "
    "move by a few tenths of a percent"
)


def mico_sst2_layout(seed: int = 0) -> Challenge:
    """MICO SST-2's published layout with stand-in seeds: per model, in (scenario, phase, model id)
    order, three int64 draws of ``np.random.default_rng(seed)`` (challenge, training, membership;
    the last two kept for ``train`` models only). Deterministic in ``seed``; writing its models out
    with ``farm.challenge.tree.write_model`` gives a seeds-only tree that reads back as the same
    models. Touches no file."""
    rng = np.random.default_rng(seed)
    root = Path(MICO_SST2)
    models: list[ModelEntry] = []
    for scenario in MICO_SST2_SCENARIOS:
        model_id = 0
        for phase, count in MICO_SST2_PHASES:
            for _ in range(count):
                seeds = [int(s) for s in rng.integers(-(2**63), 2**63 - 1, size=3, dtype=np.int64)]
                labelled = phase == "train"
                models.append(
                    ModelEntry(
                        scenario=scenario,
                        phase=phase,
                        model_id=model_id,
                        path=root / scenario / phase / f"model_{model_id}",
                        seed_challenge=seeds[0],
                        seed_training=seeds[1] if labelled else None,
                        seed_membership=seeds[2] if labelled else None,
                        solution=None,
                        weights=None,
                        config=None,
                    )
                )
                model_id += 1
    return Challenge(root, ChallengeConstants(), tuple(models), stand_in=MICO_SST2_STAND_IN)
