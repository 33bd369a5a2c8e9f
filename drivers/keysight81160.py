"""Keysight 81160A pulse function arbitrary noise generator as a pulse generator.

Command forms from the 81150A/81160A user guide; behaviour in :mod:`drivers.pulsegen`. The load
is set to the model's 1 Mohm maximum (its high-impedance setting) and read back like the 33500B's.
One pulse per rising edge on the Ext In connector: ``:ARM:SOUR EXT``, edge-sensitive, rising
slope, one pulse per arm event (``:TRIG:COUN 1``; PyMeasure ``keysight81160A.py`` for the arm
source names).

Only the 81160A itself is accepted: the 81150A/81151A share the command set but not the 1 ns
minimum edge and 1.5 ns minimum width this driver's ranges assume, and their limits are not
confirmed here, so they are refused at identification rather than driven with settings they
cannot make.
"""

from __future__ import annotations

from drivers.pulsegen import PulseGenerator, level_control, width_control
from drivers.scpi import Control, format_bool, in_range, one_of, parse_bool


class Keysight81160A(PulseGenerator):
    MODEL = "Keysight 81160A"
    FAMILY = "81160A"
    MODEL_PATTERN = r"81160A"
    MIN_WIDTH, MAX_WIDTH = 1.5e-9, 1e6
    MIN_EDGE, MAX_EDGE = 1e-9, 1e3
    MAX_LEVEL = 10.0  # V into high impedance
    DEFAULT_PERIOD = 1e-6  # *RST: 1 MHz
    HIGH_Z = "1000000"
    SETUP = (
        ":FUNC{ch} PULS",
        ":PULS:HOLD{ch} WIDT",
        ":ARM:SOUR{ch} EXT",
        ":ARM:SENS{ch} EDGE",
        ":ARM:SLOP{ch} POS",
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
