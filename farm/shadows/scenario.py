"""One scenario of a challenge, as attacks see it: the seam between a challenge tree and the
attacks.

``load_scenarios`` reads a challenge tree (and optionally an answers tree), pins its inputs
(population, tokenizer, base model), loads the population's labels once and builds a frozen
``Scenario`` per scenario: its provided models keyed by ``ModelId(scenario, phase, model_id)``, the
records they need, their keep masks and known solutions. ``collect_signals`` adds a shadow plan's
models, runs (through an executor and its store) every training and inference job, and returns the
scenario with its ``Signals``. ``farm attack`` (``farm.commands.attack``), Tune (``farm tune``) and
the benchmarks all go through these two functions; nothing else turns a tree into signals.

Row ``i`` of every per-model array of a scenario (``keep``, ``columns``, the ``Signals``' first
rows) is model ``ids[i]``; shadows follow the provided models in the ``Signals``.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from farm.attacks.signals import OUT, UNKNOWN, Signals
from farm.challenge.tree import Assets, Challenge, ModelEntry, read_challenge
from farm.errors import ConfigError
from farm.mico.scorer import pooled_scores, score
from farm.shadows.plans import (
    PlanSpec,
    Shadow,
    keep_row,
    per_target_shadows,
    pool_shadows,
    union_of_challenges,
)
from farm.spec.jobs import HubRef, InferJob, PathRef, Ref, Selection, StoreRef, TrainJob
from farm.spec.population import PopulationSpec
from farm.spec.queries import QueryFamily
from farm.spec.recipes import Recipe
from farm.stopwatch import Stopwatch
from farm.store.run_job import job_seconds
from farm.store.runner import JobRunner
from farm.store.store import Store, fingerprint
from farm.training.data import load_population


@dataclass(frozen=True)
class ModelId:
    """A provided model's identity: where it sits in a challenge tree
    (``<scenario>/<phase>/model_<id>``)."""

    scenario: str
    phase: str
    model_id: int

    def as_tuple(self) -> tuple[str, str, int]:
        """``(scenario, phase, model_id)``, the key of ``farm.challenge.submission``'s
        predictions."""
        return (self.scenario, self.phase, self.model_id)

    def __str__(self) -> str:
        return f"{self.scenario}/{self.phase}/model_{self.model_id}"


@dataclass(frozen=True, kw_only=True)
class ChallengeInputs:
    """What every job of one challenge shares: the population spec, tokenizer and base model
    (pinned), the population size and the targets' training-set size (``len_training``: where a
    matched shadow's mechanism is taken, ``farm.training.train.matched_recipe``)."""

    population: PopulationSpec
    tokenizer: Ref
    base: Ref | None
    n_total: int
    len_training: int


