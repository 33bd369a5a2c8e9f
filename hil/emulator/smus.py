"""Emulated source-measure units: Keithley 2450 (native SCPI) and Keysight B2900 series.

The SMU forces its source level on the source bus and measures the current the multiplexers let
into the measure bus (:meth:`BenchModel.current`), over an aperture of ``NPLC / 50`` s (50 Hz
mains: the longer, stricter case) on the bench time base; the reading is the route in force at
the *end* of the aperture, so a switch that moves during it gives the wrong cell's current, as
it would on the bench. Current compliance clips the reading; a fixed measure range overflows
(``9.9E37``) above 105 % of range; output off measures nothing; ``*RST`` turns the output off.

Triggers, as the manuals describe them and no kinder:

* **2450** (Reference Manual 2450-901-01, trigger model and digital I/O; same command family as
  the 2461/2470 manuals): a digital line acts only in the mode ``:DIG:LINE<n>:MODE`` gives it.
  In ``TRIG, IN`` an edge of the kind ``:TRIG:DIG<n>:IN:EDGE`` selects (default ``FALL``) sets
  the line's event detector, which a trigger-model ``WAIT`` block on ``DIGio<n>`` consumes; in
  ``TRIG, OUT`` the line pulses when its stimulus (``:TRIG:DIG<n>:OUT:STIM NOT<k>``) happens,
  for ``:TRIG:DIG<n>:OUT:PULS`` (default 10 us) with the logic ``:TRIG:DIG<n>:OUT:LOG`` gives
  (default ``NEG``: the line pulses low, so its rising edge comes at the end of the pulse).
  ``*OPC?`` and ``*WAI`` wait for the trigger model to finish (2450 manual, ``*WAI``: overlapped
  ``INIT``). A plain list sweep (``:SOUR:SWE:VOLT:LIST``) raises no event per point and takes a
  delay of 0 or 50 us to 10 ks (2470 reference p. 12-92; the 2450 manual does not say otherwise).
* **B2900** (B2900 SCPI Command Reference; NI ``agb2900`` driver header): a rear EXT pin acts
  only in the function ``:SOUR:DIG:EXT<n>:FUNC`` gives it (``DIO`` after ``*RST``). In ``TINP``
  an edge of its polarity (``:POL``) triggers what ``:TRIG:ACQ:SOUR EXT<n>`` (or ``:TRIG:SOUR``)
  points at; in ``TOUT`` the acquire trigger output (``:TRIG:ACQ:TOUT ON``,
  ``:TRIG:ACQ:TOUT:SIGN EXT<n>``) pulses it for ``:TOUT:WIDT`` at the position ``:TOUT:POS``
  sets: ``BEF`` the measurement, ``AFT`` it, or ``BOTH``. ``*OPC?`` and ``*WAI`` do **not** wait
  for the trigger system to go idle (PyMeasure ``keysightB2912A.py``); ``:STAT:OPER:COND?``
  (idle bits 2 and 16 for channel 1) and ``:IDLE1?`` tell when it is.
* Where the sources are silent the emulator takes the stricter case: the defaults after ``*RST``
  are those that break a careless set-up (2450 input edge ``FALL``, output logic ``NEG``; B2900
  pin polarity ``NEG``, trigger-output position ``BEF``, width 100 us); a trigger arriving while
  a measurement runs is ignored; ``:OUTP OFF`` while a sweep or trigger model runs is refused
  (error -221) until ``:ABOR`` ends it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

from hil.emulator.model import BenchModel
from hil.emulator.scpi import ScpiError, ScpiInstrument, boolean, choice, fmt, number

OVERFLOW = 9.9e37
RANGES = (1e-8, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0)
LINE_HZ = 50.0
WAIT_CAP = 30.0  # s of host time a *WAI may hold its connection here (the instrument: forever)


@dataclass
class SmuState:
    level: float = 0.0
    compliance: float = 1.05e-4
    auto_range: bool = True
    range: float = 1e-4
    nplc: float = 1.0
    aperture: float | None = None  # B2900 :SENS:CURR:APER, overrides NPLC
    output: bool = False
    values: list[float] = field(default_factory=list)
    list_mode: bool = False
    readings: list[tuple[float, float]] = field(default_factory=list)  # (current, source)
    running: bool = False  # a sweep or trigger model is in progress
    busy_until: float = -1.0  # a measurement is running until then
    # 2450: a plain list sweep (start index, delay, count; count 0 = none set up)
    sweep: tuple[int, float, int] = (1, 0.0, 0)
    # digital lines: mode, input edge, output stimulus, logic, width (2450); pins (B2900)
    lines: dict[int, str] = field(default_factory=dict)
    in_edge: dict[int, str] = field(default_factory=dict)
    stimulus: dict[int, str] = field(default_factory=dict)
    logic: dict[int, str] = field(default_factory=dict)
    width: dict[int, float] = field(default_factory=dict)
    position: dict[int, str] = field(default_factory=dict)
    # 2450 trigger model
    blocks: dict[int, tuple[str, tuple]] = field(default_factory=dict)  # kind, parsed params
    detected: set[int] = field(default_factory=set)
    waiting: int | None = None  # line whose event a WAIT block waits for
    resume: int = 0  # block to continue at when it comes
    counters: dict[int, int] = field(default_factory=dict)
    index: int = 0
    # B2900 trigger system
    points: int = 1
    acq_source: str = "AINT"
    tran_source: str = "AINT"
    acq_delay: float = 0.0
    tout: bool = False
    tout_signal: int | None = None
    remaining: int = 0


class Smu(ScpiInstrument):
    n_lines = 6

    def __init__(self, model: BenchModel) -> None:
        self.model = model
        self.state = SmuState()
        self._generation = 0
        super().__init__(model.lock)
        for line in range(1, self.n_lines + 1):
            model.inputs[f"smu.line{line}"] = lambda t, w, n=line: self.line_edge(n, t, w)

    def reset(self) -> None:
        self.state = SmuState()
        self._generation += 1  # anything still scheduled belongs to the old state

    def before_message(self) -> None:
        self.model.host_message()

    def after_message(self) -> None:
        self.model.changed.notify_all()

    # ---- physics ---------------------------------------------------------------------------

    def aperture(self) -> float:
        s = self.state
        return s.aperture if s.aperture is not None else s.nplc / LINE_HZ

    def reading(self, voltage: float) -> float:
        s = self.state
        if not s.output:
            return 0.0
        current = self.model.current(voltage)
        current = max(-s.compliance, min(s.compliance, current))
        if not s.auto_range and abs(current) > 1.05 * s.range:
            return OVERFLOW
        return current

    def measure_at(self, start: float, level: float, then: Callable[[], None]) -> None:
        """One measurement whose aperture starts at ``start``: the reading (the route in force
        at the end of the aperture) goes into the buffer, then ``then`` runs."""
        m, s, gen = self.model, self.state, self._generation
        end = start + self.aperture()
        s.busy_until = end

        def begin() -> None:
            if gen == self._generation:
                s.level = level
                m.record(m.now, "smu", "aperture_start", lambda: m.cell_text(m.measure_cells()))

        def finish() -> None:
            if gen != self._generation:
                return
            m.record(m.now, "smu", "aperture_end", lambda: m.cell_text(m.measure_cells()))
            s.readings.append((self.reading(level), level))
            then()

        m.at(start, begin)
        m.at(end, finish)

    def spot(self) -> float:
        """A measurement now, the host waiting for it (``:READ?``, ``:MEAS?``)."""
        if self.state.running:
            raise ScpiError(-221, "a sweep or trigger model is running")
        done: list[float] = []
        self.measure_at(self.model.now, self.state.level,
                        lambda: done.append(self.state.readings[-1][0]))
        self.model.advance(self.state.busy_until)
        return done[-1]

    def pulse_line(self, line: int, t: float) -> None:
        """Line ``line`` pulses at ``t`` (output mode): its rising edge goes out on the wires,
        at ``t`` with positive logic, at the end of the pulse with negative logic."""
        s = self.state
        width = s.width.get(line, self.default_width)
        rise = t if s.logic.get(line, "NEGATIVE") == "POSITIVE" else t + width
        self.model.emit(f"smu.line{line}", rise, width)

    default_width = 10e-6

    def line_edge(self, line: int, t: float, width: float) -> None:
        """A pulse from a wire arrives on ``line``: rising at ``t``, ``width`` long."""

    # ---- waiting and aborting -----------------------------------------------------------------

    def wait_idle(self) -> bool:
        """Until the sweep or trigger model ends: bench time runs while it can end by itself;
        when it waits for an edge only another connection can bring, the host's connection is
        held (bounded by :data:`WAIT_CAP` here). ``False`` if it never ended."""
        s, m = self.state, self.model
        while s.running:
            if m.pending():
                m.advance(math.inf, until=lambda: not s.running)
                continue
            if not m.changed.wait_for(lambda: not s.running or m.pending(), timeout=WAIT_CAP):
                return False
        return True

    def abort(self, args: list[str], sfx: list[int]) -> None:
        s = self.state
        s.running, s.waiting, s.remaining, s.busy_until = False, None, 0, -1.0
        self._generation += 1

    def set_output(self, args: list[str], sfx: list[int]) -> None:
        on = boolean(_one(args))
        if self.state.running and on != self.state.output:
            raise ScpiError(-221, "output cannot change while a sweep or trigger model runs")
        self.state.output = on

    # ---- shared setters ----------------------------------------------------------------------

    def set(self, name: str, parse):
        def handler(args: list[str], sfx: list[int]) -> None:
            setattr(self.state, name, parse(_one(args)))

        return handler

    def get(self, name: str):
        def handler(args: list[str], sfx: list[int]) -> str:
            value = getattr(self.state, name)
            if isinstance(value, bool):
                return "1" if value else "0"
            return fmt(value) if isinstance(value, float) else str(value)

        return handler

    def per_line(self, name: str, parse):
        """A setting kept per digital line / pin (the header's numeric suffix)."""

        def handler(args: list[str], sfx: list[int]) -> None:
            getattr(self.state, name)[self.line(sfx)] = parse(_one(args))

        return handler

    def line(self, sfx: list[int]) -> int:
        n = sfx[-1] if sfx else 1
        if not 1 <= n <= self.n_lines:
            raise ScpiError(-114, f"no line {n}")
        return n

    def set_range(self, args: list[str], sfx: list[int]) -> None:
        value = number(_one(args), 0, 1.05)
        self.state.range = next(r for r in RANGES if r >= value * 0.999)
        self.state.auto_range = False

    def set_list(self, append: bool):
        def handler(args: list[str], sfx: list[int]) -> None:
            values = [number(a, -210, 210) for a in args if not a.startswith("(@")]
            if not values:
                raise ScpiError(-109)
            self.state.values = (self.state.values if append else []) + values

        return handler


def accept(parse):
    """Handler for a setting the emulator validates but whose value has no effect here."""

    def handler(args: list[str], sfx: list[int]) -> None:
        parse(_one(args))

    return handler


def _one(args: list[str]) -> str:
    args = [a for a in args if not a.startswith("(@")]  # channel lists select channel 1
    if not args:
        raise ScpiError(-109)
    if len(args) > 1:
        raise ScpiError(-108)
    return args[0]


def _function(arg: str) -> str:
    return choice(arg, "VOLTage", "CURRent", "RESistance")


def _sense_current(arg: str) -> str:
    if _function(arg.strip().strip("\"'").split(":")[0]) != "CURRENT":
        raise ScpiError(-224, "only current measurement is wired on this bench")
    return "CURRENT"


def _logic(arg: str) -> str:
    return choice(arg, "POSitive", "NEGative")


def _event_line(arg: str, prefix: str) -> int:
    """``DIGio3`` / ``DIG3`` (2450 events), ``EXT3`` (B2900 sources) -> 3."""
    word = arg.strip().strip("\"'").upper()
    for name in prefix.split("|"):
        if word.startswith(name) and word[len(name):].isdigit():
            return int(word[len(name):])
    raise ScpiError(-224, arg)


def _list_delay(arg: str) -> float:
    """A plain list sweep's delay: 0, or 50 us to 10 ks (2470 reference p. 12-92)."""
    value = number(arg, 0, 1e4)
    if 0 < value < 50e-6:
        raise ScpiError(-222, f"sweep delay {arg}: 0 or 50e-6 to 1e4 s")
    return value


class Keithley2450(Smu):
    """2450 in its native SCPI language (``*LANG?`` -> ``SCPI``); list sweeps with
    ``:SOURce:LIST:VOLTage``, trigger models built from the ``Empty`` model, digital lines 1-6."""

    idn = "KEITHLEY INSTRUMENTS,MODEL 2450,04000001,1.7.12b"
    queue_size = 100
    no_error = '0,"No error"'
    name = "2450"

    def __init__(self, model: BenchModel) -> None:
        super().__init__(model)
        a = self.add
        s, n = "[:SOURce#]", "[:SENSe#]"
        a(f"{s}:FUNCtion[:MODE]", lambda args, sfx: _check_volt(_one(args)))
        a(f"{s}:FUNCtion[:MODE]?", lambda args, sfx: "VOLT")
        a(f"{s}:VOLTage[:LEVel][:IMMediate][:AMPLitude]",
          self.set("level", lambda v: number(v, -210, 210)))
        a(f"{s}:VOLTage[:LEVel][:IMMediate][:AMPLitude]?", self.get("level"))
        a(f"{s}:VOLTage:RANGe", accept(lambda a: number(a, -210, 210)))
        a(f"{s}:VOLTage:RANGe?", lambda args, sfx: fmt(2.0))
        a(f"{s}:VOLTage:RANGe:AUTO", accept(boolean))
        a(f"{s}:VOLTage:ILIMit[:LEVel]", self.set("compliance", lambda v: number(v, 1e-9, 1.05)))
        a(f"{s}:VOLTage:ILIMit[:LEVel]?", self.get("compliance"))
        a(f"{s}:VOLTage:ILIMit[:LEVel]:TRIPped?", lambda args, sfx: "0")
        a(f"{s}:VOLTage:DELay", accept(lambda a: number(a, 0, 1e4)))
        a(f"{s}:VOLTage:DELay:AUTO", accept(boolean))
        a(f"{s}:VOLTage:READ:BACK", accept(boolean))
        a(f"{s}:LIST:VOLTage", self.set_list(append=False))
        a(f"{s}:LIST:VOLTage:APPend", self.set_list(append=True))
        a(f"{s}:LIST:VOLTage:POINts?", lambda args, sfx: str(len(self.state.values)))
        a(f"{s}:SWEep:VOLTage:LIST", self.sweep_list)
        a(f"{n}:FUNCtion[:ON]", accept(_sense_current))
        a(f"{n}:FUNCtion[:ON]?", lambda args, sfx: '"CURR:DC"')
        a(f"{n}:CURRent[:DC]:RANGe[:UPPer]", self.set_range)
        a(f"{n}:CURRent[:DC]:RANGe[:UPPer]?", self.get("range"))
        a(f"{n}:CURRent[:DC]:RANGe:AUTO", self.set("auto_range", boolean))
        a(f"{n}:CURRent[:DC]:NPLCycles", self.set("nplc", lambda v: number(v, 0.01, 10)))
        a(f"{n}:CURRent[:DC]:NPLCycles?", self.get("nplc"))
        a(f"{n}:CURRent[:DC]:AZERo[:STATe]", accept(boolean))
        a(f"{n}:AZERo:ONCE", lambda args, sfx: None)
        a(f"{n}:CURRent[:DC]:RSENse", accept(boolean))
        a(":OUTPut#[:STATe]", self.set_output)
        a(":OUTPut#[:STATe]?", self.get("output"))
        a(":OUTPut#[:VOLTage]:SMODe", lambda args, sfx: None)
        a(":READ?", lambda args, sfx: fmt(self.spot()))
        a(":MEASure[:CURRent][:DC]?", lambda args, sfx: fmt(self.spot()))
        a(":INITiate[:IMMediate]", self.initiate)
        a(":ABORt", self.abort)
        a(":TRACe:CLEar", lambda args, sfx: self.state.readings.clear())
        a(":TRACe:ACTual?", lambda args, sfx: str(len(self.state.readings)))
        a(":TRACe:ACTual:END?", lambda args, sfx: str(len(self.state.readings)))
        a(":TRACe:DATA?", self.trace_data)
        a(":FORMat[:DATA]", lambda args, sfx: _ascii(_one(args)))
        a(":DIGital:LINE#:MODE", self.line_mode)
        a(":TRIGger:DIGital#:OUT:STIMulus", self.per_line("stimulus", _stimulus))
        a(":TRIGger:DIGital#:OUT:LOGic", self.per_line("logic", _logic))
        a(":TRIGger:DIGital#:OUT:PULSewidth", self.per_line(
            "width", lambda v: number(v, 2e-6, 100)))
        a(":TRIGger:DIGital#:IN:EDGE", self.per_line(
            "in_edge", lambda v: choice(v, "RISing", "FALLing", "EITHer")))
        a(":TRIGger:DIGital#:IN:CLEar", lambda args, sfx: self.state.detected.discard(
            self.line(sfx)))
        a(":TRIGger:LOAD", self.load_model)
        for block in ("CONFig:RECall", "CONFig:NEXT", "DELay:CONStant", "MEASure", "NOTify",
                      "BRANch:COUNter", "WAIT"):
            a(f":TRIGger:BLOCk:{block}", self.block(block))

    def extra_common(self, header: str, args: list[str]) -> str | None:
        if header == "*LANG?":
            return "SCPI"
        return super().extra_common(header, args)

    def wait_complete(self) -> bool:
        return self.wait_idle()

    # ---- digital lines ----------------------------------------------------------------------

    def line_mode(self, args: list[str], sfx: list[int]) -> None:
        if len(args) != 2:
            raise ScpiError(-109)
        kind = choice(args[0], "DIGital", "TRIGger", "SYNChronous")
        self.state.lines[self.line(sfx)] = f"{kind} {choice(args[1], 'IN', 'OUT', 'OPENdrain')}"

    def line_edge(self, line: int, t: float, width: float) -> None:
        s = self.state
        if s.lines.get(line) != "TRIGGER IN":
            return
        edge = s.in_edge.get(line, "FALLING")
        at = t + width if edge == "FALLING" else t
        self.model.at(at, lambda: self._detect(line))

    def _detect(self, line: int) -> None:
        s = self.state
        if s.running and s.waiting == line:
            s.waiting = None
            self._run_from(s.resume)
        else:
            s.detected.add(line)

    # ---- trigger model --------------------------------------------------------------------

    def load_model(self, args: list[str], sfx: list[int]) -> None:
        if self.state.running:
            raise ScpiError(-221, "trigger model running")
        if _one(args).strip("\"'").upper() != "EMPTY":
            raise ScpiError(-224, "the emulator builds trigger models from the Empty model")
        self.state.blocks, self.state.sweep = {}, (1, 0.0, 0)

    def block(self, kind: str):
        """A trigger-model block, its parameters checked and parsed once, here."""

        def handler(args: list[str], sfx: list[int]) -> None:
            if not args:
                raise ScpiError(-109)
            if self.state.running:
                raise ScpiError(-221, "trigger model running")
            rest = args[1:]
            need = {"DELay:CONStant": 1, "WAIT": 1, "NOTify": 1, "BRANch:COUNter": 2}
            if len(rest) < need.get(kind, 0):
                raise ScpiError(-109)
            params: tuple = ()
            if kind == "DELay:CONStant":
                params = (number(rest[0], 0, 1e4),)
            elif kind == "WAIT":
                clear = choice(rest[1], "ENTer", "NEVer") if len(rest) > 1 else "ENTER"
                params = (_event_line(rest[0], "DIGIO|DIG"), clear)
            elif kind == "NOTify":
                params = (f"NOT{int(number(rest[0], 1, 8))}",)
            elif kind == "BRANch:COUNter":
                params = (int(number(rest[0], 1)), int(number(rest[1], 1, 63)))
            self.state.blocks[int(number(args[0], 1, 63))] = (kind, params)

        return handler

    def _run_from(self, n: int) -> None:
        """Run the trigger model from block ``n`` until it ends or must wait (for an edge, a
        delay or a measurement)."""
        s, m = self.state, self.model
        for _ in range(100_000):
            if not s.running:
                return
            if n not in s.blocks:
                s.running = False
                return
            kind, args = s.blocks[n]
            if kind == "CONFig:RECall":
                s.index, s.level = 0, s.values[0]
            elif kind == "CONFig:NEXT":
                s.index = (s.index + 1) % len(s.values)
                s.level = s.values[s.index]
            elif kind == "DELay:CONStant":
                self._later(m.now + args[0], n + 1)
                return
            elif kind == "WAIT":
                line, clear = args
                if clear == "ENTER":
                    s.detected.discard(line)
                if line in s.detected:
                    s.detected.discard(line)
                else:
                    s.waiting, s.resume = line, n + 1
                    return
            elif kind == "MEASure":
                self.measure_at(m.now, s.level, lambda nxt=n + 1: self._run_from(nxt))
                return
            elif kind == "NOTify":
                for line, stim in s.stimulus.items():
                    if s.lines.get(line) == "TRIGGER OUT" and stim == args[0]:
                        self.pulse_line(line, m.now)
            elif kind == "BRANch:COUNter":
                count, target = args
                s.counters[n] = s.counters.get(n, 0) + 1
                if s.counters[n] < count:
                    n = target
                    continue
                s.counters[n] = 0
            n += 1

    def _later(self, t: float, n: int) -> None:
        gen = self._generation
        self.model.at(t, lambda: self._run_from(n) if gen == self._generation else None)

    def sweep_list(self, args: list[str], sfx: list[int]) -> None:
        if len(args) < 2:
            raise ScpiError(-109)
        s = self.state
        if not s.values:
            raise ScpiError(-221, "no source list")
        start = int(number(args[0], 1, len(s.values)))
        count = int(number(args[2], 1, 268435455)) if len(args) > 2 else 1
        s.sweep = (start, _list_delay(args[1]), count)
        s.readings.clear()  # creating a sweep clears its reading buffer
        s.blocks = {}  # and replaces the trigger model

    def initiate(self, args: list[str], sfx: list[int]) -> None:
        s = self.state
        if s.running:
            raise ScpiError(-221, "trigger model already running")
        if s.blocks and not s.values:
            raise ScpiError(-221, "trigger model without a source list")
        s.running, s.counters, s.detected = True, {}, set()
        if s.blocks:
            self._run_from(1)
            return
        start, delay, count = s.sweep
        levels = s.values[start - 1:] * count if count else [s.level]
        t = self.model.now
        for i, level in enumerate(levels):  # the built-in sweep raises no event per point
            t += delay
            last = i == len(levels) - 1
            self.measure_at(t, level, (lambda: setattr(s, "running", False)) if last else
                            (lambda: None))
            t += self.aperture()

    def trace_data(self, args: list[str], sfx: list[int]) -> str:
        if len(args) < 2:
            raise ScpiError(-109)
        start, end = int(number(args[0], 1)), int(number(args[1], 1))
        if end > len(self.state.readings) or start > end:
            raise ScpiError(-222, f"buffer holds {len(self.state.readings)} readings")
        elements = [choice(e, "READing", "SOURce", "RELative") for e in args[3:]] or ["READING"]
        out = []
        for i in range(start - 1, end):
            value, source = self.state.readings[i]
            for e in elements:
                rel = i * self.aperture()
                out.append(fmt(value if e == "READING" else source if e == "SOURCE" else rel))
        return ",".join(out)


def _stimulus(arg: str) -> str:
    word = arg.strip().upper()
    if word.startswith("NOTIFY"):
        word = "NOT" + word[6:]
    return word


class KeysightB2900(Smu):
    """B2900 series (B2902A here): ``:SOURce#:LIST:VOLTage`` with ``:SOURce#:VOLTage:MODE LIST``,
    ``:TRIGger#:COUNt``, ``:INITiate (@1)``, ``:FETCh:ARRay:CURRent? (@1)``, rear EXT pins
    1-14."""

    idn = "Keysight Technologies,B2902A,MY00000001,3.4.2011.5100"
    queue_size = 30
    name = "B2900"
    n_lines = 14
    default_width = 100e-6

    def __init__(self, model: BenchModel) -> None:
        super().__init__(model)
        a = self.add
        s, n = ":SOURce#", ":SENSe#"
        a(f"{s}:FUNCtion:MODE", lambda args, sfx: _check_volt(_one(args)))
        a(f"{s}:FUNCtion:MODE?", lambda args, sfx: "VOLT")
        a(f"{s}:FUNCtion[:SHAPe]", accept(lambda a: choice(a, "DC")))
        a(f"{s}:VOLTage[:LEVel][:IMMediate][:AMPLitude]",
          self.set("level", lambda v: number(v, -210, 210)))
        a(f"{s}:VOLTage[:LEVel][:IMMediate][:AMPLitude]?", self.get("level"))
        a(f"{s}:VOLTage:MODE", self.set("list_mode",
                                         lambda v: choice(v, "FIXed", "LIST", "SWEep") == "LIST"))
        a(f"{s}:VOLTage:RANGe", accept(lambda a: number(a, -210, 210)))
        a(f"{s}:VOLTage:RANGe?", lambda args, sfx: fmt(2.0))
        a(f"{s}:VOLTage:RANGe:AUTO", accept(boolean))
        a(f"{s}:LIST:VOLTage", self.set_list(append=False))
        a(f"{s}:LIST:VOLTage:APPend", self.set_list(append=True))
        a(f"{s}:LIST:VOLTage:POINts?", lambda args, sfx: str(len(self.state.values)))
        d = "[:SOURce]:DIGital:EXTernal#"
        a(f"{d}[:FUNCtion]", self.per_line("lines", lambda v: choice(
            v, "DIO", "DINPut", "TINPut", "TOUTput")))
        a(f"{d}[:FUNCtion]?", lambda args, sfx: self.state.lines.get(self.line(sfx), "DIO")[:4])
        a(f"{d}:POLarity", self.per_line("logic", _logic))
        a(f"{d}:TOUTput:WIDTh", self.per_line("width", lambda v: number(v, 1e-5, 1e-2)))
        a(f"{d}:TOUTput:POSition", self.per_line("position", lambda v: choice(
            v, "BEFore", "AFTer", "BOTH")))
        a(f"{n}:FUNCtion[:ON]", accept(_sense_current))
        a(f"{n}:FUNCtion:OFF[:ALL]", lambda args, sfx: None)
        a(f"{n}:CURRent[:DC]:PROTection[:LEVel]",
          self.set("compliance", lambda v: number(v, 1e-9, 3.03)))
        a(f"{n}:CURRent[:DC]:PROTection[:LEVel]?", self.get("compliance"))
        a(f"{n}:CURRent[:DC]:RANGe[:UPPer]", self.set_range)
        a(f"{n}:CURRent[:DC]:RANGe[:UPPer]?", self.get("range"))
        a(f"{n}:CURRent[:DC]:RANGe:AUTO", self.set("auto_range", boolean))
        a(f"{n}:CURRent[:DC]:NPLCycles", self.set("nplc", lambda v: number(v, 4e-4, 100)))
        a(f"{n}:CURRent[:DC]:APERture", self.set("aperture", lambda v: number(v, 8e-6, 2)))
        a(f"{n}:REMote", lambda args, sfx: None)
        a(":OUTPut#[:STATe]", self.set_output)
        a(":OUTPut#[:STATe]?", self.get("output"))
        a(":MEASure[:CURRent][:DC]?", lambda args, sfx: fmt(self.spot()))
        count = self.set("points", lambda v: int(number(v, 1, 100000)))
        for layer in (":TRIGger#[:ALL]", ":TRIGger#:ACQuire", ":TRIGger#:TRANsient"):
            a(f"{layer}:COUNt", count)
            a(f"{layer}:TIMer", accept(lambda v: number(v, 1e-5, 1e5)))
        a(":TRIGger#[:ALL]:SOURce", self.trigger_source("acq_source", "tran_source"))
        a(":TRIGger#:ACQuire:SOURce", self.trigger_source("acq_source"))
        a(":TRIGger#:TRANsient:SOURce", self.trigger_source("tran_source"))
        a(":TRIGger#:ACQuire:DELay", self.set("acq_delay", lambda v: number(v, 0, 100)))
        a(":TRIGger#[:ALL]:DELay", self.set("acq_delay", lambda v: number(v, 0, 100)))
        a(":TRIGger#:TRANsient:DELay", accept(lambda v: number(v, 0, 100)))
        a(":TRIGger#:ACQuire:TOUTput:SIGNal", self.set(
            "tout_signal", lambda v: _event_line(v, "EXT")))
        a(":TRIGger#:ACQuire:TOUTput[:STATe]", self.set("tout", boolean))
        a(":TRIGger#:TRANsient:TOUTput[:STATe]", accept(boolean))
        a(":TRIGger#:TRANsient:TOUTput:SIGNal", accept(lambda v: _event_line(v, "EXT")))
        a(":INITiate[:IMMediate][:ALL]", self.initiate)
        a(":INITiate[:IMMediate]:ACQuire", self.initiate)
        a(":ABORt[:ALL]", self.abort)
        a(":ABORt:ACQuire", self.abort)
        a(":IDLE#[:ALL]?", lambda args, sfx: "0" if self.state.running else "1")
        a(":STATus:OPERation:CONDition?", lambda args, sfx: "0" if self.state.running else "18")
        a(":FETCh:ARRay[:CURRent]?", lambda args, sfx: self.fetch(0))
        a(":FETCh:ARRay:VOLTage?", lambda args, sfx: self.fetch(1))
        a(":FORMat[:DATA]", lambda args, sfx: _ascii(args[0] if args else ""))
        a(":FORMat:ELEMents:SENSe", lambda args, sfx: None)

    def trigger_source(self, *names: str):
        def handler(args: list[str], sfx: list[int]) -> None:
            word = _one(args).strip().upper()
            if not (word in ("AINT", "AUTO", "BUS", "TIM", "TIMER", "INT1", "INT2", "LAN")
                    or (word.startswith("EXT") and word[3:].isdigit()
                        and 1 <= int(word[3:]) <= self.n_lines)):
                raise ScpiError(-224, word)
            for name in names:
                setattr(self.state, name, "AINT" if word in ("AINT", "AUTO") else word)

        return handler

    def line_edge(self, line: int, t: float, width: float) -> None:
        s = self.state
        if s.lines.get(line) != "TINPUT":
            return
        at = t if s.logic.get(line, "NEGATIVE") == "POSITIVE" else t + width
        self.model.at(at, lambda: self._trigger(f"EXT{line}"))

    def _trigger(self, source: str) -> None:
        """An acquire trigger from ``source`` (EXT<n>); ignored unless a sweep waits for it
        and no measurement is running."""
        s, m = self.state, self.model
        if not s.running or s.acq_source != source or m.now < s.busy_until or not s.remaining:
            return
        self._point(m.now)

    def _point(self, t: float) -> None:
        s = self.state
        level = s.values[s.index % len(s.values)] if s.list_mode else s.level
        s.index += 1
        s.remaining -= 1
        start = t + s.acq_delay
        self._tout(start, "BEFORE")
        self.measure_at(start, level, lambda: self._acquired())

    def _acquired(self) -> None:
        s = self.state
        self._tout(self.model.now, "AFTER")
        if s.remaining == 0:
            s.running = False
        elif s.acq_source == "AINT":
            self._point(self.model.now)

    def _tout(self, t: float, when: str) -> None:
        s = self.state
        line = s.tout_signal
        if not s.tout or line is None or s.lines.get(line) != "TOUTPUT":
            return
        if s.position.get(line, "BEFORE") in (when, "BOTH"):
            self.pulse_line(line, t)

    def initiate(self, args: list[str], sfx: list[int]) -> None:
        s = self.state
        if s.running:
            raise ScpiError(-221, "trigger system already running")
        if s.list_mode and not s.values:
            raise ScpiError(-221, "list mode with an empty list")
        s.readings.clear()
        s.running, s.index, s.remaining = True, 0, s.points
        if s.acq_source == "AINT":
            self._point(self.model.now)

    def fetch(self, which: int) -> str:
        """The readings taken so far: a fetch before the sweep ended returns fewer."""
        if not self.state.readings:
            raise ScpiError(-230, "no readings")
        return ",".join(fmt(r[which]) for r in self.state.readings)


def _check_volt(arg: str) -> None:
    if _function(arg) != "VOLTAGE":
        raise ScpiError(-224, "only voltage sourcing is wired on this bench")


def _ascii(arg: str) -> None:
    if choice(arg, "ASCii", "REAL", "SREal") != "ASCII":
        raise ScpiError(-224, "the emulator speaks ASCII data only")


SMUS: dict[str, type[Smu]] = {"2450": Keithley2450, "B2900": KeysightB2900}


def make_smu(model_name: str, model: BenchModel) -> Smu:
    return SMUS[model_name](model)
