"""Instrument drivers: one module per instrument family (SCPI over pyvisa, serial over
pyserial). No physics here.

* :mod:`drivers.scpi` — SCPI base (``SCPIInstrument``, declarative ``Control`` settings).
* :mod:`drivers.pulsegen` — ``PulseGenerator`` behaviour; models :class:`Keysight33500B`
  (:mod:`drivers.keysight33500`) and :class:`Keysight81160A` (:mod:`drivers.keysight81160`).
* :mod:`drivers.smu` — ``SourceMeter`` behaviour; models :class:`Keithley2450`
  (:mod:`drivers.keithley2450`) and :class:`KeysightB2900` (:mod:`drivers.keysightb2900`).
* :mod:`drivers.mcu` — the multiplexer MCU link (``MuxController``) and the protocol's framing
  and route definitions (``docs/mcu-protocol.md``).
* :mod:`drivers.errors` — typed errors, all naming the instrument.
"""

import re

from drivers.keithley2450 import Keithley2450
from drivers.keysight33500 import Keysight33500B
from drivers.keysight81160 import Keysight81160A
from drivers.keysightb2900 import KeysightB2900
from drivers.pulsegen import PulseGenerator
from drivers.scpi import normalise_model
from drivers.smu import SourceMeter

PULSE_GENERATORS: dict[str, type[PulseGenerator]] = {
    cls.FAMILY: cls for cls in (Keysight33500B, Keysight81160A)
}
"""Driver class per family name as a bench file gives it (``generator_model``)."""

SOURCE_METERS: dict[str, type[SourceMeter]] = {
    cls.FAMILY: cls for cls in (Keithley2450, KeysightB2900)
}
"""Driver class per family name as a bench file gives it (``smu_model``)."""


def driver_for(model: str) -> tuple[str, type[PulseGenerator] | type[SourceMeter]] | None:
    """``("generator" | "smu", driver class)`` whose model pattern the ``*IDN?`` model field
    matches (``MODEL 2450`` as Keithley writes it included), or ``None`` when no driver fits."""
    found = normalise_model(model)
    for kind, drivers in (("generator", PULSE_GENERATORS), ("smu", SOURCE_METERS)):
        for cls in drivers.values():
            if re.fullmatch(cls.MODEL_PATTERN, found, flags=re.IGNORECASE):
                return kind, cls
    return None
