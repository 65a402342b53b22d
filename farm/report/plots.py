"""Log-log ROC plots as PNG (matplotlib, Agg backend; imported only when a plot is drawn)."""

from __future__ import annotations

import io
from collections.abc import Collection, Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from farm.store.atomic import atomic_write_bytes


def roc_floor(negatives: Iterable[int]) -> float:
    """The left end of a log ROC axis: the smallest FPR any of the curves can reach, 1 / (the most
    non-members of a curve); 1 with no curve. ``negatives``: each curve's number of non-members
    (each at least 1)."""
    counts = [int(n) for n in negatives]
    if any(n < 1 for n in counts):
        raise ValueError(f"a ROC curve needs at least one non-member, got {counts}")
    return 1.0 / max(counts, default=1)


def log_roc_points(
    fpr: np.ndarray, tpr: np.ndarray, floor: float
) -> tuple[np.ndarray, np.ndarray, float]:
    """What a log-log plot can draw of a ROC curve: its points with FPR > 0 (TPR raised to
    ``floor`` where it is lower, i.e. drawn on the axis' bottom edge), and the best TPR at FPR = 0,
    which no log axis can place (drawn as a marker on the left edge, never as a line from an
    invented FPR)."""
    fpr, tpr = np.asarray(fpr, np.float64), np.asarray(tpr, np.float64)
    zero = fpr <= 0
    at_zero = float(tpr[zero].max()) if zero.any() else 0.0
    return fpr[~zero], np.maximum(tpr[~zero], floor), at_zero


def roc_figure(
    curves: Mapping[str, tuple[np.ndarray, np.ndarray]],
    negatives: Mapping[str, int],
    *,
    title: str,
    dashed: Collection[str] = (),
) -> Any:
    """A matplotlib figure of ``label -> (fpr, tpr)`` curves on log-log axes starting at
    ``roc_floor`` of ``negatives`` (``label -> number of non-members``, one per curve): each curve
    from its first point with FPR > 0 (its TPR at FPR = 0, if above 0, a marker on the left edge),
    the chance line, and the FPR = 0.1 line (where MICO's score is read) labelled. Curves named in
    ``dashed`` (baselines) are drawn dashed and thinner. The caller closes the figure."""
    # lazy: matplotlib loads only when a plot is drawn
    import matplotlib

    matplotlib.use("Agg")
    # lazy: matplotlib loads only when a plot is drawn
    import matplotlib.pyplot as plt

    missing = sorted(set(curves) - set(negatives))
    if missing:
        raise ValueError(f"no count of non-members for the ROC curves {missing}")
    floor = roc_floor(negatives[label] for label in curves)
    fig, ax = plt.subplots(figsize=(5, 5), dpi=100)
    for label, (fpr, tpr) in curves.items():
        x, y, at_zero = log_roc_points(fpr, tpr, floor)
        style = {"linestyle": "--", "linewidth": 1.0} if label in dashed else {"linewidth": 1.5}
        (line,) = ax.plot(x, y, label=label, **style)
        if at_zero > floor:
            ax.plot([floor], [at_zero], marker="<", color=line.get_color(), clip_on=False)
    ax.plot([floor, 1], [floor, 1], linestyle=":", color="grey", linewidth=1, label="chance")
    ax.axvline(0.1, color="black", linewidth=0.7, linestyle="-.", label="FPR = 0.1 (TPR@0.1FPR)")
    ax.set(
        xscale="log",
        yscale="log",
        xlim=(floor, 1),
        ylim=(floor, 1.05),
        xlabel="FPR",
        ylabel="TPR",
        title=title,
    )
    ax.legend(loc="lower right", fontsize=7)
    ax.grid(True, which="both", alpha=0.3)
    return fig


def roc_png(
    curves: Mapping[str, tuple[np.ndarray, np.ndarray]],
    negatives: Mapping[str, int],
    path: str | Path,
    *,
    title: str,
    dashed: Collection[str] = (),
) -> Path:
    """Draw ``roc_figure`` of ``curves`` and write the PNG atomically; returns its path."""
    fig = roc_figure(curves, negatives, title=title, dashed=dashed)
    # lazy: matplotlib loads only when a plot is drawn (roc_figure chose the Agg backend)
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", bbox_inches="tight")
    plt.close(fig)
    return atomic_write_bytes(path, buffer.getvalue())


def tradeoff_png(
    empirical: tuple[np.ndarray, np.ndarray],
    curves: Mapping[str, np.ndarray],
    path: str | Path,
    *,
    title: str,
) -> Path:
    """Draw the empirical trade-off ``(fpr, fnr)`` as a step line and each ``label -> fnr`` curve
    (on a grid of 501 FPRs from 0 to 1, e.g. ``farm.privacy.tradeoff.dp_tradeoff``) on linear
    axes, with the no-privacy corner and the perfect-privacy diagonal; write the PNG atomically."""
    # lazy: matplotlib loads only when a plot is drawn
    import matplotlib

    matplotlib.use("Agg")
    # lazy: matplotlib loads only when a plot is drawn
    import matplotlib.pyplot as plt

    grid = tradeoff_grid()
    fig, ax = plt.subplots(figsize=(5, 5), dpi=100)
    ax.plot([0, 1], [1, 0], linestyle="--", color="grey", linewidth=1, label="epsilon = 0")
    for label, fnr in curves.items():
        ax.plot(grid, fnr, linewidth=1.5, label=label)
    fpr, fnr = empirical
    ax.step(fpr, fnr, where="post", color="black", linewidth=1, label="empirical (canaries)")
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="FPR (type I error)", ylabel="FNR (type II error)")
    ax.set_title(title, fontsize=9)
    ax.legend(loc="upper right", fontsize=7)
    ax.grid(True, alpha=0.3)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", bbox_inches="tight")
    plt.close(fig)
    return atomic_write_bytes(path, buffer.getvalue())


def tradeoff_grid() -> np.ndarray:
    """The FPR grid ``tradeoff_png`` draws its curves on."""
    return np.linspace(0.0, 1.0, 501)
