"""Emulated pulse generators: Keysight 33500B series and Keysight 81160A.

Channel 1 drives the bench's source bus. What matters for the devices is modelled as the real
units behave: the output-load setting (default 50 ohm) makes the levels a high-impedance 1T1R
load sees ``(R_load + 50) / R_load`` times the programmed ones, i.e. **twice** at the default;
``*RST`` turns outputs off and restores the 50 ohm default; a bus trigger fires one burst of
pulses only when the unit is set up for triggered bursts with the output on. With normal
polarity the output idles at the low level and pulses to the high level; inverted, it idles at
the high level and pulses to the low level (so a RESET pulse is ``HIGH 0``, ``LOW -1.8``,
``POL INV``).

Triggers, as the manuals describe them and no kinder:

* an edge on the external trigger input (``generator.trig_in``) starts a burst only when the
  unit is set for it: 33500B ``TRIG:SOUR EXT`` with a triggered pulse burst, on the slope
  ``TRIG:SLOP`` selects (Operating and Service Guide, TRIGger subsystem); 81160A
  ``:ARM:SOUR EXT`` (user guide, ARM subsystem; PyMeasure ``keysight81160A.py`` names the
  sources). An edge arriving while a burst is still running is ignored (33500B guide: triggers
  during a burst are ignored; the 81160A guide is silent, so the same stricter rule);
* the burst starts :attr:`PulseGenerator.latency` after the edge: neither manual gives a
  figure we could find, so the bench file's ``[wiring] generator_latency`` must cover the real
  unit's (a point to confirm with a scope, docs/timing.md);
* the 33500B's trigger output (``OUTP:TRIG ON``) gives one edge at the *start* of each burst,
  never one per pulse (guide p. 264: "at the beginning of each sweep or burst"), and only with
  a bus or timer trigger: with ``TRIG:SOUR EXT`` its Ext Trig connector is the input, so nothing
  comes out (the guide does not say it can do both; the stricter case);
* the 33500B's front-panel Sync output (``OUTP:SYNC ON``) marks the start of each burst with a
  rising edge (guide, OUTPut:SYNC; the exact delay to the pulse is a point to confirm); off
  after ``*RST`` here (the stricter case);
* ``*OPC?`` after ``*TRG``: the 33500B answers when the burst has ended (guide, ``*OPC?``); for
  the 81160A nothing confirms that, so the emulated 81160A answers at once (stricter).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from hil.emulator.model import BenchModel
from hil.emulator.scpi import ScpiError, ScpiInstrument, boolean, choice, fmt, number

SOURCE_IMPEDANCE = 50.0


@dataclass
class Channel:
    function: str = "SIN"
    width: float = 100e-6
    period: float = 1e-3
    edge: float = 8.4e-9
    high: float = 0.05
    low: float = -0.05
    load: float = 50.0
    output: bool = False
    inverted: bool = False
    burst: bool = False
    burst_mode: str = "TRIGGERED"
    cycles: int = 1
    trigger_source: str = "IMMEDIATE"
    hold: str = "WIDTH"
    slope: str = "POSITIVE"
    arm_sense: str = "LEVEL"  # 81160A :ARM:SENS; edge-triggered only when set so (stricter)
    trigger_delay: float = 0.0
    trigger_out: bool = False  # 33500B OUTP:TRIG
    sync: bool = False  # 33500B OUTP:SYNC
    busy_until: float = -1.0  # bench time the running burst ends

    @property
    def gain(self) -> float:
        """Open-circuit voltage over programmed voltage for the load setting."""
        return 1.0 if math.isinf(self.load) else (self.load + SOURCE_IMPEDANCE) / self.load

    @property
    def pulse_level(self) -> float:
        """Voltage at a high-impedance load during the pulse."""
        return (self.low if self.inverted else self.high) * self.gain


class PulseGenerator(ScpiInstrument):
    """Common state and physics; subclasses bind the model's command spellings."""

    max_level = 10.0  # V into an open circuit
    min_width = 16e-9
    latency = 1e-6  # s from a trigger edge to the burst start (see the module docstring)
    external_source = "EXTERNAL"  # the trigger/arm source that listens to the input
    opc_waits_for_burst = False

    def __init__(self, model: BenchModel) -> None:
        self.model = model
        self.channels: dict[int, Channel] = {}
        super().__init__(model.lock)
        model.inputs["generator.trig_in"] = self.external_edge

    def before_message(self) -> None:
        self.model.host_message()

    def after_message(self) -> None:
        self.model.changed.notify_all()

    def wait_complete(self) -> bool:
        if self.opc_waits_for_burst:
            self.model.advance(max(self.model.now, self.channels[1].busy_until))
        return True

    def external_edge(self, t: float, width: float) -> None:
        """A trigger pulse on the external input: rising at ``t``, ``width`` s long."""
        ch = self.channels[1]
        if ch.trigger_source != self.external_source or not self.armed(ch):
            return
        at = t if ch.slope == "POSITIVE" else t + width
        self.fire(ch, ch.cycles, at + self.latency + ch.trigger_delay)

    def reset(self) -> None:
        self.channels = {1: self.default_channel(), 2: self.default_channel()}

    def default_channel(self) -> Channel:
        return Channel()

    def ch(self, suffixes: list[int]) -> Channel:
        n = suffixes[0] if suffixes else 1
        if n not in self.channels:
            raise ScpiError(-113, f"channel {n}")
        return self.channels[n]

    # ---- setters shared by both models ---------------------------------------------------

    def level(self, which: str):
        def handler(args: list[str], sfx: list[int]) -> None:
            ch = self.ch(sfx)
            limit = self.max_level / ch.gain
            setattr(ch, which, number(_one(args), -limit, limit))

        return handler

    def amplitude(self, args: list[str], sfx: list[int]) -> None:
        ch = self.ch(sfx)
        amp, mid = number(_one(args), 0, 2 * self.max_level / ch.gain), (ch.high + ch.low) / 2
        ch.high, ch.low = mid + amp / 2, mid - amp / 2

    def offset(self, args: list[str], sfx: list[int]) -> None:
        ch = self.ch(sfx)
        mid = number(_one(args), -self.max_level / ch.gain, self.max_level / ch.gain)
        half = (ch.high - ch.low) / 2
        ch.high, ch.low = mid + half, mid - half

    def load(self, args: list[str], sfx: list[int]) -> None:
        ch = self.ch(sfx)
        value = number(_one(args), 1.0, 1e6, inf_ok=True)
        ch.load = math.inf if value >= 1e6 else value  # 1 Mohm is the 81160A's "high Z"

    def load_q(self, args: list[str], sfx: list[int]) -> str:
        ch = self.ch(sfx)
        return "9.9E+37" if math.isinf(ch.load) else fmt(ch.load)

    def attr(self, name: str, parse):
        def handler(args: list[str], sfx: list[int]) -> None:
            setattr(self.ch(sfx), name, parse(_one(args)))

        return handler

    def get(self, name: str, show=None):
        def handler(args: list[str], sfx: list[int]) -> str:
            value = getattr(self.ch(sfx), name)
            if show is not None:
                return show(value)
            if isinstance(value, bool):
                return "1" if value else "0"
            return fmt(value) if isinstance(value, float) else str(value)

        return handler

    # ---- firing ----------------------------------------------------------------------------

    def armed(self, ch: Channel) -> bool:
        """Set for a triggered pulse burst (the model's own conditions)."""
        raise NotImplementedError

    def fire(self, ch: Channel, count: int, start: float) -> None:
        """A burst of ``count`` pulses from bench time ``start`` on the source bus (channel 1
        is the one wired to the bench); ignored while a burst runs."""
        if ch.width >= ch.period:
            raise ScpiError(-221, "pulse width must be below the period")
        if start < ch.busy_until:
            return
        ch.busy_until = start + count * ch.period  # a burst lasts its cycles (stricter)
        if ch.trigger_out and ch.trigger_source in ("BUS", "TIMER"):
            self.model.emit("generator.trig_out", start, 1e-6)
        if ch.sync:  # the Sync output marks the start of each burst
            self.model.emit("generator.sync", start, ch.width)
        if not ch.output:
            return
        level, width = ch.pulse_level, ch.width
        for k in range(count):
            self.model.at(start + k * ch.period, lambda: self.model.pulse(level, width))


