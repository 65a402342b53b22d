"""A population spec: where a challenge's ordered records come from. Pure.

Sources (``farm.training.data`` builds them): ``synthetic`` (``n`` records from ``seed``),
``file`` (``path``; once pinned, ``sha256``: the fingerprint of its data; optionally
``text_column`` and ``label_column``, the columns records are read from), ``glue-sst2``; any source
takes a ``subset`` (``n`` positions from ``offset`` of a permutation seeded by ``seed``) and
``canaries`` (``CanarySpec``: records planted to audit a training, appended after the subset;
``farm.attacks.canaries``).

A ``PopulationSpec`` is read once from a mapping (a config, ``challenge.json``) and checked there;
it travels typed from then on (into job specs, defences, the scenario seam, the loader). It keeps
the mapping it was read from: job keys hash that mapping (``identity``), exactly as they did when
the spec travelled as a plain mapping, so stores written before stay valid, and ``to_json`` writes
back what was read.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from farm.errors import SpecError, require
from farm.spec.coerce import from_dict

SOURCES = ("synthetic", "file", "glue-sst2")
CANARY_KINDS = ("mislabelled", "ood", "duplicated", "relabelled")


@dataclass(frozen=True, kw_only=True)
class Subset:
    """``subset`` of a population spec: positions ``offset .. offset+n-1`` of a seeded
    permutation."""

    n: int
    seed: int = 0
    offset: int = 0

    def __post_init__(self) -> None:
        require(self.n >= 1, "n", "an integer >= 1", self.n)
        require(self.offset >= 0, "offset", "an integer >= 0", self.offset)


@dataclass(frozen=True, kw_only=True)
class CanarySpec:
    """``count`` canaries of ``kind`` (``CANARY_KINDS``; ``farm.attacks.canaries``) from ``seed``;
    ``repeats``: copies of each
    ``duplicated`` canary (ignored by the other kinds)."""

    kind: str
    count: int
    seed: int = 0
    repeats: int = 2

    def __post_init__(self) -> None:
        require(self.kind in CANARY_KINDS, "kind", " or ".join(CANARY_KINDS), self.kind)
        require(self.count >= 1, "count", "an integer >= 1", self.count)
        require(
            self.repeats >= 2,
            "repeats",
            "an integer >= 2 (copies of a duplicated canary)",
            self.repeats,
        )

    @property
    def records(self) -> int:
        """How many records the canaries add: ``repeats`` per duplicated canary, two per relabelled
        canary (its text under its own label and under the flipped one), else one."""
        per = {"duplicated": self.repeats, "relabelled": 2}.get(self.kind, 1)
        return self.count * per


@dataclass(frozen=True, kw_only=True)
class PopulationFields:
    """The typed fields of a spec, with their defaults (what ``PopulationSpec`` reads)."""

    source: str
    n: int | None = None
    seed: int = 0
    path: str | None = None
    subset: Subset | None = None
    description: str = ""
    sha256: str | None = None
    canaries: CanarySpec | None = None
    text_column: str | None = None  # None: the first of sentence, content, text the data has
    label_column: str | None = None  # None: label

    def __post_init__(self) -> None:
        for key in ("text_column", "label_column"):
            value = getattr(self, key)
            require(value is None or bool(value), key, "a column name", value)
        require(
            self.source != "synthetic" or (self.n or 0) >= 1,
            "n",
            "an integer >= 1 (synthetic records)",
            self.n,
        )
        require(
            self.source != "file" or bool(self.path),
            "path",
            "a file or folder (source: file)",
            self.path,
        )


@dataclass(frozen=True)
class PopulationSpec:
    """A checked population spec (see the module docstring). Build it with ``of``; equal specs
    are those read from equal mappings."""

    mapping: dict[str, Any]
    _fields: PopulationFields = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "mapping", dict(self.mapping))
        object.__setattr__(self, "_fields", from_dict(PopulationFields, self.mapping))

    @classmethod
    def of(cls, value: PopulationSpec | Mapping[str, Any], where: str = "") -> PopulationSpec:
        """``value`` itself, or the spec a mapping describes; ``SpecError`` naming the key below
        ``where`` for an unknown key, a value of the wrong type, or a source without what it needs
        (a synthetic ``n``, a file ``path``). Any source name is accepted here; ``known`` and the
        loader say which ones can be built.

        >>> PopulationSpec.of({"source": "synthetic", "n": 3000}).size
        3000
        """
        if isinstance(value, PopulationSpec):
            return value
        if not isinstance(value, Mapping):
            raise SpecError(f"expected a population spec (a mapping), got {value!r}", key=where)
        try:
            return cls(dict(value))
        except SpecError as exc:
            key = ".".join(k for k in (where, exc.key) if k)
            raise SpecError(exc.detail, key=key) from exc

    @property
    def source(self) -> str:
        return self._fields.source

    @property
    def n(self) -> int | None:
        return self._fields.n

    @property
    def seed(self) -> int:
        return self._fields.seed

    @property
    def path(self) -> str | None:
        return self._fields.path

    @property
    def subset(self) -> Subset | None:
        return self._fields.subset

    @property
    def sha256(self) -> str | None:
        return self._fields.sha256

    @property
    def canaries(self) -> CanarySpec | None:
        """Canaries appended to the records (after any ``subset``), or None."""
        return self._fields.canaries

    @property
    def text_column(self) -> str | None:
        """The column records' text is read from (None: the loader's default, the first of
        ``sentence``, ``content``, ``text``). Part of the key when set: it changes the records."""
        return self._fields.text_column

    @property
    def label_column(self) -> str | None:
        """The column labels are read from (None: ``label``). Part of the key when set."""
        return self._fields.label_column

    @property
    def known(self) -> bool:
        """Whether ``source`` is one ``farm.training.data`` can build (``SOURCES``)."""
        return self.source in SOURCES

    @property
    def size(self) -> int | None:
        """Number of records when the spec alone says it (a subset, or a synthetic corpus), else
        None."""
        base = self.subset.n if self.subset else self.n if self.source == "synthetic" else None
        if base is None or self.canaries is None:
            return base
        return base + self.canaries.records

    def identity(self) -> dict[str, Any]:
        """What the spec contributes to a job key: its mapping, except that a file population
        pinned by the fingerprint of its data (``sha256``) is known by that, not by where the file
        lies. Moving the data (or the tree whose ``challenge.json`` names it) then changes no key.

        >>> PopulationSpec.of({"source": "file", "path": "/a/sst2", "sha256": "ab"}).identity()
        {'source': 'file', 'sha256': 'ab'}
        """
        spec = self.mapping
        return {k: v for k, v in spec.items() if not (k == "path" and "sha256" in spec)}

    def pinned(self, sha256: str) -> PopulationSpec:
        """The spec with the fingerprint of its data recorded."""
        return PopulationSpec({**self.mapping, "sha256": sha256})

    def with_path(self, path: str) -> PopulationSpec:
        """The spec with its file ``path`` replaced (made absolute by a loader)."""
        return PopulationSpec({**self.mapping, "path": path})

    def to_json(self) -> dict[str, Any]:
        """The mapping it was read from (what ``challenge.json`` and configs hold)."""
        return dict(self.mapping)
