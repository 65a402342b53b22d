"""What a command will run and cost, counted before it runs: ``farm plan`` and ``--dry-run``.

The jobs are built exactly as the command builds them (``farm.shadows.scenario``'s ``plan_shadows``,
``train_jobs`` and ``infer_jobs``; ``farm.commands.make_challenge.challenge_jobs``), so their counts
and store keys are the real ones, but nothing is run, no Ray is started, and neither the population
nor a tokenizer nor any weights are loaded: splits need only the challenge's constants. Per scenario
and stage a plan gives the number of trainings or inference passes (and how many of them a store
already holds), records per job, bytes to store, GPU-seconds at the rates of a
``farm.spec.costs.Table``, and in total GPU-hours and the wall time on a cluster of ``gpus`` GPUs.

``farm tune`` cannot be planned exactly (ASHA stops trials early; trials may share jobs): its stages
are upper bounds, marked ``bound``.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from farm.challenge.tree import Challenge, read_challenge
from farm.cluster.tune import split_train_models
from farm.commands.audit import audit_jobs
from farm.commands.make_challenge import challenge_jobs
from farm.config.attack import AttackConfig, load_attack_config
from farm.config.challenge import load_challenge_config
from farm.config.recipes import recipe_ref
from farm.config.tune import TuneConfig, dp_choice
from farm.defences.seam import dp_assumptions
from farm.errors import ConfigError
from farm.shadows.plans import PlanSpec
from farm.shadows.scenario import (
    Extras,
    Scenario,
    build_scenario,
    challenge_inputs,
    infer_jobs,
    pin_population,
    plan_shadows,
    train_jobs,
)
from farm.spec.audit import RecipeAudit
from farm.spec.costs import (
    ROBERTA_BASE,
    Shape,
    Table,
    infer_mode,
    logits_bytes,
    train_mode,
    wall_seconds,
    weights_bytes,
)
from farm.spec.jobs import HubRef, InferJob, Job, PathRef, Ref, TokenizerJob, TrainJob
from farm.spec.recipes import ModelSpec, Recipe
from farm.store.atomic import atomic_write_text
from farm.store.store import Store, cache_root
from farm.training.data import load_population

ROBERTA_VOCAB = 50_265


@dataclass(frozen=True, kw_only=True)
class Stage:
    """One stage of one scenario: ``jobs`` trainings (``kind`` train) or inference passes (``kind``
    infer) of ``records`` records each (trainings: the mean training-set size), ``sequences``
    processed per job (epochs x records for a training), ``bytes_per_job`` stored per job,
    ``seconds_per_job`` on one GPU at the table's rate for ``model`` (a ``farm.spec.costs.KINDS``
    row) and ``mode``. ``done``: jobs the store already holds (None: no store given, or keys not
    computable). ``bound``: the counts are upper bounds. ``privacy``: for DP-SGD trainings, what
    each one's epsilon is and rests on (``dp_record``); None otherwise."""

    scenario: str
    name: str
    kind: str
    jobs: int
    records: int
    sequences: int
    model: str
    mode: str
    bytes_per_job: int
    seconds_per_job: float
    done: int | None = None
    bound: bool = False
    privacy: Mapping[str, Any] | None = field(default=None, compare=False)

    @property
    def todo(self) -> int:
        return self.jobs - (self.done or 0)

    @property
    def gpu_seconds(self) -> float:
        """GPU-seconds of the jobs still to run."""
        return self.todo * self.seconds_per_job