def _one(args: list[str]) -> str:
    if not args:
        raise ScpiError(-109)
    if len(args) > 1:
        raise ScpiError(-108)
    return args[0]


def _slope(arg: str) -> str:
    return choice(arg, "POSitive", "NEGative")


def _polarity(arg: str) -> bool:
    return choice(arg, "NORMal", "INVerted") == "INVERTED"


class Keysight33500B(PulseGenerator):
    """33500B series (33522B here): ``SOURce#:FUNCtion:PULSe:...``, ``OUTPut#:LOAD``, triggered
    burst with ``TRIGger#:SOURce BUS`` and ``*TRG``."""

    idn = "Keysight Technologies,33522B,MY00000001,5.02-1.19-2.00-58-00"
    queue_size = 20
    name = "33500B"

    def __init__(self, model: BenchModel) -> None:
        super().__init__(model)
        s = "[:SOURce#]"
        a = self.add
        a(f"{s}:FUNCtion[:SHAPe]", self.attr("function", lambda v: choice(
            v, "SINusoid", "SQUare", "TRIangle", "RAMP", "PULSe", "PRBS", "NOISe", "ARB", "DC")))
        a(f"{s}:FUNCtion[:SHAPe]?", self.get("function", lambda v: v[:4]))
        a(f"{s}:FUNCtion:PULSe:WIDTh", self.attr("width", lambda v: number(v, 16e-9, 1e6)))
        a(f"{s}:FUNCtion:PULSe:WIDTh?", self.get("width"))
        a(f"{s}:FUNCtion:PULSe:PERiod", self.attr("period", lambda v: number(v, 33e-9, 1e6)))
        a(f"{s}:FUNCtion:PULSe:PERiod?", self.get("period"))
        for edge in ("BOTH", "LEADing", "TRAiling"):
            a(f"{s}:FUNCtion:PULSe:TRANsition:{edge}",
              self.attr("edge", lambda v: number(v, 8.4e-9, 1e-6)))
        a(f"{s}:FUNCtion:PULSe:TRANsition[:LEADing]?", self.get("edge"))
        a(f"{s}:FUNCtion:PULSe:TRANsition:BOTH?", self.get("edge"))
        a(f"{s}:FUNCtion:PULSe:HOLD", lambda args, sfx: None)
        a(f"{s}:VOLTage[:LEVel][:IMMediate][:AMPLitude]", self.amplitude)
        a(f"{s}:VOLTage[:LEVel][:IMMediate]:OFFSet", self.offset)
        a(f"{s}:VOLTage:UNIT", lambda args, sfx: None)
        a(f"{s}:VOLTage:HIGH", self.level("high"))
        a(f"{s}:VOLTage:HIGH?", self.get("high"))
        a(f"{s}:VOLTage:LOW", self.level("low"))
        a(f"{s}:VOLTage:LOW?", self.get("low"))
        a(f"{s}:BURSt:STATe", self.attr("burst", boolean))
        a(f"{s}:BURSt:STATe?", self.get("burst"))
        a(f"{s}:BURSt:MODE", self.attr("burst_mode", lambda v: choice(v, "TRIGgered", "GATed")))
        a(f"{s}:BURSt:NCYCles", self.attr("cycles", lambda v: int(number(v, 1, 1e8))))
        a(f"{s}:BURSt:NCYCles?", self.get("cycles"))
        a("OUTPut#[:STATe]", self.attr("output", boolean))
        a("OUTPut#[:STATe]?", self.get("output"))
        a("OUTPut#:LOAD", self.load)
        a("OUTPut#:LOAD?", self.load_q)
        a("OUTPut#:POLarity", self.attr("inverted", _polarity))
        a("OUTPut#:POLarity?", self.get("inverted", lambda v: "INV" if v else "NORM"))
        a("OUTPut#:SYNC[:STATe]", self.attr("sync", boolean))
        a("OUTPut#:SYNC[:STATe]?", self.get("sync"))
        a("OUTPut#:TRIGger[:STATe]", self.attr("trigger_out", boolean))
        a("OUTPut#:TRIGger[:STATe]?", self.get("trigger_out"))
        a("TRIGger#[:SEQuence]:SOURce", self.attr("trigger_source", lambda v: choice(
            v, "IMMediate", "EXTernal", "TIMer", "BUS")))
        a("TRIGger#[:SEQuence]:SOURce?", self.get("trigger_source", lambda v: v[:3]))
        a("TRIGger#[:SEQuence]:SLOPe", self.attr("slope", _slope))
        a("TRIGger#[:SEQuence]:SLOPe?", self.get("slope", lambda v: v[:3]))
        a("TRIGger#[:SEQuence]:DELay", self.attr("trigger_delay", lambda v: number(v, 0, 1e3)))
        a("TRIGger#[:SEQuence][:IMMediate]", lambda args, sfx: self._trigger(self.ch(sfx)))

    opc_waits_for_burst = True

    def armed(self, ch: Channel) -> bool:
        return ch.burst and ch.burst_mode == "TRIGGERED" and ch.function == "PULSE"

    def bus_trigger(self) -> None:
        ch = self.channels[1]
        if ch.trigger_source != "BUS":
            raise ScpiError(-211, "trigger source is not BUS")
        self._trigger(ch)

    def _trigger(self, ch: Channel) -> None:
        if not self.armed(ch):
            raise ScpiError(-211, "not in triggered pulse burst mode")
        self.fire(ch, ch.cycles, self.model.now)
        self.model.advance(self.model.now)  # the burst starts now


