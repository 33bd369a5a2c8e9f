"""Where each cell of a logical array sits on the PCBs: board id, row 1-12, column 1-10, chip and
pad, exactly as labelled on the boards.

Every conductance map (the PNGs and the live page) draws arrays through this one description, so
a bright cell on any plot can be traced to a board, a chip and a pad with the tweezers. A run
stores its layouts in ``run.sqlite`` (``meta.layout``) so that a viewer needs no bench file.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from hil.bench import COLS, ROWS, Bench

if TYPE_CHECKING:  # matplotlib is imported by the static plots only: the live page needs none
    from matplotlib.axes import Axes


@dataclass(frozen=True)
class ArrayLayout:
    """One logical array: its shape, the grid of board ids tiling it (``grid[i][j]`` covers rows
    ``12 i ..`` and columns ``10 j ..``) and the board map (chip and pad of each cell)."""

    name: str
    shape: tuple[int, int]
    grid: tuple[tuple[int, ...], ...]
    chip: np.ndarray  # (12, 10)
    pad: np.ndarray  # (12, 10)

    @classmethod
    def of(cls, bench: Bench, name: str) -> ArrayLayout:
        spec = bench.arrays[name]
        return cls(name, spec.shape, spec.grid, bench.board_map.chip, bench.board_map.pad)

    def labels(self) -> dict[str, np.ndarray]:
        """PCB labels of every cell, each a ``shape`` array: board, row, col, chip, pad."""
        r = np.arange(self.shape[0])[:, None]
        c = np.arange(self.shape[1])[None, :]
        grid = np.asarray(self.grid, dtype=np.int64)
        rr, cc = np.broadcast_arrays(r % ROWS, c % COLS)
        return {
            "board": grid[r // ROWS, c // COLS],
            "row": rr + 1,
            "col": cc + 1,
            "chip": self.chip[rr, cc],
            "pad": self.pad[rr, cc],
        }

    def board_edges(self) -> list[tuple[float, float, float, float]]:
        """Board boundaries inside the array as segments (x0, y0, x1, y1) in cell coordinates
        (cell (i, j) spans x j-0.5..j+0.5, y i-0.5..i+0.5), the array's edge included."""
        rows, cols = self.shape
        x1, y1 = cols - 0.5, rows - 0.5
        segs = [(x, -0.5, x, y1) for x in np.arange(COLS, cols, COLS) - 0.5]
        segs += [(-0.5, y, x1, y) for y in np.arange(ROWS, rows, ROWS) - 0.5]
        segs += [(-0.5, -0.5, x1, -0.5), (-0.5, y1, x1, y1), (-0.5, -0.5, -0.5, y1),
                 (x1, -0.5, x1, y1)]
        return [tuple(map(float, s)) for s in segs]

    def chip_edges(self) -> list[tuple[float, float, float, float]]:
        """Segments between neighbouring cells on different chips of the same board."""
        chip = self.labels()["chip"]
        board = self.labels()["board"]
        split_c = (chip[:, 1:] != chip[:, :-1]) & (board[:, 1:] == board[:, :-1])
        split_r = (chip[1:, :] != chip[:-1, :]) & (board[1:, :] == board[:-1, :])
        segs = [(c + 0.5, r - 0.5, c + 0.5, r + 0.5) for r, c in zip(*np.nonzero(split_c),
                                                                       strict=True)]
        segs += [(c - 0.5, r + 0.5, c + 0.5, r + 0.5) for r, c in zip(*np.nonzero(split_r),
                                                                        strict=True)]
        return [tuple(map(float, s)) for s in segs]

    def board_centres(self) -> list[tuple[int, float, float]]:
        """(board id, x, y) of the middle of each board's part of the array."""
        out = []
        for i, row in enumerate(self.grid):
            for j, board in enumerate(row):
                y0, y1 = i * ROWS, min((i + 1) * ROWS, self.shape[0])
                x0, x1 = j * COLS, min((j + 1) * COLS, self.shape[1])
                out.append((int(board), (x0 + x1 - 1) / 2, (y0 + y1 - 1) / 2))
        return out

    def ticks(self, axis: int) -> tuple[list[int], list[str]]:
        """Tick positions and PCB labels along rows (axis 0) or columns (axis 1): every cell
        numbered 1-12 / 1-10 on its board, so the label is what is printed on the PCB."""
        n, per = self.shape[axis], (ROWS, COLS)[axis]
        pos = list(range(n))
        return pos, [str(p % per + 1) for p in pos]

    def to_json(self) -> dict[str, Any]:
        return {"shape": list(self.shape), "grid": [list(r) for r in self.grid],
                "chip": self.chip.tolist(), "pad": self.pad.tolist()}

    @classmethod
    def from_json(cls, name: str, data: dict[str, Any]) -> ArrayLayout:
        return cls(name, tuple(data["shape"]), tuple(tuple(r) for r in data["grid"]),
                   np.asarray(data["chip"], dtype=np.int64),
                   np.asarray(data["pad"], dtype=np.int64))


def layouts(bench: Bench) -> dict[str, ArrayLayout]:
    """The layout of every array of a bench (a bench made ``for_network`` has the network's)."""
    return {name: ArrayLayout.of(bench, name) for name in bench.arrays}


UNIT = "µS"  # conductance unit on every plot


def draw_layout(ax: Axes, layout: ArrayLayout, *, board_labels: bool = True) -> None:
    """Board edges (thick), chip outlines (thin), board ids and PCB-numbered ticks over an
    ``imshow`` of the array (cell (i, j) centred on x=j, y=i)."""
    from matplotlib.collections import LineCollection

    chips = LineCollection([[(x0, y0), (x1, y1)] for x0, y0, x1, y1 in layout.chip_edges()],
                           colors="white", linewidths=0.5, alpha=0.7)
    boards = LineCollection([[(x0, y0), (x1, y1)] for x0, y0, x1, y1 in layout.board_edges()],
                            colors="black", linewidths=2.0)
    ax.add_collection(chips)
    ax.add_collection(boards)
    if board_labels:
        for board, x, y in layout.board_centres():
            ax.text(x, y, f"board {board}", ha="center", va="center", fontsize=7,
                    color="white", alpha=0.8, weight="bold")
    small = max(layout.shape) > 30
    for axis, set_ticks in ((0, ax.set_yticks), (1, ax.set_xticks)):
        pos, labels = layout.ticks(axis)
        set_ticks(pos, labels, fontsize=4 if small else 7)
    ax.set_xlabel("column on the board (source line; G+ odd, G− even)")
    ax.set_ylabel("row on the board (bit line)")
