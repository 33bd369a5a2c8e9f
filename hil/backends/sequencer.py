"""Sequencer: between the trainer (or characterisation) and a backend.

It is itself a :class:`~hil.backends.base.Backend` wrapping another one, so nothing above it
changes. For every operation it

* checks the operation against the bench's limits (pulse amplitude and width, binary MAC
  inputs, device indices) before anything moves;
* compiles it into **transactions** (:class:`PulseTx`, :class:`ReadTx`, :class:`MacTx`): in
  ``batched`` mode pulses of one polarity become one table-mode burst whose steps pulse up to
  ``fan_out`` cells of one column at once, and reads become one SMU list sweep stepping an MCU
  route table; in ``naive`` mode every pulse and every reading is its own transaction;
* adds each transaction's modelled duration to the **bench clock** (:class:`BenchClock`).

A backend that can run transactions (``execute``, the instrument backend) gets them one by one;
any other (the simulated one) gets the original operation in one call, so a dry run on the
simulated bench costs little more than the simulation itself.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from drivers import PULSE_GENERATORS, SOURCE_METERS
from drivers.mcu import FRAME_OVERHEAD
from hil.backends.base import RESET, SET, Backend
from hil.backends.hardware import (
    ClockSettings,
    SequencerSettings,
    Wiring,
    clock_settings,
    instruments_config,
    pulse_entry_seconds,
    read_entry_seconds,
    sequencer_settings,
    wiring,
)
from hil.bench import CELLS, COLS, ROWS, Bench
from hil.errors import HilError
from hil.network import bit_planes

# modelled frame sizes on the MCU link (bytes): "<seq> " + " *XXXX\n" out, "<seq> OK *XXXX\n" in
FRAME_OUT, FRAME_IN = 12, 14
SCAN_HEAD, GROUP_BYTES = 22, 9
LIST_CHUNK = 100  # SMU list values per SCPI command


class SequenceError(HilError):
    """An operation the bench limits (or the backend interface) do not allow."""


# ---------------------------------------------------------------------------------------------
# transactions


@dataclass(frozen=True)
class PulseTx:
    """One burst: ``len(steps)`` pulses of ``voltage`` (signed, at the cell) and ``width``; step
    ``i`` pulses the devices ``steps[i]`` together (one column per board)."""

    voltage: float
    width: float
    steps: tuple[np.ndarray, ...]


@dataclass(frozen=True)
class ReadTx:
    """One reading per device, each on its own single-cell route."""

    devices: np.ndarray


@dataclass(frozen=True)
class MacTx:
    """Column currents of ``array`` for ``inputs`` (k, rows) over ``columns``: k x len(columns)
    readings, vector-major."""

    array: str
    inputs: np.ndarray
    columns: np.ndarray


Transaction = PulseTx | ReadTx | MacTx


# ---------------------------------------------------------------------------------------------
# bench clock


@dataclass
class Tally:
    """What the bench clock has added up (seconds and the counts behind them)."""

    seconds: float = 0.0
    floor: float = 0.0  # apertures + settling + pulse widths alone (the physical floor)
    transactions: int = 0
    pulses_fired: int = 0
    readings: int = 0
    scpi_queries: int = 0
    scpi_writes: int = 0
    mcu_frames: int = 0
    mcu_bytes: int = 0

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


class BenchClock:
    """Modelled duration of each transaction as the MCU paces it (``docs/timing.md``): SCPI
    exchanges (a query waits a round trip, a write only its share of one), MCU frames (a round
    trip each plus their bytes at the baud rate: clear, data, CRC check, pacing when it changes,
    run, status), and per table entry the switch read-back, the settling time and the longer of
    the trigger pulse and the pulse's dwell or the SMU's latency and aperture."""

    def __init__(self, clock: ClockSettings, wiring: Wiring, edge: float,
                 idle_polls: int = 0) -> None:
        self.c, self.wiring, self.edge, self.idle_polls = clock, wiring, edge, idle_polls
        self.tally = Tally()
        self._shape: tuple[float, float] | None = None
        self._pacing: tuple[str, float] | None = None  # the MCU's TBL CFG in force
        self._list_points = 0  # length of the list the SMU holds

    def _link(self, queries: int, writes: int, frames: int, nbytes: int,
              repeat: int = 1) -> float:
        """Time of ``repeat`` identical exchanges on the SCPI and MCU links."""
        c, t = self.c, self.tally
        t.scpi_queries += repeat * queries
        t.scpi_writes += repeat * writes
        t.mcu_frames += repeat * frames
        t.mcu_bytes += repeat * nbytes
        return repeat * (queries * c.scpi_round_trip + writes * c.scpi_round_trip * 0.1
                         + frames * c.mcu_round_trip + nbytes * 10.0 / c.mcu_baud)

    def _table(self, pacing: tuple[str, float], data_bytes: int, data_frames: int) -> float:
        """MCU link time to load, verify, run and check a table (clear, data, CRC, run,
        status), plus a ``TBL CFG`` when the pacing changes."""
        frames = 4 + data_frames
        link = self._link(0, 0, frames, frames * (FRAME_OUT + FRAME_IN) + data_bytes + 80)
        if pacing != self._pacing:
            link += self._link(0, 0, 1, FRAME_OUT + FRAME_IN + 50)
        self._pacing = pacing
        return link

    def pulse(self, steps: int, voltage: float, width: float, data_bytes: int,
              data_frames: int) -> float:
        """One pulse table of ``steps`` entries."""
        c = self.c
        configure = (voltage, width) != self._shape
        self._shape = (voltage, width)
        # configure: polarity, levels, period, width, edge + error check
        link = self._table(("pulse", width), data_bytes, data_frames)
        link += self._link(configure, 6 * configure, 0, 0)
        entry = pulse_entry_seconds(self.wiring, c, width, self.edge)
        t = self.tally
        t.transactions += 1
        t.pulses_fired += steps
        t.floor += steps * (c.mux_settling + width)
        total = link + steps * entry
        t.seconds += total
        return total

    def read(self, points: int, data_bytes: int, data_frames: int, repeat: int = 1) -> float:
        """``repeat`` read tables of ``points`` readings: the SMU list armed (clear, list
        chunks, trigger model, init, error check), the table run, the SMU idle, one fetch."""
        c = self.c
        link = self._table(("read", 0.0), data_bytes, data_frames)
        if repeat > 1:  # the same pacing again: no TBL CFG
            link += self._link(0, 0, 4 + data_frames, (4 + data_frames) * (FRAME_OUT + FRAME_IN)
                               + data_bytes + 80, repeat - 1)
        # arm: the list and trigger set-up (clear, chunks, 8 commands) unless the same length
        # as last time (the same read voltage throughout: clear and init only), its error
        # check; then the fetch (the B2900 polls its idle bits first) and its error check
        reload = points != self._list_points
        self._list_points = points
        queries = 3 + self.idle_polls
        link += self._link(queries, 9 + math.ceil(points / LIST_CHUNK) if reload else 2, 0, 0)
        link += self._link(queries, 2, 0, 0, repeat - 1)
        physical = repeat * points * read_entry_seconds(self.wiring, c)
        t = self.tally
        t.transactions += repeat
        t.readings += repeat * points
        t.floor += repeat * points * (c.mux_settling + c.smu_aperture)
        t.seconds += link + physical
        return link + physical

    def state_dict(self) -> dict[str, Any]:
        return {"tally": self.tally.as_dict(), "shape": self._shape}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.tally = Tally(**state["tally"])
        self._shape = None if state["shape"] is None else tuple(state["shape"])
        self._pacing, self._list_points = None, 0


# ---------------------------------------------------------------------------------------------
# the sequencer


@dataclass
class _Geometry:
    """Where each device of the bench sits: board position, row, column (0-based)."""

    pos: np.ndarray
    row: np.ndarray
    col: np.ndarray
    board_digits: np.ndarray = field(repr=False)

    @classmethod
    def of(cls, bench: Bench) -> _Geometry:
        dev = np.arange(bench.n_devices)
        pos, cell = np.divmod(dev, CELLS)
        row, col = np.divmod(cell, COLS)
        digits = np.array([len(str(b)) for b in bench.board_ids])
        return cls(pos, row, col, digits)


class Sequencer(Backend):
    """Checks, batches and clocks every operation, then hands it to ``inner``."""

    def __init__(self, inner: Backend, settings: SequencerSettings | None = None,
                 clock: ClockSettings | None = None) -> None:
        bench = inner.bench
        self.inner = inner
        self.bench = bench  # not Backend.__init__: the counts are the wrapped backend's
        self.settings = settings or sequencer_settings(bench)
        cfg = instruments_config(bench)
        edge = PULSE_GENERATORS[cfg.generator_model].MIN_EDGE
        polls = 0 if SOURCE_METERS[cfg.smu_model].FETCH_WAITS else 1
        self.clock = BenchClock(clock or clock_settings(bench), wiring(bench), edge, polls)
        self._payload = cfg.mcu_max_frame - FRAME_OVERHEAD
        self.naive = self.settings.mode == "naive"
        self.geo = _Geometry.of(bench)
        lim = bench.limits
        if abs(bench.pulses.read_voltage) > lim.max_read_voltage:
            raise SequenceError(f"read voltage {bench.pulses.read_voltage} V exceeds the limit")

    # counts live in the wrapped backend: one truth for the trainer's records
    @property
    def counts(self):  # type: ignore[override]
        return self.inner.counts

    @counts.setter
    def counts(self, value) -> None:
        self.inner.counts = value

    @property
    def bench_seconds(self) -> float:
        return self.clock.tally.seconds

    # ---- checks ---------------------------------------------------------------------------

    def _devices(self, devices: Any, *, distinct: bool) -> np.ndarray:
        d = np.asarray(devices)
        if d.size and not np.issubdtype(d.dtype, np.integer):
            raise SequenceError(f"device indices must be integers, got {d.dtype}")
        d = d.astype(np.int64).ravel()
        if d.size and (d.min() < 0 or d.max() >= self.bench.n_devices):
            raise SequenceError(f"device index outside 0..{self.bench.n_devices - 1}")
        if distinct and np.unique(d).size != d.size:
            raise SequenceError("a pulse operation lists a device twice")
        return d

    def _pulse_levels(self, polarity: np.ndarray, voltage: float | None,
                      width: float | None) -> tuple[np.ndarray, float]:
        p, lim = self.bench.pulses, self.bench.limits
        if not np.isin(polarity, (SET, RESET)).all():
            raise SequenceError("polarity must be +1 (SET) or -1 (RESET)")
        width = p.width if width is None else float(width)
        if not lim.min_pulse_width <= width <= lim.max_pulse_width:
            raise SequenceError(f"pulse width {width:g} s outside the bench limits "
                                f"[{lim.min_pulse_width:g}, {lim.max_pulse_width:g}] s")
        if voltage is None:
            mags = np.where(polarity == SET, p.set_voltage, abs(p.reset_voltage))
        else:
            mags = np.full(polarity.shape, abs(float(voltage)))
        if mags.size and mags.max() > lim.max_pulse_voltage:
            raise SequenceError(f"pulse of {mags.max():g} V exceeds the bench limit "
                                f"{lim.max_pulse_voltage:g} V")
        return polarity * mags, width

    # ---- planning -------------------------------------------------------------------------

    def fan_out(self, voltage: float) -> int:
        """Cells one pulse may reach: the configured fan-out, fewer if that many cells at the
        highest conductance would draw more than the generator's current limit."""
        s = self.settings
        per_cell = abs(voltage) * s.max_conductance * 1e-6
        return max(1, min(s.fan_out, int(s.max_pulse_current / per_cell)))

    def plan_pulses(self, devices: np.ndarray, polarity: np.ndarray, count: np.ndarray,
                    voltage: float | None = None, width: float | None = None) -> list[PulseTx]:
        """Transactions for ``count[i]`` pulses of ``polarity[i]`` on ``devices[i]``."""
        levels, width = self._pulse_levels(polarity, voltage, width)
        txs: list[PulseTx] = []
        for level in np.unique(levels):
            sel = (levels == level) & (count > 0)
            if not sel.any():
                continue
            dev = np.repeat(devices[sel], count[sel])
            if self.naive:
                txs.extend(PulseTx(float(level), width, (np.array([d]),)) for d in dev)
                continue
            # round j = the j-th pulse of each device; a step = one column of one board
            first = np.r_[0, np.cumsum(count[sel])[:-1]]
            rnd = np.arange(dev.size) - np.repeat(first, count[sel])
            g = self.geo
            order = np.lexsort((g.row[dev], g.col[dev], g.pos[dev], rnd))
            dev, rnd = dev[order], rnd[order]
            key = (rnd * len(self.bench.board_ids) + g.pos[dev]) * COLS + g.col[dev]
            cuts = np.flatnonzero(np.diff(key)) + 1
            fan = self.fan_out(level)
            steps: list[np.ndarray] = []
            for group in np.split(dev, cuts):
                steps.extend(group[i:i + fan] for i in range(0, group.size, fan))
            cap = self.settings.table_capacity
            txs.extend(PulseTx(float(level), width, tuple(steps[i:i + cap]))
                       for i in range(0, len(steps), cap))
        return txs

    def _read_capacity(self) -> int:
        return min(self.settings.table_capacity, self.settings.list_capacity)

    def plan_reads(self, devices: np.ndarray) -> list[ReadTx]:
        step = 1 if self.naive else self._read_capacity()
        return [ReadTx(devices[i:i + step]) for i in range(0, devices.size, step)]

    def plan_mac(self, array: str, inputs: np.ndarray) -> tuple[list[MacTx], np.ndarray]:
        """Transactions and the indices of the vectors they read (all-zero vectors carry no
        current and are not read)."""
        cols = self.bench.arrays[array].shape[1]
        live = np.flatnonzero(inputs.any(axis=1))
        all_cols = np.arange(cols)
        if self.naive:
            txs = [MacTx(array, inputs[i:i + 1], np.array([c])) for i in live for c in all_cols]
        else:
            per = max(1, self._read_capacity() // cols)
            txs = [MacTx(array, inputs[live[i:i + per]], all_cols)
                   for i in range(0, live.size, per)]
        return txs, live

    # ---- clock ----------------------------------------------------------------------------

    def _frames(self, nbytes: int) -> int:
        """Data frames a table of ``nbytes`` of route text needs at the bench's frame size."""
        return max(1, math.ceil(nbytes / self._payload))

    def _clock_pulses(self, txs: list[PulseTx]) -> None:
        g = self.geo
        for tx in txs:
            groups = [np.unique(g.pos[s]) for s in tx.steps]
            nbytes = sum(4 + len(gr) * GROUP_BYTES + int(g.board_digits[gr].sum()) for gr in groups)
            self.clock.pulse(len(tx.steps), tx.voltage, tx.width, nbytes, self._frames(nbytes))

    def _clock_reads(self, n: int) -> None:
        if n == 0:
            return
        per_route = 4 + GROUP_BYTES + 2
        cap = 1 if self.naive else self._read_capacity()
        full, rest = divmod(n, cap)
        for points, repeat in ((cap, full), (rest, 1 if rest else 0)):
            if repeat:
                nbytes = per_route * points
                self.clock.read(points, nbytes, self._frames(nbytes), repeat=repeat)

    def _clock_mac(self, array: str, inputs: np.ndarray) -> None:
        """Clock the MAC reads of ``inputs`` as :meth:`plan_mac` would batch them, computed
        from the inputs alone (a dry run never builds per-reading transactions)."""
        spec = self.bench.arrays[array]
        board_rows, board_cols = len(spec.grid), len(spec.grid[0])
        cols = spec.shape[1]
        live = inputs[inputs.any(axis=1)]
        blocks = _row_blocks(live, board_rows).sum(axis=1)  # boards driven, per vector
        if self.naive:  # one one-entry table per vector and column
            for groups, n in zip(*np.unique(blocks, return_counts=True), strict=True):
                nbytes = 4 + GROUP_BYTES * int(groups)
                self.clock.read(1, nbytes, 1, repeat=int(n) * cols)
            return
        per = max(1, self._read_capacity() // cols)
        for i in range(0, live.shape[0], per):
            b = blocks[i:i + per]
            # one scan per vector and board column, several scans per frame
            nbytes = int(board_cols * (b.size * SCAN_HEAD + 7 * b.sum()))
            self.clock.read(b.size * cols, nbytes, self._frames(nbytes))

    # ---- the Backend interface -----------------------------------------------------------

    def pulse(self, devices, polarity, count=1, *, voltage=None, width=None) -> None:
        dev = self._devices(devices, distinct=True)
        if dev.size == 0:
            return
        pol = np.broadcast_to(np.asarray(polarity), dev.shape).astype(np.int64)
        cnt = np.broadcast_to(np.asarray(count), dev.shape)
        if (cnt < 0).any() or not np.all(np.mod(cnt, 1) == 0):
            raise SequenceError("pulse counts must be non-negative integers")
        cnt = cnt.astype(np.int64)
        txs = self.plan_pulses(dev, pol, cnt, voltage, width)
        self._clock_pulses(txs)
        if hasattr(self.inner, "execute"):
            for tx in txs:
                self.inner.execute(tx)
        else:
            self.inner.pulse(dev, pol, cnt, voltage=voltage, width=width)

    def read(self, devices: np.ndarray) -> np.ndarray:
        dev = self._devices(devices, distinct=False)
        self._clock_reads(dev.size)
        if hasattr(self.inner, "execute"):
            out = [self.inner.execute(tx) for tx in self.plan_reads(dev)]
            return np.concatenate(out) if out else np.zeros(0)
        return self.inner.read(dev)

    def _check_mac(self, array: str, inputs: np.ndarray) -> np.ndarray:
        if array not in self.bench.arrays:
            raise SequenceError(f"no array named {array!r}")
        x = np.asarray(inputs)
        rows = self.bench.arrays[array].shape[0]
        if x.ndim != 2 or x.shape[1] != rows:
            raise SequenceError(f"MAC inputs of {array} must be (k, {rows}), got {x.shape}")
        if not np.isin(x, (0, 1)).all():
            raise SequenceError("MAC inputs must be binary (0/1)")
        return x

    def mac_levels(self, array: str, levels: np.ndarray, signed: bool) -> np.ndarray:
        if hasattr(self.inner, "execute"):  # every read really happens: MAC by MAC
            return super().mac_levels(array, levels, signed)
        planes = bit_planes(levels, signed)
        n, k, rows = planes.shape
        self._clock_mac(array, self._check_mac(array, planes.reshape(n * k, rows)))
        return self.inner.mac_levels(array, levels, signed)  # the inner backend's fast path

    def mac(self, array: str, inputs: np.ndarray) -> np.ndarray:
        x = self._check_mac(array, inputs)
        self._clock_mac(array, x)
        if not hasattr(self.inner, "execute"):
            return self.inner.mac(array, x)
        cols = self.bench.arrays[array].shape[1]
        txs, live = self.plan_mac(array, x)
        out = np.zeros((x.shape[0], cols))
        if self.naive:
            values = np.array([self.inner.execute(tx)[0, 0] for tx in txs])
            out[live] = values.reshape(live.size, cols)
        else:
            out[live] = np.concatenate([self.inner.execute(tx) for tx in txs]) if txs else 0
        return out

    def close(self) -> None:
        self.inner.close()

    def state_dict(self) -> dict[str, Any]:
        return {"inner": self.inner.state_dict(), "clock": self.clock.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.inner.load_state_dict(state["inner"])
        self.clock.load_state_dict(state["clock"])

    def __getattr__(self, name: str) -> Any:
        # anything else (e.g. the simulated backend's ``mode``) is the wrapped backend's
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)


def _row_blocks(inputs: np.ndarray, board_rows: int) -> np.ndarray:
    """(k, board_rows): does vector i drive any bit line on board row b?"""
    k, rows = inputs.shape
    padded = np.zeros((k, board_rows * ROWS), dtype=bool)
    padded[:, :rows] = inputs.astype(bool)
    return padded.reshape(k, board_rows, ROWS).any(axis=2)
