"""Operations a sequence yields, and the loop that carries them out on a backend.

A sequence is a generator (as a Bluesky plan is): it yields one operation at a time, receives
the backend's answer -- ``None`` for a pulse, conductances (uS) for a read, column currents (uA)
for a MAC read -- and finally returns its result. Sequences compose with ``yield from``. Because
they only describe what to do, the same sequence runs on the simulated backend, on instruments,
or under an observer that logs every read and counts every pulse.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

from hil.backend import Backend


@dataclass(frozen=True, eq=False)
class Pulse:
    """``count`` SET (+1) or RESET (-1) pulses on each of ``devices``; ``None`` = bench default."""

    devices: np.ndarray
    polarity: int
    count: int = 1
    voltage: float | None = None
    width: float | None = None


@dataclass(frozen=True, eq=False)
class Read:
    """One read of each of ``devices``; ``sequence`` and ``step`` label it in the run's records."""

    devices: np.ndarray
    sequence: str
    step: int


@dataclass(frozen=True, eq=False)
class Mac:
    """A MAC read of ``array`` with binary ``inputs`` (k, rows) on its bit lines."""

    array: str
    inputs: np.ndarray
    sequence: str


Op = Pulse | Read | Mac
T = TypeVar("T")
Plan = Generator[Op, Any, T]


def perform(backend: Backend, op: Op) -> np.ndarray | None:
    """Carry out one operation."""
    if isinstance(op, Pulse):
        backend.pulse(op.devices, op.polarity, op.count, voltage=op.voltage, width=op.width)
        return None
    if isinstance(op, Read):
        return backend.read(op.devices)
    return backend.mac(op.array, op.inputs)


def run(
    plan: Plan[T],
    backend: Backend,
    observe: Callable[[Op, np.ndarray | None], None] | None = None,
) -> T:
    """Run a sequence to its end on ``backend``; ``observe(op, answer)`` sees every step."""
    answer = None
    while True:
        try:
            op = plan.send(answer)
        except StopIteration as stop:
            return stop.value
        answer = perform(backend, op)
        if observe is not None:
            observe(op, answer)
