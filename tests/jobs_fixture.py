"""Small real jobs for executor tests: a tokenizer and tiny trainings on a 300-record synthetic
population."""

from __future__ import annotations

import numpy as np

from farm.spec.jobs import InferJob, Selection, StoreRef, TokenizerJob, TrainJob
from farm.spec.population import PopulationSpec
from farm.spec.recipes import ModelSpec, Recipe, TinyModel

POP = {"source": "synthetic", "n": 300, "seed": 0}
TOKENIZER = TokenizerJob(PopulationSpec.of(POP), vocab_size=500, label="tokenizer")


def train_jobs(count: int, epochs: int = 1) -> list[TrainJob]:
    recipe = Recipe(
        model=ModelSpec(name="tiny", tiny=TinyModel(32, 1, 2, 64)),
        epochs=epochs,
        learning_rate=1e-3,
        batch_size=32,
    )
    rng = np.random.default_rng(0)
    return [
        TrainJob(
            population=PopulationSpec.of(POP),
            tokenizer=StoreRef(TOKENIZER.key),
            selection=Selection.of(300, rng.choice(300, 280, replace=False)),
            recipe=Recipe(**{**recipe.__dict__, "seed": i}),
            label=f"model_{i}",
        )
        for i in range(count)
    ]


def infer_job(train: TrainJob) -> InferJob:
    return InferJob(
        population=PopulationSpec.of(POP),
        tokenizer=StoreRef(TOKENIZER.key),
        model=StoreRef(train.key),
        selection=Selection.of(300, np.arange(300)),
        label=f"infer {train.label}",
    )
