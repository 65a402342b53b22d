"""The MICO challenge tree: ``<root>/<scenario>/<phase>/model_<i>/`` read and written.

A model folder holds ``seed_challenge`` (always), ``seed_training``, ``seed_membership`` and
``solution.csv`` (labelled models, or an answers tree), plus ``config.json`` and weights
(``model.safetensors`` or ``pytorch_model.bin``), or, for a defended target released as an ensemble
(``farm.defences.seam``), ``ensemble.json``
(``{"members": ["member_0", ...], "aggregate": "mean" | "vote"}``) and one such model folder per
member. Scenarios, phases and models come back in numeric order. Split constants belong to the
challenge: trees the project writes carry them in ``<root>/challenge.json``; without one the MICO
SST-2 values apply.
"""

from __future__ import annotations

import functools
import json
import re
import shutil
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from farm.errors import ChallengeFormatError, SplitError, require
from farm.mico.splits import (
    MICO_LEN_CHALLENGE,
    MICO_LEN_TRAINING,
    MICO_N_TOTAL,
    ModelSplit,
    check_constants,
    mico_shuffle,
    split_model,
)
from farm.store.atomic import atomic_write_text
from farm.store.shuffles import cached_shuffle

PHASES = ("train", "dev", "final")
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
SEED_FILES = ("seed_challenge", "seed_training", "seed_membership")
CHALLENGE_JSON = "challenge.json"
ENSEMBLE_JSON = "ensemble.json"
# an unlearning challenge: 0/1 in challenge order, 1 = a member the target forgot
FORGOTTEN_CSV = "forgotten.csv"
ENSEMBLE_AGGREGATES = ("mean", "vote")
_MEMBER_RE = re.compile(r"^member_\d+$")
# reserved root folder: a mini challenge's tokenizer and base model, not a scenario
ASSETS = "assets"
MICO_POPULATION = {
    "source": "glue-sst2",
    "description": "GLUE SST-2 train then validation (68,221 records)",
}
_MODEL_RE = re.compile(r"^model_(\d+)$")
SCENARIO_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_INT64 = (-(2**63), 2**63 - 1)


@dataclass(frozen=True, kw_only=True)
class ChallengeConstants:
    """Split sizes of a challenge (``split_model`` argument names) and the population it is drawn
    from."""

    n_total: int = MICO_N_TOTAL
    len_training: int = MICO_LEN_TRAINING
    len_challenge: int = MICO_LEN_CHALLENGE
    population: Mapping = field(default_factory=lambda: dict(MICO_POPULATION))
    tokenizer: str = "roberta-base"
    base_model: str = "roberta-base"
    # scenario -> {"epsilon": float or "inf", "delta": float}
    targets: Mapping = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_constants(self.n_total, self.len_training, self.len_challenge)

    def to_json(self) -> dict:
        data = {
            "n_total": self.n_total,
            "len_training": self.len_training,
            "len_challenge": self.len_challenge,
            "population": dict(self.population),
            "tokenizer": self.tokenizer,
            "base_model": self.base_model,
        }
        if self.targets:  # the privacy the targets were trained with, public as MICO's names are
            data["targets"] = {k: dict(v) for k, v in self.targets.items()}
        return data

    def locate(self, root: Path, ref: str) -> str:
        """A tokenizer/base reference as a usable name: paths inside the tree (``assets/...``)
        become absolute."""
        return str(Path(root) / ref) if (Path(root) / ref).exists() else ref