class Keysight81160A(PulseGenerator):
    """81160A: ``:PULSe:WIDTh#``, ``:VOLTage#:HIGH``, ``:OUTPut#:LOAD``, single shots with
    ``:ARM:SOURce# MANual`` and ``*TRG`` (``:TRIGger#:COUNt`` pulses per trigger)."""

    idn = "Agilent Technologies,81160A,DE00000001,1.2.0.0"
    queue_size = 30
    name = "81160A"
    max_level = 10.0

    def default_channel(self) -> Channel:
        return Channel(function="PULSE", width=50e-9, period=1e-6, edge=2e-9,
                       trigger_source="IMMEDIATE")

    def __init__(self, model: BenchModel) -> None:
        super().__init__(model)
        a = self.add
        a(":FUNCtion#[:SHAPe]", self.attr("function", lambda v: choice(
            v, "SINusoid", "SQUare", "RAMP", "PULSe", "NOISe", "USER", "DC")))
        a(":FUNCtion#[:SHAPe]?", self.get("function", lambda v: v[:4]))
        a("[:SOURce]:PULSe:WIDTh#", self.attr("width", lambda v: number(v, 1.5e-9, 1e6)))
        a("[:SOURce]:PULSe:WIDTh#?", self.get("width"))
        a("[:SOURce]:PULSe:PERiod#", self.attr("period", lambda v: number(v, 3.03e-9, 1e6)))
        a("[:SOURce]:PULSe:PERiod#?", self.get("period"))
        a("[:SOURce]:PULSe:HOLD#", self.attr("hold", lambda v: choice(v, "WIDTh", "DCYCle")))
        edge = self.attr("edge", lambda v: number(v, 1e-9, 1e3))
        a(":FUNCtion#:PULSe:TRANsition[:LEADing]", edge)
        a(":FUNCtion#:PULSe:TRANsition:TRAiling", edge)
        a(":FUNCtion#:PULSe:TRANsition[:LEADing]?", self.get("edge"))
        a("[:SOURce]:PULSe:TRANsition#[:LEADing]", edge)
        a("[:SOURce]:VOLTage#[:LEVel][:IMMediate]:HIGH", self.level("high"))
        a("[:SOURce]:VOLTage#[:LEVel][:IMMediate]:HIGH?", self.get("high"))
        a("[:SOURce]:VOLTage#[:LEVel][:IMMediate]:LOW", self.level("low"))
        a("[:SOURce]:VOLTage#[:LEVel][:IMMediate]:LOW?", self.get("low"))
        a("[:SOURce]:VOLTage#:LIMit:HIGH", lambda args, sfx: None)
        a("[:SOURce]:VOLTage#:LIMit:LOW", lambda args, sfx: None)
        a("[:SOURce]:VOLTage#:LIMit:STATe", lambda args, sfx: None)
        a(":OUTPut#[:STATe]", self.attr("output", boolean))
        a(":OUTPut#[:STATe]?", self.get("output"))
        a(":OUTPut#:LOAD", self.load)
        a(":OUTPut#:LOAD?", self.load_q)
        a(":OUTPut#:IMPedance:EXTernal", self.load)
        a(":OUTPut#:POLarity", self.attr("inverted", _polarity))
        a(":OUTPut#:POLarity?", self.get("inverted", lambda v: "INV" if v else "NORM"))
        a(":ARM:SOURce#", self.attr("trigger_source", lambda v: choice(
            v, "IMMediate", "INTernal2", "EXTernal", "MANual")))
        a(":ARM:SOURce#?", self.get("trigger_source", lambda v: v[:3]))
        a(":ARM:SLOPe#", self.attr("slope", _slope))
        a(":ARM:SENSe#", self.attr("arm_sense", lambda v: choice(v, "EDGE", "LEVel")))
        a(":ARM:SLOPe#?", self.get("slope", lambda v: v[:3]))
        a(":TRIGger#:COUNt", self.attr("cycles", lambda v: int(number(v, 1, 1e6))))
        a(":TRIGger#:COUNt?", self.get("cycles"))

    def armed(self, ch: Channel) -> bool:
        return ch.function == "PULSE"

    def external_edge(self, t: float, width: float) -> None:
        if self.channels[1].arm_sense == "EDGE":
            super().external_edge(t, width)

    def bus_trigger(self) -> None:
        ch = self.channels[1]
        if ch.trigger_source != "MANUAL" or not self.armed(ch):
            raise ScpiError(-211, "arm source is not MANual")
        self.fire(ch, ch.cycles, self.model.now)
        self.model.advance(self.model.now)  # the burst starts now


GENERATORS: dict[str, type[PulseGenerator]] = {
    "33500B": Keysight33500B,
    "81160A": Keysight81160A,
}


def make_generator(model_name: str, model: BenchModel) -> PulseGenerator:
    return GENERATORS[model_name](model)

