"""Failed devices: placed at random by rate and mix, or read from a fault-map CSV.

Fault-map format (CSV with header)::

    board,row,col,mode
    3,7,2,stuck_on
    3,1,10,stuck_off

``board`` is the board id of the bench file, ``row`` 1-12 and ``col`` 1-10 as labelled on the
PCB, ``mode`` one of :data:`MODES`.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hil.bench import COLS, ROWS, Bench
from hil.errors import DataError, HilError

OK, STUCK_OFF, STUCK_ON = 0, 1, 2
MODES = {"ok": OK, "stuck_off": STUCK_OFF, "stuck_on": STUCK_ON}
MODE_NAMES = {v: k for k, v in MODES.items()}


@dataclass(frozen=True)
class FailureRate:
    """``--failures RATE[:MIX]``: a fraction of devices fails, ``mix`` of them stuck-on."""

    rate: float
    mix: float = 0.5

    @classmethod
    def parse(cls, text: str) -> FailureRate:
        try:
            parts = [float(p) for p in text.split(":")]
        except ValueError:
            parts = []
        if len(parts) not in (1, 2) or not 0 <= parts[0] <= 1 or not 0 <= parts[-1] <= 1:
            raise HilError(
                f"--failures {text!r}: expected RATE[:MIX], fractions 0-1 (e.g. 0.0615:0.5)"
            )
        return cls(*parts)

    def place(self, n_devices: int, rng: np.random.Generator) -> np.ndarray:
        """Mode of every device: exactly round(rate * n) failures at random positions."""
        modes = np.zeros(n_devices, dtype=np.int8)
        k = round(self.rate * n_devices)
        failed = rng.choice(n_devices, size=k, replace=False)
        n_on = round(self.mix * k)
        modes[failed[:n_on]] = STUCK_ON
        modes[failed[n_on:]] = STUCK_OFF
        return modes


def read_fault_map(path: str | Path, bench: Bench) -> np.ndarray:
    """Mode of every device of ``bench`` from a fault-map CSV; unknown cells are errors."""
    modes = np.zeros(bench.n_devices, dtype=np.int8)
    try:
        with open(path, newline="") as fh:
            reader = csv.DictReader(fh)
            if reader.fieldnames is None or not {"board", "row", "col", "mode"} <= set(
                reader.fieldnames
            ):
                raise DataError(f"{path}: header must be board,row,col,mode")
            for line, rec in enumerate(reader, start=2):
                modes[_fault_device(path, line, rec, bench)] = _fault_mode(path, line, rec)
    except OSError as exc:
        raise DataError(f"{path}: cannot read fault map: {exc.strerror}") from None
    return modes


def _fault_mode(path: object, line: int, rec: dict[str, str]) -> int:
    mode = (rec.get("mode") or "").strip()
    if mode not in MODES:
        raise DataError(f"{path}: line {line}: mode {mode!r} is not one of {', '.join(MODES)}")
    return MODES[mode]


def _fault_device(path: object, line: int, rec: dict[str, str], bench: Bench) -> int:
    try:
        board, row, col = (int(rec[k]) for k in ("board", "row", "col"))
    except (TypeError, ValueError):
        raise DataError(f"{path}: line {line}: board,row,col must be integers") from None
    if board not in bench.board_ids:
        raise DataError(f"{path}: line {line}: board {board} is not on bench {bench.name}")
    if not (1 <= row <= ROWS and 1 <= col <= COLS):
        raise DataError(f"{path}: line {line}: cell ({row},{col}) is off the 12x10 board")
    return int(bench.devices(np.array([board]), np.array([row]), np.array([col]))[0])
