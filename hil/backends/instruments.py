"""Instrument backend: the backend interface over the drivers (pulse generator, SMU, MCU).

It runs the sequencer's transactions (:mod:`~hil.backends.sequencer`) on the instruments the bench
file's ``[instruments]`` names, real ones or the emulated bench, with no code difference. Every
transaction, a single pulse or reading included, is an MCU-paced table (``docs/timing.md``): the
routes are loaded and verified (``TBL CRC``), and the MCU sets each route, reads it back, waits
the settling time and only then raises the trigger line the bench file's ``[wiring]`` names:

* a pulse table: the generator (high-impedance load verified by the driver) fires one pulse per
  edge on its trigger input; the MCU dwells for the trigger latency plus the pulse before it
  moves a switch. Levels change only between tables, with every switch open;
* reads and MAC reads: an SMU list sweep armed to wait for an edge per point; the SMU's
  completion line (or a dwell covering the aperture) tells the MCU when to step; the readings
  come back in one buffered fetch once the SMU reports idle.

After each table ``TBL STAT`` must report every entry done with exactly the expected edges,
else the batch is discarded and the run stops.

``close()`` leaves the bench safe (outputs off, switches open) and is what every exit path of
the CLI runs, Ctrl-C and SIGTERM included.
"""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np

from drivers import PULSE_GENERATORS, SOURCE_METERS
from drivers.errors import InstrumentError
from drivers.mcu import MuxController, Route
from drivers.pulsegen import PulseLimits
from drivers.smu import SourceLimits
from hil.backends.base import Backend
from hil.backends.hardware import (
    clock_settings,
    instruments_config,
    pulse_pacing,
    read_pacing,
    require_wiring,
    required_instruments,
    smu_nplc,
)
from hil.backends.sequencer import MacTx, PulseTx, ReadTx, Sequencer, Transaction
from hil.bench import CELLS, COLS, ROWS, Bench

OVERFLOW = 9e37  # SCPI "over range" readings are 9.9E37


def current_range(limit: float) -> float:
    """Smallest decade range that holds the compliance current."""
    return float(10.0 ** np.ceil(np.log10(limit) - 1e-9))


class Instruments:
    """The three instruments of a bench, opened and identified; ``safe()`` turns every output
    off and opens every switch, trying each even if another fails."""

    def __init__(self, bench: Bench) -> None:
        cfg = required_instruments(bench)
        lim = bench.limits
        with contextlib.ExitStack() as stack:
            self.generator = PULSE_GENERATORS[cfg.generator_model].open(
                cfg.generator_resource, model=cfg.generator_model, timeout=cfg.timeout,
                channel=cfg.generator_channel, visa_library=cfg.visa_library,
                limits=PulseLimits(lim.max_pulse_voltage, lim.min_pulse_width,
                                   lim.max_pulse_width))
            stack.callback(self.generator.close)
            self.smu = SOURCE_METERS[cfg.smu_model].open(
                cfg.smu_resource, model=cfg.smu_model, timeout=cfg.timeout,
                visa_library=cfg.visa_library,
                limits=SourceLimits(lim.max_read_voltage, lim.current_compliance))
            stack.callback(self.smu.close)
            self.mux = open_mux(bench)
            stack.pop_all()

    def safe(self) -> list[str]:
        """Outputs off and switches open; returns the problems met (empty when all is safe).

        A sweep or trigger model still waiting for edges holds the SMU's output (and a
        pending ``*WAI`` would hold every later command): the SMU's input is cleared (device
        clear) and the sweep aborted before its output goes off. An interrupted exchange can
        leave a stale reply on a SCPI link, which the next query would take for its answer: on
        a failure the link's input is drained and the step tried once more."""
        problems = []
        steps = ((self.generator.output_off, self.generator), (self._smu_off, self.smu),
                 (self.mux.open_all, None))
        for step, scpi in steps:
            for attempt in (1, 2):
                try:
                    step()
                    break
                except (InstrumentError, OSError) as exc:
                    if attempt == 2 or scpi is None:
                        problems.append(str(exc))
                        break
                    _drain(scpi.resource)
        return problems

    def _smu_off(self) -> None:
        _device_clear(self.smu.resource)
        self.smu.abort()
        self.smu.output_off()

    def close(self) -> list[str]:
        problems = self.safe()
        for inst in (self.generator, self.smu, self.mux):
            with contextlib.suppress(InstrumentError, OSError):
                inst.close()
        return problems


def open_mux(bench: Bench) -> MuxController:
    """The MCU link of ``bench``: boot wait, frame limit, host watchdog and boards from the
    bench file."""
    cfg = instruments_config(bench)
    return MuxController(cfg.mcu_port, name=f"MCU at {cfg.mcu_port}", boards=bench.board_ids,
                         baudrate=cfg.mcu_baud, timeout=min(cfg.timeout, 0.5),
                         boot_wait=cfg.mcu_boot_wait, max_frame=cfg.mcu_max_frame,
                         watchdog=cfg.mcu_watchdog or None)


def _device_clear(resource: Any) -> None:
    """VISA device clear where the link has one (GPIB, USB-TMC, VXI-11, HiSLIP). A raw socket has
    none: pyvisa-py's ``clear`` only empties the input there, and loops for ever once the
    instrument has closed the connection (a power cycle), so a socket gets a bounded drain."""
    if str(getattr(resource, "resource_name", "")).upper().endswith("::SOCKET"):
        _drain(resource)
        return
    with contextlib.suppress(Exception):  # not every session implements viClear
        resource.clear()