@dataclass(frozen=True, kw_only=True)
class Forecast:
    """Every stage of a command, and the totals on ``gpus`` GPUs (one job per GPU, one queue)."""

    command: str
    stages: tuple[Stage, ...]
    gpus: int
    table: Table
    notes: tuple[str, ...] = ()

    @property
    def gpu_hours(self) -> float:
        return sum(s.gpu_seconds for s in self.stages) / 3600

    @property
    def wall_hours(self) -> float:
        """``farm.spec.costs.wall_seconds`` of every job still to run, in hours (a lower bound)."""
        return (
            wall_seconds([s.seconds_per_job for s in self.stages for _ in range(s.todo)], self.gpus)
            / 3600
        )

    @property
    def bytes(self) -> int:
        """Bytes in the store once every job has run."""
        return sum(s.jobs * s.bytes_per_job for s in self.stages)

    def to_json(self) -> dict[str, Any]:
        rates = {
            f"{s.model}/{s.mode}": dataclasses.asdict(self.table.rate(s.model, s.mode))
            for s in self.stages
            if s.kind != "cpu"
        }
        return {
            "command": self.command,
            "gpus": self.gpus,
            "stages": [dataclasses.asdict(s) for s in self.stages],
            "totals": {
                "trainings": sum(s.jobs for s in self.stages if s.kind == "train"),
                "inference_passes": sum(s.jobs for s in self.stages if s.kind == "infer"),
                "bytes": self.bytes,
                "gpu_hours": self.gpu_hours,
                "wall_hours": self.wall_hours,
            },
            "table": {"device": self.table.device, "rates": rates},
            "notes": list(self.notes),
        }


# --- attack ---------------------------------------------------------------------------------------


def attack_forecast(
    challenge: str | Path | Challenge,
    configs: Mapping[str, AttackConfig],
    *,
    table: Table,
    gpus: int,
    store: Store | None = None,
) -> Forecast:
    """``farm attack``'s jobs for every scenario of ``challenge``: a tree (weights not needed) or a
    ``Challenge`` already read or built (a published layout of ``farm.challenge.layouts``, whose
    ``stand_in`` sentence becomes the plan's first note)."""
    ch = _open(challenge)
    stages: list[Stage] = []
    extra_notes: list[str] = []
    for name, scenario in _scenarios(ch).items():
        config = configs.get(name, configs["*"])
        recipe = _shadow_recipe(config, scenario.inputs.len_training, counting=store is not None)
        extras = config.extras()
        stages += _attack_stages(
            scenario,
            config.plan,
            recipe,
            table,
            store,
            matched=config.match_targets,
            shown=config.named_recipe(),
            extras=extras,
        )
        if extras != Extras():
            extra_notes.append(_extras_note(name, config.attack, extras))
    return Forecast(
        command="attack",
        stages=tuple(stages),
        gpus=gpus,
        table=table,
        notes=_stand_in_notes(ch) + tuple(extra_notes) + _weight_notes(ch),
    )


def _extras_note(scenario: str, attack: str, extras: Extras) -> str:
    """How a plan costs the signals beyond the logits that ``scenario``'s attack reads."""
    what = []
    if extras.queries is not None:
        what.append(
            f"the logits of {extras.queries.n_queries} queries per record (one inference pass "
            f"for each of the {_perturbed(extras)} perturbed ones; an identity query reuses the "
            f"logits)"
        )
    if extras.grad_norm:
        what.append("gradient norms (one fp32 training pass per record: forward and backward)")
    return f"{scenario}: {attack}'s inference also computes {' and '.join(what)}"


def _perturbed(extras: Extras) -> int:
    """Queries of ``extras`` that cost an inference pass: all but ``identity``, whose logits are
    the record's own (``farm.training.infer``)."""
    if extras.queries is None:
        return 0
    return sum(kind != "identity" for kind in extras.queries.kinds)


def _open(challenge: str | Path | Challenge) -> Challenge:
    """A tree read without weights, or a ``Challenge`` as it is."""
    if isinstance(challenge, Challenge):
        return challenge
    return read_challenge(challenge, require_weights=False)


