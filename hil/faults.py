"""Failed devices and broken lines: placed at random by rate and mix, or read from a fault map.

Fault-map format (CSV with header)::

    board,row,col,mode
    3,7,2,stuck_on
    3,1,10,stuck_off
    3,4,6,open
    5,12,1,short
    7,5,*,open_bl
    7,*,3,open_sl

``board`` is the board id of the bench file, ``row`` 1-12 and ``col`` 1-10 as labelled on the
PCB. A cell's ``mode`` is one of :data:`MODES`: ``open`` carries no current and ignores pulses
(a broken pad or filament), ``short`` conducts far beyond any memristor state (a hard breakdown).
Two line faults break the fabric rather than a device, with ``*`` for the whole line:
``open_bl`` (the bit line of that row is open, row given, ``col`` is ``*``) and ``open_sl`` (the
source line of that column, ``row`` is ``*``). Every cell on an open line behaves as ``open``,
whatever its device, because no current reaches it; the characterizer must report the line once,
not its twelve (or ten) cells.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hil.bench import CELLS, COLS, ROWS, Bench
from hil.errors import DataError, HilError

OK, STUCK_OFF, STUCK_ON, OPEN, SHORT = 0, 1, 2, 3, 4
MODES = {"ok": OK, "stuck_off": STUCK_OFF, "stuck_on": STUCK_ON, "open": OPEN, "short": SHORT}
MODE_NAMES = {v: k for k, v in MODES.items()}
LINE_MODES = {"open_bl": "bl", "open_sl": "sl"}


def fraction(item: str, option: str, text: str) -> float:
    """A fraction 0-1, the one convention for rates on the command line: a percentage (``6.15%``
    or a number above 1) is refused in one line saying the fraction it would be."""
    value = item.strip().rstrip("%")
    try:
        v = float(value)
    except ValueError:
        raise HilError(f"{option} {text!r}: expected fractions 0-1 (e.g. 0.0615)") from None
    if item.strip().endswith("%") or 1 < v <= 100:
        raise HilError(f"{option} {text!r}: expected fractions 0-1, not percentages "
                       f"({v:g} % is {v / 100:g})")
    if not 0 <= v <= 1:
        raise HilError(f"{option} {text!r}: fractions must be 0-1")
    return v


@dataclass(frozen=True)
class FailureRate:
    """``--failures RATE[:MIX]``: each device fails with probability ``rate``, a fraction
    ``mix`` of the failed ones stuck on."""

    rate: float
    mix: float = 0.5

    @classmethod
    def parse(cls, text: str) -> FailureRate:
        parts = [fraction(p, "--failures", text) for p in text.split(":")]
        if len(parts) not in (1, 2):
            raise HilError(
                f"--failures {text!r}: expected RATE[:MIX], fractions 0-1 (e.g. 0.0615:0.5)"
            )
        return cls(*parts)

    def place(self, bench: Bench, seed: int) -> np.ndarray:
        """Mode of every device of ``bench``: each fails with probability ``rate``, stuck on
        with probability ``rate * mix``. The draws are seeded per board, so a cell fails alike
        on every bench that holds its board: the whole bench ``hil characterize`` sees and the
        network's boards ``hil train`` uses give the same failed devices for the same seed."""
        u = np.concatenate([np.random.default_rng([seed, 7, board]).random(CELLS)
                            for board in bench.board_ids])
        modes = np.where(u < self.rate, STUCK_OFF, OK).astype(np.int8)
        modes[u < self.rate * self.mix] = STUCK_ON
        return modes


@dataclass(frozen=True)
class LineFault:
    """An open line of the switching fabric: ``bl`` (row 1-12) or ``sl`` (column 1-10)."""

    board: int
    line: str
    index: int

    def devices(self, bench: Bench) -> np.ndarray:
        """Flat indices of the cells the line serves."""
        first = bench.board_pos(self.board) * CELLS
        if self.line == "bl":
            return first + (self.index - 1) * COLS + np.arange(COLS)
        return first + np.arange(ROWS) * COLS + (self.index - 1)