def _drain(resource: Any, timeout_ms: float = 100.0) -> None:
    """Read and drop whatever replies are waiting on a pyvisa resource."""
    old = resource.timeout
    resource.timeout = timeout_ms
    try:
        for _ in range(100):
            resource.read()
    except Exception:  # a timeout is the expected end of the drain
        pass
    finally:
        resource.timeout = old


class InstrumentBackend(Backend):
    """The backend interface on real (or emulated) instruments."""

    def __init__(self, bench: Bench) -> None:
        super().__init__(bench)
        self.clock = clock_settings(bench)
        self.wiring = require_wiring(bench)
        self.inst = Instruments(bench)
        self._closed = False
        w = self.wiring
        self._read_pacing = read_pacing(w, self.clock)
        try:
            p = bench.pulses
            self.inst.generator.setup()
            if w.generator_sync:
                self.inst.generator.enable_sync()
            self.inst.smu.setup(voltage=p.read_voltage,
                                current_limit=bench.limits.current_compliance,
                                current_range=current_range(bench.limits.current_compliance),
                                nplc=smu_nplc(self.clock), trigger_in=w.smu_trigger_line,
                                complete_out=w.smu_complete_line if w.smu_complete else None)
            self.inst.smu.output_on()
            self.inst.mux.open_all()
        except BaseException:
            self.close()
            raise
        self.board_ids = np.asarray(bench.board_ids)
        self._planner = Sequencer(self)

    # ---- the Backend interface (planned by a sequencer, run by execute) --------------------

    def pulse(self, devices, polarity, count=1, *, voltage=None, width=None) -> None:
        self._planner.pulse(devices, polarity, count, voltage=voltage, width=width)

    def read(self, devices: np.ndarray) -> np.ndarray:
        return self._planner.read(devices)

    def mac(self, array: str, inputs: np.ndarray) -> np.ndarray:
        return self._planner.mac(array, inputs)

    # ---- transactions -------------------------------------------------------------------

    def execute(self, tx: Transaction) -> Any:
        if isinstance(tx, PulseTx):
            return self._pulse(tx)
        if isinstance(tx, ReadTx):
            routes = [Route.mac(((int(b), c + 1, 1 << r),)) for b, r, c in
                      zip(*self._where(tx.devices), strict=True)]
            self.counts.device_reads += len(routes)
            return self._measure(routes) / self.bench.pulses.read_voltage  # A/V -> uS (x1e6)
        if isinstance(tx, MacTx):
            routes = self._mac_routes(tx)
            self.counts.mac_reads += len(routes)
            k = tx.inputs.shape[0]
            return self._measure(routes).reshape(k, tx.columns.size)  # uA
        raise TypeError(f"not a transaction: {tx!r}")

    def _where(self, devices: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        pos, cell = np.divmod(np.asarray(devices, dtype=np.int64), CELLS)
        r, c = np.divmod(cell, COLS)
        return self.board_ids[pos], r, c

    def _pulse(self, tx: PulseTx) -> None:
        routes = []
        for step in tx.steps:
            boards, r, c = self._where(step)
            groups: dict[tuple[int, int], int] = {}
            for b, row, col in zip(boards.tolist(), r.tolist(), c.tolist(), strict=True):
                groups[(b, col + 1)] = groups.get((b, col + 1), 0) | 1 << row
            routes.append(Route.pulse((b, col, m) for (b, col), m in groups.items()))
        gen, mux = self.inst.generator, self.inst.mux
        mux.load_table(routes)  # every switch is open between tables: levels may move now
        gen.configure_pulse(tx.voltage, tx.width, period=2 * (tx.width + gen.MIN_EDGE))
        gen.arm()
        pacing = pulse_pacing(self.wiring, self.clock, tx.width, gen.MIN_EDGE)
        mux.run_table(pacing, len(routes) if pacing.in_ else 0)
        fired = sum(int(s.size) for s in tx.steps)
        if tx.voltage > 0:
            self.counts.set_pulses += fired
        else:
            self.counts.reset_pulses += fired

    def _mac_routes(self, tx: MacTx) -> list[Route]:
        spec = self.bench.arrays[tx.array]
        grid = np.array(spec.grid)
        board_rows = grid.shape[0]
        x = np.zeros((tx.inputs.shape[0], board_rows * ROWS), dtype=np.int64)
        x[:, : tx.inputs.shape[1]] = tx.inputs
        masks = (x.reshape(-1, board_rows, ROWS) << np.arange(ROWS)).sum(axis=2)  # (k, brows)
        routes = []
        for vec in masks.tolist():
            for col in tx.columns.tolist():
                j, local = divmod(col, COLS)
                routes.append(Route.mac((int(grid[i, j]), local + 1, m)
                                        for i, m in enumerate(vec) if m))
        return routes

    def _measure(self, routes: list[Route]) -> np.ndarray:
        """Currents (uA) through each route in turn."""
        smu, mux, pacing = self.inst.smu, self.inst.mux, self._read_pacing
        mux.load_table(routes)
        n = smu.arm_list(np.full(len(routes), self.bench.pulses.read_voltage))
        try:
            mux.run_table(pacing, n if pacing.in_ else 0)
        except BaseException:
            smu.abort()  # the sweep still waits for the edges that will not come
            raise
        amps = smu.fetch_list(n)
        if (np.abs(amps) >= OVERFLOW).any():
            raise InstrumentError(smu.name, "reading over range; check the current range")
        return amps * 1e6

    # ---- lifetime -------------------------------------------------------------------------

    def close(self) -> None:
        """Outputs off, switches open, ports closed. Idempotent."""
        if self._closed or not hasattr(self, "inst"):
            return
        self._closed = True
        problems = self.inst.close()
        if problems:
            raise InstrumentError("bench",
                                  "could not confirm the safe state: " + "; ".join(problems))
