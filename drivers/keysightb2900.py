"""Keysight B2900 series precision SMU (B2901A..B2962A), one channel.

Command forms from the B2900 SCPI Command Reference; behaviour in :mod:`drivers.smu`.
"""

from __future__ import annotations

from drivers.scpi import Control, format_bool, in_range, parse_bool, within_limit
from drivers.smu import SourceMeter


class KeysightB2900(SourceMeter):
    MODEL = "Keysight B2900"
    FAMILY = "B2900"
    MODEL_PATTERN = r"B29\d\d[AB]?"
    SETUP = (
        ":SOUR{ch}:FUNC:MODE VOLT",
        ":SOUR{ch}:VOLT:MODE FIX",
        ':SENS{ch}:FUNC "CURR"',
        ":SENS{ch}:CURR:RANG:AUTO OFF",
    )
    MEASURE = ":MEAS:CURR? (@{ch})"
    LIST_BEGIN = (":SOUR{ch}:VOLT:MODE LIST",)
    LIST_LOAD = ":SOUR{ch}:LIST:VOLT {}"
    LIST_APPEND = ":SOUR{ch}:LIST:VOLT:APP {}"
    MAX_LIST = 2500
    LIST_RUN = (
        ":TRIG{ch}:SOUR AINT",
        ":TRIG{ch}:COUN {n}",
        ":TRIG{ch}:ACQ:DEL {delay}",
        ":INIT (@{ch})",
        "*WAI",
    )
    LIST_FETCH = ":FETC:ARR:CURR? (@{ch})"
    LIST_END = (":SOUR{ch}:VOLT:MODE FIX",)
    TRIGGER_LINES = range(1, 15)
    TRIGGER_OUT = (":TRIG{ch}:ACQ:TOUT:SIGN EXT{line}", ":TRIG{ch}:ACQ:TOUT ON")

    source_voltage = Control(":SOUR{ch}:VOLT?", ":SOUR{ch}:VOLT {}", "Source level, V.",
                             validators=(in_range(-210, 210, "V"),
                                         within_limit("max_voltage", "source voltage", "V")))
    voltage_range = Control(":SOUR{ch}:VOLT:RANG?", ":SOUR{ch}:VOLT:RANG {}",
                            "Source range, V.", validators=(in_range(0.2, 200, "V"),))
    current_limit = Control(":SENS{ch}:CURR:PROT?", ":SENS{ch}:CURR:PROT {}",
                            "Current compliance, A.",
                            validators=(in_range(1e-9, 3.03, "A"),
                                        within_limit("max_current", "current limit", "A")))
    current_range = Control(":SENS{ch}:CURR:RANG?", ":SENS{ch}:CURR:RANG {}",
                            "Measure range, A.", validators=(in_range(1e-8, 3.0, "A"),))
    nplc = Control(":SENS{ch}:CURR:NPLC?", ":SENS{ch}:CURR:NPLC {}",
                   "Integration, power-line cycles.", validators=(in_range(4e-4, 100, "PLC"),))
    aperture = Control(":SENS{ch}:CURR:APER?", ":SENS{ch}:CURR:APER {}",
                       "Integration time, s (alternative to nplc).",
                       validators=(in_range(8e-6, 2.0, "s"),))
    output = Control(":OUTP{ch}?", ":OUTP{ch} {}", "Output on/off.",
                     fmt=format_bool, parse=parse_bool)