@dataclass(frozen=True)
class Assets:
    """Local copies of what a release tree (no ``challenge.json``) otherwise takes from the Hugging
    Face hub under MICO's constants: roberta-base and GLUE SST-2. Named in a config (``assets:``);
    ``None`` keeps the default.

    ``base_model``: a local roberta-base directory (``config.json`` and weights; its tokenizer files
    too): the challenge's base model, which recipes with ``model: {name: base}`` start from.
    ``tokenizer``: a local tokenizer directory (default: ``base_model``'s). ``population``: a
    population spec of ``farm.training.data``, such as ``{source: file, path: /data/SST-2}`` (GLUE's
    ``train.tsv`` then ``dev.tsv``: 68,221 records in MICO's order).
    """

    base_model: str | None = None
    tokenizer: str | None = None
    population: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        for name in ("base_model", "tokenizer"):
            value = getattr(self, name)
            require(value is None or bool(value.strip()), name, "a local directory", value)
        require(
            self.population is None or "source" in self.population,
            "population",
            "a population spec with a source, such as {source: file, path: /data/SST-2}",
            self.population,
        )

    def __bool__(self) -> bool:
        return any(v is not None for v in (self.base_model, self.tokenizer, self.population))

    def apply(self, root: str | Path, constants: ChallengeConstants) -> ChallengeConstants:
        """``constants`` (of the tree at ``root``) with these assets in place of MICO's hub
        defaults, checked: every directory exists and its weights load safely.
        ``ChallengeFormatError`` for a tree that names its own inputs in ``challenge.json`` (mini
        challenges), a missing directory or unsafe weights."""
        if not self:
            return constants
        if (Path(root) / CHALLENGE_JSON).exists():
            raise ChallengeFormatError(
                f"{Path(root) / CHALLENGE_JSON}: this tree names its own population, tokenizer and "
                f"base model; assets replace MICO's defaults for a release tree only"
            )
        tokenizer = self.tokenizer or self.base_model
        for name, ref in (("base_model", self.base_model), ("tokenizer", tokenizer)):
            if ref is not None and not Path(ref).is_dir():
                raise ChallengeFormatError(
                    f"{ref}: assets.{name}: not a directory (expected a local "
                    f"{'roberta-base' if name == 'base_model' else 'tokenizer'} directory)"
                )
        if self.base_model is not None:
            _check_model_dir(Path(self.base_model))
        return replace(
            constants,
            population=dict(self.population or constants.population),
            tokenizer=str(Path(tokenizer).resolve()) if tokenizer else constants.tokenizer,
            base_model=str(Path(self.base_model).resolve())
            if self.base_model
            else constants.base_model,
        )


def _check_model_dir(path: Path) -> None:
    """A local model directory: ``config.json`` and weights that load safely."""
    if not (path / "config.json").is_file():
        raise ChallengeFormatError(f"{path / 'config.json'}: missing model config")
    check_model_config(path / "config.json")
    weights = [path / w for w in WEIGHT_FILES if (path / w).is_file()]
    if not weights:
        raise ChallengeFormatError(
            f"{path}: no weights file (expected one of {', '.join(WEIGHT_FILES)})"
        )
    for w in weights:
        check_weights(w)


@dataclass(frozen=True, kw_only=True)
class ModelEntry:
    """One model folder. ``solution`` is 0/1 int64 in challenge order, or ``None`` when not
    labelled; ``forgotten`` (an unlearning challenge's ``forgotten.csv``, where the folder has one):
    0/1 int64 in challenge order, 1 = a member the model was trained on and then unlearned, else
    ``None``."""

    scenario: str
    phase: str
    model_id: int
    path: Path
    seed_challenge: int
    seed_training: int | None
    seed_membership: int | None
    solution: np.ndarray | None
    weights: Path | None
    config: Path | None
    forgotten: np.ndarray | None = None

    def split(self, constants: ChallengeConstants) -> ModelSplit:
        """This model's splits under the challenge's constants; the big shuffles go through the
        disk cache ``farm.store.shuffles`` (a rerun reads them)."""
        return split_model(
            self.seed_challenge,
            self.seed_training,
            self.seed_membership,
            n_total=constants.n_total,
            len_training=constants.len_training,
            len_challenge=constants.len_challenge,
            shuffle=cached_shuffle,
        )


@dataclass(frozen=True)
class Challenge:
    """A whole tree: its constants and every model, sorted by (scenario, phase order, model id).
    ``stand_in``: empty for a tree read from disk; for a published layout built in memory
    (``farm.challenge.layouts``: no files, made-up seeds, no weights) a sentence saying which one,
    for a plan to print."""

    root: Path
    constants: ChallengeConstants
    models: tuple[ModelEntry, ...]
    stand_in: str = ""

    def scenarios(self) -> list[str]:
        return sorted({m.scenario for m in self.models})

    def phases(self, scenario: str) -> list[str]:
        present = {m.phase for m in self.models if m.scenario == scenario}
        return [p for p in PHASES if p in present]

    def select(self, scenario: str | None = None, phase: str | None = None) -> list[ModelEntry]:
        return [
            m
            for m in self.models
            if (scenario is None or m.scenario == scenario) and (phase is None or m.phase == phase)
        ]


def read_constants(root: str | Path) -> ChallengeConstants:
    """``<root>/challenge.json`` as constants; the MICO SST-2 values when the file is absent."""
    path = Path(root) / CHALLENGE_JSON
    if not path.exists():
        return ChallengeConstants()
    try:
        data = json.loads(path.read_text())
        population = data.get("population", {})
        return ChallengeConstants(
            n_total=int(data["n_total"]),
            len_training=int(data["len_training"]),
            len_challenge=int(data["len_challenge"]),
            population=population,
            tokenizer=str(data.get("tokenizer", "roberta-base")),
            base_model=str(data.get("base_model", "roberta-base")),
            targets={str(k): dict(v) for k, v in data.get("targets", {}).items()},
        )
    except (ValueError, KeyError, TypeError, AttributeError, SplitError) as exc:
        raise ChallengeFormatError(f"{path}: invalid challenge.json ({exc!s})") from exc