def _shadow_recipe(config: AttackConfig, n_target: int, *, counting: bool) -> Recipe:
    """The recipe ``farm attack``'s shadows train with, exactly as the run keys their jobs when
    ``counting`` a store's jobs: with ``match_targets`` and DP that is ``config.shadow_recipe``,
    whose noise multiplier Opacus solves (about 2 s, cached per process). Opacus' accountants
    import torch (``opacus/__init__`` and ``opacus.accountants.accountant`` do; there is no
    torch-free path to them), so only such a plan imports torch, lazily; one that counts nothing
    takes the targets' step count alone, which fixes every count and size the plan shows."""
    recipe = config.named_recipe()
    if not config.match_targets:
        return recipe
    if counting and recipe.dp is not None:
        return config.shadow_recipe(n_target)
    return dataclasses.replace(recipe, steps=recipe.total_steps(n_target))


def _scenarios(ch: Challenge, names: Sequence[str] | None = None) -> dict[str, Scenario]:
    """The scenarios as far as a plan needs them: models and the records of their challenge points.
    Labels are placeholders, and training and membership seeds are left out (keep masks unknown):
    rebuilding a model's training split costs a 68,221-element shuffle, and no count depends on
    it."""
    inputs = challenge_inputs(ch)
    labels = np.zeros(inputs.n_total, np.int64)
    seeds_only = dataclasses.replace(
        ch,
        models=tuple(
            dataclasses.replace(m, seed_training=None, seed_membership=None, solution=None)
            for m in ch.models
        ),
    )
    return {
        name: build_scenario(seeds_only, name, inputs, labels) for name in names or ch.scenarios()
    }


def _attack_stages(
    scenario: Scenario,
    plan: PlanSpec,
    recipe: Recipe,
    table: Table,
    store: Store | None,
    *,
    matched: bool = False,
    shown: Recipe | None = None,
    extras: Extras = Extras(),
) -> list[Stage]:
    """The shadow and inference stages of one scenario: ``recipe`` keys the jobs (as the run's),
    ``shown`` (default ``recipe``) the configured one whose privacy the stage reports (a matched
    shadow's target epsilon, not the noise solved for it); ``extras``: what inference computes
    beyond the logits (it keys and costs the inference jobs)."""
    shadows = plan_shadows(scenario, plan)
    trains = train_jobs(scenario, recipe, shadows)
    shadow_infers = infer_jobs(scenario.subset([]), trains, extras)
    provided = infer_jobs(scenario, [], extras) if store and _all_weights(scenario) else None
    infer_done = (
        None
        if store is None
        else _done(store, shadow_infers) + (_done(store, provided) if provided else 0)
    )
    return [
        _train_stage(
            scenario,
            "shadows",
            recipe,
            [s.indices.size for s in shadows],
            table,
            None if store is None else _done(store, trains),
            matched=matched,
            shown=shown,
        ),
        _infer_stage(
            scenario,
            "inference",
            len(scenario.models) + len(trains),
            recipe,
            table,
            infer_done,
            extras=extras,
        ),
    ]


def sequences_trained(recipe: Recipe, records: int) -> int:
    """Sequences one training on ``records`` records processes: ``steps`` full batches when the
    recipe fixes its step count (a matched shadow), else ``epochs`` passes."""
    return recipe.steps * recipe.batch_size if recipe.steps is not None else recipe.epochs * records


def _train_stage(
    scenario: Scenario,
    name: str,
    recipe: Recipe,
    sizes: Sequence[int],
    table: Table,
    done: int | None,
    *,
    bound: bool = False,
    mode: str | None = None,
    matched: bool = False,
    shown: Recipe | None = None,
) -> Stage:
    shape = _shape(recipe, scenario)
    records = int(round(float(np.mean(sizes)))) if len(sizes) else 0
    mode = mode or train_mode(recipe.precision, recipe.dp is not None)
    sequences = sequences_trained(recipe, records)
    return Stage(
        scenario=scenario.name,
        name=name,
        kind="train",
        jobs=len(sizes),
        records=records,
        sequences=sequences,
        model=shape.kind,
        mode=mode,
        bytes_per_job=weights_bytes(shape),
        seconds_per_job=table.seconds(shape.kind, mode, sequences),
        done=done,
        bound=bound,
        privacy=dp_record(shown or recipe, matched=matched),
    )


