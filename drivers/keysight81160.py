"""Keysight 81160A pulse function arbitrary noise generator as a pulse generator.

Command forms from the 81150A/81160A user guide; behaviour in :mod:`drivers.pulsegen`. The load
is set to the model's 1 Mohm maximum (its high-impedance setting) and read back like the 33500B's.
"""

from __future__ import annotations

from drivers.pulsegen import PulseGenerator, level_control, width_control
from drivers.scpi import Control, format_bool, in_range, one_of, parse_bool


class Keysight81160A(PulseGenerator):
    MODEL = "Keysight 81160A"
    FAMILY = "81160A"
    MODEL_PATTERN = r"8116\dA|8115\dA"
    MIN_WIDTH, MAX_WIDTH = 1.5e-9, 1e6
    MIN_EDGE, MAX_EDGE = 1e-9, 1e3
    MAX_LEVEL = 10.0  # V into high impedance
    DEFAULT_PERIOD = 1e-6  # *RST: 1 MHz
    HIGH_Z = "1000000"
    SETUP = (
        ":FUNC{ch} PULS",
        ":PULS:HOLD{ch} WIDT",
        ":ARM:SOUR{ch} MAN",
        ":TRIG{ch}:COUN 1",
    )

    load = Control(":OUTP{ch}:LOAD?", ":OUTP{ch}:LOAD {}", "Expected load, ohm.", fmt=str)
    output = Control(":OUTP{ch}?", ":OUTP{ch} {}", "Output on/off.",
                     fmt=format_bool, parse=parse_bool)
    polarity = Control(":OUTP{ch}:POL?", ":OUTP{ch}:POL {}", "NORM or INV.",
                       validators=(one_of("NORM", "INV"),), fmt=str, parse=str)
    high = level_control(":VOLT{ch}:HIGH?", ":VOLT{ch}:HIGH {}", "High level, V.", MAX_LEVEL)
    low = level_control(":VOLT{ch}:LOW?", ":VOLT{ch}:LOW {}", "Low level, V.", MAX_LEVEL)
    width = width_control(":PULS:WIDT{ch}?", ":PULS:WIDT{ch} {}", MIN_WIDTH, MAX_WIDTH)
    period = Control(":PULS:PER{ch}?", ":PULS:PER{ch} {}", "Pulse period, s.",
                     validators=(in_range(3.03e-9, 1e6, "s"),))
    edge = Control(":FUNC{ch}:PULS:TRAN?", ":FUNC{ch}:PULS:TRAN {}", "Edge time, s.",
                   validators=(in_range(MIN_EDGE, MAX_EDGE, "s"),))
    burst_count = Control(":TRIG{ch}:COUN?", ":TRIG{ch}:COUN {}", "Pulses per trigger.",
                          validators=(in_range(1, 2_147_483_647),),
                          parse=lambda t: int(float(t)))
