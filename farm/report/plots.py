"""Log-log ROC plots as PNG (matplotlib, Agg backend; imported only when a plot is drawn)."""

from __future__ import annotations

import io
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from farm.store.atomic import atomic_write_bytes


def roc_png(
    curves: Mapping[str, tuple[np.ndarray, np.ndarray]], path: str | Path, *, title: str
) -> Path:
    """Draw ``label -> (fpr, tpr)`` curves on log-log axes with the chance line; write the PNG
    atomically."""
    # lazy: matplotlib loads only when a plot is drawn
    import matplotlib

    matplotlib.use("Agg")
    # lazy: matplotlib loads only when a plot is drawn
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 5), dpi=100)
    floor = 1e-4
    for label, (fpr, tpr) in curves.items():
        ax.plot(np.maximum(fpr, floor), np.maximum(tpr, floor), label=label, linewidth=1.5)
    ax.plot([floor, 1], [floor, 1], linestyle="--", color="grey", linewidth=1, label="chance")
    ax.axvline(0.1, color="black", linewidth=0.5, linestyle=":")
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