def dp_record(recipe: Recipe, *, matched: bool = False) -> dict[str, Any] | None:
    """What a DP-SGD training's epsilon is and rests on, as ``farm plan`` shows it beside its stage:
    the recipe's ``epsilon`` (its target; None when it fixes ``noise_multiplier`` instead) and
    ``delta``, the ``farm.defences.seam.dp_assumptions`` keys, and ``matched``: shadows that run the
    targets' mechanism (their noise, solved for that epsilon on the targets' records; on their own,
    smaller sets they spend more). None without DP."""
    if recipe.dp is None:
        return None
    return {
        "epsilon": recipe.dp.target_epsilon,
        "noise_multiplier": recipe.dp.noise_multiplier,
        "delta": recipe.dp.delta,
        "matched": matched,
        **dp_assumptions(recipe),
    }


def dp_text(record: Mapping[str, Any]) -> str:
    """A ``dp_record`` as one line: the epsilon (or the fixed noise) and, in brackets, what it
    assumes."""
    delta = f"delta {record['delta']:g}"
    if record["epsilon"] is None:
        what = f"noise multiplier {record['noise_multiplier']:g}, {delta} (no target epsilon)"
    elif record.get("matched"):
        what = f"the targets' noise (solved for epsilon {record['epsilon']:g} at {delta} on theirs)"
    else:
        what = f"epsilon {record['epsilon']:g} at {delta} per training"
    return f"{what} ({record['assumes']})"


def _infer_stage(
    scenario: Scenario,
    name: str,
    jobs: int,
    recipe: Recipe,
    table: Table,
    done: int | None,
    *,
    bound: bool = False,
    extras: Extras = Extras(),
) -> Stage:
    """Inference passes over the scenario's records; with ``extras``, each perturbed query is one
    more inference pass per record (identity queries reuse the logits) and gradient norms one fp32
    training pass (forward and backward); stored: float32 logits per query, float64 norms."""
    kind, records, mode = (
        _shape(recipe, scenario).kind,
        int(scenario.records.size),
        infer_mode("fp32"),
    )
    queries = extras.queries.n_queries if extras.queries is not None else 0
    seconds = table.seconds(kind, mode, (1 + _perturbed(extras)) * records)
    if extras.grad_norm:
        seconds += table.seconds(kind, train_mode("fp32", False), records)
    return Stage(
        scenario=scenario.name,
        name=name,
        kind="infer",
        jobs=jobs,
        records=records,
        sequences=(1 + _perturbed(extras) + extras.grad_norm) * records,
        model=kind,
        mode=mode,
        bytes_per_job=logits_bytes(records) + records * (8 * queries + 8 * extras.grad_norm),
        seconds_per_job=seconds,
        done=done,
        bound=bound,
    )


def _done(store: Store, jobs: Sequence[TokenizerJob | TrainJob | InferJob]) -> int:
    return sum(store.complete(job.key) for job in jobs)


def _all_weights(scenario: Scenario) -> bool:
    return all(e.weights is not None and e.config is not None for e in scenario.models.values())


def _stand_in_notes(ch: Challenge) -> tuple[str, ...]:
    """A published layout's sentence (what was planned instead of a tree), else nothing."""
    return (ch.stand_in,) if ch.stand_in else ()


def _weight_notes(ch: Challenge) -> tuple[str, ...]:
    missing = sum(m.weights is None for m in ch.models)
    if not missing:
        return ()
    return (
        f"{missing} of {len(ch.models)} provided models have no weights: the plan counts their "
        f"inference passes, but the command itself needs the weights",
    )


# --- model sizes ----------------------------------------------------------------------------------


def _shape(recipe: Recipe, scenario: Scenario) -> Shape:
    inputs = scenario.inputs
    return model_shape(
        recipe.model,
        recipe.max_length,
        vocab=tokenizer_vocab(inputs.tokenizer),
        base=ref_shape(inputs.base) if inputs.base else None,
    )


