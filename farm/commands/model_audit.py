"""``farm audit --model`` (model audit): how exposed the members of one trained model are.

Inputs: the target, a Hugging Face sequence classifier folder (``config.json``,
``model.safetensors`` and its tokenizer; safetensors only: a pickled weights file anywhere in the
folder is refused, never unpickled); the data (a file population, ``farm.training.data``: CSV,
TSV, parquet, JSON lines or a ``datasets.save_to_disk`` folder, with its text and label columns);
the member list and optionally the non-members (record ids, ``read_ids``; without a list of
non-members every record not listed as a member is one). Record ids are the values of
``--id-column``, or without it the records' 0-based positions in the data.

What runs: ``references`` reference models, each trained with the recipe (its seed set to the
reference's number) on a seeded random half of every record of the data (``model_audit_jobs``:
the halves never read the member list), and one inference pass of every model, the target
included, over every record. They are ordinary keyed jobs through the ``JobRunner`` and its store,
so a rerun runs nothing. The target enters the keys by the content of its folder (a pinned
``PathRef``); the references read records through the target's tokenizer (a tiny recipe) or their
own model's (a recipe naming one), pinned by content too.

Scoring, the attack and the figures: ``farm.attacks.model_audit`` (the attack is chosen on the
references alone, never on the member list). Outputs (``write_model_audit``): ``audit.md``,
``audit.json``, ``roc.png`` and ``records.parquet`` (every audited record: position, id, text,
label, member, score, raw score, rank; rank 1 = the most exposed).

Every input is checked by ``check_model_audit`` before any job runs (and so before Ray starts); a
bad one is a ``ConfigError`` of one line naming the flag, the file and the key at fault.
"""

from __future__ import annotations

import csv
import hashlib
import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from farm.attacks.intervals import Interval
from farm.attacks.model_audit import (
    FIGURE_NAMES,
    FIGURES,
    EpsilonBound,
    TargetAudit,
    audit_signals,
    audit_target,
    epsilon_bound,
)
from farm.attacks.registry import ATTACKS, needs
from farm.config.audit import parse_data
from farm.config.recipes import load_scenario_recipe
from farm.errors import ConfigError, SpecError
from farm.report.plots import roc_png
from farm.shadows.scenario import pin, pin_population
from farm.spec.jobs import InferJob, PathRef, Ref, Selection, StoreRef, TrainJob
from farm.spec.population import PopulationSpec
from farm.spec.recipes import Recipe
from farm.store.atomic import atomic_write_bytes, atomic_write_text
from farm.store.runner import JobRunner
from farm.store.store import fingerprint
from farm.training.data import Population, load_population

DEFAULT_RECIPE = "audit-reference"  # shipped; its YAML says why it is the default
DEFAULT_REFERENCES = 8
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")
WEIGHTS = "model.safetensors"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "vocab.txt")
EXPOSED_SHOWN = 10  # records listed in audit.md (records.parquet holds them all)
_REFERENCE_HALF = 0x2EF5


@dataclass(frozen=True, kw_only=True)
class ModelAuditRequest:
    """What the command line gives, unchecked (``check_model_audit`` checks it): paths and names
    as typed, and the options of the audit."""

    model: str
    data: str
    members: str
    non_members: str | None = None
    recipe: str = DEFAULT_RECIPE
    text_column: str | None = None
    label_column: str | None = None
    id_column: str | None = None
    references: int = DEFAULT_REFERENCES
    seed: int = 0
    attack: str = "auto"
    random_inclusion: bool = False
    delta: float = 1e-5
    confidence: float = 0.95


@dataclass(frozen=True, kw_only=True, eq=False)
class ModelAudit:
    """A checked model audit: the ``request``; the target folder and its references (``model``:
    the whole folder, ``tokenizer``: every file but the weights, both pinned by content); the
    ``recipe``; the pinned ``population`` and its records (``data``, with ``ids`` as strings);
    the ``audited`` records (positions, sorted) with ``member`` 0/1 each; whether the non-members
    were listed (``non_members_given``) or are every record not a member."""

    request: ModelAuditRequest
    model_dir: Path
    model: PathRef
    tokenizer: PathRef
    recipe: Recipe
    population: PopulationSpec
    data: Population
    ids: tuple[str, ...]
    audited: np.ndarray
    member: np.ndarray
    non_members_given: bool