def read_challenge(root: str | Path, *, require_weights: bool = True) -> Challenge:
    """Read and validate a whole challenge tree before anything is scheduled: folder names, seeds,
    solutions, ``config.json`` and weights (``check_weights``: loadable safely).
    ``ChallengeFormatError`` names the first bad path.

    ``require_weights=False`` reads an answers tree (seeds and solutions only).
    """
    root = Path(root)
    if not root.is_dir():
        raise ChallengeFormatError(f"{root}: not a directory")
    constants = read_constants(root)
    scenario_dirs = sorted(p for p in _visible(root) if p.is_dir() and p.name != ASSETS)
    if not scenario_dirs:
        raise ChallengeFormatError(f"{root}: no scenario folders found")
    models: list[ModelEntry] = []
    for sdir in scenario_dirs:
        models.extend(_read_scenario(sdir, constants, require_weights))
    if require_weights:
        _check_assets(root, constants)
    return Challenge(root, constants, tuple(models))


def _check_assets(root: Path, constants: ChallengeConstants) -> None:
    """Weights of a tokenizer or base model that ``challenge.json`` places inside the tree load
    safely too."""
    for ref in (constants.tokenizer, constants.base_model):
        for name in WEIGHT_FILES:
            if (root / ref / name).is_file():
                check_weights(root / ref / name)


def _read_scenario(
    sdir: Path, constants: ChallengeConstants, require_weights: bool
) -> list[ModelEntry]:
    if not SCENARIO_RE.match(sdir.name):
        raise ChallengeFormatError(f"{sdir}: unexpected scenario folder name")
    entries = list(_visible(sdir))
    for p in entries:
        if p.name not in PHASES or not p.is_dir():
            raise ChallengeFormatError(
                f"{p}: unexpected name in scenario folder (expected {', '.join(PHASES)})"
            )
    seen: dict[int, Path] = {}
    models: list[ModelEntry] = []
    for phase in (p for p in PHASES if (sdir / p).is_dir()):
        for model_id, mdir in _model_dirs(sdir / phase):
            if model_id in seen:
                raise ChallengeFormatError(
                    f"{mdir}: duplicate model id {model_id} (also {seen[model_id]})"
                )
            seen[model_id] = mdir
            models.append(
                read_model(
                    mdir,
                    sdir.name,
                    phase,
                    model_id,
                    constants=constants,
                    require_weights=require_weights,
                )
            )
    return models


def _model_dirs(phase_dir: Path) -> list[tuple[int, Path]]:
    found: list[tuple[int, Path]] = []
    for p in _visible(phase_dir):
        match = _MODEL_RE.match(p.name)
        if not match or not p.is_dir():
            raise ChallengeFormatError(
                f"{p}: unexpected name in phase folder (expected model_<id> folders)"
            )
        found.append((int(match.group(1)), p))
    ids = [i for i, _ in found]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise ChallengeFormatError(f"{phase_dir}: duplicate model id {dup}")
    return sorted(found)


def read_model(
    mdir: Path,
    scenario: str,
    phase: str,
    model_id: int,
    *,
    constants: ChallengeConstants,
    require_weights: bool = True,
) -> ModelEntry:
    """Read one model folder; its solution must agree with its ``seed_membership`` when both exist.
    With ``require_weights``, ``config.json`` must be a JSON object and the weights must load safely
    (``check_weights``)."""
    seeds = {
        name: read_seed(mdir / name) if (mdir / name).exists() else None for name in SEED_FILES
    }
    if seeds["seed_challenge"] is None:
        raise ChallengeFormatError(f"{mdir / 'seed_challenge'}: missing seed file")
    solution = read_solution(mdir / "solution.csv", 2 * constants.len_challenge)
    if solution is not None and seeds["seed_membership"] is not None:
        expected = membership_solution(seeds["seed_membership"], constants.len_challenge)
        if not np.array_equal(solution, expected):
            raise ChallengeFormatError(f"{mdir / 'solution.csv'}: disagrees with seed_membership")
    forgotten = read_forgotten(mdir, solution, 2 * constants.len_challenge)
    if (mdir / ENSEMBLE_JSON).is_file():  # an ensemble: the folder is its weights
        if require_weights:
            read_ensemble(mdir)
        weights: Path | None = mdir
        config: Path | None = mdir / ENSEMBLE_JSON
    else:
        weights = next((mdir / w for w in WEIGHT_FILES if (mdir / w).is_file()), None)
        config = mdir / "config.json" if (mdir / "config.json").is_file() else None
        if require_weights:
            if weights is None:
                raise ChallengeFormatError(
                    f"{mdir}: no weights file (expected one of {', '.join(WEIGHT_FILES)})"
                )
            if config is None:
                raise ChallengeFormatError(f"{mdir / 'config.json'}: missing model config")
            check_model_config(config)
            check_weights(weights)
    return ModelEntry(
        scenario=scenario,
        phase=phase,
        model_id=model_id,
        path=mdir,
        seed_challenge=seeds["seed_challenge"],
        seed_training=seeds["seed_training"],
        seed_membership=seeds["seed_membership"],
        solution=solution,
        weights=weights,
        config=config,
        forgotten=forgotten,
    )


