"""Per-example gradient norms and inference throughput (issue 22, item 4), side by side in one run
on the same models and the same SST-2 records:

- gradient norms: ``vmap`` at batch 8 (the default until issue 22) against ``ghost`` (the default
  since: one padded, masked forward and backward per length-sorted batch, no per-example gradient
  formed) at batch 8 and at its default batch, and ``loop`` (one backward per record, the reference)
  on a subset; with the largest relative difference between the methods' norms;
- inference: ``farm.training.infer.model_logits`` (length-sorted batches, dynamic padding) against
  every record padded to ``max_length`` (67), batches in index order, the same batch size.

``x baseline``: records/s over the first row's of its block (vmap; pad to 67). ``max diff``: for
the norms the largest relative difference from ``loop`` (and, for ``ghost``, from ``vmap`` on all
records); for dynamic padding's logits the largest absolute difference from the padded ones.

    python -m benchmarks.grad_norm_speed --records 512 --loop-records 64 --infer-records 4000

Models are tiny RoBERTas at random init (speed does not depend on the weights), one per ``--sizes``
entry ``HIDDENxLAYERS`` (heads: hidden / 32, at least 2; intermediate: 4 x hidden).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch

from benchmarks.common import SST2, table, timer, tokenizer_for
from farm.spec.population import PopulationSpec
from farm.spec.recipes import ModelSpec, Perf, TinyModel
from farm.training.data import Tokenized, load_population, tokenize
from farm.training.grad_norm import BATCH, model_grad_norms
from farm.training.infer import model_logits
from farm.training.models import init_model

MAX_LENGTH = 67


@torch.inference_mode()
def padded_logits(model: torch.nn.Module, tokens: Tokenized, indices: np.ndarray, batch: int):
    """The baseline: every record padded to ``MAX_LENGTH``, batches in index order."""
    out = []
    for start in range(0, indices.size, batch):
        rows = indices[start : start + batch]
        ids = torch.full((rows.size, MAX_LENGTH), tokens.pad_id, dtype=torch.long)
        mask = torch.zeros((rows.size, MAX_LENGTH), dtype=torch.long)
        for r, i in enumerate(rows):
            ids[r, : tokens.lengths[i]] = torch.from_numpy(tokens.ids[i].astype(np.int64))
            mask[r, : tokens.lengths[i]] = 1
        out.append(model(input_ids=ids, attention_mask=mask).logits.float().numpy())
    return np.concatenate(out)


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a - b) / np.abs(b)))


def _rel2(got: np.ndarray, vmap: np.ndarray, loop: np.ndarray, sub: np.ndarray) -> float:
    """Largest relative difference from ``vmap`` (all records) or ``loop`` (its subset)."""
    return max(_rel(got, vmap), _rel(got[sub], loop))


def size_rows(tokens: Tokenized, tok, idx, loop_idx, infer_idx, size: str, args) -> list[dict]:
    hidden, layers = (int(x) for x in size.split("x"))
    spec = ModelSpec(
        name="tiny",
        tiny=TinyModel(
            hidden_size=hidden,
            num_hidden_layers=layers,
            num_attention_heads=max(2, hidden // 32),
            intermediate_size=4 * hidden,
        ),
    )
    torch.manual_seed(0)
    model = init_model(spec, tok, max_length=MAX_LENGTH).eval()
    n_params = sum(p.numel() for p in model.parameters())
    label = f"h{hidden} L{layers} ({n_params / 1e6:.2f}M params)"

    methods = {
        "vmap": ("vmap", 8),
        "ghost8": ("ghost", 8),
        "ghost": ("ghost", args.batch),
        "loop": ("loop", 8),
    }
    got: dict[str, list] = {k: [] for k in methods}
    secs = dict.fromkeys(methods, 0.0)
    for method, batch in methods.values():  # warm-up, untimed
        model_grad_norms(model, tokens, idx[:8], device="cpu", batch_size=batch, method=method)
    # interleaved rounds, so that the methods share the (shared) machine's ups and downs alike
    for part in np.array_split(idx, args.rounds):
        for k, (method, batch) in methods.items():
            ix = loop_idx[np.isin(loop_idx, part)] if k == "loop" else part
            with timer() as t:
                got[k].append(
                    model_grad_norms(
                        model, tokens, ix, device="cpu", batch_size=batch, method=method
                    )
                )
            secs[k] += t["seconds"]
    vmap, ghost8, ghost, loop = (np.concatenate(got[k]) for k in methods)
    t_vmap, t_ghost8, t_ghost, t_loop = secs.values()
    sub = np.searchsorted(idx, loop_idx)  # loop_idx is a sorted subset of the sorted idx
    rows = []
    for what, n, secs, err in (
        ("grad norm: vmap, batch 8 (old default)", idx.size, t_vmap, _rel(vmap[sub], loop)),
        ("grad norm: ghost, batch 8", idx.size, t_ghost8, _rel2(ghost8, vmap, loop, sub)),
        (
            f"grad norm: ghost, batch {args.batch} (default)",
            idx.size,
            t_ghost,
            _rel2(ghost, vmap, loop, sub),
        ),
        ("grad norm: loop (reference, subset)", loop_idx.size, t_loop, 0.0),
    ):
        rows.append(
            {
                "model": label,
                "what": what,
                "records": n,
                "seconds": secs,
                "rec/s": n / secs,
                "x baseline": (n / secs) / (idx.size / t_vmap),
                "max diff": err,
            }
        )
    perf = Perf(device="cpu", infer_batch=args.infer_batch)
    t_fixed = t_dyn = err = 0.0
    for _ in range(args.infer_rounds):  # interleaved too; whole passes (a split would cut batches)
        part = infer_idx
        with timer() as t:
            fixed = padded_logits(model, tokens, part, args.infer_batch)
        t_fixed += t["seconds"]
        with timer() as t:
            dyn = model_logits(model, tokens, part, perf=perf)
        t_dyn += t["seconds"]
        err = max(err, float(np.max(np.abs(dyn - fixed))))
    for what, secs, diff in (
        (f"logits: pad to {MAX_LENGTH}, index order", t_fixed, 0.0),
        ("logits: length-sorted, dynamic padding", t_dyn, err),
    ):
        rows.append(
            {
                "model": label,
                "what": what,
                "records": infer_idx.size * args.infer_rounds,
                "seconds": secs,
                "rec/s": infer_idx.size * args.infer_rounds / secs,
                "x baseline": t_fixed / secs,
                "max diff": diff,
            }
        )
    return rows


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=SST2, help="folder with train.tsv")
    parser.add_argument("--records", type=int, default=512, help="records for vmap and ghost")
    parser.add_argument("--loop-records", type=int, default=64, help="subset for loop")
    parser.add_argument("--infer-records", type=int, default=4000)
    parser.add_argument("--infer-batch", type=int, default=Perf().infer_batch)
    parser.add_argument("--batch", type=int, default=BATCH, help="ghost's batch")
    parser.add_argument("--sizes", default="64x2,256x4", help="HIDDENxLAYERS, comma-separated")
    parser.add_argument("--vocab-size", type=int, default=8192)
    parser.add_argument("--rounds", type=int, default=4, help="interleaved timing rounds")
    parser.add_argument("--infer-rounds", type=int, default=2, help="interleaved inference passes")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's own)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if not (args.data / "train.tsv").is_file():
        raise SystemExit(f"SST-2 not found at {args.data} (--data or FARM_SST2_DIR)")
    pop = load_population(PopulationSpec.of({"source": "file", "path": str(args.data)}))
    work = Path(tempfile.mkdtemp(prefix="farm-bench-"))
    tok = tokenizer_for(pop, work / "tok", vocab_size=args.vocab_size)
    tokens = tokenize(pop, tok, MAX_LENGTH)
    rng = np.random.default_rng(0)
    idx = np.sort(rng.choice(len(pop), min(args.records, len(pop)), replace=False))
    loop_idx = np.sort(rng.choice(idx, min(args.loop_records, idx.size), replace=False))
    infer_idx = rng.choice(len(pop), min(args.infer_records, len(pop)), replace=False)
    rows = []
    for size in args.sizes.split(","):
        rows += size_rows(tokens, tok, idx, loop_idx, infer_idx, size, args)
    print(
        f"records={idx.size} loop_records={loop_idx.size} infer_records={infer_idx.size} "
        f"mean_length={tokens.lengths[idx].mean():.1f} device=cpu threads={torch.get_num_threads()}"
    )
    print(table(rows))
    return rows


if __name__ == "__main__":
    main()