def model_shape(spec: ModelSpec, max_length: int, *, vocab: int, base: Shape | None) -> Shape:
    """The sizes of the model a recipe trains: ``tiny`` from its settings and the tokenizer's
    ``vocab``, ``base`` from the challenge's base model (``base``), anything else from its
    ``config.json`` when it is a local directory, else roberta-base's."""
    if spec.name == "tiny":
        t = spec.tiny
        return Shape(
            vocab_size=vocab,
            hidden_size=t.hidden_size,
            num_hidden_layers=t.num_hidden_layers,
            intermediate_size=t.intermediate_size,
            max_position_embeddings=max_length + 3,
        )
    if spec.name == "base":
        return base or ROBERTA_BASE
    return ref_shape(PathRef(spec.name, "") if Path(spec.name).is_dir() else HubRef(spec.name))


def ref_shape(ref: Ref) -> Shape:
    """A model's sizes from a local directory's ``config.json``; roberta-base's for a hub name (or
    no config)."""
    config = Path(ref.path) / "config.json" if isinstance(ref, PathRef) else None
    if config is None or not config.is_file():
        return ROBERTA_BASE
    data = json.loads(config.read_text())
    names = [f.name for f in dataclasses.fields(Shape) if f.name != "num_labels"]
    return Shape(**{k: int(data[k]) for k in names if k in data})


def tokenizer_vocab(ref: Ref) -> int:
    """Vocabulary size of a tokenizer directory (its ``vocab.json``); roberta-base's for a hub
    name."""
    vocab = Path(ref.path) / "vocab.json" if isinstance(ref, PathRef) else None
    return (
        len(json.loads(vocab.read_text()))
        if vocab is not None and vocab.is_file()
        else ROBERTA_VOCAB
    )


# --- tune -----------------------------------------------------------------------------------------


def tune_forecast(
    challenge: str | Path | Challenge,
    tune_config: TuneConfig,
    *,
    table: Table,
    gpus: int,
    scenarios: Sequence[str] | None = None,
) -> Forecast:
    """Upper bounds of ``farm tune``'s jobs per scenario: every trial trains a full pool of
    ``max_shadows`` shadows (ASHA stops many earlier; trials with equal recipes share them) at the
    largest ``epochs`` of the space and the slowest DP variant; then the best and the default
    configurations are scored on the held-out models (a default that reads query logits or gradient
    norms has inference jobs of its own over every labelled train model). ``challenge`` as for
    ``attack_forecast``."""

    ch = _open(challenge)
    defaults = load_attack_config(tune_config.default_attack)
    stages: list[Stage] = []
    extra_notes: list[str] = []
    for name, scenario in _scenarios(ch, scenarios).items():
        search, held = split_train_models(scenario, tune_config.held_out, tune_config.seed)
        recipe = _slowest_trial_recipe(tune_config, name)
        pool = plan_shadows(
            scenario,
            PlanSpec(kind="pool", shadows=tune_config.max_shadows, group=tune_config.group),
        )
        trials = tune_config.num_samples * len(pool)
        default = defaults.get(name, defaults["*"])
        default_shadows = len(plan_shadows(scenario, default.plan))
        final = len(pool) + default_shadows
        sizes = [s.indices.size for s in pool]
        extras = default.extras()
        # a default reading more than logits scores on inference jobs of its own (next stage)
        plain_final = final if extras == Extras() else len(pool)
        stages += [
            _train_stage(
                scenario,
                "search shadows",
                recipe,
                sizes * tune_config.num_samples,
                table,
                None,
                bound=True,
            ),
            _infer_stage(
                scenario, "search inference", len(search) + trials, recipe, table, None, bound=True
            ),
            _train_stage(
                scenario, "held-out shadows", recipe, sizes[:1] * final, table, None, bound=True
            ),
            _infer_stage(
                scenario,
                "held-out inference",
                len(held) + plain_final,
                recipe,
                table,
                None,
                bound=True,
            ),
        ]
        if extras != Extras():  # the default reads more than logits: its own inference jobs
            stages.append(
                _infer_stage(
                    scenario,
                    "held-out default inference",
                    len(search) + len(held) + default_shadows,
                    recipe,
                    table,
                    None,
                    bound=True,
                    extras=extras,
                )
            )
            extra_notes.append(_extras_note(name, default.attack, extras))
    notes = (
        *_stand_in_notes(ch),
        "tune stages are upper bounds: ASHA stops poor trials early and trials with equal recipes "
        "share jobs",
        *extra_notes,
        *_weight_notes(ch),
    )
    return Forecast(command="tune", stages=tuple(stages), gpus=gpus, table=table, notes=notes)