@dataclass(frozen=True, kw_only=True)
class ModelAuditJobs:
    """The audit's jobs: the target's inference pass, each reference's training and inference
    pass (all over every record), and ``keep [K, N]``: 1 where reference k trained on record n."""

    target: InferJob
    trains: tuple[TrainJob, ...]
    infers: tuple[InferJob, ...]
    keep: np.ndarray


@dataclass(frozen=True, kw_only=True)
class ModelAuditResult:
    """The audit (``audit``), the target's scores and figures (``target``) and the epsilon bound
    or why there is none (``epsilon``)."""

    audit: ModelAudit
    target: TargetAudit
    epsilon: EpsilonBound


def check_model_audit(request: ModelAuditRequest) -> ModelAudit:
    """Check every input and read the data and the id lists; runs no job and starts nothing.
    ``ConfigError`` (one line naming the flag, the file and the key) on the first problem: a model
    folder that is missing, holds a pickled weights file, lacks ``config.json``, a 2-label config,
    ``model.safetensors`` or a tokenizer with a pad token; a recipe that is a defence or needs a
    base model; data that lack a named column or hold labels other than 0/1 or duplicate ids; an
    id list that is missing, empty, repeats an id or names an id the data lack; members and
    non-members that overlap or leave no non-member; ``--random-inclusion`` without
    ``--non-members``; fewer than 2 references; an unknown attack."""
    r = request
    if r.references < 2:
        raise ConfigError(
            f"--references {r.references}: expected an integer >= 2 (the attack is chosen on the "
            "references' leave-one-out scores)"
        )
    if r.attack != "auto" and r.attack not in ATTACKS:
        raise ConfigError(
            f"--attack {r.attack}: unknown attack (expected auto or one of {', '.join(ATTACKS)})"
        )
    if r.attack != "auto" and needs(r.attack):
        raise ConfigError(
            f"--attack {r.attack}: needs {', '.join(sorted(needs(r.attack)))}, which a model "
            "audit's inference passes do not compute (they keep the logits)"
        )
    if r.random_inclusion and r.non_members is None:
        raise ConfigError(
            "--random-inclusion: needs --non-members (the records whose coins left them out); "
            "without them no record's coin is known"
        )
    for flag, value in (("--delta", r.delta), ("--confidence", r.confidence)):
        if not 0 < value < 1:
            raise ConfigError(f"{flag} {value}: expected a number in (0, 1)")
    model_dir = check_model_dir(r.model)
    recipe = _recipe(r.recipe)
    _check_length(model_dir / "config.json", recipe)
    population, data = _data(r)
    ids = data.ids if data.ids is not None else tuple(str(i) for i in range(len(data)))
    members = _positions(r.members, "--members", ids, r)
    if r.non_members is not None:
        non_members = _positions(r.non_members, "--non-members", ids, r)
        overlap = np.intersect1d(members, non_members)
        if overlap.size:
            raise ConfigError(
                f"--non-members {r.non_members}: id {ids[overlap[0]]!r} is also in --members "
                f"{r.members}"
            )
    else:
        non_members = np.setdiff1d(np.arange(len(data)), members)
        if not non_members.size:
            raise ConfigError(
                f"--members {r.members}: every record of --data {r.data} is a member; nothing "
                "to compare with (give --non-members, or data with records the model did not see)"
            )
    audited = np.union1d(members, non_members)
    return ModelAudit(
        request=r,
        model_dir=model_dir,
        model=_pinned(model_dir),
        tokenizer=PathRef(str(model_dir), _tokenizer_digest(model_dir)),
        recipe=recipe,
        population=population,
        data=data,
        ids=ids,
        audited=audited,
        member=np.isin(audited, members).astype(np.int64),
        non_members_given=r.non_members is not None,
    )


