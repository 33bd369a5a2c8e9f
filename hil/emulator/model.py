"""The one physics model every emulated instrument shares, on one bench time base.

The multiplexer state (per board: WL gates, bit lines on the source bus, source lines to ground or
to the measure bus; exactly the four switch sets of the MCU protocol) decides which cells an
instrument reaches: a pulse from the generator changes exactly the cells whose WL, BL and grounded
SL are all closed, and the SMU measures the summed current of exactly the cells whose WL, BL and
measured SL are closed. The device physics is :class:`hil.backends.sim.SimBackend`'s, so the
emulated bench and the simulated backend behave alike for the same seed.

Time is *bench time* (``now``, seconds), not the host's clock: hardware actions (a switch
settling, a trigger pulse, a generator pulse, an SMU aperture) are events scheduled at the time
they happen (:meth:`BenchModel.at`) and run in time order (:meth:`BenchModel.advance`); every
message a host sends costs at least :data:`HOST_GAP` of bench time. A switch that moves during a
pulse or an aperture therefore moves *during* it, as on the bench, and the timeline
(:meth:`BenchModel.record`) shows it.

Trigger lines are wires between named endpoints (``mcu.out1``, ``generator.trig_in``,
``smu.line2``, ``mcu.in1`` ...): an instrument drives an endpoint with :meth:`BenchModel.emit`,
and only the wires the bench file declares carry the edge on to the endpoint at their other end.
"""

from __future__ import annotations

import heapq
import itertools
import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from hil.backends.base import RESET, SET
from hil.backends.sim import SimBackend
from hil.bench import CELLS, COLS, ROWS, Bench

# A host exchange on a LAN socket or a USB serial port takes tens of microseconds at the very
# least; charging only that much between two host messages is the strict case for the timing
# checks (less slack between a host action and the next hardware event).
HOST_GAP = 50e-6

TIMELINE_SOURCES = ("mcu", "generator", "smu")
TIMELINE_EVENTS = ("switch", "settled", "pulse_start", "pulse_end", "aperture_start",
                   "aperture_end", "edge")


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


@dataclass(frozen=True)
class Wire:
    """A trigger wire of the bench: ``source`` endpoint drives ``target`` endpoint."""

    name: str
    source: str
    target: str


