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