def read_forgotten(mdir: Path, solution: np.ndarray | None, expected_len: int) -> np.ndarray | None:
    """``mdir/forgotten.csv`` (``FORGOTTEN_CSV``) as 0/1 in challenge order, or ``None`` when
    absent. Only members can be forgotten: with a solution beside it, a 1 on a non-member is a
    ``ChallengeFormatError``."""
    path = mdir / FORGOTTEN_CSV
    forgotten = read_solution(path, expected_len)
    if forgotten is not None and solution is not None and bool((forgotten > solution).any()):
        raise ChallengeFormatError(
            f"{path}: marks a non-member as forgotten (only members can be unlearned)"
        )
    return forgotten


def read_ensemble(mdir: Path) -> tuple[list[Path], str]:
    """``(member folders, aggregate)`` of an ensemble folder, checked: ``ensemble.json`` names
    ``member_<i>`` subfolders and an aggregate in ``ENSEMBLE_AGGREGATES``; every member has
    ``config.json`` and weights that load safely (a pickle is refused as in any model folder).
    ``ChallengeFormatError`` naming the bad path."""
    path = mdir / ENSEMBLE_JSON
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ChallengeFormatError(
            f"{path}: invalid ensemble description, expected JSON ({exc})"
        ) from exc
    members = data.get("members") if isinstance(data, dict) else None
    if not (
        isinstance(members, list)
        and members
        and all(isinstance(m, str) and _MEMBER_RE.match(m) for m in members)
    ):
        raise ChallengeFormatError(
            f"{path}: expected members: a non-empty list of member_<i> folder names"
        )
    aggregate = data.get("aggregate")
    if aggregate not in ENSEMBLE_AGGREGATES:
        raise ChallengeFormatError(
            f"{path}: expected aggregate: {' or '.join(ENSEMBLE_AGGREGATES)}, got {aggregate!r}"
        )
    folders = [mdir / m for m in members]
    for folder in folders:
        if not folder.is_dir():
            raise ChallengeFormatError(f"{folder}: missing ensemble member folder")
        _check_model_dir(folder)
    return folders, aggregate


def write_ensemble(mdir: str | Path, members: list[Mapping[str, Path]], aggregate: str) -> Path:
    """Write an ensemble into model folder ``mdir`` (seed files are ``write_model``'s):
    ``member_<i>/`` from each mapping of file name -> source file, then ``ensemble.json`` (last,
    atomically)."""
    mdir = Path(mdir)
    names = [f"member_{i}" for i in range(len(members))]
    for name, files in zip(names, members):
        write_model_files(mdir / name, files)
    atomic_write_text(
        mdir / ENSEMBLE_JSON,
        json.dumps({"members": names, "aggregate": aggregate}, indent=2) + "\n",
    )
    return mdir


