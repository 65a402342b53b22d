"""The mini challenge: a MICO-format tree built by the farm itself, with MICO's exact split logic,
scaled down.

``make_challenge(config, out)`` trains a tokenizer on the population and a tiny *base* model on a
public corpus disjoint from it (the stand-in for roberta-base), then every target of every scenario
with its scenario's recipe, all through the executor and the store. It writes

* ``out/challenge/``: what a participant gets -- ``challenge.json`` (constants, population,
  tokenizer and base model paths), ``assets/{tokenizer,base}``, and per scenario ``train`` models
  with seeds and solutions and ``dev``/``final`` models with ``seed_challenge`` and weights only;
* ``out/answers/``: ``dev``/``final`` seeds and ``solution.csv``, so the project can score itself.

``layout: mico`` writes the *release* layout instead, as MICO published it: no ``challenge.json``
(so MICO's constants apply, and the config must have them: all 68,221 GLUE SST-2 records, 67,349
training records and 100 challenge pairs per model), weights as ``pytorch_model.bin`` (a plain state
dict, which readers load with ``weights_only``), and the tokenizer and base model -- what the hub's
roberta-base is to the real release -- in ``out/assets/base`` (tokenizer files beside
``config.json`` and weights), which an attack config names as
``assets: {base_model: OUT/assets/base}``.

Each tree is assembled in a temporary folder and renamed into place: a crash leaves no half-written
tree.
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from farm.challenge.tree import (
    ASSETS,
    FORGOTTEN_CSV,
    PHASES,
    ChallengeConstants,
    format_row,
    write_constants,
    write_ensemble,
    write_model,
    write_model_files,
)
from farm.config.challenge import ChallengeConfig, load_challenge_config
from farm.config.loading import typed
from farm.config.recipes import load_scenario_recipe
from farm.defences.seam import Defence, TargetBuild, TargetSpec, build_target, recipe_privacy
from farm.defences.sisa import Sisa, forget_members
from farm.errors import ConfigError
from farm.mico.splits import MICO_N_TOTAL, split_model
from farm.shadows.scenario import pin_population
from farm.spec.jobs import Selection, StoreRef, TokenizerJob, TrainJob
from farm.spec.recipes import Recipe, canonical_key
from farm.store.atomic import atomic_write_text
from farm.store.runner import JobRunner, start_early
from farm.store.store import Store
from farm.training.data import load_population


class Target(NamedTuple):
    """One target of a mini challenge: where it goes in the tree, its seeds, and its jobs
    (``build.jobs``: one training for a plain recipe, several for a defence;
    ``farm.defences.seam.TargetBuild``)."""

    scenario: str
    phase: str
    model_id: int
    seeds: tuple[int, ...]
    build: TargetBuild
    # an unlearning challenge: 0/1 in challenge order, 1 = forgotten member
    forgotten: np.ndarray | None = None


@dataclass(frozen=True)
class ChallengeJobs:
    """Every job of a mini challenge and where each target goes in the tree."""

    constants: ChallengeConstants
    tokenizer: TokenizerJob
    base: TrainJob
    targets: list[Target]

    def target_jobs(self) -> list[Any]:
        """Every job of every target (a defence's several per target)."""
        return [job for t in self.targets for job in t.build.jobs]


def challenge_jobs(
    config: ChallengeConfig, population_size: int, *, recipe_dir: Path | None = None
) -> ChallengeJobs:
    """The jobs of ``config`` (pure apart from reading recipe files and fingerprinting population
    files): seeds come from ``config.seed``. A file population is pinned by the fingerprint of its
    data (``pin_population``), so no key depends on where the data lies. A scenario's recipe may be
    a defence (``farm.defences.seam``): its targets are then built by it."""
    recipes = {
        scenario: load_scenario_recipe(
            str(recipe_dir / f"{name}.yaml") if recipe_dir else name,
            "make-challenge config",
            f"scenarios.{scenario}",
        )
        for scenario, name in config.scenarios.items()
    }
    constants = ChallengeConstants(
        n_total=population_size,
        len_training=config.len_training,
        len_challenge=config.len_challenge,
        population=config.population,
        tokenizer=f"{ASSETS}/tokenizer",
        base_model=f"{ASSETS}/base",
        targets={scenario: privacy_record(r) for scenario, r in recipes.items()},
    )
    population = pin_population(config.population_spec)
    public = pin_population(config.public_spec)
    tok = TokenizerJob(population=population, vocab_size=config.vocab_size, label="tokenizer")
    public_n = public.size or 0
    base_recipe = typed(Recipe, config.base_recipe, "base_recipe", "base_recipe")
    base = TrainJob(
        population=public,
        tokenizer=StoreRef(tok.key),
        selection=Selection.of(public_n, np.arange(public_n)),
        recipe=base_recipe,
        label="base",
    )
    rng = np.random.default_rng([config.seed, 0xC4A11])
    targets = []
    for scenario, recipe in recipes.items():
        model_id = 0
        for phase in PHASES:
            for _ in range(config.models[phase]):
                seeds = tuple(
                    int(s) for s in rng.integers(-(2**63), 2**63 - 1, size=3, dtype=np.int64)
                )
                split = split_model(
                    *seeds,
                    n_total=population_size,
                    len_training=config.len_training,
                    len_challenge=config.len_challenge,
                )
                members = Selection.of(population_size, split.train_set())
                spec = TargetSpec(
                    population=population,
                    tokenizer=StoreRef(tok.key),
                    selection=members,
                    seed=seeds[1] & 0x7FFFFFFF,
                    base=StoreRef(base.key),
                    label=f"{scenario}/{phase}/model_{model_id}",
                    public=public,
                    public_n=public_n,
                )
                built, forgotten = build_target(recipe, spec), None
                if isinstance(recipe, Sisa) and recipe.forget:
                    assert split.solution is not None
                    built, forgotten = forget_members(
                        built, split.challenge, split.solution, recipe.forget, seed=seeds[2]
                    )
                targets.append(
                    Target(
                        scenario=scenario,
                        phase=phase,
                        model_id=model_id,
                        seeds=seeds,
                        build=built,
                        forgotten=forgotten,
                    )
                )
                model_id += 1
    return ChallengeJobs(constants, tok, base, targets)


def privacy_record(recipe: Recipe | Defence) -> dict[str, Any]:
    """What ``challenge.json`` says of a scenario's targets: ``{"epsilon": "inf"}`` without DP, else
    the recipe's target epsilon (None when it fixes a noise multiplier instead) and delta; a defence
    says its own."""
    return recipe_privacy(recipe) if isinstance(recipe, Recipe) else recipe.privacy()


def make_challenge(config_path: str | Path, out: str | Path, executor: JobRunner) -> Path:
    """Build (or reuse, when complete and made from the same config) ``out/challenge`` and
    ``out/answers``."""

    config = load_challenge_config(config_path)
    out = Path(out)
    config_key = canonical_key("mini", dataclasses.asdict(config))
    if _complete(out, config_key):
        _count_reused(_plan(config, config_path), executor)
        return out
    start_early(executor)  # workers start while the population is read and the jobs planned
    p = _plan(config, config_path)
    executor.run([p.tokenizer], title="tokenizer")
    executor.run([p.base], title="base model")
    executor.run(p.target_jobs(), title="targets")
    _write_trees(out, p, executor.store, config_key, release=config.layout == "mico")
    return out


def _plan(config: ChallengeConfig, config_path: str | Path) -> ChallengeJobs:
    """``config``'s jobs, after checking that a ``layout: mico`` population is MICO's."""
    population_size = len(load_population(config.population_spec))
    if config.layout == "mico" and population_size != MICO_N_TOTAL:
        raise ConfigError(
            f"{config_path}: layout: mico needs MICO's population of {MICO_N_TOTAL:,} records (all "
            f"of GLUE SST-2, train then validation); population has {population_size:,}"
        )
    return challenge_jobs(config, population_size)


def _count_reused(p: ChallengeJobs, executor: JobRunner) -> None:
    """A complete tree is reused; its jobs that the store holds are passed to ``executor`` (which
    finds them done, runs nothing and counts them reused), so that the ``jobs:`` line counts the
    same jobs on every run. Jobs the store lacks (a tree built with another store) are left alone:
    the tree needs none of them."""
    jobs = [p.tokenizer, p.base, *p.target_jobs()]
    held = [job for job in jobs if executor.store.complete(job.key)]
    if held:
        executor.run(held, title="challenge (reused)")


def _write_trees(
    out: Path, p: ChallengeJobs, store: Store, config_key: str, *, release: bool = False
) -> None:
    """Assemble ``challenge``, ``answers`` (and with ``release``, ``assets``) in a temporary folder,
    then rename."""
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out, prefix=".building-") as tmp:
        challenge, answers, assets = (
            Path(tmp) / "challenge",
            Path(tmp) / "answers",
            Path(tmp) / "assets",
        )
        for root in (challenge, answers):
            if release:
                root.mkdir()
            else:
                write_constants(root, p.constants)
        cache = Path(tmp) / "cache"
        cache.mkdir()
        keep = shutil.ignore_patterns("manifest.json")
        # roberta-base's stand-in: one directory with the tokenizer files, config.json and weights
        if release:
            shutil.copytree(store.get_dir(p.tokenizer.key, cache), assets / "base", ignore=keep)
            shutil.copytree(
                store.get_dir(p.base.key, cache), assets / "base", ignore=keep, dirs_exist_ok=True
            )
        else:
            shutil.copytree(
                store.get_dir(p.tokenizer.key, cache), challenge / ASSETS / "tokenizer", ignore=keep
            )
            shutil.copytree(
                store.get_dir(p.base.key, cache), challenge / ASSETS / "base", ignore=keep
            )
        for target in p.targets:
            _write_target(
                challenge,
                answers,
                target,
                store,
                cache,
                p,
                scratch=Path(tmp) / "bin" if release else None,
            )
        (challenge / ".complete").write_text(config_key + "\n")
        names = ("challenge", "answers", "assets") if release else ("challenge", "answers")
        for name in names:
            if (out / name).exists():
                shutil.rmtree(out / name)
        for name in reversed(
            names
        ):  # the challenge last: its .complete marker says the rest is there
            (Path(tmp) / name).rename(out / name)


