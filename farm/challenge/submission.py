"""Predictions and the submission zip: normalize scores, write ``prediction.csv``, validate, pack.

A predictions tree has the challenge layout, ``<root>/<scenario>/<phase>/model_<i>/prediction.csv``
(optionally under a leading ``sst2/``, as inside the zip). Each file is one CSV row of ``2m`` floats
in [0, 1] in challenge order; higher = member.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np

from farm.challenge.tree import Challenge, format_row
from farm.errors import SubmissionError
from farm.mico.scorer import pooled_scores
from farm.store.atomic import atomic_write_bytes, atomic_write_text

MAX_ZIP_BYTES = 2 * 1024 * 1024
ZIP_PREFIX = "sst2"
MICO_SCENARIOS = ("sst2_hi", "sst2_inf", "sst2_lo")
MICO_PHASE_IDS = {"dev": range(100, 150), "final": range(150, 200)}
PREDICTION = "prediction.csv"
ModelKey = tuple[str, str, int]  # (scenario, phase, model_id)


@dataclass(frozen=True)
class Expected:
    """What a submission must hold: ``(scenario, phase, model_id)`` keys and values per file."""

    keys: frozenset[ModelKey]
    n_values: int

    @classmethod
    def mico(cls) -> Expected:
        """The real MICO SST-2 submission: 3 scenarios x (50 dev + 50 final) models x 200 values."""
        keys = {(s, p, i) for s in MICO_SCENARIOS for p, ids in MICO_PHASE_IDS.items() for i in ids}
        return cls(frozenset(keys), 200)

    @classmethod
    def from_challenge(cls, challenge: Challenge) -> Expected:
        """Every dev and final model of ``challenge``."""
        keys = {
            (m.scenario, m.phase, m.model_id)
            for m in challenge.models
            if m.phase in ("dev", "final")
        }
        return cls(frozenset(keys), 2 * challenge.constants.len_challenge)


def normalize(
    scores: Mapping[ModelKey, np.ndarray], *, mode: str = "global"
) -> dict[ModelKey, np.ndarray]:
    """Map raw scores to [0, 1], order-preserving within each group.

    ``global``: one min-max per (scenario, phase) over all its models (MICO's winner); ``rank``: per
    model, average rank scaled to [0, 1]. Deliberate edge cases: NaN -> 0.5 (uninformative); +inf ->
    1, -inf -> 0; a group whose finite scores are constant -> 0.5. The result never holds NaN.
    """
    if mode == "rank":
        return {key: _rank01(np.asarray(v, dtype=np.float64)) for key, v in scores.items()}
    if mode != "global":
        raise ValueError(f"unknown normalization mode {mode!r} (expected 'global' or 'rank')")
    out: dict[ModelKey, np.ndarray] = {}
    for keys in group_keys(
        scores
    ).values():  # the farm's one pooled-score rule (farm.mico.scorer.pooled_scores)
        parts = [np.asarray(scores[k], dtype=np.float64) for k in keys]
        pooled = pooled_scores(parts)
        bounds = np.cumsum([0] + [p.size for p in parts])
        for k, part, a, b in zip(keys, parts, bounds[:-1], bounds[1:]):
            out[k] = pooled[a:b].reshape(part.shape)
    return out


def _rank01(x: np.ndarray) -> np.ndarray:
    filled = np.nan_to_num(x, nan=0.0, posinf=np.inf, neginf=-np.inf)
    order = np.argsort(filled, kind="mergesort")
    ranks = np.empty(x.size, dtype=np.float64)
    sorted_vals = filled[order]
    first = np.r_[0, np.flatnonzero(np.diff(sorted_vals)) + 1]
    last = np.r_[first[1:], x.size]
    for a, b in zip(first, last):
        ranks[order[a:b]] = (a + b - 1) / 2.0
    y = ranks / (x.size - 1) if x.size > 1 else np.full(x.size, 0.5)
    return np.where(np.isnan(x), 0.5, y)


def write_predictions(root: str | Path, predictions: Mapping[ModelKey, np.ndarray]) -> list[Path]:
    """Write each model's ``prediction.csv`` (one row, challenge order) atomically under
    ``root``."""
    problems = [f"{k}: {p}" for k, v in predictions.items() for p in _value_problems(np.asarray(v))]
    if problems:
        raise SubmissionError(problems)
    paths = []
    for (scenario, phase, model_id), values in sorted(predictions.items()):
        path = Path(root) / scenario / phase / f"model_{model_id}" / PREDICTION
        paths.append(
            atomic_write_text(path, format_row(np.asarray(values, dtype=np.float64)) + "\n")
        )
    return paths


def read_predictions(source: str | Path) -> dict[ModelKey, np.ndarray]:
    """Read every ``prediction.csv`` of a directory or zip; raises ``SubmissionError`` on any
    malformed file."""
    files, problems = _collect(Path(source))
    values: dict[ModelKey, np.ndarray] = {}
    for name, data in files.items():
        key = _parse_key(name)
        if key is None:
            continue
        parsed, bad = _parse_values(data)
        bad += _value_problems(parsed) if not bad else []
        problems += [f"{source}: {name}: {b}" for b in bad]
        values[key] = parsed
    if problems:
        raise SubmissionError(problems)
    return values


def validate(source: str | Path, expected: Expected) -> list[str]:
    """Every problem with a predictions directory or zip (empty when valid); never stops at the
    first."""
    source = Path(source)
    files, problems = _collect(source)
    found: set[ModelKey] = set()
    for name, data in files.items():
        key = _parse_key(name)
        if key is None or key not in expected.keys:
            problems.append(f"{source}: unexpected entry {name}")
            continue
        found.add(key)
        parsed, bad = _parse_values(data)
        bad += _value_problems(parsed) if not bad else []
        if not bad and parsed.size != expected.n_values:
            bad.append(f"expected {expected.n_values} values, found {parsed.size}")
        problems += [f"{source}: {name}: {b}" for b in bad]
    for scenario, phase, model_id in sorted(expected.keys - found):
        problems.append(f"{source}: missing {scenario}/{phase}/model_{model_id}/{PREDICTION}")
    return problems


def pack(source: str | Path, out: str | Path, expected: Expected) -> Path:
    """Validate ``source`` (directory or zip), then write the zip atomically; ``SubmissionError``
    lists all problems."""
    problems = validate(source, expected)
    if problems:
        raise SubmissionError(problems, hint=_hint(source, expected))
    files, _ = _collect(Path(source))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name in sorted(files):
            archive.writestr(f"{ZIP_PREFIX}/{name}", files[name])
    data = buffer.getvalue()
    if len(data) > MAX_ZIP_BYTES:
        raise SubmissionError(
            [f"{out}: zip would be {len(data)} bytes, over the {MAX_ZIP_BYTES}-byte limit"]
        )
    return atomic_write_bytes(out, data)


def _collect(source: Path) -> tuple[dict[str, bytes], list[str]]:
    """Files of a directory or zip keyed by path relative to the tree root (leading ``sst2/``
    removed)."""
    if source.is_dir():
        base = source / ZIP_PREFIX if (source / ZIP_PREFIX).is_dir() else source
        files = {
            p.relative_to(base).as_posix(): p.read_bytes()
            for p in sorted(base.rglob("*"))
            if p.is_file()
        }
        return files, []
    if not source.exists():
        raise SubmissionError([f"{source}: no such file or directory"])
    return _collect_zip(source)


def _collect_zip(source: Path) -> tuple[dict[str, bytes], list[str]]:
    problems: list[str] = []
    if source.stat().st_size > MAX_ZIP_BYTES:
        problems.append(
            f"{source}: {source.stat().st_size} bytes, over the {MAX_ZIP_BYTES}-byte limit"
        )
    try:
        with zipfile.ZipFile(source) as archive:
            infos = archive.infolist()
            files: dict[str, bytes] = {}
            for info in infos:
                name = info.filename
                if info.is_dir():
                    continue
                if _escapes(name):
                    problems.append(f"{source}: path-escaping entry {name!r}")
                    continue
                rel = name[len(ZIP_PREFIX) + 1 :] if name.startswith(ZIP_PREFIX + "/") else name
                if rel in files:
                    problems.append(f"{source}: duplicate entry {name}")
                files[rel] = archive.read(info)
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise SubmissionError([f"{source}: unreadable zip ({exc})"]) from exc
    return files, problems


def _hint(source: str | Path, expected: Expected) -> str:
    """What to do when no prediction of ``source`` is one ``expected`` asks for: name the models
    expected (and ``--challenge`` when they are MICO's default set)."""
    files, _ = _collect(Path(source))
    if any(_parse_key(name) in expected.keys for name in files):
        return ""
    groups = group_keys(expected.keys)
    shown = ", ".join(
        f"{s}/{p}/model_{keys[0][2]}..{keys[-1][2]}" for (s, p), keys in list(groups.items())[:3]
    )
    more = "" if len(groups) <= 3 else f" and {len(groups) - 3} more groups"
    return (
        f"none of the predictions is one of the {len(expected.keys)} models expected ({shown}"
        f"{more}); for a challenge other than MICO SST-2, pass --challenge TREE"
    )


def _escapes(name: str) -> bool:
    path = PurePosixPath(name.replace("\\", "/"))
    return path.is_absolute() or ".." in path.parts or ":" in name


def _parse_key(name: str) -> ModelKey | None:
    parts = name.split("/")
    if len(parts) != 4 or parts[3] != PREDICTION or parts[1] not in ("train", "dev", "final"):
        return None
    prefix, _, digits = parts[2].partition("_")
    if prefix != "model" or not digits.isdigit() or str(int(digits)) != digits:
        return None
    return parts[0], parts[1], int(digits)


def _parse_values(data: bytes) -> tuple[np.ndarray, list[str]]:
    try:
        text = data.decode("utf-8").strip()
        lines = [line for line in text.splitlines() if line.strip()]
        if len(lines) != 1:
            return np.empty(0), [f"expected one CSV row, found {len(lines)}"]
        return np.asarray([float(c) for c in lines[0].split(",")], dtype=np.float64), []
    except (UnicodeDecodeError, ValueError) as exc:
        return np.empty(0), [f"not a row of numbers ({exc})"]


def _value_problems(values: np.ndarray) -> list[str]:
    problems = []
    if np.isnan(values).any():
        problems.append(f"{int(np.isnan(values).sum())} NaN value(s)")
    finite = values[~np.isnan(values)]
    if ((finite < 0) | (finite > 1)).any():
        problems.append(f"{int(((finite < 0) | (finite > 1)).sum())} value(s) outside [0, 1]")
    return problems


def group_keys(keys: Iterable[ModelKey]) -> dict[tuple[str, str], list[ModelKey]]:
    """Keys grouped by (scenario, phase), each list sorted by model id."""
    groups: dict[tuple[str, str], list[ModelKey]] = {}
    for key in sorted(keys):
        groups.setdefault(key[:2], []).append(key)
    return groups
