"""Plots of a characterisation: board maps, conductance CDF (paper Fig. 3f), responses (Fig. 2)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import LogNorm  # noqa: E402

from hil.bench import COLS, ROWS, Bench  # noqa: E402
from hil.characterization.characterize import Result  # noqa: E402
from hil.characterization.classify import FAILED  # noqa: E402
from hil.pcb import (  # noqa: E402
    UNIT,
    ArrayLayout,  # noqa: E402
    draw_layout,
)

_MARK = {"stuck_on": "ON", "stuck_off": "OFF", "open": "OPN", "short": "SHT", "unstable": "UNS"}


def board_layout(bench: Bench, board: int) -> ArrayLayout:
    """One board alone, as an array of 12 x 10 cells."""
    return ArrayLayout(f"board {board}", (ROWS, COLS), ((board,),), bench.board_map.chip,
                       bench.board_map.pad)


def board_maps(bench: Bench, result: Result, out_dir: Path,
               tick: Callable[[], Any] | None = None) -> list[Path]:
    """One PNG per board: read-map conductance of its 12 x 10 cells (log scale), chip outlines,
    failed devices marked with their mode, open lines crossed out; ``tick()`` after each."""
    out_dir.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(6.2, 6.4))
    cmap = plt.get_cmap("viridis").with_extremes(bad="0.8")
    im = ax.imshow(np.full((ROWS, COLS), np.nan), cmap=cmap, norm=LogNorm(0.1, 1000))
    fig.colorbar(im, ax=ax, label=f"conductance at the read voltage ({UNIT})", shrink=0.8)
    chip = bench.board_map.chip
    draw_layout(ax, board_layout(bench, bench.board_ids[0]), board_labels=False)
    ax.set_xlabel("column (source line)")
    for k in np.unique(chip):
        r, c = np.nonzero(chip == k)
        ax.text(c.mean(), r.mean(), f"C{k}", ha="center", va="center", fontsize=6,
                color="white", alpha=0.6)
    paths = []
    marks: list[plt.Artist] = []
    for board, rows in result.table.groupby("board", sort=True):
        for artist in marks:
            artist.remove()
        marks.clear()
        grid = np.full((ROWS, COLS), np.nan)
        grid[rows["row"] - 1, rows["col"] - 1] = rows["g_start_uS"].clip(lower=0.1)
        im.set_data(grid)
        bad = rows[rows["mode"].isin(FAILED)]
        for r, c, m in zip(bad["row"], bad["col"], bad["mode"], strict=True):
            marks.append(ax.add_patch(plt.Rectangle((c - 1.45, r - 1.45), 0.9, 0.9, fill=False,
                                                    lw=2, color="red")))
            marks.append(ax.text(c - 1, r - 1, _MARK[m], ha="center", va="center",
                                 color="white", fontsize=7, weight="bold",
                                 bbox={"facecolor": "red", "pad": 1, "lw": 0}))
        lines = [f for f in result.fabric if f.board == board]
        for f in lines:
            xy = (([-0.5, COLS - 0.5], [f.index - 1] * 2) if f.line == "bl"
                  else ([f.index - 1] * 2, [-0.5, ROWS - 0.5]))
            marks.extend(ax.plot(*xy, color="red", lw=3, ls="--"))
        faults = ", ".join(f"{f.line.upper()} {f.index} open" for f in lines)
        ax.set_title(f"board {board}: {len(bad)} failed device(s)"
                     + (f"; fabric: {faults}" if faults else "") + "\nchips C1-C30 outlined",
                     fontsize=10)
        path = out_dir / f"board-{board}.png"
        fig.savefig(path, dpi=80)
        paths.append(path)
        if tick is not None:
            tick()
    plt.close(fig)
    return paths


def conductance_cdf(result: Result, path: Path) -> None:
    """Cumulative distribution of the read-map conductance of working devices, and in the inset
    the distribution of all judged devices with the failed ones apart (paper Fig. 3f)."""
    t = result.table
    ok = np.sort(t.loc[t["mode"] == "ok", "g_start_uS"].to_numpy())
    failed = t.loc[t["mode"].isin(FAILED), "g_start_uS"].to_numpy()
    fig, ax = plt.subplots(figsize=(6, 4.5))
    if ok.size:
        ax.step(ok, np.arange(1, ok.size + 1) / ok.size * 100, where="post", color="tab:red")
        ax.set_title(f"{ok.size} working devices, mean {ok.mean():.2f} {UNIT}; "
                     f"{failed.size} failed")
    ax.set_xlabel(f"conductance ({UNIT})")
    ax.set_ylabel("cumulative probability (%)")
    inset = ax.inset_axes([0.5, 0.12, 0.45, 0.45])
    bins = np.logspace(-1, 3.5, 46)
    for g, color, label in ((ok, "tab:red", "working"), (failed, "tab:blue", "failed")):
        counts, _ = np.histogram(np.clip(g[np.isfinite(g)], bins[0], bins[-1]), bins)
        inset.stairs(np.maximum(counts, 0.5), bins, baseline=0.5, fill=True, color=color,
                     alpha=0.8, label=label)
    inset.set_xscale("log")
    inset.set_yscale("log")
    inset.set_xlabel(UNIT, fontsize=7)
    inset.tick_params(labelsize=7)
    inset.legend(fontsize=7)
    fig.subplots_adjust(left=0.12, right=0.97, top=0.92, bottom=0.12)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def response_curves(result: Result, path: Path) -> None:
    """(a) SET and (b) RESET response of the curve devices, (c) the characterisation train of
    all working devices, median with 5-95 % band (paper Fig. 2)."""
    fig, axes = plt.subplots(1, 3, figsize=(13, 4))
    if result.curve_traces is not None:
        for ax, trace, name in zip(axes[:2], result.curve_traces, ("SET", "RESET"),
                                   strict=True):
            ax.plot(np.arange(trace.shape[0]), trace, lw=1)
            ax.set_title(f"{name} pulses, {trace.shape[1]} devices")
            ax.set_xlabel("pulse number")
            ax.set_ylabel(f"conductance ({UNIT})")
    else:
        for ax in axes[:2]:
            ax.text(0.5, 0.5, "no response curves measured", ha="center", transform=ax.transAxes)
    ok = (result.table["mode"] == "ok").to_numpy()
    ax = axes[2]
    if ok.any():
        trace = np.vstack([result.table["g_start_uS"].to_numpy()[None], *result.response])[:, ok]
        x = np.arange(trace.shape[0])
        lo, med, hi = np.percentile(trace, [5, 50, 95], axis=1)
        ax.fill_between(x, lo, hi, alpha=0.3, label="5-95 %")
        ax.plot(x, med, label="median")
        ax.axvline(len(result.response[0]), color="0.5", ls=":")
        ax.legend()
        ax.set_title(f"SET then RESET train, {int(ok.sum())} working devices")
    ax.set_xlabel("pulse number")
    ax.set_ylabel(f"conductance ({UNIT})")
    fig.subplots_adjust(left=0.05, right=0.99, top=0.92, bottom=0.13, wspace=0.25)
    fig.savefig(path, dpi=100)
    plt.close(fig)