class BenchModel:
    """Shared state of the emulated bench: device physics, switch matrix, trigger wires, bench
    time and its event queue."""

    def __init__(self, bench: Bench, seed: int | None = None, modes: np.ndarray | None = None,
                 wires: tuple[Wire, ...] = ()):
        self.bench = bench
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)  # notified after every host message
        self.sim = SimBackend(bench, seed=seed, modes=modes)
        n = len(bench.board_ids)
        self.board_pos = {b: i for i, b in enumerate(bench.board_ids)}
        self.wl = np.zeros((n, COLS), dtype=bool)
        self.bls = np.zeros((n, ROWS), dtype=bool)
        self.slg = np.zeros((n, COLS), dtype=bool)
        self.slm = np.zeros((n, COLS), dtype=bool)
        self.pulses: list[DeliveredPulse] = []
        self.wires = wires
        self.inputs: dict[str, Callable[[float, float], None]] = {}  # endpoint -> (t, width)
        self.now = 0.0
        self._queue: list[tuple[float, int, Callable[[], None]]] = []
        self._order = itertools.count()
        self.timeline: list[tuple[float, str, str, str]] | None = None
        self._ids = np.asarray(bench.board_ids)
        self.routed: tuple[np.ndarray, np.ndarray] | None = None  # (pulse, measure) cells

    # ---- bench time ---------------------------------------------------------------------

    def at(self, t: float, action: Callable[[], None]) -> None:
        """Run ``action`` at bench time ``t``: at once if that is now, else from the queue in
        time order."""
        if t <= self.now:
            action()
        else:
            heapq.heappush(self._queue, (t, next(self._order), action))

    def advance(self, t: float, until: Callable[[], bool] | None = None) -> None:
        """Run every event due by ``t`` in time order, then set ``now`` to ``t``; with
        ``until``, stop as soon as it is true (``now`` = the time it became so)."""
        while self._queue and self._queue[0][0] <= t:
            if until is not None and until():
                return
            when, _, action = heapq.heappop(self._queue)
            self.now = max(self.now, when)
            action()
        if until is None or not until():
            self.now = max(self.now, t)

    def host_message(self) -> None:
        """A host message arrived: bench time moves on by :data:`HOST_GAP`."""
        self.advance(self.now + HOST_GAP)

    def pending(self) -> bool:
        return bool(self._queue)

    def record(self, t: float, source: str, event: str,
               target: str | Callable[[], str] = "") -> None:
        """Add an event to the timeline, if one is kept (``target`` may be a callable, so
        that nothing is formatted when none is)."""
        if self.timeline is not None:
            self.timeline.append((t, source, event, target() if callable(target) else target))

    # ---- trigger wires ------------------------------------------------------------------

    def emit(self, endpoint: str, t: float, width: float) -> None:
        """A pulse driven on ``endpoint``, rising at ``t`` and ``width`` s long: carried by
        every declared wire from it to the endpoint at the other end (if anything listens)."""
        for wire in self.wires:
            if wire.source == endpoint:
                self.at(t, lambda w=wire: self._arrive(w, width))

    def _arrive(self, wire: Wire, width: float) -> None:
        self.record(self.now, wire.source.split(".")[0], "edge", wire.name)
        handler = self.inputs.get(wire.target)
        if handler is not None:
            handler(self.now, width)

    # ---- switches -----------------------------------------------------------------------

    def attach_switches(self, closed: np.ndarray) -> None:
        """Make the switch arrays views of ``closed`` (boards x WL, BLS, SLG, SLM columns): the
        switch state then lives with whoever writes ``closed`` (the firmware's hardware)."""
        with self.lock:
            self.wl, self.bls = closed[:, :COLS], closed[:, COLS:COLS + ROWS]
            self.slg, self.slm = closed[:, COLS + ROWS:2 * COLS + ROWS], closed[:, 2 * COLS + ROWS:]
            self.routed = None  # the switches are whatever the new owner writes

    def detach_switches(self) -> None:
        """Keep the last switch state in arrays of this process."""
        with self.lock:
            self.wl, self.bls, self.slg, self.slm = (
                a.copy() for a in (self.wl, self.bls, self.slg, self.slm))

    def open_all(self) -> None:
        with self.lock:
            for a in (self.wl, self.bls, self.slg, self.slm):
                a[:] = False
            self.routed = None

    def all_open(self) -> bool:
        return not (self.wl.any() or self.bls.any() or self.slg.any() or self.slm.any())

    def _cells(self, sl: np.ndarray) -> np.ndarray:
        gates = self.wl & sl
        pos = np.flatnonzero(gates.any(axis=1))  # the few boards a route touches
        hit = self.bls[pos, :, None] & gates[pos, None, :]  # (boards, rows, cols)
        b, r, c = np.nonzero(hit)
        return pos[b] * CELLS + r * COLS + c

    def pulse_cells(self) -> np.ndarray:
        """Devices a pulse on the source bus reaches now (from the switches; or, while the
        switches are exactly a route the MCU set, that route's cells, which are the same)."""
        return self.routed[0] if self.routed is not None else self._cells(self.slg)

    def measure_cells(self) -> np.ndarray:
        """Devices whose current flows into the measure bus now."""
        return self.routed[1] if self.routed is not None else self._cells(self.slm)

    def cell_text(self, devices: np.ndarray) -> str:
        """``board:row:col`` (PCB numbering) of each device, joined by ``;``."""
        pos, cell = np.divmod(np.asarray(devices, dtype=np.int64), CELLS)
        r, c = np.divmod(cell, COLS)
        return ";".join(f"{b}:{row + 1}:{col + 1}" for b, row, col in
                        zip(self._ids[pos].tolist(), r.tolist(), c.tolist(), strict=True))

    # ---- physics ------------------------------------------------------------------------

    def pulse(self, voltage: float, width: float) -> None:
        """The generator's output starts one pulse of ``voltage`` (at the cell) and ``width``
        now; the cells it reaches are those routed at its start (a switch moving during it
        shows on the timeline)."""
        cells = self.pulse_cells() if voltage != 0 else np.zeros(0, dtype=np.int64)
        if self.timeline is not None:
            target = self.cell_text(cells)
            self.record(self.now, "generator", "pulse_start", target)
            self.at(self.now + width, lambda: self.record(self.now, "generator", "pulse_end",
                                                          target))
        if cells.size:
            self.pulses.append(DeliveredPulse(tuple(int(c) for c in cells), voltage, width))
            polarity = SET if voltage > 0 else RESET
            self.sim.pulse(cells, polarity, 1, voltage=abs(voltage), width=width)

    def current(self, voltage: float) -> float:
        """Current (A) into the measure bus with ``voltage`` on the source bus, read noise
        included (as :meth:`SimBackend.mac`: the sum of independent cell noises)."""
        cells = self.measure_cells()
        if cells.size == 0:
            return 0.0
        g = self.sim.apparent(self.sim.g[cells])
        noise = self.bench.sim.read_noise * np.sqrt(np.sum(g * g))
        return float(voltage * (g.sum() + noise * self.sim.rng.standard_normal()) * 1e-6)

    def conductance(self, devices: np.ndarray) -> np.ndarray:
        """True conductances (uS), for tests comparing against the plan."""
        return self.sim.g[np.asarray(devices, dtype=np.int64)].copy()