def check_model_dir(value: str) -> Path:
    """The target folder, resolved, once it holds no pickled weights file (refused by its name,
    never opened), a ``config.json`` of a 2-label classifier, a readable ``model.safetensors`` and
    a tokenizer with a pad token; ``ConfigError`` naming the file and the key otherwise."""
    folder = Path(value).expanduser().resolve()
    if not folder.is_dir():
        raise ConfigError(f"--model {value}: no such folder (expected a Hugging Face model folder)")
    pickled = sorted(
        p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in PICKLE_SUFFIXES
    )
    if pickled:
        raise ConfigError(
            f"--model {pickled[0]}: a pickle file; refused, never unpickled (weights are read "
            "from model.safetensors only: save with save_pretrained(safe_serialization=True) and "
            "remove the pickle files)"
        )
    _check_config(folder / "config.json")
    _check_weights(folder / WEIGHTS)
    _check_tokenizer(folder)
    return folder


def _check_config(path: Path) -> None:
    if not path.is_file():
        raise ConfigError(f"--model {path}: missing (a model folder holds its config.json)")
    try:
        config = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise ConfigError(f"--model {path}: not JSON ({exc})") from exc
    if not isinstance(config, dict):
        raise ConfigError(f"--model {path}: expected a JSON object")
    labels = config.get("num_labels", len(config.get("id2label") or {}) or 2)
    if labels != 2:
        raise ConfigError(
            f"--model {path}: id2label/num_labels: {labels} labels; the farm audits 2-label "
            "classifiers"
        )


def _check_length(path: Path, recipe: Recipe) -> None:
    """The target must read records at the recipe's ``max_length`` (its position table holds at
    least ``max_length + 2`` positions: RoBERTa's offset and the special tokens)."""
    positions = json.loads(path.read_text()).get("max_position_embeddings")
    if isinstance(positions, int) and recipe.max_length + 2 > positions:
        raise ConfigError(
            f"--model {path}: max_position_embeddings: {positions}, too few for the recipe's "
            f"max_length {recipe.max_length} (every model reads records at the recipe's length; "
            "give --recipe a recipe with a smaller max_length)"
        )


def _check_weights(path: Path) -> None:
    if not path.is_file():
        sharded = path.with_name(WEIGHTS + ".index.json").is_file()
        raise ConfigError(
            f"--model {path}: missing"
            + (" (sharded weights are not read: save them as one file)" if sharded else "")
            + " (safetensors only)"
        )
    # lazy: safetensors reads only the header here, before anything runs
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="numpy") as handle:
            names = list(handle.keys())
    except Exception as exc:  # noqa: BLE001 - safetensors raises its own and OS errors
        raise ConfigError(f"--model {path}: not a safetensors file ({exc})") from exc
    if not names:
        raise ConfigError(f"--model {path}: holds no tensor")


def _check_tokenizer(folder: Path) -> None:
    if not any((folder / name).is_file() for name in TOKENIZER_FILES):
        raise ConfigError(
            f"--model {folder}: no tokenizer ({' or '.join(TOKENIZER_FILES)}); save it beside the "
            "model (tokenizer.save_pretrained)"
        )
    # lazy: loads torch and transformers, only to check the tokenizer before anything runs
    from farm.training.models import load_tokenizer

    try:
        tokenizer = load_tokenizer(folder)
    except ConfigError as exc:
        raise ConfigError(f"--model {exc}") from exc
    if tokenizer.pad_token_id is None:
        raise ConfigError(
            f"--model {folder / 'tokenizer_config.json'}: pad_token: none; the farm pads batches"
        )


def _pinned(folder: Path) -> PathRef:
    ref = pin(str(folder))
    assert isinstance(ref, PathRef)  # the folder exists
    return ref


def _tokenizer_digest(folder: Path) -> str:
    """What the tokenizer is known by: every file of the folder but the weights (a tokenizer may
    read config.json), so a retrained target with the same tokenizer reuses its references."""
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.name != WEIGHTS)
    h = hashlib.sha256()
    for p in files:
        h.update(f"{p.relative_to(folder).as_posix()}\0{fingerprint(p)}\n".encode())
    return h.hexdigest()


