"""Trainer throughput: farm.training.train against a faithful re-creation of the runner-up's recipe
(HF Trainer, inputs padded to 67, fp32, batch 96, lr 5e-5, constant) on the same tiny model, the
same SST-2 records, one run.

    python -m benchmarks.train_speed --records 8000 --epochs 1
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch

from benchmarks.common import sst2_population, table, timer, tokenizer_for
from farm.spec.recipes import ModelSpec, Perf, Recipe, TinyModel
from farm.training.data import tokenize
from farm.training.train import train


def hf_trainer_run(pop, tok, idx: np.ndarray, spec: ModelSpec, epochs: int, out: Path) -> float:
    """The runner-up's recipe with HF's Trainer: pad to 67, fp32, batch 96, lr 5e-5 constant,
    AdamW."""
    import datasets
    from transformers import Trainer, TrainingArguments

    from farm.training.models import init_model

    ds = datasets.Dataset.from_dict(
        {"sentence": [pop.sentences[i] for i in idx], "label": pop.labels[idx].tolist()}
    )
    ds = ds.map(
        lambda b: tok(b["sentence"], padding="max_length", truncation=True, max_length=67),
        batched=True,
    )
    ds = ds.remove_columns(["sentence"])
    torch.manual_seed(0)
    model = init_model(spec, tok, max_length=67)
    args = TrainingArguments(
        output_dir=str(out),
        per_device_train_batch_size=96,
        learning_rate=5e-5,
        lr_scheduler_type="constant",
        num_train_epochs=epochs,
        report_to=[],
        save_strategy="no",
        logging_strategy="no",
        disable_tqdm=True,
        use_cpu=not torch.cuda.is_available(),
        dataloader_num_workers=0,
    )
    with timer() as t:
        Trainer(model=model, args=args, train_dataset=ds).train()
    return t["seconds"]


def farm_run(tokens, tok, idx, spec: ModelSpec, epochs: int, out: Path, *, group: bool) -> float:
    recipe = Recipe(
        model=spec, epochs=epochs, learning_rate=5e-5, batch_size=96, group_by_length=group
    )
    with timer() as t:
        train(tokens, idx, recipe, out_dir=out, tokenizer=tok, perf=Perf())
    return t["seconds"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=8000)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument(
        "--model", default="tiny", help="tiny, or a local directory / hub name (roberta-base)"
    )
    args = parser.parse_args()
    pop = sst2_population()
    work = Path(tempfile.mkdtemp(prefix="farm-bench-"))
    tok = tokenizer_for(pop, work / "tok")
    tokens = tokenize(pop, tok, 67)
    idx = np.random.default_rng(0).choice(len(pop), args.records, replace=False)
    spec = ModelSpec(name=args.model, tiny=TinyModel())
    n_seq = args.records * args.epochs
    hf = hf_trainer_run(pop, tok, idx, spec, args.epochs, work / "hf")
    dyn = farm_run(tokens, tok, idx, spec, args.epochs, work / "dyn", group=False)
    grp = farm_run(tokens, tok, idx, spec, args.epochs, work / "grp", group=True)
    rows = [
        {
            "trainer": "HF Trainer, pad 67 (runner-up)",
            "seconds": hf,
            "seq/s": n_seq / hf,
            "speedup": 1.0,
        },
        {
            "trainer": "farm.training.train, dynamic padding",
            "seconds": dyn,
            "seq/s": n_seq / dyn,
            "speedup": hf / dyn,
        },
        {
            "trainer": "farm.training.train, dynamic + length-grouped",
            "seconds": grp,
            "seq/s": n_seq / grp,
            "speedup": hf / grp,
        },
    ]
    print(
        f"records={args.records} epochs={args.epochs} model={args.model} "
        f"device={'cuda' if torch.cuda.is_available() else 'cpu'} threads={torch.get_num_threads()}"
    )
    print(table(rows))


if __name__ == "__main__":
    main()
