"""PNG plots of a run, in the style of the paper's figures (accuracy curves, conductance maps and
cumulative distributions)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


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
    _finish_line_plot(fig, ax, path, "epoch", "accuracy (%)", title)


def conductance_maps(path: Path, arrays: dict[str, np.ndarray], title: str) -> None:
    fig, axes = plt.subplots(1, len(arrays), figsize=(4.5 * len(arrays), 5), squeeze=False)
    for ax, (name, g) in zip(axes[0], arrays.items(), strict=True):
        im = ax.imshow(g, aspect="auto", cmap="viridis", interpolation="nearest")
        ax.set_title(f"{name} ({g.shape[0]}x{g.shape[1]})")
        ax.set_xlabel("column (G+ even, G- odd)")
        ax.set_ylabel("row (bit line)")
        fig.colorbar(im, ax=ax, label="conductance (uS)")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def conductance_cdf(path: Path, arrays: dict[str, np.ndarray], title: str) -> None:
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for name, g in arrays.items():
        v = np.sort(g.ravel())
        ax.plot(v, 100 * np.arange(1, len(v) + 1) / len(v), label=name)
    _finish_line_plot(fig, ax, path, "conductance (uS)", "cumulative devices (%)", title)


def _finish_line_plot(fig, ax, path: Path, xlabel: str, ylabel: str, title: str) -> None:
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
