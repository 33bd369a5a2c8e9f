"""The backend interface: the swap point between what the trainer wants and what the bench does.

Everything above it (trainer, characterisation, studies) speaks three operations on devices given
as flat indices (see :mod:`hil.bench`): pulse them, read their conductance, and multiply-accumulate
read a logical array with binary vectors on its bit lines. The simulated backend implements them
in numpy; the instrument backend implements them through the drivers. Nothing above this layer
ever sees a conductance except through ``read`` and ``mac``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

import hil.backends.hardware  # noqa: F401  (registers [instruments], [wiring], [clock], [sequencer])
from hil.bench import Bench
from hil.network import bit_planes, plane_weights

SET, RESET = 1, -1


@dataclass
class OpCounts:
    """Operations a backend has carried out: the cost of a run in bench terms."""

    set_pulses: int = 0
    reset_pulses: int = 0
    device_reads: int = 0
    mac_reads: int = 0  # column currents measured (vectors x columns)

    @property
    def pulses(self) -> int:
        return self.set_pulses + self.reset_pulses

    @property
    def reads(self) -> int:
        return self.device_reads + self.mac_reads

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


class Backend(ABC):
    """A bench that can pulse, read and MAC-read devices."""

    # True where a read costs no bench time (a simulator): the trainer may then read ahead
    free_reads = False

    def __init__(self, bench: Bench) -> None:
        self.bench = bench
        self.counts = OpCounts()

    @abstractmethod
    def pulse(
        self,
        devices: np.ndarray,
        polarity: int | np.ndarray,
        count: int | np.ndarray = 1,
        *,
        voltage: float | None = None,
        width: float | None = None,
    ) -> None:
        """Apply ``count`` SET (+1) or RESET (-1) pulses to each of the distinct ``devices``.

        ``voltage`` is the magnitude (defaults to the bench's SET or RESET level); ``width``
        defaults to the bench's pulse width.
        """

    @abstractmethod
    def read(self, devices: np.ndarray) -> np.ndarray:
        """Conductance (uS) of each device seen at the read voltage, one read each."""

    @abstractmethod
    def mac(self, array: str, inputs: np.ndarray) -> np.ndarray:
        """Column currents (uA) of ``array`` for binary input vectors on its bit lines.

        ``inputs`` is (k, rows) of 0/1; the result is (k, cols), one MAC read per vector, with
        the bench's read voltage on every selected bit line.
        """

    def mac_levels(self, array: str, levels: np.ndarray, signed: bool) -> np.ndarray:
        """Column currents (uA) for multi-bit inputs, applied as binary bit-planes.

        ``levels`` is (n, rows) of 0-15 (or -15..15 with ``signed``: positive and negative part
        in two passes); each plane is one MAC read of binary bit-line patterns, and the host
        sums the planes' currents weighted by 2^b / 15, so the result is what inputs
        ``levels / 15`` would give. Backends that can compute this sum directly override it.
        """
        planes = bit_planes(levels, signed)
        n, k, rows = planes.shape
        current = self.mac(array, planes.reshape(n * k, rows)).reshape(n, k, -1)
        return np.matmul(plane_weights(signed), current)

    def close(self) -> None:
        """Leave the bench safe: outputs off, switches open. Idempotent."""
        return None

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly where the backend is (for checkpoints)."""
        return {"counts": self.counts.as_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.counts = OpCounts(**state["counts"])

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

