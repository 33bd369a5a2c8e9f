"""Re-check the devices of a trained network: which no longer respond as they did.

A trained network's host keeps a measured copy of every device's conductance (the trainer reads
back every device it pulses), so a device that failed since shows first as a reading that moved.
The re-check is therefore cheap on a healthy network and thorough where it matters:

1. fabric self-test of the network's boards (an open line is one fabric fault, as in
   :func:`hil.characterization.characterize.plan`);
2. read map: ``reads`` reads of every device; a device *moved* when the mean of its reads
   differs from the expected conductance by ``min_change`` (log-ratio) and ``min_change_uS``,
   the thresholds by which characterisation decides that a device responded to pulses;
3. a short pulse response (``recheck_pulses`` SET pulses, then as many RESET pulses, a read
   after each) of the moved devices only;
4. the characterisation's classification (:func:`hil.characterization.classify.classify`) of
   the moved devices; every other device is ``ok`` (or ``fabric`` on an open line).

A device that failed at the conductance it had (a low device stuck off near the floor) reads as
it did and is not found here; it changes no weight, and the trainer writes it off on the first
SET burst that does not move it, as it does during training.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from hil.backends.base import Backend, OpCounts
from hil.backends.sequencer import Sequencer
from hil.bench import CELLS, COLS, Bench
from hil.characterization.classify import Settings, classify, open_lines
from sequences.basic import Sequence, run
from sequences.characterize import fabric_selftest, pulse_response, read_map

# modes after which a device is never pulsed again ("unstable" devices still respond)
WRITTEN_OFF = ("stuck_on", "stuck_off", "open", "short", "fabric")


@dataclass
class Recheck:
    """What a re-check found, one entry per device of the network."""

    devices: np.ndarray  # flat indices, in the order given
    g: np.ndarray  # conductance now (uS): mean of the read map, last read after a pulse test
    moved: np.ndarray  # bool: the reading moved, so the device was pulse-tested
    modes: np.ndarray  # classification (str), "ok" where not tested
    counts: OpCounts  # operations the re-check cost
    bench_seconds: float  # their duration on the bench, from the sequencer's bench clock

    @property
    def failed(self) -> np.ndarray:
        """Flat indices of the devices to write off."""
        return self.devices[np.isin(self.modes, WRITTEN_OFF)]

    def found(self) -> dict[str, int]:
        """Devices per mode other than ``ok``."""
        modes, n = np.unique(self.modes[self.modes != "ok"], return_counts=True)
        return {str(m): int(k) for m, k in zip(modes, n, strict=True)}


def moved(s: Settings, expected: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Readings that differ from the expected ones as much as a response to pulses would."""
    ratio = np.abs(np.log(np.maximum(g, 1e-9) / np.maximum(expected, 1e-9)))
    return (ratio >= s.min_change) & (np.abs(g - expected) >= s.min_change_uS)


def plan(bench: Bench, devices: np.ndarray, expected: np.ndarray, s: Settings) -> Sequence:
    """The re-check as one sequence (see the module docstring); returns (g, moved, modes)."""
    positions = np.unique(devices // CELLS)
    current = yield from fabric_selftest(bench, [bench.board_ids[p] for p in positions])
    bl, sl = open_lines(current, s.open_uS * bench.pulses.read_voltage)
    board = np.searchsorted(positions, devices // CELLS)
    on_line = bl[board, (devices % CELLS) // COLS] | sl[board, devices % COLS]
    rm = yield from read_map(devices, s.reads)
    g = rm.mean(axis=0)
    test = moved(s, expected, g) & ~on_line
    modes = np.where(on_line, "fabric", "ok").astype(object)
    if test.any():
        st, rt = yield from pulse_response(devices[test], s.recheck_pulses, "recheck")
        table = classify(s, rm[:, test], st, rt, np.zeros(int(test.sum()), dtype=bool))
        modes[test] = table["mode"].to_numpy()
        g[test] = rt[-1]
    return g, test, modes.astype(str)


def recheck(backend: Backend, devices: np.ndarray, expected: np.ndarray, s: Settings) -> Recheck:
    """Run :func:`plan` on ``backend`` for ``devices`` whose conductance should be ``expected``
    (uS, the trainer's measured copy); timed on the bench clock like a characterisation."""
    bench = backend.bench
    clocked = backend if isinstance(backend, Sequencer) else Sequencer(backend)
    devices = np.asarray(devices, dtype=np.int64)
    before = OpCounts(**backend.counts.as_dict())
    started = clocked.bench_seconds
    g, test, modes = run(plan(bench, devices, np.asarray(expected, dtype=float), s), clocked)
    counts = OpCounts(**{k: v - getattr(before, k) for k, v in backend.counts.as_dict().items()})
    return Recheck(devices, g, test, modes, counts, clocked.bench_seconds - started)


def found_table(bench: Bench, result: Recheck) -> pd.DataFrame:
    """The devices found failed or unstable, by board, chip and pad, for people and the
    registry."""
    bad = result.modes != "ok"
    lab = bench.labels(result.devices[bad])
    return pd.DataFrame({"device": result.devices[bad],
                         **{k: lab[k] for k in ("board", "chip", "pad", "row", "col")},
                         "mode": result.modes[bad]}).sort_values(
        ["board", "chip", "pad"], ignore_index=True)
