"""Keysight B2900 series precision SMU (B2901A..B2962A, the B and C models, the BL/CL low-cost
variants), one channel.

Command forms from the B2900 SCPI Command Reference; behaviour in :mod:`drivers.smu`. Rear EXT
pins do nothing until given a function (``:SOUR:DIG:EXT<n>:FUNC TINP|TOUT``; NI ``agb2900``
driver header); the acquire trigger output pulses the pin *after* the measurement
(``:TOUT:POS AFT``), positive polarity. ``*OPC?``/``*WAI`` do not wait for the trigger system to
go idle (PyMeasure ``keysightB2912A.py``), so the driver polls ``:STAT:OPER:COND?`` (channel 1
transient and acquire idle bits, 2 and 16) before fetching, as PyMeasure's newer driver does.
"""

from __future__ import annotations

from drivers.scpi import Control, format_bool, in_range, parse_bool, within_limit
from drivers.smu import SourceMeter


class KeysightB2900(SourceMeter):
    MODEL = "Keysight B2900"
    FAMILY = "B2900"
    MODEL_PATTERN = r"B29\d\d(?:[ABC]L?)?"
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
    LIST_ARM = (
        ":TRIG{ch}:SOUR EXT{line}",
        ":TRIG{ch}:COUN {n}",
        ":TRIG{ch}:ACQ:DEL 0",
        ":INIT (@{ch})",
    )
    LIST_REARM = (":SOUR{ch}:VOLT:MODE LIST", ":INIT (@{ch})")
    LIST_FETCH = ":FETC:ARR:CURR? (@{ch})"
    LIST_END = (":SOUR{ch}:VOLT:MODE FIX",)
    ABORT = ":ABOR:ALL (@{ch})"
    TRIGGER_LINES = range(1, 15)
    TRIGGER_IN = (":SOUR:DIG:EXT{line}:FUNC TINP", ":SOUR:DIG:EXT{line}:POL POS")
    COMPLETE_OUT = (":SOUR:DIG:EXT{line}:FUNC TOUT", ":SOUR:DIG:EXT{line}:POL POS",
                    ":SOUR:DIG:EXT{line}:TOUT:WIDT {width}", ":SOUR:DIG:EXT{line}:TOUT:POS AFT",
                    ":TRIG{ch}:ACQ:TOUT:SIGN EXT{line}", ":TRIG{ch}:ACQ:TOUT ON")
    IDLE_BITS = 2 | 16  # channel 1: transient idle, acquire idle (PyMeasure keysightB2912A.py)

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

    def _idle(self) -> bool:
        bits = self.IDLE_BITS if self.channel == 1 else 128 | 1024
        return int(float(self.query(":STAT:OPER:COND?"))) & bits == bits