def _slowest_trial_recipe(tune_config: TuneConfig, scenario: str) -> Recipe:
    recipe = recipe_ref(tune_config.recipe, "tune config", "recipe")
    epochs = tune_config.space.get("epochs", {}).get("choice", [recipe.epochs])
    recipe = dataclasses.replace(recipe, epochs=max([recipe.epochs, *epochs]))
    dp_options = tune_config.space.get("dp", {}).get("choice", [])
    matched = tune_config.dp_matched.get(scenario)
    if any(o != "none" and (o != "matched" or matched) for o in dp_options):
        dp = recipe_ref(matched, "tune config", "dp_matched").dp if matched else None
        recipe = dataclasses.replace(
            recipe, dp=dp or _any_dp(dp_options), grad_clip=None, group_by_length=False
        )  # as trial_recipe builds a DP trial
    return recipe


def _any_dp(options: Sequence[Any]) -> Any:

    return next(c for o in options if not isinstance(c := dp_choice(o), str))


# --- make-challenge -------------------------------------------------------------------------------


def make_challenge_forecast(
    config_path: str | Path, *, table: Table, gpus: int, store: Store | None = None
) -> Forecast:
    """``farm make-challenge``'s jobs: the tokenizer (CPU), the base model, every target of every
    scenario. Loads the population only when the config does not say its size (a ``subset`` or
    synthetic ``n``)."""

    config = load_challenge_config(config_path)
    size = config.population_spec.size
    if size is None:
        size = len(load_population(config.population_spec))
    p = challenge_jobs(config, size)
    base_shape = model_shape(
        p.base.recipe.model, p.base.recipe.max_length, vocab=config.vocab_size, base=None
    )
    stages = [
        _tokenizer_stage("assets", p.tokenizer, records=size, store=store),
        _mini_train(
            p.base, "assets", "base model", [p.base], config.vocab_size, None, table, store
        ),
    ]
    for scenario in config.scenarios:
        for role, jobs in _by_role(
            [
                (t.build.jobs, f"{t.scenario}/{t.phase}/model_{t.model_id}/")
                for t in p.targets
                if t.scenario == scenario
            ]
        ).items():
            stages.append(
                _mini_stage(jobs, scenario, role, config.vocab_size, base_shape, table, store)
            )
    return Forecast(
        command="make-challenge",
        stages=tuple(stages),
        gpus=gpus,
        table=table,
        notes=("the tokenizer and PATE's votes run on CPU: not counted",),
    )


def _tokenizer_stage(
    scenario: str, job: TokenizerJob, *, records: int, store: Store | None
) -> Stage:
    """A tokenizer's training on ``records`` records: a CPU stage that costs no GPU time."""
    return Stage(
        scenario=scenario,
        name="tokenizer",
        kind="cpu",
        jobs=1,
        records=records,
        sequences=records,
        model="tiny",
        mode="cpu",
        bytes_per_job=0,
        seconds_per_job=0.0,
        done=None if store is None else _done(store, [job]),
    )


