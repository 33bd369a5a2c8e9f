"""Characterisation sequences: fabric self-test, read map, forming, pulse response, curves.

All act on many devices at once (flat indices, see :mod:`hil.bench`): on the simulated backend a
step is one numpy operation over every device, on instruments the sequencer batches it.
"""

from __future__ import annotations

import numpy as np

from hil.backends.base import RESET, SET
from hil.bench import CELLS, COLS, ROWS, Bench
from sequences.basic import Mac, Pulse, Read, Sequence


def board_devices(bench: Bench, boards: list[int]) -> np.ndarray:
    """Flat indices of all 120 cells of each board, board by board, row-major."""
    pos = np.array([bench.board_pos(b) for b in boards], dtype=np.int64)
    return (pos[:, None] * CELLS + np.arange(CELLS)).ravel()


def fabric_selftest(bench: Bench, boards: list[int]) -> Sequence:
    """Current (uA) through every cell of ``boards`` at the read voltage, shape (boards, 12, 10).

    Each cell is reached the way the fabric is used in training wherever a logical array covers
    it: a MAC read with one bit line driven at a time (all word lines on, every source line of the
    array measured), so one vector tests a bit-line path and all source-line paths at once. Cells
    no array covers (beyond an array's last row or column) are read one by one through the read
    path. Which lines are open is then decided from these currents
    (:func:`hil.characterization.classify.open_lines`) before any device is judged.
    """
    devices = board_devices(bench, boards)
    local = np.full(bench.n_devices, -1, dtype=np.int64)
    local[devices] = np.arange(devices.size)
    current = np.full(devices.size, np.nan)
    for name in bench.arrays:
        idx = bench.array_devices(name)
        mine = local[idx] >= 0
        rows = np.flatnonzero(mine.any(axis=1))
        if rows.size == 0:
            continue
        inputs = np.zeros((rows.size, idx.shape[0]), dtype=np.int8)
        inputs[np.arange(rows.size), rows] = 1
        out = yield Mac(name, inputs, "fabric")
        hit = mine[rows]
        current[local[idx[rows][hit]]] = np.asarray(out)[hit]
    rest = np.isnan(current)
    if rest.any():
        g = yield Read(devices[rest], "fabric", 0)
        current[rest] = np.asarray(g) * bench.pulses.read_voltage
    return current.reshape(len(boards), ROWS, COLS)


def read_map(devices: np.ndarray, repeats: int = 1) -> Sequence:
    """``repeats`` reads of every device at the read voltage, shape (repeats, devices)."""
    reads = []
    for i in range(repeats):
        reads.append((yield Read(devices, "read_map", i)))
    return np.array(reads)


def forming(
    devices: np.ndarray,
    *,
    start: float,
    step: float,
    stop: float,
    threshold_uS: float,
    limit_uS: float,
    width: float | None = None,
) -> Sequence:
    """Stepped-voltage SET ramp for fresh devices, each stopping once formed.

    A read first; then one SET pulse per voltage step from ``start`` to ``stop`` (inclusive) on
    the devices still below ``threshold_uS``, each followed by a read of them. A device leaves the
    ramp when it reads at or above the threshold (formed) or at or above ``limit_uS`` (it hit the
    SMU's current compliance: a short, ramping further would only stress it). During each pulse
    the cell's own selector transistor limits the current, which is the point of the 1T1R cell;
    during each read the SMU's compliance does. Returns the forming voltage of every device (NaN
    if it never formed) and its last reading.
    """
    g = np.array((yield Read(devices, "form", 0)), dtype=np.float64)
    formed_at = np.full(devices.size, np.nan)
    active = g < min(threshold_uS, limit_uS)
    ramp = np.arange(start, stop + step / 2, step)
    for k, v in enumerate(ramp, start=1):
        if not active.any():
            break
        sel = np.flatnonzero(active)
        yield Pulse(devices[sel], SET, voltage=float(v), width=width)
        g[sel] = yield Read(devices[sel], "form", k)
        done = g[sel] >= threshold_uS
        formed_at[sel[done]] = v
        active[sel[done | (g[sel] >= limit_uS)]] = False
    return formed_at, g


def pulse_response(
    devices: np.ndarray, pulses: int, sequence: str = "response"
) -> Sequence:
    """The paper's Fig. 2: ``pulses`` SET pulses each followed by a read, then ``pulses`` RESET
    pulses each followed by a read. Returns both traces, shape (pulses, devices)."""
    traces: dict[int, list[np.ndarray]] = {SET: [], RESET: []}
    for polarity, name in ((SET, "set"), (RESET, "reset")):
        for i in range(1, pulses + 1):
            yield Pulse(devices, polarity)
            traces[polarity].append((yield Read(devices, f"{sequence}_{name}", i)))
    return np.array(traces[SET]), np.array(traces[RESET])


def response_curves(devices: np.ndarray, pulses: int) -> Sequence:
    """Full-range response curves as :mod:`hil.curves` stores them: RESET to the floor, a read,
    then :func:`pulse_response`. Returns SET and RESET branches, shape (pulses + 1, devices), each
    starting at pulse 0 (the RESET branch at the top the SET branch reached)."""
    yield Pulse(devices, RESET, count=pulses)
    start = yield Read(devices, "curve_set", 0)
    set_trace, reset_trace = yield from pulse_response(devices, pulses, "curve")
    return np.vstack([start, set_trace]), np.vstack([set_trace[-1], reset_trace])