def check_model_config(path: Path) -> None:
    """``config.json`` must be a JSON object (the Hugging Face model config)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ChallengeFormatError(f"{path}: invalid model config, expected JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise ChallengeFormatError(f"{path}: invalid model config, expected a JSON object")


def check_weights(path: Path) -> None:
    """Refuse weights that cannot be loaded safely, with one ``ChallengeFormatError`` line naming
    ``path``.

    ``*.safetensors``: the header must parse and cover the file (safetensors' own check; no tensor
    is read). Anything else (``pytorch_model.bin``): ``torch.load(weights_only=True)`` onto the meta
    device, so tensor data is not read and a pickle that would import or call anything but tensors
    is refused *before* it runs. Torch is imported only here. Memoised per process on the file's
    (size, mtime): a tree is checked once.
    """
    stat = path.stat()
    _check_weights(str(path), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=4096)
def _check_weights(path: str, size: int, mtime_ns: int) -> None:
    if path.endswith(".safetensors"):
        _check_safetensors(path)
    else:
        # lazy: loads torch, only for a pickled weights file
        from farm.training.weights import check_pickled

        check_pickled(path)


def _check_safetensors(path: str) -> None:
    # lazy: safetensors loads only to check or read weights
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(path, framework="numpy") as handle:
            handle.keys()
    except (OSError, SafetensorError) as exc:
        raise ChallengeFormatError(f"{path}: not a valid safetensors file ({exc})") from exc


def read_seed(path: Path) -> int:
    """A seed file: one decimal int64 (surrounding whitespace allowed)."""
    try:
        text = path.read_text().strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ChallengeFormatError(f"{path}: unreadable seed file ({exc})") from exc
    if not re.fullmatch(r"[+-]?\d+", text):
        raise ChallengeFormatError(f"{path}: seed must be one decimal integer, found {text[:40]!r}")
    value = int(text)
    if not _INT64[0] <= value <= _INT64[1]:
        raise ChallengeFormatError(f"{path}: seed {value} is outside the int64 range")
    return value


def read_solution(path: Path, expected_len: int) -> np.ndarray | None:
    """``solution.csv``: one CSV row of ``expected_len`` 0/1 ints; ``None`` when the file is
    absent."""
    if not path.exists():
        return None
    try:
        cells = [c.strip() for c in path.read_text().strip().split(",")]
    except (OSError, UnicodeDecodeError) as exc:
        raise ChallengeFormatError(f"{path}: unreadable ({exc})") from exc
    if len(cells) != expected_len:
        raise ChallengeFormatError(
            f"{path}: expected {expected_len} values in one row, found {len(cells)}"
        )
    bad = [c for c in cells if c not in ("0", "1")]
    if bad:
        raise ChallengeFormatError(f"{path}: values must be 0 or 1, found {bad[0]!r}")
    return np.asarray([int(c) for c in cells], dtype=np.int64)


def membership_solution(seed_membership: int, len_challenge: int) -> np.ndarray:
    """0/1 membership in challenge order implied by ``seed_membership`` (non-members come first in
    R)."""
    r = mico_shuffle(seed_membership, 2 * len_challenge)
    solution = np.zeros(2 * len_challenge, dtype=np.int64)
    solution[r[len_challenge:]] = 1
    return solution


def write_constants(root: str | Path, constants: ChallengeConstants) -> Path:
    """Write ``<root>/challenge.json`` atomically."""
    return atomic_write_text(
        Path(root) / CHALLENGE_JSON, json.dumps(constants.to_json(), indent=2) + "\n"
    )


def write_model(
    mdir: str | Path,
    *,
    seed_challenge: int,
    seed_training: int | None = None,
    seed_membership: int | None = None,
    solution: np.ndarray | None = None,
    model_files: Mapping[str, Path] | None = None,
) -> Path:
    """Write one model folder in MICO layout; each file atomically. ``model_files`` maps name ->
    source file."""
    mdir = Path(mdir)
    for name, value in zip(SEED_FILES, (seed_challenge, seed_training, seed_membership)):
        if value is not None:
            atomic_write_text(mdir / name, f"{int(value)}\n")
    if solution is not None:
        atomic_write_text(
            mdir / "solution.csv", format_row(np.asarray(solution, dtype=np.int64)) + "\n"
        )
    return write_model_files(mdir, model_files or {})


def write_model_files(mdir: Path, model_files: Mapping[str, Path]) -> Path:
    """Copy each source file of ``model_files`` (name -> source) into ``mdir``, atomically."""
    for name, source in model_files.items():
        _atomic_copy(Path(source), mdir / name)
    return mdir


def format_row(values: np.ndarray) -> str:
    """One CSV row; ints as ints, floats with full round-trip precision."""
    if np.issubdtype(values.dtype, np.integer):
        return ",".join(str(int(v)) for v in values)
    return ",".join(repr(float(v)) for v in values)


def _atomic_copy(source: Path, target: Path) -> None:
    tmp = target.with_name(f".{target.name}.tmp")
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, tmp)
    tmp.replace(target)


def _visible(folder: Path) -> Iterator[Path]:
    return (p for p in sorted(folder.iterdir()) if not p.name.startswith("."))


__all__ = [
    "Assets",
    "Challenge",
    "ChallengeConstants",
    "ModelEntry",
    "PHASES",
    "read_challenge",
    "read_constants",
    "read_model",
    "write_constants",
    "write_ensemble",
    "write_model",
]