def _by_role(targets: Sequence[tuple[Sequence[Job], str]]) -> dict[str, list[Job]]:
    """A scenario's target jobs grouped into stages by their role in a target: the job label after
    the target's ``prefix`` with indices dropped (``teacher_3/answers`` -> ``teacher/answers``,
    ``shard_0/slice_1`` -> ``shard/slice``), ``targets`` for a plain target's one training; a
    defence's several jobs per target so count as trainings, inference passes (PATE's answers) and
    CPU votes, each at its own size."""
    groups: dict[str, list[Job]] = {}
    for jobs, prefix in targets:
        for job in jobs:
            rest = job.label[len(prefix) :] if job.label.startswith(prefix) else ""
            groups.setdefault(re.sub(r"_\d+", "", rest) or "targets", []).append(job)
    return groups


def _mini_stage(
    jobs: Sequence[Job],
    scenario: str,
    role: str,
    vocab: int,
    base: Shape,
    table: Table,
    store: Store | None,
) -> Stage:
    """One stage of a scenario's target jobs of one role (all of one kind: ``_by_role``)."""
    done = None if store is None else sum(store.complete(job.key) for job in jobs)
    first = jobs[0]
    if isinstance(first, TrainJob):
        return _mini_train(
            first,
            scenario,
            role,
            [j for j in jobs if isinstance(j, TrainJob)],
            vocab,
            base,
            table,
            store,
        )
    if isinstance(
        first, InferJob
    ):  # a teacher's logits: the teacher's shape, the base model's at mini scale
        records = int(
            round(
                float(
                    np.mean([j.selection.indices().size for j in jobs if isinstance(j, InferJob)])
                )
            )
        )
        mode = infer_mode(first.precision)
        return Stage(
            scenario=scenario,
            name=role,
            kind="infer",
            jobs=len(jobs),
            records=records,
            sequences=records,
            model=base.kind,
            mode=mode,
            bytes_per_job=logits_bytes(records),
            seconds_per_job=table.seconds(base.kind, mode, records),
            done=done,
        )
    return Stage(
        scenario=scenario,
        name=role,
        kind="cpu",
        jobs=len(jobs),
        records=0,
        sequences=0,
        model="tiny",
        mode="cpu",
        bytes_per_job=0,
        seconds_per_job=0.0,
        done=done,
    )


def _mini_train(
    first: TrainJob,
    scenario: str,
    name: str,
    jobs: Sequence[TrainJob],
    vocab: int,
    base: Shape | None,
    table: Table,
    store: Store | None,
) -> Stage:
    recipe = first.recipe
    shape = model_shape(recipe.model, recipe.max_length, vocab=vocab, base=base)
    records = int(round(float(np.mean([j.selection.indices().size for j in jobs]))))
    mode = train_mode(recipe.precision, recipe.dp is not None)
    sequences = sequences_trained(recipe, records)
    return Stage(
        scenario=scenario,
        name=name,
        kind="train",
        jobs=len(jobs),
        records=records,
        sequences=sequences,
        model=shape.kind,
        mode=mode,
        bytes_per_job=weights_bytes(shape),
        seconds_per_job=table.seconds(shape.kind, mode, sequences),
        done=None if store is None else _done(store, jobs),
        privacy=dp_record(recipe),
    )


# --- audit ----------------------------------------------------------------------------------------


