"""Keysight (Agilent) 33500B series waveform generator as a pulse generator (33511B..33622A).

Command forms from the 33500 Series Operating and Service Guide; behaviour in
:mod:`drivers.pulsegen`. One pulse per rising edge on the rear Ext Trig input: a triggered
burst of one cycle (``BURS:MODE TRIG``, ``BURS:NCYC 1``) with ``TRIG:SOUR EXT``, rising slope,
no trigger delay (guide, BURSt and TRIGger subsystems). The trigger output stays off: with an
external source the Ext Trig connector is the input.
"""

from __future__ import annotations

from drivers.pulsegen import PulseGenerator, level_control, width_control
from drivers.scpi import Control, format_bool, in_range, one_of, parse_bool


class Keysight33500B(PulseGenerator):
    MODEL = "Keysight 33500B"
    FAMILY = "33500B"
    MODEL_PATTERN = r"335\d\d[AB]|336\d\d[AB]"
    MIN_WIDTH, MAX_WIDTH = 16e-9, 1e6
    MIN_EDGE, MAX_EDGE = 8.4e-9, 1e-6
    MAX_LEVEL = 10.0  # V into high impedance
    DEFAULT_PERIOD = 1e-3  # *RST: 1 kHz
    HIGH_Z = "INF"
    SETUP = (
        "SOUR{ch}:FUNC PULS",
        "SOUR{ch}:BURS:MODE TRIG",
        "SOUR{ch}:BURS:NCYC 1",
        "SOUR{ch}:BURS:STAT ON",
        "TRIG{ch}:SOUR EXT",
        "TRIG{ch}:SLOP POS",
        "TRIG{ch}:DEL 0",
        "OUTP{ch}:TRIG OFF",
    )
    SYNC_ON = ("OUTP{ch}:SYNC ON",)  # front-panel Sync: one edge at the start of each burst

    load = Control("OUTP{ch}:LOAD?", "OUTP{ch}:LOAD {}", "Expected load, ohm (INF = high-Z).",
                   fmt=str)
    output = Control("OUTP{ch}?", "OUTP{ch} {}", "Output relay on/off.",
                     fmt=format_bool, parse=parse_bool)
    polarity = Control("OUTP{ch}:POL?", "OUTP{ch}:POL {}", "NORM or INV (about the offset).",
                       validators=(one_of("NORM", "INV"),), fmt=str, parse=str)
    high = level_control("SOUR{ch}:VOLT:HIGH?", "SOUR{ch}:VOLT:HIGH {}", "High level, V.",
                         MAX_LEVEL)
    low = level_control("SOUR{ch}:VOLT:LOW?", "SOUR{ch}:VOLT:LOW {}", "Low level, V.",
                        MAX_LEVEL)
    width = width_control("SOUR{ch}:FUNC:PULS:WIDT?", "SOUR{ch}:FUNC:PULS:WIDT {}",
                          MIN_WIDTH, MAX_WIDTH)
    period = Control("SOUR{ch}:FUNC:PULS:PER?", "SOUR{ch}:FUNC:PULS:PER {}", "Pulse period, s.",
                     validators=(in_range(33e-9, 1e6, "s"),))
    edge = Control("SOUR{ch}:FUNC:PULS:TRAN:BOTH?", "SOUR{ch}:FUNC:PULS:TRAN:BOTH {}",
                   "Leading and trailing edge time, s.",
                   validators=(in_range(MIN_EDGE, MAX_EDGE, "s"),))
