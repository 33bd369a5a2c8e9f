"""The one physics model every emulated instrument shares.

The multiplexer state (per board: WL gates, bit lines on the source bus, source lines to ground or
to the measure bus; exactly the four switch sets of the MCU protocol) decides which cells an
instrument reaches: a pulse from the generator changes exactly the cells whose WL, BL and grounded
SL are all closed, and the SMU measures the summed current of exactly the cells whose WL, BL and
measured SL are closed. The device physics is :class:`hil.backends.sim.SimBackend`'s, so the
emulated bench and the simulated backend behave alike for the same seed.

Hardware trigger lines are modelled as callbacks: an instrument that emits a trigger (the SMU
after each list-sweep point, the generator after each pulse of a burst) calls
:meth:`BenchModel.trigger`, and the MCU's table mode listens to it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from hil.backends.base import RESET, SET
from hil.backends.sim import SimBackend
from hil.bench import CELLS, COLS, ROWS, Bench


@dataclass(frozen=True)
class DeliveredPulse:
    """One pulse as the cells saw it: which devices, the voltage at the cell (V, signed: > 0
    is SET), and the width (s)."""

    devices: tuple[int, ...]
    voltage: float
    width: float

    @property
    def polarity(self) -> int:
        return SET if self.voltage > 0 else RESET


class BenchModel:
    """Shared state of the emulated bench: device physics, switch matrix, trigger wiring."""

    def __init__(self, bench: Bench, seed: int | None = None, modes: np.ndarray | None = None):
        self.bench = bench
        self.lock = threading.RLock()
        self.sim = SimBackend(bench, seed=seed, modes=modes)
        n = len(bench.board_ids)
        self.board_pos = {b: i for i, b in enumerate(bench.board_ids)}
        self.wl = np.zeros((n, COLS), dtype=bool)
        self.bls = np.zeros((n, ROWS), dtype=bool)
        self.slg = np.zeros((n, COLS), dtype=bool)
        self.slm = np.zeros((n, COLS), dtype=bool)
        self.pulses: list[DeliveredPulse] = []
        self.listeners: list[Callable[[], None]] = []

    # ---- switches -----------------------------------------------------------------------

    def attach_switches(self, closed: np.ndarray) -> None:
        """Make the switch arrays views of ``closed`` (boards x WL, BLS, SLG, SLM columns): the
        switch state then lives with whoever writes ``closed`` (the firmware's hardware)."""
        with self.lock:
            self.wl, self.bls = closed[:, :COLS], closed[:, COLS:COLS + ROWS]
            self.slg, self.slm = closed[:, COLS + ROWS:2 * COLS + ROWS], closed[:, 2 * COLS + ROWS:]

    def detach_switches(self) -> None:
        """Keep the last switch state in arrays of this process."""
        with self.lock:
            self.wl, self.bls, self.slg, self.slm = (
                a.copy() for a in (self.wl, self.bls, self.slg, self.slm))

    def open_all(self) -> None:
        with self.lock:
            for a in (self.wl, self.bls, self.slg, self.slm):
                a[:] = False

    def all_open(self) -> bool:
        return not (self.wl.any() or self.bls.any() or self.slg.any() or self.slm.any())

    def _cells(self, sl: np.ndarray) -> np.ndarray:
        hit = self.bls[:, :, None] & (self.wl & sl)[:, None, :]  # (boards, rows, cols)
        b, r, c = np.nonzero(hit)
        return b * CELLS + r * COLS + c

    def pulse_cells(self) -> np.ndarray:
        """Devices a pulse on the source bus reaches now."""
        return self._cells(self.slg)

    def measure_cells(self) -> np.ndarray:
        """Devices whose current flows into the measure bus now."""
        return self._cells(self.slm)

    # ---- physics ------------------------------------------------------------------------

    def deliver(self, voltage: float, width: float) -> None:
        """The generator fired one pulse of ``voltage`` (at the cell) and ``width``."""
        with self.lock:
            cells = self.pulse_cells()
            if cells.size and voltage != 0:
                self.pulses.append(DeliveredPulse(tuple(int(c) for c in cells), voltage, width))
                polarity = SET if voltage > 0 else RESET
                self.sim.pulse(cells, polarity, 1, voltage=abs(voltage), width=width)
            self.trigger()

    def current(self, voltage: float) -> float:
        """Current (A) into the measure bus with ``voltage`` on the source bus, read noise
        included (as :meth:`SimBackend.mac`: the sum of independent cell noises)."""
        with self.lock:
            cells = self.measure_cells()
            if cells.size == 0:
                return 0.0
            g = self.sim.apparent(self.sim.g[cells])
            noise = self.bench.sim.read_noise * np.sqrt(np.sum(g * g))
            return float(voltage * (g.sum() + noise * self.sim.rng.standard_normal()) * 1e-6)

    def trigger(self) -> None:
        """A rising edge on the trigger line into the MCU."""
        for listener in self.listeners:
            listener()

    def conductance(self, devices: np.ndarray) -> np.ndarray:
        """True conductances (uS), for tests comparing against the plan."""
        return self.sim.g[np.asarray(devices, dtype=np.int64)].copy()
