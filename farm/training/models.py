"""Sequence classifiers and tokenizers: build, load safely, save as HF directories.

Every saved model is an HF directory (``config.json`` + ``model.safetensors``) that
``AutoModelForSequenceClassification.from_pretrained`` loads. Weights from a challenge tree are read
with safetensors or ``torch.load(weights_only=True)`` only -- never a plain unpickle.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path
from typing import Any

import torch

from farm.challenge.tree import ENSEMBLE_JSON, read_ensemble
from farm.defences.seam import VOTE_FLOOR
from farm.errors import ChallengeFormatError, ConfigError
from farm.spec.recipes import ModelSpec
from farm.store.atomic import make_temp_dir

SPECIAL_TOKENS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]


def train_tokenizer(sentences: list[str], out_dir: str | Path, *, vocab_size: int = 4096) -> Path:
    """Train a byte-level BPE tokenizer on ``sentences`` and save it as an HF RoBERTa tokenizer
    directory."""
    # lazy: loads tokenizers (Rust) only to build one
    from tokenizers import ByteLevelBPETokenizer

    # lazy: loads tokenizers (Rust) only to build one
    from tokenizers.processors import RobertaProcessing

    # lazy: loads torch
    from transformers import RobertaTokenizerFast

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(
        sentences,
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=SPECIAL_TOKENS,
        show_progress=False,
    )
    bpe._tokenizer.post_processor = RobertaProcessing(
        ("</s>", bpe.token_to_id("</s>")), ("<s>", bpe.token_to_id("<s>"))
    )
    tok = RobertaTokenizerFast(
        tokenizer_object=bpe._tokenizer,
        bos_token="<s>",
        eos_token="</s>",
        sep_token="</s>",
        cls_token="<s>",
        unk_token="<unk>",
        pad_token="<pad>",
        mask_token="<mask>",
        model_max_length=512,
    )
    return _atomic_dir(Path(out_dir), tok.save_pretrained)


def load_tokenizer(name_or_path: str | Path) -> Any:
    """An HF fast tokenizer from a local directory (never the hub) or a hub name (see
    ``hub_options``)."""
    # lazy: loads torch
    from transformers import AutoTokenizer

    return _from_pretrained(AutoTokenizer.from_pretrained, name_or_path, "tokenizer")


def is_local(name_or_path: str | Path) -> bool:
    """Whether a model or tokenizer reference names a local directory: it exists, or it is written
    as a path (absolute, ``./``, ``../``, ``~``). Anything else (``roberta-base``, ``org/name``) is
    a hub name."""
    text = str(name_or_path)
    return (
        Path(text).expanduser().exists()
        or text.startswith(("/", "./", "../", "~"))
        or text in (".", "..")
    )


def hub_options(name_or_path: str | Path) -> dict[str, Any]:
    """``from_pretrained`` options: ``local_files_only`` for a local directory, and for a hub name
    when ``HF_HUB_OFFLINE`` is set (then only the local Hugging Face cache is read). Nothing reaches
    a hub unless the reference is a hub name and the hub is allowed."""
    offline = os.environ.get("HF_HUB_OFFLINE", "").strip().lower() not in (
        "",
        "0",
        "false",
        "no",
        "off",
    )
    return {"local_files_only": is_local(name_or_path) or offline}


def _from_pretrained(load: Any, name_or_path: str | Path, what: str, **kwargs: Any) -> Any:
    """``load(name_or_path, **hub_options, **kwargs)`` with one clear ``ConfigError`` line when it
    cannot be found: a local directory that is missing or incomplete, or a hub name that is offline
    and not cached."""
    local = is_local(name_or_path)
    ref = str(Path(str(name_or_path)).expanduser()) if local else str(name_or_path)
    options = hub_options(name_or_path)
    if local and not Path(ref).is_dir():
        raise ConfigError(f"{ref}: no such directory (expected a local {what} directory)")
    try:
        return load(ref, **options, **kwargs)
    except (OSError, ValueError) as exc:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        if local:
            raise ConfigError(
                f"{ref}: cannot load the {what} from this local directory ({reason})"
            ) from exc
        if options["local_files_only"]:
            raise ConfigError(
                f"{ref}: a hub name, but HF_HUB_OFFLINE is set and the {what} is not in the local "
                f"Hugging Face cache; name a local directory instead (config: assets)"
            ) from exc
        raise ConfigError(f"{ref}: cannot load the {what} from the hub ({reason})") from exc


def init_model(
    spec: ModelSpec, tokenizer: Any, *, max_length: int, base: str | Path | None = None
) -> torch.nn.Module:
    """A 2-label classifier to start training from, with SDPA attention:

    ``tiny``: a small RoBERTa from config (random init, seeded by the caller); ``base``: the
    challenge's own base model at ``base`` (roberta-base or its local copy for a release tree, the
    mini challenge's stand-in); otherwise ``spec.name`` as a local directory or hub name
    (``hub_options``; a classification head is added when it has none).
    """
    # lazy: loads torch
    from transformers import (
        AutoModelForSequenceClassification,
        RobertaConfig,
        RobertaForSequenceClassification,
    )

    overrides: dict[str, Any] = (
        {}
        if spec.dropout is None
        else {"hidden_dropout_prob": spec.dropout, "attention_probs_dropout_prob": spec.dropout}
    )
    if spec.name != "tiny":
        if spec.name == "base" and base is None:
            raise ValueError("model name 'base' needs the challenge's base model directory")
        source = str(base) if spec.name == "base" else spec.name
        return _from_pretrained(
            AutoModelForSequenceClassification.from_pretrained,
            source,
            "model",
            num_labels=2,
            attn_implementation="sdpa",
            **overrides,
        )
    config = RobertaConfig(  # type: ignore[call-arg]
        vocab_size=len(tokenizer),
        hidden_size=spec.tiny.hidden_size,
        num_hidden_layers=spec.tiny.num_hidden_layers,
        num_attention_heads=spec.tiny.num_attention_heads,
        intermediate_size=spec.tiny.intermediate_size,
        max_position_embeddings=max_length + tokenizer.pad_token_id + 2,
        type_vocab_size=1,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        num_labels=2,
        **overrides,
    )
    config._attn_implementation = "sdpa"
    return RobertaForSequenceClassification(config)


def load_model(
    model_dir: str | Path, *, weights: dict[str, torch.Tensor] | None = None
) -> torch.nn.Module:
    """Load a classifier from a folder with ``config.json`` and ``model.safetensors`` or
    ``pytorch_model.bin``, or an ensemble folder (``ensemble.json``,
    ``farm.challenge.tree.read_ensemble``) as one ``Ensemble`` (``weights`` unused then).

    The ``.bin`` pickle is read with ``torch.load(weights_only=True)``. Missing parameters are an
    error; unexpected buffers (such as old ``position_ids``) are ignored. ``weights``: the folder's
    state dict, already read with ``read_weights`` (a worker prefetches the next model's while it
    computes the current one).
    """
    # lazy: loads torch
    from transformers import AutoConfig, AutoModelForSequenceClassification

    model_dir = Path(model_dir)
    if (model_dir / ENSEMBLE_JSON).is_file():
        folders, aggregate = read_ensemble(model_dir)
        return Ensemble([load_model(folder) for folder in folders], aggregate).eval()
    if not (model_dir / "config.json").is_file():
        raise ChallengeFormatError(f"{model_dir / 'config.json'}: missing model config")
    config = AutoConfig.from_pretrained(str(model_dir), local_files_only=True)
    model = AutoModelForSequenceClassification.from_config(config, attn_implementation="sdpa")
    missing, _ = model.load_state_dict(
        read_weights(model_dir) if weights is None else weights, strict=False
    )
    missing = [k for k in missing if not k.endswith("position_ids")]
    if missing:
        raise ChallengeFormatError(
            f"{model_dir}: weights lack {len(missing)} parameter(s), e.g. {missing[0]}"
        )
    return model.eval()


class Ensemble(torch.nn.Module):
    """Ensemble members answering as one classifier (a SISA target):
    ``forward(input_ids=, attention_mask=)`` returns an object whose ``logits`` (float32
    ``[batch, n_labels]``) are log-probabilities: ``mean``, the log of the mean of the members'
    softmax vectors; ``vote``, the log of the fraction of members whose argmax is each label,
    floored at ``farm.defences.seam.VOTE_FLOOR``. Softmax of them is the ensemble's output
    distribution (for ``vote``, the floored fractions renormalised), so every logit-based attack
    reads them as any model's logits. ``config`` is the first member's (``num_labels``)."""

    def __init__(self, members: list[torch.nn.Module], aggregate: str):
        super().__init__()
        if aggregate not in ("mean", "vote"):
            raise ValueError(f"ensemble aggregate must be mean or vote, got {aggregate!r}")
        self.members = torch.nn.ModuleList(members)
        self.aggregate = aggregate
        self.config = members[0].config

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> Any:
        # lazy: loads torch
        from transformers.modeling_outputs import SequenceClassifierOutput

        logits = torch.stack(
            [
                m(input_ids=input_ids, attention_mask=attention_mask).logits.float()
                for m in self.members
            ]
        )  # [members, batch, labels]
        if self.aggregate == "mean":
            out = torch.logsumexp(torch.log_softmax(logits, dim=-1), dim=0) - math.log(
                len(self.members)
            )
        else:
            votes = torch.nn.functional.one_hot(logits.argmax(-1), logits.shape[-1]).float().mean(0)
            out = torch.log(votes.clamp_min(VOTE_FLOOR))
        return SequenceClassifierOutput(logits=out)


def read_weights(model_dir: Path) -> dict[str, torch.Tensor]:
    """The state dict of a model folder, read without unpickling arbitrary objects."""
    safe, pickled = model_dir / "model.safetensors", model_dir / "pytorch_model.bin"
    try:
        if safe.is_file():
            # lazy: safetensors loads only to check or read weights
            from safetensors.torch import load_file

            return load_file(str(safe))
        if pickled.is_file():
            return torch.load(pickled, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - corrupt files raise many types; report the file
        raise ChallengeFormatError(
            f"{safe if safe.is_file() else pickled}: unreadable weights ({exc})"
        ) from exc
    raise ChallengeFormatError(
        f"{model_dir}: no weights file (expected model.safetensors or pytorch_model.bin)"
    )


def save_model(
    model: torch.nn.Module,
    out_dir: str | Path,
    *,
    tokenizer: Any = None,
    metadata: dict | None = None,
) -> Path:
    """Save an HF directory atomically (temporary sibling, then rename); ``metadata`` goes to
    ``farm.json``."""

    def write(tmp: str) -> None:
        model.save_pretrained(tmp, safe_serialization=True)  # type: ignore[operator]
        if tokenizer is not None:
            tokenizer.save_pretrained(tmp)
        if metadata is not None:
            Path(tmp, "farm.json").write_text(json.dumps(metadata, indent=2, sort_keys=True) + "\n")

    return _atomic_dir(Path(out_dir), write)


def _atomic_dir(out_dir: Path, write: Any) -> Path:
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = make_temp_dir(out_dir.parent, prefix=f".{out_dir.name}.")
    try:
        write(str(tmp))
        if out_dir.exists():
            shutil.rmtree(out_dir)
        tmp.rename(out_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out_dir
