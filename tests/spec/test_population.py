"""PopulationSpec: read once from a mapping, checked there, keyed by that mapping."""

from __future__ import annotations

import pickle

import pytest

from farm.errors import SpecError
from farm.spec.population import PopulationSpec, Subset


def test_typed_fields_with_defaults_and_the_mapping_kept_as_read():
    spec = PopulationSpec.of({"source": "synthetic", "n": 3000, "subset": {"n": 100}})
    assert (spec.source, spec.n, spec.seed, spec.path, spec.sha256) == (
        "synthetic",
        3000,
        0,
        None,
        None,
    )
    assert spec.subset == Subset(n=100) and spec.size == 100
    assert spec.to_json() == {"source": "synthetic", "n": 3000, "subset": {"n": 100}}
    assert PopulationSpec.of(spec) is spec


def test_identity_is_the_mapping_except_a_pinned_files_path():
    plain = {"source": "file", "path": "/data/sst2"}
    assert PopulationSpec.of(plain).identity() == plain
    pinned = PopulationSpec.of(plain).pinned("ab" * 32)
    assert pinned.identity() == {"source": "file", "sha256": "ab" * 32}
    assert pinned.with_path("/elsewhere").identity() == pinned.identity()  # moving data: same keys


@pytest.mark.parametrize(
    ("mapping", "key"),
    [
        ({"source": "synthetic"}, "population.n"),
        ({"source": "file"}, "population.path"),
        ({"source": "synthetic", "n": 5, "colour": "red"}, "population.colour"),
        ({"source": "synthetic", "n": "five"}, "population.n"),
        ({"source": "synthetic", "n": 5, "subset": {"n": 0}}, "population.subset.n"),
        ({"n": 5}, "population.source"),
    ],
)
def test_a_bad_spec_is_refused_naming_its_key(mapping, key):
    with pytest.raises(SpecError) as caught:
        PopulationSpec.of(mapping, "population")
    assert caught.value.key == key


def test_any_source_name_is_read_but_only_known_ones_are_known():
    assert not PopulationSpec.of({"source": "test"}).known
    assert PopulationSpec.of({"source": "glue-sst2"}).known


def test_a_spec_survives_pickling_as_workers_receive_it():
    spec = PopulationSpec.of({"source": "synthetic", "n": 7, "seed": 2})
    again = pickle.loads(pickle.dumps(spec))
    assert again == spec and again.n == 7 and again.identity() == spec.identity()