@dataclass(frozen=True)
class FaultMap:
    """What is broken on a (simulated) bench: device modes, and open lines on top of them."""

    cells: np.ndarray
    lines: tuple[LineFault, ...] = ()

    def modes(self, bench: Bench, replaced: np.ndarray | None = None) -> np.ndarray:
        """Mode of every device as the bench behaves: devices whose chip was ``replaced`` are
        fresh (``ok``), and every cell on an open line is ``open`` (a new chip mends no line)."""
        modes = self.cells.copy()
        if replaced is not None:
            modes[np.asarray(replaced, dtype=np.int64)] = OK
        for line in self.lines:
            modes[line.devices(bench)] = OPEN
        return modes


def read_fault_map(path: str | Path, bench: Bench) -> np.ndarray:
    """Mode of every device of ``bench`` from a fault-map CSV (cells on open lines ``open``)."""
    return load_fault_map(path, bench).modes(bench)


def load_fault_map(path: str | Path, bench: Bench) -> FaultMap:
    """Device modes and line faults of a fault-map CSV; unknown cells are errors."""
    cells = np.zeros(bench.n_devices, dtype=np.int8)
    lines: list[LineFault] = []
    try:
        with open(path, newline="") as fh:
            reader = csv.DictReader(fh)
            if reader.fieldnames is None or not {"board", "row", "col", "mode"} <= set(
                reader.fieldnames
            ):
                raise DataError(f"{path}: header must be board,row,col,mode")
            for line, rec in enumerate(reader, start=2):
                mode = (rec.get("mode") or "").strip()
                if mode in LINE_MODES:
                    lines.append(_line_fault(path, line, rec, bench, LINE_MODES[mode]))
                elif mode in MODES:
                    cells[_fault_device(path, line, rec, bench)] = MODES[mode]
                else:
                    known = ", ".join([*MODES, *LINE_MODES])
                    raise DataError(f"{path}: line {line}: mode {mode!r} is not one of {known}")
    except OSError as exc:
        raise DataError(f"{path}: cannot read fault map: {exc.strerror}") from None
    return FaultMap(cells, tuple(lines))


def _board(path: object, line: int, rec: dict[str, str], bench: Bench) -> int:
    try:
        board = int(rec["board"])
    except (TypeError, ValueError):
        raise DataError(f"{path}: line {line}: board must be an integer") from None
    if board not in bench.board_ids:
        raise DataError(f"{path}: line {line}: board {board} is not on bench {bench.name}"
                        if not bench.whole_board_ids or board not in bench.whole_board_ids else
                        f"{path}: line {line}: board {board} is on bench {bench.name} but not "
                        f"in network {next(iter(bench.networks))} (its boards: "
                        f"{', '.join(map(str, bench.board_ids))})")
    return board


def _line_fault(
    path: object, line: int, rec: dict[str, str], bench: Bench, kind: str
) -> LineFault:
    board = _board(path, line, rec, bench)
    index_key, star_key, size = ("row", "col", ROWS) if kind == "bl" else ("col", "row", COLS)
    if (rec.get(star_key) or "").strip() != "*":
        raise DataError(f"{path}: line {line}: open_{kind} needs {star_key} '*' (whole line)")
    try:
        index = int(rec[index_key])
    except (TypeError, ValueError):
        raise DataError(f"{path}: line {line}: open_{kind} needs an integer {index_key}") from None
    if not 1 <= index <= size:
        raise DataError(f"{path}: line {line}: {index_key} {index} is off the 12x10 board")
    return LineFault(board, kind, index)


def _fault_device(path: object, line: int, rec: dict[str, str], bench: Bench) -> int:
    board = _board(path, line, rec, bench)
    try:
        row, col = (int(rec[k]) for k in ("row", "col"))
    except (TypeError, ValueError):
        raise DataError(f"{path}: line {line}: row,col must be integers") from None
    if not (1 <= row <= ROWS and 1 <= col <= COLS):
        raise DataError(f"{path}: line {line}: cell ({row},{col}) is off the 12x10 board")
    return int(bench.devices(np.array([board]), np.array([row]), np.array([col]))[0])
