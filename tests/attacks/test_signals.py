import numpy as np

from farm.attacks.signals import log_softmax, logit_margin, true_label_logprob, true_label_prob


def test_pure_transforms():
    logits = np.array([[2.0, 0.0], [0.0, 3.0], [1.0, 1.0]])
    labels = np.array([0, 0, 1])
    np.testing.assert_allclose(np.exp(log_softmax(logits)).sum(-1), 1.0)
    np.testing.assert_allclose(
        true_label_logprob(logits, labels),
        [-np.log1p(np.exp(-2)), -np.log1p(np.exp(3)), np.log(0.5)],
    )
    np.testing.assert_allclose(true_label_prob(logits, labels)[2], 0.5)
    np.testing.assert_allclose(logit_margin(logits, labels), [2.0, -3.0, 0.0])
    stacked = np.stack(
        [logits, logits * 2]
    )  # [models, records, 2] broadcasts over labels [records]
    assert logit_margin(stacked, labels).shape == (2, 3)
    np.testing.assert_allclose(logit_margin(stacked, labels)[1], [4.0, -6.0, 0.0])
    assert np.isfinite(true_label_logprob(np.array([[1000.0, -1000.0]]), np.array([1]))).all()


def test_signals_refuse_arrays_of_the_wrong_shape():
    """Shapes are checked where signals are built, naming the field, its shape and the one
    expected (M models, R records, P points)."""
    import re

    import pytest

    from farm.attacks.signals import Signals

    m, r, p = 3, 5, 2
    good = {
        "logits": np.zeros((m, r, 2)),
        "labels": np.zeros(r, np.int64),
        "keep": np.zeros((m, r), np.int8),
        "challenge": np.zeros((m, p), np.int64),
        "labelled": np.ones(m, bool),
    }
    Signals(**good)
    bad = {
        "logits": (np.zeros((m, r)), "Signals.logits must be [M=3, R=5, C]"),
        "labels": (np.zeros(r + 1, np.int64), "Signals.labels must be [R=5]"),
        "challenge": (np.zeros((m + 1, p), np.int64), "Signals.challenge must be [M=3, P]"),
        "labelled": (np.ones(m - 1, bool), "Signals.labelled must be [M=3]"),
        "keep": (np.zeros(r, np.int8), "Signals.keep must be [M, R]"),
    }
    for field, (value, message) in bad.items():
        with pytest.raises(ValueError, match=re.escape(message)):
            Signals(**{**good, field: value})
    with pytest.raises(ValueError, match=r"columns of the R=5 records"):
        Signals(**{**good, "challenge": np.full((m, p), 5)})
    with pytest.raises(ValueError, match=r"classes 0..1"):
        Signals(**{**good, "labels": np.full(r, 2)})


def test_the_array_api_from_the_package():
    """``farm.Signals``, ``farm.run_attack`` and ``farm.score`` are the working path of the README's
    Python API, without torch or Ray."""
    import subprocess
    import sys

    code = (
        "import sys, numpy as np, farm\n"
        "rng = np.random.default_rng(0)\n"
        "m, r, p = 6, 40, 10\n"
        "keep = rng.integers(0, 2, (m, r)).astype(np.int8)\n"
        "margin = 2.0 * keep + rng.normal(size=(m, r))\n"
        "challenge = np.stack([rng.choice(r, p, replace=False) for _ in range(m)])\n"
        "s = farm.Signals(logits=np.stack([margin / 2, -margin / 2], -1),\n"
        "    labels=np.zeros(r, np.int64), keep=keep, challenge=challenge,\n"
        "    labelled=np.ones(m, bool))\n"
        "scores = farm.run_attack('lira_online', s, np.arange(m))\n"
        "truth = np.stack([keep[t, challenge[t]] for t in range(m)])\n"
        "assert scores.shape == (m, p)\n"
        "assert farm.score(truth, scores)['AUC'] > 0.8\n"
        "assert 'rmia' in farm.ATTACKS and not farm.needs('rmia')\n"
        "assert 'torch' not in sys.modules and 'ray' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
