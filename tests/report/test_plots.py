"""ROC plots: the log axes start at the smallest reachable FPR, FPR = 0 is never drawn as a line
from an invented FPR, the FPR = 0.1 line is labelled, and baselines are drawn dashed."""

import numpy as np
import pytest

from farm.report.plots import log_roc_points, roc_figure, roc_floor, roc_png


def test_floor_is_the_smallest_reachable_fpr():
    assert roc_floor([200]) == 1 / 200  # not a fixed 1e-4
    assert roc_floor([20, 200, 50]) == 1 / 200  # the curve with the most non-members
    assert roc_floor([]) == 1.0
    with pytest.raises(ValueError, match="at least one non-member"):
        roc_floor([0])


def test_fpr_zero_points_are_not_drawn_as_lines():
    fpr = np.array([0.0, 0.0, 0.05, 0.5, 1.0])
    tpr = np.array([0.0, 0.3, 0.4, 0.6, 1.0])
    x, y, at_zero = log_roc_points(fpr, tpr, 0.05)
    assert x.tolist() == [0.05, 0.5, 1.0] and y.tolist() == [0.4, 0.6, 1.0] and at_zero == 0.3
    x, y, at_zero = log_roc_points(np.array([0.0, 0.5, 1.0]), np.array([0.0, 0.0, 1.0]), 0.01)
    assert x.tolist() == [0.5, 1.0] and y.tolist() == [0.01, 1.0] and at_zero == 0.0


def test_figure_axes_lines_and_labels():
    import matplotlib.pyplot as plt

    attack = (np.array([0.0, 0.0, 0.02, 0.1, 1.0]), np.array([0.0, 0.2, 0.3, 0.5, 1.0]))
    loss = (np.array([0.0, 0.04, 1.0]), np.array([0.0, 0.1, 1.0]))
    fig = roc_figure(
        {"dev: rmia": attack, "dev: loss baseline": loss},
        {"dev: rmia": 50, "dev: loss baseline": 50},
        title="t",
        dashed=["dev: loss baseline"],
    )
    try:
        ax = fig.axes[0]
        assert ax.get_xlim()[0] == pytest.approx(1 / 50) and ax.get_ylim()[0] == pytest.approx(
            1 / 50
        )
        lines = {line.get_label(): line for line in ax.get_lines()}
        assert np.min(lines["dev: rmia"].get_xdata()) == 0.02  # starts at its first FPR > 0
        assert lines["dev: loss baseline"].get_linestyle() == "--"
        assert lines["dev: rmia"].get_linestyle() == "-"
        zero = [ln for ln in ax.get_lines() if ln.get_marker() == "<"]  # TPR 0.2 at FPR 0
        assert len(zero) == 1 and zero[0].get_ydata().tolist() == [0.2]
        legend = [t.get_text() for t in ax.get_legend().get_texts()]
        assert "FPR = 0.1 (TPR@0.1FPR)" in legend
    finally:
        plt.close(fig)


def test_every_curve_needs_its_count_of_non_members(tmp_path):
    curve = (np.array([0.0, 1.0]), np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match="no count of non-members"):
        roc_png({"a": curve}, {}, tmp_path / "x.png", title="t")
    path = roc_png({"a": curve}, {"a": 10}, tmp_path / "x.png", title="t")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
