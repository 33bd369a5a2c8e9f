"""Keithley 2450 SourceMeter in its native SCPI language (``*LANG SCPI``).

Command forms from the 2450 Reference Manual (2450-901-01); behaviour in :mod:`drivers.smu`.
The instrument must be in the SCPI language: the 2400-emulation language has no list sweeps with
buffered fetch, so opening checks ``*LANG?``.
"""

from __future__ import annotations

from drivers.errors import IdentityError
from drivers.scpi import Control, Identity, format_bool, in_range, parse_bool, within_limit
from drivers.smu import SourceMeter


class Keithley2450(SourceMeter):
    MODEL = "Keithley 2450"
    FAMILY = "2450"
    MODEL_PATTERN = r"2450"
    SETUP = (
        ":SOUR:FUNC VOLT",
        ':SENS:FUNC "CURR"',
        ":SENS:CURR:RANG:AUTO OFF",
        ":SENS:CURR:AZER OFF",
    )
    MEASURE = ":READ?"
    LIST_BEGIN = (':TRAC:CLE "defbuffer1"',)
    LIST_LOAD = ":SOUR:LIST:VOLT {}"
    LIST_APPEND = ":SOUR:LIST:VOLT:APP {}"
    MAX_LIST = 100_000
    # the built-in list sweep cannot wait for an external edge per point; this trigger model
    # (manual 3-95 ff.) recalls the list, then n times: wait for the input line's event,
    # measure, notify (the completion line's stimulus), next point
    LIST_ARM = (
        ':TRIG:LOAD "Empty"',
        ':TRIG:BLOC:CONF:REC 1, "VoltCustomSweepList"',
        ":TRIG:BLOC:WAIT 2, DIGIO{line}",
        ":TRIG:BLOC:MEAS 3",
        ":TRIG:BLOC:NOT 4, 1",
        ':TRIG:BLOC:CONF:NEXT 5, "VoltCustomSweepList"',
        ":TRIG:BLOC:BRAN:COUN 6, {n}, 2",
        ":INIT",
    )
    LIST_REARM = (':TRAC:CLE "defbuffer1"', ":INIT")
    # *WAI holds the fetch until the trigger model has finished (2450 manual: INIT is an
    # overlapped command); the host fetches only once the MCU saw every completion edge
    LIST_FETCH = '*WAI;:TRAC:DATA? 1, {n}, "defbuffer1", READ'
    FETCH_WAITS = True
    LIST_END = ()
    ABORT = ":ABOR"
    TRIGGER_LINES = range(1, 7)
    # input: rising edges (the default is the falling one); output: a high pulse (the default
    # logic is negative, whose rising edge would come only at the end of the pulse)
    TRIGGER_IN = (":DIG:LINE{line}:MODE TRIG, IN", ":TRIG:DIG{line}:IN:EDGE RIS")
    COMPLETE_OUT = (":DIG:LINE{line}:MODE TRIG, OUT", ":TRIG:DIG{line}:OUT:LOG POS",
                    ":TRIG:DIG{line}:OUT:PULS {width}", ":TRIG:DIG{line}:OUT:STIM NOT1")

    source_voltage = Control(":SOUR:VOLT?", ":SOUR:VOLT {}", "Source level, V.", validators=(
        in_range(-210, 210, "V"), within_limit("max_voltage", "source voltage", "V")))
    voltage_range = Control(":SOUR:VOLT:RANG?", ":SOUR:VOLT:RANG {}", "Source range, V.",
                            validators=(in_range(0.02, 200, "V"),))
    current_limit = Control(":SOUR:VOLT:ILIM?", ":SOUR:VOLT:ILIM {}", "Current limit, A.",
                            validators=(in_range(1e-9, 1.05, "A"),
                                        within_limit("max_current", "current limit", "A")))
    current_range = Control(":SENS:CURR:RANG?", ":SENS:CURR:RANG {}", "Measure range, A.",
                            validators=(in_range(1e-8, 1.0, "A"),))
    nplc = Control(":SENS:CURR:NPLC?", ":SENS:CURR:NPLC {}", "Integration, power-line cycles.",
                   validators=(in_range(0.01, 10, "PLC"),))
    output = Control(":OUTP?", ":OUTP {}", "Output on/off.", fmt=format_bool, parse=parse_bool)

    def _identify(self, model: str | None) -> Identity:
        identity = super()._identify(model)
        language = self.query("*LANG?")
        if language.upper() != "SCPI":
            raise IdentityError(self.name, f"command language is {language}, not SCPI; send "
                                "*LANG SCPI and power-cycle the instrument")
        return identity