def _model_files(model_dir: Path) -> dict[str, Path]:
    return {
        "config.json": model_dir / "config.json",
        "model.safetensors": model_dir / "model.safetensors",
    }


def _write_target(
    challenge: Path,
    answers: Path,
    target: Target,
    store: Store,
    cache: Path,
    p: ChallengeJobs,
    *,
    scratch: Path | None = None,
) -> None:
    """One target's folder (a plain model, or an ensemble folder for a defence with several members)
    and, for a dev/final target, its answers. ``scratch``: write a plain model in the release layout
    (``farm.training.weights.as_release``)."""
    # lazy: loads torch
    from farm.training.weights import as_release

    scenario, phase, model_id, seeds, built, forgotten = target
    split = split_model(
        *seeds,
        n_total=p.constants.n_total,
        len_training=p.constants.len_training,
        len_challenge=p.constants.len_challenge,
    )
    labelled = phase == "train"
    name = f"model_{model_id}"
    mdir = write_model(
        challenge / scenario / phase / name,
        seed_challenge=seeds[0],
        seed_training=seeds[1] if labelled else None,
        seed_membership=seeds[2] if labelled else None,
        solution=split.solution if labelled else None,
    )
    members = [store.get_dir(key, cache) for key in built.members]
    if built.aggregate == "single":
        write_model_files(
            mdir, as_release(members[0], scratch) if scratch else _model_files(members[0])
        )
    else:
        write_ensemble(mdir, [_model_files(m) for m in members], built.aggregate)
    if not labelled:
        write_model(
            answers / scenario / phase / name,
            seed_challenge=seeds[0],
            seed_training=seeds[1],
            seed_membership=seeds[2],
            solution=split.solution,
        )
    if (
        forgotten is not None
    ):  # beside the solution: the attacker's for train models, the answers' otherwise
        atomic_write_text(
            (mdir if labelled else answers / scenario / phase / name) / FORGOTTEN_CSV,
            format_row(forgotten) + "\n",
        )


def _complete(out: Path, config_key: str) -> bool:
    marker = out / "challenge" / ".complete"
    return (
        marker.is_file() and marker.read_text().strip() == config_key and (out / "answers").is_dir()
    )