def _recipe(value: str) -> Recipe:
    recipe = load_scenario_recipe(value, "farm audit", "--recipe")
    if not isinstance(recipe, Recipe):
        raise ConfigError(f"--recipe {value}: a defence; references take a training recipe")
    if recipe.model.name == "base":
        raise ConfigError(
            f"--recipe {value}: model.name: base, but an audit has no challenge base model (name "
            "tiny, a model folder or a hub name)"
        )
    return recipe


def _data(r: ModelAuditRequest) -> tuple[PopulationSpec, Population]:
    columns = {"text_column": r.text_column, "label_column": r.label_column}
    mapping = {**parse_data(r.data), **{k: v for k, v in columns.items() if v is not None}}
    try:
        spec = pin_population(PopulationSpec.of(mapping, "data"))
    except SpecError as exc:
        raise ConfigError(f"--data {r.data}: {exc}") from exc
    try:
        data = load_population(spec, id_column=r.id_column)
    except ConfigError as exc:
        raise ConfigError(f"--data {exc}") from exc
    bad = np.flatnonzero(~np.isin(data.labels, (0, 1)))
    if bad.size:
        raise ConfigError(
            f"--data {r.data}: label_column {r.label_column or 'label'!r}: labels must be 0 or 1 "
            f"(the farm trains 2-label classifiers), found {int(data.labels[bad[0]])}"
        )
    if len(data) < 4:
        raise ConfigError(f"--data {r.data}: {len(data)} records; an audit needs 4 or more")
    if data.ids is not None:
        seen: set[str] = set()
        for value in data.ids:
            if value in seen:
                raise ConfigError(
                    f"--data {r.data}: id_column {r.id_column!r}: id {value!r} names two records"
                )
            seen.add(value)
    return spec, data


def read_ids(path: str | Path, flag: str = "--members") -> list[str]:
    """Record ids from a file, as strings: ``.json``, one JSON list of ids; ``.csv``, a header
    and the ids in its ``id`` column (or its only column); any other file, one id per line (blank
    lines and lines starting with ``#`` skipped). ``ConfigError`` naming ``flag`` and the file
    when it is missing, unreadable, empty or repeats an id."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise ConfigError(f"{flag} {path}: no such file")
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{flag} {path}: unreadable ({exc})") from exc
    if path.suffix == ".json":
        try:
            values = json.loads(text)
        except ValueError as exc:
            raise ConfigError(f"{flag} {path}: not JSON ({exc})") from exc
        if not isinstance(values, list) or any(isinstance(v, dict | list) for v in values):
            raise ConfigError(f"{flag} {path}: expected one JSON list of record ids")
        ids = [str(v) for v in values]
    elif path.suffix == ".csv":
        rows = list(csv.reader(text.splitlines()))
        header = rows[0] if rows else []
        column = header.index("id") if "id" in header else 0 if len(header) == 1 else None
        if column is None:
            raise ConfigError(
                f"{flag} {path}: columns {header}: expected an 'id' column or a single column"
            )
        ids = [row[column].strip() for row in rows[1:] if len(row) > column and row[column]]
    else:
        lines = (line.strip() for line in text.splitlines())
        ids = [line for line in lines if line and not line.startswith("#")]
    if not ids:
        raise ConfigError(f"{flag} {path}: no record ids")
    seen: set[str] = set()
    for value in ids:
        if value in seen:
            raise ConfigError(f"{flag} {path}: id {value!r} is listed twice")
        seen.add(value)
    return ids


def _positions(path: str, flag: str, ids: tuple[str, ...], r: ModelAuditRequest) -> np.ndarray:
    """The sorted positions in the data of the ids listed in ``path``; ``ConfigError`` naming the
    first id the data lack."""
    where = {value: i for i, value in enumerate(ids)}
    listed = read_ids(path, flag)
    missing = [value for value in listed if value not in where]
    if missing:
        what = (
            f"the id column {r.id_column!r}"
            if r.id_column
            else "0-based row positions (no --id-column)"
        )
        raise ConfigError(
            f"{flag} {path}: {len(missing)} id(s) not in --data {r.data} (ids: {what}), e.g. "
            f"{missing[0]!r}"
        )
    return np.sort(np.asarray([where[value] for value in listed], dtype=np.int64))


def model_audit_jobs(audit: ModelAudit) -> ModelAuditJobs:
    """The keyed jobs: the target's inference pass over every record, and per reference ``k`` a
    training on the half of the records that ``(seed, k)`` draws (each record by its own coin,
    independent of the member list) with the recipe at seed ``k``, then its inference pass. Every
    model reads records at the recipe's ``max_length``."""
    n = len(audit.data)
    recipe = audit.recipe
    every = Selection.of(n, np.arange(n))
    tokenizer: Ref = audit.tokenizer if recipe.model.name == "tiny" else pin(recipe.model.name)
    target = InferJob(
        population=audit.population,
        tokenizer=audit.tokenizer,
        model=audit.model,
        selection=every,
        max_length=recipe.max_length,
        label="audit/target",
    )
    keep = np.stack(
        [
            np.random.default_rng([audit.request.seed, _REFERENCE_HALF, k]).random(n) < 0.5
            for k in range(audit.request.references)
        ]
    ).astype(np.int64)
    trains, infers = [], []
    for k, row in enumerate(keep):
        train = TrainJob(
            population=audit.population,
            tokenizer=tokenizer,
            selection=Selection.of(n, np.flatnonzero(row)),
            recipe=replace(recipe, seed=k),
            label=f"audit/reference_{k}",
        )
        trains.append(train)
        infers.append(
            InferJob(
                population=audit.population,
                tokenizer=tokenizer,
                model=StoreRef(train.key),
                selection=every,
                max_length=recipe.max_length,
                label=f"audit/reference_{k}/records",
            )
        )
    return ModelAuditJobs(target=target, trains=tuple(trains), infers=tuple(infers), keep=keep)


