"""PNG plots of a run, in the style of the paper's figures (accuracy curves, conductance maps and
cumulative distributions)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from hil.pcb import (  # noqa: E402
    UNIT,
    ArrayLayout,  # noqa: E402
    draw_layout,
)


def accuracy_plot(path: Path, epochs: list[int], test: list[float], train: list[float],
                  title: str, found: list[tuple[float, float]] = ()) -> None:
    """Accuracy vs epoch; ``found``: (epoch, test accuracy) of the network as ``hil repair``
    found it after its devices failed, drawn between the training and the repair's epochs."""
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot(epochs, 100 * np.asarray(test), "o-", label="test (measured through the arrays)")
    ax.plot(epochs, 100 * np.asarray(train), "s--", alpha=0.6, label="train (running)")
    if found:
        x, acc = zip(*found, strict=True)
        ax.plot(x, 100 * np.asarray(acc), "rX", ms=9, label="test, devices failed (repaired after)")
        for xi in x:
            ax.axvline(xi, color="r", alpha=0.3, lw=1)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    _finish_line_plot(fig, ax, path, "epoch", "accuracy (%)", title)


def conductance_maps(path: Path, arrays: dict[str, np.ndarray],
                     layouts: dict[str, ArrayLayout], title: str) -> None:
    """Each array drawn as its PCB boards: board grid, chip outlines, rows and columns numbered
    as on the boards, so a cell can be traced to its board, chip and pad."""
    widths = [layouts[name].shape[1] for name in arrays]
    fig, axes = plt.subplots(1, len(arrays), figsize=(2.0 + 0.13 * sum(widths) + 2 * len(arrays),
                                                      6.5),
                             squeeze=False, gridspec_kw={"width_ratios": widths})
    for ax, (name, g) in zip(axes[0], arrays.items(), strict=True):
        im = ax.imshow(g, aspect="auto", cmap="viridis", interpolation="nearest")
        layout = layouts[name]
        draw_layout(ax, layout)
        boards = len({b for row in layout.grid for b in row})
        ax.set_title(f"{name} ({g.shape[0]} × {g.shape[1]}, {boards} boards)", fontsize=9)
        fig.colorbar(im, ax=ax, label=f"conductance ({UNIT})", shrink=0.8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def conductance_cdf(path: Path, arrays: dict[str, np.ndarray], title: str) -> None:
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for name, g in arrays.items():
        v = np.sort(g.ravel())
        ax.plot(v, 100 * np.arange(1, len(v) + 1) / len(v), label=name)
    _finish_line_plot(fig, ax, path, f"conductance ({UNIT})", "cumulative devices (%)", title)


def _finish_line_plot(fig, ax, path: Path, xlabel: str, ylabel: str, title: str) -> None:
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
