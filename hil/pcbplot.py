"""Draw an array's PCB layout on a matplotlib axis: board grid, chip outlines, board ids and
ticks numbered as printed on the boards (rows 1-12, columns 1-10 on every board)."""

from __future__ import annotations

from matplotlib.axes import Axes
from matplotlib.collections import LineCollection

from hil.pcb import ArrayLayout

UNIT = "µS"


def draw_layout(ax: Axes, layout: ArrayLayout, *, board_labels: bool = True) -> None:
    """Board edges (thick), chip outlines (thin), board ids and PCB-numbered ticks over an
    ``imshow`` of the array (cell (i, j) centred on x=j, y=i)."""
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