@dataclass(frozen=True, eq=False, kw_only=True)
class Scenario:
    """One scenario's provided models and what is known about them; ``signals`` once collected.

    ``models``: ``ModelId -> ModelEntry`` in row order; ``records [R]``: sorted population indices
    of the union of their challenge points; ``labels [R]``: the records' class labels;
    ``keep [M, R]`` int8: 1 IN, 0 OUT, -1 unknown (dev/final models); ``columns [M, P]``: the column
    in ``records`` of each model's ``P`` challenge points (challenge order); ``solutions``: 0/1
    membership in challenge order of every model whose membership is known (labelled ``train``
    models, and dev/final models when answers were given).

    Unlearning challenges (``farm.challenge.tree.FORGOTTEN_CSV`` beside a labelled model's
    solution): a member the model was trained on and then unlearned is OUT in ``keep`` (the released
    model no longer depends on it, so as a reference it is an OUT model there), while ``solutions``
    stay the tree's ``solution.csv`` (what MICO's scorer and the report score against).
    """

    name: str
    inputs: ChallengeInputs
    models: Mapping[ModelId, ModelEntry]
    records: np.ndarray
    labels: np.ndarray
    keep: np.ndarray
    columns: np.ndarray
    solutions: Mapping[ModelId, np.ndarray]
    signals: Signals | None = None

    @property
    def ids(self) -> list[ModelId]:
        """The models in row order."""
        return list(self.models)

    def row(self, model: ModelId) -> int:
        """The model's row in ``keep``, ``columns`` and ``signals``."""
        return self.ids.index(model)

    def challenge(self, model: ModelId) -> np.ndarray:
        """Population indices of the model's challenge points, in challenge order."""
        return self.records[self.columns[self.row(model)]]

    def phase(self, phase: str) -> list[ModelId]:
        """The models of ``phase`` in row order."""
        return [m for m in self.models if m.phase == phase]

    def subset(self, keep: Sequence[ModelId]) -> Scenario:
        """The scenario restricted to the models ``keep`` (kept in row order, without signals).
        Records stay the same, so shadow plans and inference jobs, hence their store keys, are
        shared with the whole."""
        wanted = set(keep)
        missing = wanted - set(self.models)
        if missing:
            raise KeyError(f"{self.name}: no models {sorted(map(str, missing))}")
        rows = [i for i, m in enumerate(self.models) if m in wanted]
        ids = [self.ids[i] for i in rows]
        return replace(
            self,
            models={m: self.models[m] for m in ids},
            keep=self.keep[rows],
            columns=self.columns[rows],
            solutions={m: s for m, s in self.solutions.items() if m in wanted},
            signals=None,
        )

    def pooled(
        self, phase: str, raw: Mapping[ModelId, np.ndarray]
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """``(solutions, scores)`` of every model of ``phase`` with a known solution, concatenated
        in row order and pooled under ``farm.mico.scorer.pooled_scores`` (one threshold, as MICO
        scores). ``raw``: scores in challenge order per model. None when no model of the phase is
        labelled."""
        ids = [m for m in self.phase(phase) if m in self.solutions]
        if not ids:
            return None
        return np.concatenate([self.solutions[m] for m in ids]), pooled_scores(
            [raw[m] for m in ids]
        )

    def score(self, phase: str, raw: Mapping[ModelId, np.ndarray]) -> dict[str, float] | None:
        """MICO metrics of ``phase`` (``farm.mico.scorer.score`` of ``pooled``); None when it is
        unlabelled."""
        got = self.pooled(phase, raw)
        return score(*got) if got else None

    def with_signals(
        self,
        logits: np.ndarray,
        shadows: Sequence[Shadow],
        *,
        query_logits: np.ndarray | None = None,
        grad_norm: np.ndarray | None = None,
    ) -> Scenario:
        """The scenario holding ``Signals``: ``logits [M + S, R, 2]`` of its models then of
        ``shadows``; optionally ``query_logits [M + S, R, Q, 2]`` and ``grad_norm [M + S, R]`` in
        the same row order."""
        n = len(shadows)
        shadow_keep = [keep_row(s.indices, self.records) for s in shadows]
        keep = np.concatenate(
            [self.keep, np.stack(shadow_keep) if n else np.zeros((0, self.records.size), np.int8)]
        )
        columns = np.concatenate([self.columns, np.full((n, self.columns.shape[1]), -1, np.int64)])
        labelled = np.array([m.phase == "train" for m in self.models] + [False] * n)
        return replace(
            self,
            signals=Signals(
                logits=logits,
                labels=self.labels,
                keep=keep,
                challenge=columns,
                labelled=labelled,
                query_logits=query_logits,
                grad_norm=grad_norm,
            ),
        )


Span = tuple[float, float]


@dataclass(frozen=True, kw_only=True)
class Mechanism:
    """How a set of shadows was trained, as their training metadata (``farm.json``, kept in each
    store manifest) records it. Values that may differ between shadows of one set (their sizes
    differ slightly) are ``(low, high)`` spans. DP fields are ``None`` for non-DP shadows.

    ``sample_rate``: ``q = batch / n_train`` on the shadows' own records; ``epsilon``: what they
    spend on them at ``delta`` (the accountant at that ``q``, their noise multiplier and the steps
    taken); ``clip``: on true per-example gradients; ``matched_n``: the targets' training-set size
    when the shadows run the targets' mechanism (``AttackConfig.match_targets``), else ``None``;
    ``accountant``: the one their epsilon comes from (Opacus', add/remove adjacency; ``None`` where
    the metadata predates it).
    """

    shadows: int
    n_train: Span
    batch_size: int
    steps: Span
    noise_multiplier: Span | None = None
    clip: float | None = None
    sampling: str | None = None
    sample_rate: Span | None = None
    epsilon: Span | None = None
    delta: float | None = None
    matched_n: int | None = None
    accountant: str | None = None


def shadow_mechanism(
    store: Store, train_keys: Sequence[str], *, matched_n: int | None = None
) -> Mechanism | None:
    """The ``Mechanism`` of the shadows trained under ``train_keys`` (read from their manifests; no
    weight byte), or ``None`` without shadows."""
    metas = [store.manifest(key)["meta"]["train"] for key in train_keys]
    if not metas:
        return None
    span = lambda values: (min(values), max(values))  # noqa: E731
    base = Mechanism(
        shadows=len(metas),
        n_train=span([m["n_train"] for m in metas]),
        batch_size=int(metas[0]["recipe"]["batch_size"]),
        steps=span([m["steps"] for m in metas]),
        matched_n=matched_n,
    )
    dp = [m["dp"] for m in metas if "dp" in m]
    if not dp:
        return base
    return replace(
        base,
        noise_multiplier=span([d["noise_multiplier"] for d in dp]),
        clip=float(dp[0]["clip"]),
        sampling=str(metas[0]["recipe"]["dp"]["sampling"]),
        sample_rate=span([d["sample_rate"] for d in dp]),
        epsilon=span([d["epsilon"] for d in dp]),
        delta=float(dp[0]["delta"]),
        accountant=metas[0]["recipe"]["dp"].get("accountant"),
    )


@dataclass(frozen=True)
class Collected:
    """A scenario (or part of one) with its signals under a plan, and what producing them cost."""

    scenario: Scenario
    trainings: int
    job_seconds: float
    train_keys: tuple[str, ...] = ()

    @property
    def signals(self) -> Signals:
        assert self.scenario.signals is not None
        return self.scenario.signals


def load_scenarios(
    challenge_root: str | Path,
    *,
    answers_root: str | Path | None = None,
    names: Sequence[str] | None = None,
    assets: Assets | None = None,
    watch: Stopwatch | None = None,
) -> tuple[Challenge, dict[str, Scenario]]:
    """Read the challenge tree (and the answers tree, whose solutions label dev/final models), pin
    its inputs (``assets``: local copies in place of a release tree's hub defaults) and every
    provided model (content fingerprints, cached across runs by ``farm.store.store``), load the
    population's labels (``ConfigError`` unless it has the challenge's ``n_total`` records) and
    build the scenarios ``names`` (default: all, sorted). ``watch`` times the ``reading`` and
    ``fingerprinting`` stages."""

    watch = watch or Stopwatch()
    with watch.stage("reading"):
        ch = read_challenge(challenge_root)
        answers = read_challenge(answers_root, require_weights=False) if answers_root else None
    unknown = sorted(set(names or ()) - set(ch.scenarios()))
    if unknown:
        raise ConfigError(
            f"{challenge_root}: no scenario {', '.join(unknown)} (found "
            f"{', '.join(ch.scenarios())})"
        )
    with watch.stage("fingerprinting"):
        inputs = challenge_inputs(ch, assets)
        for entry in ch.select():
            if entry.weights is not None and entry.config is not None:
                model_ref(entry)  # digests now (cached), so that planning jobs only looks them up
    with watch.stage("reading"):
        labels = load_population(inputs.population).labels
    if labels.size != inputs.n_total:
        raise ConfigError(
            f"{challenge_root}: the population ({inputs.population.source} "
            f"{inputs.population.path or ''}) has {labels.size} records; the challenge's "
            f"splits need n_total = {inputs.n_total}"
        )
    with watch.stage("scheduling"):  # splits, unions and keep masks of every model
        return ch, {
            name: build_scenario(ch, name, inputs, labels, answers=answers)
            for name in names or ch.scenarios()
        }


def challenge_inputs(ch: Challenge, assets: Assets | None = None) -> ChallengeInputs:
    """The challenge's shared inputs (with ``assets`` applied); a tokenizer or base model found on
    disk is pinned by its fingerprint."""
    c = (assets or Assets()).apply(ch.root, ch.constants)
    return ChallengeInputs(
        population=pin_population(PopulationSpec.of(c.population, "population")),
        tokenizer=pin(c.locate(ch.root, c.tokenizer)),
        base=pin(c.locate(ch.root, c.base_model)),
        n_total=c.n_total,
        len_training=c.len_training,
    )


def pin_population(spec: PopulationSpec) -> PopulationSpec:
    """A file population with the content fingerprint of its data added (``sha256``), so job keys
    do not depend on where the data lies (``PopulationSpec.identity``); other populations
    unchanged."""
    if spec.source == "file" and spec.sha256 is None and spec.path and Path(spec.path).exists():
        return spec.pinned(fingerprint(spec.path))
    return spec


def pin(ref: str) -> Ref:
    """A directory that exists becomes a ``PathRef`` pinned by its content; anything else is a hub
    name."""
    return PathRef(ref, fingerprint(ref)) if Path(ref).exists() else HubRef(ref)


def build_scenario(
    ch: Challenge,
    name: str,
    inputs: ChallengeInputs,
    labels: np.ndarray,
    *,
    answers: Challenge | None = None,
) -> Scenario:
    """Scenario ``name`` of ``ch``: splits, records, keep masks, solutions (``labels``: the
    population's)."""
    entries = ch.select(name)
    ids = [ModelId(m.scenario, m.phase, m.model_id) for m in entries]
    splits = [m.split(ch.constants) for m in entries]
    records = union_of_challenges([s.challenge for s in splits])
    keep = [
        keep_row(np.sort(s.train_set()), records)
        if s.member is not None and s.training is not None
        else np.full(records.size, UNKNOWN, np.int8)
        for s in splits
    ]
    columns = np.stack([np.searchsorted(records, s.challenge) for s in splits]).astype(np.int64)
    for row, cols, entry in zip(keep, columns, entries):  # unlearned members: OUT from now on
        if entry.forgotten is not None and (row != UNKNOWN).all():
            row[cols[entry.forgotten == 1]] = OUT
    solutions = {i: m.solution for i, m in zip(ids, entries) if m.solution is not None}
    if answers is not None:
        known = set(ids)
        solutions.update(
            {
                i: m.solution
                for m in answers.select(name)
                if m.solution is not None
                and (i := ModelId(m.scenario, m.phase, m.model_id)) in known
            }
        )
    return Scenario(
        name=name,
        inputs=inputs,
        models=dict(zip(ids, entries)),
        records=records,
        labels=np.asarray(labels)[records],
        keep=np.stack(keep),
        columns=columns,
        solutions=solutions,
    )


def plan_shadows(scenario: Scenario, plan: PlanSpec) -> list[Shadow]:
    """The plan's shadows for ``scenario`` (pool: over its records; per-target: one per model of its
    phases)."""
    if plan.kind == "pool":
        return pool_shadows(scenario.inputs.n_total, scenario.records, plan)
    if plan.kind == "per-target":
        wanted = {m.model_id: scenario.challenge(m) for m in scenario.ids if m.phase in plan.phases}
        return per_target_shadows(scenario.inputs.n_total, wanted)
    return []


def train_jobs(scenario: Scenario, recipe: Recipe, shadows: Sequence[Shadow]) -> list[TrainJob]:
    """One training per shadow; shadow ``i`` trains with seed ``recipe.seed * 100003 + i``."""
    inputs = scenario.inputs
    base = inputs.base if recipe.model.name == "base" else None
    return [
        TrainJob(
            population=inputs.population,
            tokenizer=inputs.tokenizer,
            selection=Selection.of(inputs.n_total, s.indices),
            recipe=replace(recipe, seed=recipe.seed * 100_003 + i),
            base=base,
            label=f"{scenario.name}/{s.name}",
        )
        for i, s in enumerate(shadows)
    ]


@dataclass(frozen=True)
class Extras:
    """Signals beyond the logits that inference computes for every model of a plan
    (``farm.spec.jobs.InferJob``): ``queries``, the family whose logits fill
    ``Signals.query_logits``; ``grad_norm``, fill ``Signals.grad_norm``. The default asks for
    nothing more: plain inference jobs, with the keys they always had."""

    queries: QueryFamily | None = None
    grad_norm: bool = False

    @classmethod
    def needed(cls, fields: Iterable[str], queries: QueryFamily | None = None) -> Extras:
        """What to compute for attacks needing the ``Signals`` fields ``fields``
        (``farm.attacks.registry.needs``); ``queries``: the family to use if query logits are needed
        (default ``QueryFamily()``)."""
        fields = set(fields)
        unknown = fields - {"query_logits", "grad_norm"}
        if unknown:
            raise ValueError(
                f"no inference computes Signals fields {sorted(unknown)} (query_logits, grad_norm)"
            )
        return cls(
            queries or QueryFamily() if "query_logits" in fields else None, "grad_norm" in fields
        )


def infer_jobs(
    scenario: Scenario, trains: Sequence[TrainJob], extras: Extras = Extras()
) -> list[InferJob]:
    """Logits (and ``extras``) on the scenario's records of each of its models (row order), then of
    each trained shadow."""
    inputs = scenario.inputs
    sel = Selection.of(inputs.n_total, scenario.records)
    refs: list[tuple[str, Ref]] = [(str(m), model_ref(e)) for m, e in scenario.models.items()]
    refs += [(f"infer {t.label}", StoreRef(t.key)) for t in trains]
    return [
        InferJob(
            population=inputs.population,
            tokenizer=inputs.tokenizer,
            model=ref,
            selection=sel,
            label=label,
            queries=extras.queries,
            grad_norm=extras.grad_norm,
        )
        for label, ref in refs
    ]


def model_ref(entry: ModelEntry) -> PathRef:
    """A provided model folder pinned by the content of its weights and config (not by where it
    lives)."""
    if entry.weights is None or entry.config is None:
        raise ConfigError(f"{entry.path}: a model to run needs weights and config.json")
    return PathRef(str(entry.path), fingerprint(entry.weights) + fingerprint(entry.config))


@dataclass(frozen=True)
class ShadowJobs:
    """The jobs that give ``part`` (a scenario or part of one) its signals under a plan: the plan's
    shadows, their trainings and the inference passes of ``part``'s models and the shadows."""

    part: Scenario
    shadows: tuple[Shadow, ...]
    trains: tuple[TrainJob, ...]
    infers: tuple[InferJob, ...]


def shadow_jobs(
    scenario: Scenario,
    plan: PlanSpec,
    recipe: Recipe,
    *,
    only: Sequence[ModelId] | None = None,
    extras: Extras = Extras(),
) -> ShadowJobs:
    """The shadow plan's shadows (over all of ``scenario``) trained with ``recipe``; inference
    of the models ``only`` (default: every model) and of the shadows, computing ``extras`` too
    (e.g. ``AttackConfig.extras()``: what the attack needs). Builds job specs only: nothing runs,
    no input is read."""
    part = scenario.subset(only) if only is not None else scenario
    shadows = plan_shadows(scenario, plan)
    trains = train_jobs(scenario, recipe, shadows)
    return ShadowJobs(part, tuple(shadows), tuple(trains), tuple(infer_jobs(part, trains, extras)))


def collect_many(
    planned: Sequence[ShadowJobs],
    executor: JobRunner,
    *,
    title: str = "jobs",
    watch: Stopwatch | None = None,
) -> list[Collected]:
    """Run the jobs of every plan in ONE executor call (one queue: a GPU never waits for another
    scenario's stage to end), then read each part's signals from the store. Jobs already in the
    store are not run again. ``watch`` gets the queue's wall time split into ``training`` and
    ``inference`` by their shares of the job-seconds run (with the job-seconds themselves), and the
    ``reading`` of the signals."""

    watch = watch or Stopwatch()
    trains = [t for p in planned for t in p.trains]
    infers = [i for p in planned for i in p.infers]
    start = time.perf_counter()
    report = executor.run([*trains, *infers], title=title)
    wall = time.perf_counter() - start
    ran = report.results
    spent = {
        kind: sum(
            float(ran[j.key].get("seconds", 0.0)) for j in jobs if ran.get(j.key, {}).get("ran")
        )
        for kind, jobs in (("training", trains), ("inference", infers))
    }
    checks = report.check_seconds
    watch.add("scheduling", checks)
    for kind, jobs in (("training", trains), ("inference", infers)):
        reused = [j for j in jobs if not ran.get(j.key, {}).get("ran")]
        watch.add_reused(kind, job_seconds(executor.store, reused))
    for kind, seconds in spent.items():
        watch.add_jobs(kind, seconds)
        watch.add(
            kind,
            (wall - checks) * seconds / max(sum(spent.values()), 1e-9)
            if any(spent.values())
            else 0.0,
        )
    out = []
    with watch.stage("reading"):
        for p in planned:
            arrays = [
                executor.store.get_arrays(job.key) for job in p.infers
            ]  # each file checked as it is read
            extra = {
                name: np.stack([a[name] for a in arrays])
                for name in ("query_logits", "grad_norm")
                if arrays and name in arrays[0]
            }
            scenario = p.part.with_signals(
                np.stack([a["logits"] for a in arrays]), list(p.shadows), **extra
            )
            out.append(
                Collected(
                    scenario,
                    len(p.trains),
                    job_seconds(executor.store, [*p.trains, *p.infers]),
                    tuple(t.key for t in p.trains),
                )
            )
    return out


def collect_signals(
    scenario: Scenario,
    plan: PlanSpec,
    recipe: Recipe,
    executor: JobRunner,
    *,
    only: Sequence[ModelId] | None = None,
    title: str = "",
    extras: Extras = Extras(),
) -> Collected:
    """``collect_many`` of one plan: the scenario (or its part ``only``) holding its ``Signals``,
    with the optional fields ``extras`` asks for filled."""
    planned = shadow_jobs(scenario, plan, recipe, only=only, extras=extras)
    return collect_many([planned], executor, title=title or scenario.name)[0]
