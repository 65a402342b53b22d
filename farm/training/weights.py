"""Weights files the torch way: MICO's pickled ``pytorch_model.bin`` checked without running it,
and a stored model written in that release layout."""

from __future__ import annotations

import warnings
from pathlib import Path

import torch

from farm.errors import ChallengeFormatError


def check_pickled(path: str) -> None:
    """``ChallengeFormatError`` unless ``path`` loads with ``torch.load(weights_only=True)`` onto
    the meta device as a dict (a state dict of tensors): a pickle that would import or call anything
    but tensors is refused before it runs, and no tensor data is read."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter(
                "ignore"
            )  # torch warns about pickle protocols; the refusal below says it all
            state = torch.load(path, map_location="meta", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises UnpicklingError, RuntimeError, EOFError, ...
        raise ChallengeFormatError(
            f"{path}: refused: not loadable with torch.load(weights_only=True), so it may run code "
            f"when unpickled ({_reason(exc)})"
        ) from exc
    if not isinstance(state, dict):
        raise ChallengeFormatError(
            f"{path}: expected a state dict of tensors, found {type(state).__name__}"
        )


def _reason(exc: Exception) -> str:
    """The informative line of torch's multi-line message (the blocked global), else its first
    line."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    blocked = [line for line in lines if "GLOBAL" in line or "Unsupported" in line]
    return (blocked or lines or [type(exc).__name__])[0][:200]


def as_release(model_dir: Path, scratch: Path) -> dict[str, Path]:
    """A stored model as MICO released its models: ``config.json`` and ``pytorch_model.bin``, a
    plain state dict of tensors (``torch.save``), which ``torch.load(weights_only=True)`` reads
    back."""
    # lazy: loads torch
    import torch

    # lazy: safetensors loads only to check or read weights
    from safetensors.torch import load_file

    scratch.mkdir(exist_ok=True)
    target = scratch / "pytorch_model.bin"
    torch.save(load_file(str(model_dir / "model.safetensors")), target)
    return {"config.json": model_dir / "config.json", "pytorch_model.bin": target}