def audit_forecast(
    audit: RecipeAudit, *, table: Table, gpus: int, store: Store | None = None
) -> Forecast:
    """``farm audit``'s jobs (recipe mode): the tokenizer (CPU) when the recipe trains a tiny model,
    each run's build (one training for a recipe; a defence's trainings, inference passes and votes
    by role, as ``make_challenge_forecast`` counts them) and one inference pass per run over the
    canaries' records. Loads (and fingerprints) the data only when its spec does not say its
    size."""
    population = pin_population(audit.population)
    audit = dataclasses.replace(audit, population=population)
    size = population.size
    if size is None:
        size = len(load_population(population))
    jobs = audit_jobs(audit, n_total=size)
    vocab = (
        jobs.tokenizer.vocab_size if jobs.tokenizer else tokenizer_vocab(jobs.trains[0].tokenizer)
    )
    stages = []
    if jobs.tokenizer is not None:
        stages.append(_tokenizer_stage("audit", jobs.tokenizer, records=size, store=store))
    recipe = next(iter(audit.recipes.values()))
    shape = model_shape(recipe.model, recipe.max_length, vocab=vocab, base=None)
    labelled = [(b.jobs, f"audit/run_{r}/") for r, b in enumerate(jobs.builds)]
    for role, role_jobs in _by_role(labelled).items():
        name = "runs" if role == "targets" else role
        stages.append(_mini_stage(role_jobs, "audit", name, vocab, shape, table, store))
    stages.append(_mini_stage(jobs.infers, "audit", "canary scores", vocab, shape, table, store))
    return Forecast(
        command="audit",
        stages=tuple(stages),
        gpus=gpus,
        table=table,
        notes=("the tokenizer runs on CPU: not counted",) if jobs.tokenizer else (),
    )


# --- output ---------------------------------------------------------------------------------------


def format_forecast(plan: Forecast) -> str:
    """The plan as a Markdown table plus totals (what ``farm plan`` prints)."""
    rows = [
        f"# farm {plan.command}: plan (nothing has run)",
        "",
        "| scenario | stage | jobs | done | records/job | sequences/job | model | mode | stored | "
        "GPU-hours |",
        "|" + "---|" * 10,
    ]
    for s in plan.stages:
        jobs = f"<= {s.jobs}" if s.bound else str(s.jobs)
        done = "-" if s.done is None else str(s.done)
        rows.append(
            f"| {s.scenario} | {s.name} | {jobs} | {done} | {s.records:,} | {s.sequences:,} | "
            f"{s.model} | {s.mode} | {_size(s.jobs * s.bytes_per_job)} | "
            f"{s.gpu_seconds / 3600:.2f} |"
        )
    trainings = sum(s.jobs for s in plan.stages if s.kind == "train")
    passes = sum(s.jobs for s in plan.stages if s.kind == "infer")
    rows += [
        "",
        f"trainings: {trainings:,}   inference passes: {passes:,}   stored: {_size(plan.bytes)}",
        f"estimated GPU-hours (jobs not yet done): {plan.gpu_hours:.2f}   wall time on "
        f"{plan.gpus} GPU(s): {plan.wall_hours:.2f} h (one job per GPU, perfectly packed)",
        "",
        f"throughput table: {plan.table.device}",
    ]
    used = dict.fromkeys((s.model, s.mode) for s in plan.stages if s.kind != "cpu")
    for model, mode in used:
        rate = plan.table.rate(model, mode)
        rows.append(f"  {model} {mode}: {rate.seq_per_s:,.0f} sequences/s ({rate.source})")
    rows += [
        f"DP-SGD {s.scenario} {s.name}: {dp_text(s.privacy)}" for s in plan.stages if s.privacy
    ]
    rows += [f"note: {n}" for n in plan.notes]
    return "\n".join(rows)


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000  # type: ignore[assignment]
    return f"{n:.1f} TB"


def read_table(path: str | Path | None = None) -> Table:
    """The throughput table at ``path`` (default ``default_table_path()``, where ``farm bench``
    writes); the defaults alone when there is no file; ``ConfigError`` naming the file when it is
    invalid."""

    path = Path(path) if path else default_table_path()
    if not path.is_file():
        return Table()
    try:
        return Table.from_json(json.loads(path.read_text()))
    except ValueError as exc:
        raise ConfigError(f"{path}: invalid throughput table: {exc}") from exc


def write_table(table: Table, path: str | Path | None = None) -> Path:

    return atomic_write_text(
        Path(path) if path else default_table_path(), json.dumps(table.to_json(), indent=2) + "\n"
    )


def default_table_path() -> Path:
    """``cache_root() / "throughput.json"`` (``$FARM_CACHE_DIR``, else ``$XDG_CACHE_HOME/farm``,
    else ``~/.cache/farm``)."""
    return cache_root() / "throughput.json"