def audit_model(audit: ModelAudit, runner: JobRunner) -> ModelAuditResult:
    """Run (or reuse) the audit's jobs, score the target and bound its epsilon where valid."""
    jobs = model_audit_jobs(audit)
    runner.run([jobs.target, *jobs.trains, *jobs.infers], title="audit")
    target = runner.store.get_arrays(jobs.target.key)["logits"]  # rows: every record in order
    references = np.stack([runner.store.get_arrays(j.key)["logits"] for j in jobs.infers])
    signals = audit_signals(target, references, jobs.keep, audit.data.labels)
    r = audit.request
    scored = audit_target(signals, audit.audited, audit.member, attack=r.attack, seed=r.seed)
    bound = epsilon_bound(
        scored, random_inclusion=r.random_inclusion, delta=r.delta, confidence=r.confidence
    )
    return ModelAuditResult(audit=audit, target=scored, epsilon=bound)


def write_model_audit(result: ModelAuditResult, out: str | Path) -> dict[str, Path]:
    """``records.parquet``, ``roc.png``, ``audit.json`` and ``audit.md`` under ``out`` (each
    written atomically, the report last); their paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "report": out / "audit.md",
        "json": out / "audit.json",
        "ROC": out / "roc.png",
        "records": out / "records.parquet",
    }
    frame = records_frame(result)
    atomic_write_bytes(paths["records"], frame.to_parquet(index=False))
    t = result.target
    auc = t.figures["AUC"].value
    label = f"{t.choice.attack} (AUC {auc:.3f})"
    roc_png(
        {label: (t.fpr, t.tpr)},
        {label: int(np.sum(t.member == 0))},
        paths["ROC"],
        title=f"farm audit: {result.audit.model_dir.name}",
    )
    atomic_write_text(paths["json"], json.dumps(_json(result), indent=2) + "\n")
    atomic_write_text(paths["report"], "\n".join(_report(result, frame)) + "\n")
    return paths


def records_frame(result: ModelAuditResult) -> Any:
    """One row per audited record, most exposed first: ``position`` (in the data), ``id``,
    ``text``, ``label``, ``member`` (0/1), ``score`` (in [0, 1], what is ranked), ``raw_score``
    (the attack's own), ``rank`` (1 = the most exposed)."""
    # lazy: pandas loads only to write a table
    import pandas as pd

    audit, t = result.audit, result.target
    rows = audit.audited
    frame = pd.DataFrame(
        {
            "position": rows,
            "id": [audit.ids[i] for i in rows],
            "text": [audit.data.sentences[i] for i in rows],
            "label": audit.data.labels[rows],
            "member": t.member,
            "score": t.scores,
            "raw_score": t.raw,
            "rank": t.rank,
        }
    )
    return frame.sort_values("rank", kind="stable").reset_index(drop=True)


def _json(result: ModelAuditResult) -> dict[str, Any]:
    audit, t, eps = result.audit, result.target, result.epsilon
    r = audit.request
    return {
        "model": str(audit.model_dir),
        "model_digest": audit.model.digest,
        "data": str(audit.population.path or r.data),
        "records": len(audit.data),
        "members": int(t.member.sum()),
        "non_members": int((t.member == 0).sum()),
        "non_members_given": audit.non_members_given,
        "ids": r.id_column or "position",
        "recipe": r.recipe,
        "references": r.references,
        "seed": r.seed,
        "attack": t.choice.attack,
        "attack_rule": t.choice.rule,
        "candidates": t.choice.figures,
        "figures": {FIGURE_NAMES[k]: _interval(t.figures[k]) for k in FIGURES},
        "intervals": t.intervals,
        "epsilon": None if eps.bound is None else eps.bound.epsilon,
        "epsilon_detail": None if eps.bound is None else asdict(eps.bound),
        "epsilon_reason": eps.reason,
    }


def _interval(value: Interval) -> dict[str, float | None]:
    return {k: (v if np.isfinite(v) else None) for k, v in value.to_dict().items()}


def _report(result: ModelAuditResult, frame: Any) -> list[str]:
    audit, t, eps = result.audit, result.target, result.epsilon
    r = audit.request
    members, non_members = int(t.member.sum()), int((t.member == 0).sum())
    who = "listed (--non-members)" if audit.non_members_given else "every record not a member"
    lines = [
        "# farm audit: model",
        "",
        f"Target: `{audit.model_dir}` (content sha256 {audit.model.digest[:12]}).",
        f"Data: `{audit.population.path or r.data}`, {len(audit.data)} records; audited: "
        f"{members} members and {non_members} non-members ({who}); ids: "
        + (f"column `{r.id_column}`." if r.id_column else "0-based row positions."),
        f"Reference models: {r.references}, recipe `{r.recipe}`, each on a seeded random half of "
        f"the {len(audit.data)} records (seed {r.seed}), drawn without the member list.",
        f"Attack: `{t.choice.attack}`, {t.choice.rule}.",
    ]
    if t.choice.figures:
        cells = ", ".join(f"{name} {value:.3f}" for name, value in t.choice.figures.items())
        lines.append(f"Candidates' TPR@0.1FPR on the references: {cells}.")
    lines += [
        "Records are scored in 2 seeded folds (each fold's RMIA population points are the other "
        "records).",
        "",
        "| figure | value | 95% interval |",
        "|---|---|---|",
        *(
            f"| {FIGURE_NAMES[k]} | {t.figures[k].value:.3f} | {t.figures[k].cell()} |"
            for k in FIGURES
        ),
        "",
        f"Intervals: {t.intervals}.",
    ]
    if non_members < 1000:
        lines.append(
            f"With {non_members} non-members, TPR@0.001FPR is the TPR at zero false positives."
        )
    lines += ["", "## Epsilon", ""]
    if eps.bound is None:
        lines.append(eps.reason[0].upper() + eps.reason[1:])
    else:
        lines.append(
            f"One-run lower bound: epsilon >= {eps.bound.epsilon:.3f} at delta "
            f"{eps.bound.delta:g} ({eps.reason})."
        )
    lines += [
        "",
        f"## The {min(EXPOSED_SHOWN, len(frame))} most exposed records",
        "",
        "| rank | id | member | score | label | text |",
        "|---|---|---|---|---|---|",
    ]
    for row in frame.head(EXPOSED_SHOWN).itertuples():
        text = str(row.text).replace("|", "\\|").replace("\n", " ")
        text = text if len(text) <= 80 else text[:77] + "..."
        lines.append(
            f"| {row.rank} | {row.id} | {row.member} | {row.score:.3f} | {row.label} | {text} |"
        )
    lines += ["", "Every audited record, ranked: `records.parquet`; the ROC: `roc.png`."]
    return lines
