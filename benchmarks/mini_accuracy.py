"""Test accuracy of the mini recipes on held-out SST-2 records, so that mini targets are real
classifiers.

A tiny base model is pre-trained (plain) on SST-2 records disjoint from the targets' records (the
stand-in for roberta-base's public pre-training); each mini recipe then fine-tunes it on
``--records`` records; accuracy is measured on GLUE's validation rows (872, used by neither). Also
the cost of DP against plain training.

    python -m benchmarks.mini_accuracy --records 3000 --base-records 20000
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np

from benchmarks.common import sst2_population, table, timer, tokenizer_for
from farm.config.recipes import load_recipe
from farm.spec.recipes import Perf, Recipe
from farm.training.data import tokenize
from farm.training.infer import logits_of
from farm.training.train import train

BASE_RECIPE = Recipe(epochs=3, learning_rate=1e-3, batch_size=32)


def accuracy(model_dir: Path, tokens, labels: np.ndarray, idx: np.ndarray) -> float:
    return float((logits_of(model_dir, tokens, idx).argmax(1) == labels[idx]).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=3000)
    parser.add_argument("--base-records", type=int, default=20000)
    args = parser.parse_args()
    pop = sst2_population()
    work = Path(tempfile.mkdtemp(prefix="farm-acc-"))
    tok = tokenizer_for(pop, work / "tok")
    tokens = tokenize(pop, tok, 67)
    test = np.arange(67_349, 68_221)
    perm = np.random.default_rng(0).permutation(67_349)
    base_idx, train_idx = (
        perm[: args.base_records],
        perm[args.base_records : args.base_records + args.records],
    )
    with timer() as t:
        base = train(tokens, base_idx, BASE_RECIPE, out_dir=work / "base", tokenizer=tok)
    rows = [
        {
            "model": f"base ({args.base_records} disjoint records)",
            "test_acc": accuracy(base, tokens, pop.labels, test),
            "train_acc": accuracy(base, tokens, pop.labels, train_idx),
            "seconds": t["seconds"],
            "epsilon": "-",
        }
    ]
    for name in ("mini-inf", "mini-hi", "mini-lo"):
        for mode in ("ghost", "hooks") if name != "mini-inf" else ("-",):
            recipe = load_recipe(name)
            perf = Perf(grad_sample_mode=mode) if mode != "-" else Perf()
            with timer() as t:
                out = train(
                    tokens,
                    train_idx,
                    recipe,
                    out_dir=work / f"{name}-{mode}",
                    tokenizer=tok,
                    base=base,
                    perf=perf,
                )
            meta = json.loads((out / "farm.json").read_text())
            eps = meta.get("dp", {}).get("epsilon")
            rows.append(
                {
                    "model": f"{name} ({mode})" if mode != "-" else name,
                    "test_acc": accuracy(out, tokens, pop.labels, test),
                    "train_acc": accuracy(out, tokens, pop.labels, train_idx),
                    "seconds": t["seconds"],
                    "epsilon": f"{eps:.2f}" if eps else "-",
                }
            )
    plain = rows[1]["seconds"]
    for r in rows[1:]:
        r["cost_vs_plain"] = r["seconds"] / plain
    rows[0]["cost_vs_plain"] = "-"
    print(f"records={args.records} base_records={args.base_records} test=GLUE validation (872)")
    print(table(rows))


if __name__ == "__main__":
    main()
