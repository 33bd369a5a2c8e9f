"""Basic sequences as plain data and generators, runnable on any backend.

A sequence is a generator of operations (:class:`Pulse`, :class:`Read`, :class:`Mac`). The
runner sends each operation's result back into the generator, so a sequence can decide its next
step from what it measured (program-and-verify) while remaining plain data that a dry run can
list, count and time before anything moves::

    result = run(program_verify(devices, target_uS=40.0), backend)

The same sequence runs on the simulated backend, on the sequencer wrapping it, and on the
instrument backend.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hil.backends.base import RESET, SET, Backend


@dataclass(frozen=True)
class Pulse:
    devices: np.ndarray
    polarity: int | np.ndarray
    count: int | np.ndarray = 1
    voltage: float | None = None
    width: float | None = None


@dataclass(frozen=True)
class Read:
    devices: np.ndarray
    sequence: str = ""  # labels the readings in a run's records, e.g. "read_map" ...
    step: int = 0  # ... and which of its reads this is (repeat, pulses so far, ramp step)


@dataclass(frozen=True)
class Mac:
    array: str
    inputs: np.ndarray
    sequence: str = ""


Op = Pulse | Read | Mac
Sequence = Generator[Op, Any, Any]


def apply(op: Op, backend: Backend) -> Any:
    """Carry out one operation; reads return conductances (uS), MACs currents (uA)."""
    if isinstance(op, Pulse):
        backend.pulse(op.devices, op.polarity, op.count, voltage=op.voltage, width=op.width)
        return None
    if isinstance(op, Read):
        return backend.read(op.devices)
    if isinstance(op, Mac):
        return backend.mac(op.array, op.inputs)
    raise TypeError(f"not an operation: {op!r}")


def run(sequence: Sequence, backend: Backend,
        observe: Callable[[Op, Any], None] | None = None) -> Any:
    """Run a sequence to its end; returns what the generator returns. ``observe(op, result)``,
    if given, sees every operation and its result (to record reads, count pulses, show
    progress)."""
    try:
        op = next(sequence)
        while True:
            result = apply(op, backend)
            if observe is not None:
                observe(op, result)
            op = sequence.send(result)
    except StopIteration as stop:
        return stop.value


def set_pulses(devices, count=1, voltage=None, width=None) -> Sequence:
    """SET ``count`` pulses on every device."""
    yield Pulse(np.asarray(devices), SET, count, voltage, width)


def reset_pulses(devices, count=1, voltage=None, width=None) -> Sequence:
    """RESET ``count`` pulses on every device."""
    yield Pulse(np.asarray(devices), RESET, count, voltage, width)


def read(devices) -> Sequence:
    """One conductance read per device; returns the readings (uS)."""
    return (yield Read(np.asarray(devices)))


def mac_read(array: str, inputs) -> Sequence:
    """Column currents (uA) for binary input vectors on the bit lines."""
    return (yield Mac(array, np.asarray(inputs)))


def pulse_train(devices, polarity: int, pulses: int, voltage=None, width=None) -> Sequence:
    """``pulses`` single pulses, each followed by a read: the response-curve measurement.
    Returns (pulses + 1, devices) conductances, the first row before any pulse."""
    devices = np.asarray(devices)
    trace = [(yield Read(devices))]
    for _ in range(pulses):
        yield Pulse(devices, polarity, 1, voltage, width)
        trace.append((yield Read(devices)))
    return np.array(trace)


@dataclass
class VerifyResult:
    conductance: np.ndarray  # last reading (uS)
    converged: np.ndarray  # bool per device
    pulses: np.ndarray = field(repr=False)  # pulses each device received
    stalled: np.ndarray = field(repr=False)  # given up: did not come nearer (bool)


def program_verify(devices, target_uS, tolerance_uS: float = 2.0, max_rounds: int = 50,
                   max_burst: int = 4, voltage=None, width=None, stall_rounds: int = 0,
                   stall_fraction: float = 0.0) -> Sequence:
    """Program each device to ``target_uS`` (scalar or per device): read, pulse those outside
    the band (SET below, RESET above; ``max_burst`` pulses when far, one when near), read
    them again, until all are inside or ``max_rounds`` is spent. Returns a
    :class:`VerifyResult`.

    With ``stall_rounds``, a device still far from its target that has come nearer by less than
    ``stall_fraction`` of its reading over its last ``stall_rounds`` bursts is given up
    (``stalled``): a stuck device, or one at the end of its range, would otherwise take every
    round's burst. Relative, because read noise is; it should be a few times that noise."""
    devices = np.asarray(devices)
    target = np.broadcast_to(np.asarray(target_uS, dtype=float), devices.shape)
    pulses = np.zeros(devices.shape, dtype=np.int64)
    stalled = np.zeros(devices.shape, dtype=bool)
    g = yield Read(devices)
    history = [np.abs(target - g)]
    for _ in range(max_rounds):
        err = target - g
        far = np.abs(err) > 4 * tolerance_uS
        if stall_rounds and len(history) > stall_rounds:
            came = history[-1 - stall_rounds] - history[-1]
            stalled |= far & (came < stall_fraction * g)
        off = (np.abs(err) > tolerance_uS) & ~stalled
        if not off.any():
            break
        # far from the band: a burst; close to it: single pulses, so nothing overshoots much
        count = np.where(far[off], max_burst, 1)
        yield Pulse(devices[off], np.where(err[off] > 0, SET, RESET), count, voltage, width)
        pulses[off] += count
        g = g.copy()
        g[off] = yield Read(devices[off])  # nothing else moved: read only what was pulsed
        history.append(np.abs(target - g))
    return VerifyResult(g, np.abs(target - g) <= tolerance_uS, pulses, stalled)
