"""What the report says about each set of shadows: the mechanism their training metadata records
(``farm.shadows.scenario.shadow_mechanism``) and its one line
(``farm.report.attack_report.mechanism_text``)."""

from farm.report.attack_report import mechanism_text
from farm.shadows.scenario import Mechanism, shadow_mechanism
from farm.store.store import Store


def _meta(n, sigma=None, eps=None):
    recipe = {"batch_size": 1024, "dp": {"sampling": "shuffle"} if sigma else None}
    meta = {"recipe": recipe, "n_train": n, "steps": 198}
    if sigma:
        meta["dp"] = {
            "noise_multiplier": sigma,
            "sample_rate": 1024 / n,
            "clip": 6.4,
            "epsilon": eps,
            "delta": 1e-5,
        }
    return meta


def test_mechanism_of_matched_dp_shadows(tmp_path):
    store = Store(tmp_path / "store")
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "f").write_text("x")
    for key, n, eps in (("a", 52_000, 11.94), ("b", 52_010, 11.93)):
        store.put_dir(key, tmp_path / "d", {"train": _meta(n, 0.5014, eps)})
    m = shadow_mechanism(store, ["a", "b"], matched_n=67_349)
    assert m == Mechanism(
        shadows=2,
        n_train=(52_000, 52_010),
        batch_size=1024,
        steps=(198, 198),
        noise_multiplier=(0.5014, 0.5014),
        clip=6.4,
        sampling="shuffle",
        sample_rate=(1024 / 52_010, 1024 / 52_000),
        epsilon=(11.93, 11.94),
        delta=1e-5,
        matched_n=67_349,
    )
    text = mechanism_text(m)
    assert text.startswith(
        "2 shadows running the targets' mechanism (targets: 67,349 records, q = 0.0152)"
    )
    assert "sigma 0.501, clip 6.4, batch 1024 (shuffle), 198 steps" in text
    assert "q = 0.0197, epsilon spent 11.93-11.94 (delta 1e-05)" in text
    assert shadow_mechanism(store, []) is None


def test_mechanism_of_plain_shadows(tmp_path):
    store = Store(tmp_path / "store")
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "f").write_text("x")
    store.put_dir("a", tmp_path / "d", {"train": _meta(52_000)})
    m = shadow_mechanism(store, ["a"])
    assert m.noise_multiplier is None and m.epsilon is None
    assert mechanism_text(m) == "1 shadow on 52,000 records: no DP, batch 1024, 198 steps"
