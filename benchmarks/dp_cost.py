"""The cost of DP training against plain training with the MICO recipes at roberta-base size (random
weights are fine for speed), and what Opacus' clipping modes change. Sequences per second on the
same records.

    python -m benchmarks.dp_cost --records 512 --dp-batch 256
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
from pathlib import Path

import numpy as np
import torch

from benchmarks.common import sst2_population, table, timer, tokenizer_for
from farm.config.recipes import load_recipe
from farm.spec.recipes import ModelSpec, Perf
from farm.training.data import tokenize
from farm.training.train import train


def roberta_base_like(tok, out: Path) -> Path:
    """roberta-base's architecture (12 x 768, 125M parameters with its vocabulary), random
    weights."""
    from transformers import RobertaConfig, RobertaForSequenceClassification

    config = RobertaConfig(
        vocab_size=len(tok),
        max_position_embeddings=514,
        pad_token_id=tok.pad_token_id,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        type_vocab_size=1,
        num_labels=2,
    )
    torch.manual_seed(0)
    RobertaForSequenceClassification(config).save_pretrained(out)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=512)
    parser.add_argument("--dp-batch", type=int, default=256, help="logical DP batch (MICO: 1024)")
    parser.add_argument("--micro-batch", type=int, default=32)
    parser.add_argument("--modes", default="ghost,hooks")
    args = parser.parse_args()
    pop = sst2_population()
    work = Path(tempfile.mkdtemp(prefix="farm-dpcost-"))
    tok = tokenizer_for(pop, work / "tok")
    tokens = tokenize(pop, tok, 67)
    idx = np.random.default_rng(0).choice(67_349, args.records, replace=False)
    model = ModelSpec(name=str(roberta_base_like(tok, work / "roberta-base-like")))
    runs = [("mico-inf", "-")] + [(r, m) for r in ("mico-hi",) for m in args.modes.split(",")]
    rows = []
    for name, mode in runs:
        recipe = dataclasses.replace(load_recipe(name), model=model, epochs=1)
        if recipe.dp:
            recipe = dataclasses.replace(recipe, batch_size=args.dp_batch)
        perf = Perf(micro_batch=args.micro_batch, grad_sample_mode=mode if mode != "-" else "ghost")
        with timer() as t:
            train(tokens, idx, recipe, out_dir=work / f"{name}-{mode}", tokenizer=tok, perf=perf)
        rows.append(
            {
                "recipe": name,
                "clipping": mode,
                "seconds": t["seconds"],
                "seq/s": args.records / t["seconds"],
            }
        )
    for r in rows:
        r["cost_vs_plain"] = r["seconds"] / rows[0]["seconds"]
    print(
        f"records={args.records} dp_batch={args.dp_batch} micro_batch={args.micro_batch} "
        f"device={'cuda' if torch.cuda.is_available() else 'cpu'}"
    )
    print(table(rows))


if __name__ == "__main__":
    main()
