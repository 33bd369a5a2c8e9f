"""Emulated source-measure units: Keithley 2450 (native SCPI) and Keysight B2900 series.

The SMU forces its source level on the source bus and measures the current the multiplexers let
into the measure bus (:meth:`BenchModel.current`). Real behaviour that matters for the suite:
current compliance clips the reading; a fixed measure range overflows (``9.9E37``) above 105 %
of range; output off measures nothing; ``*RST`` turns the output off. List sweeps store their
readings in a buffer fetched in one query. A sweep whose trigger output is configured (2450:
a trigger model with a notify block routed to a digital line in trigger-out mode; B2900:
``:TRIG:ACQ:TOUT ON``) pulses the line wired to the MCU's TRIG IN after each reading, so table
mode steps one route per reading; without it the MCU table does not move, as on the bench.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hil.emulator.model import BenchModel
from hil.emulator.scpi import ScpiError, ScpiInstrument, boolean, choice, fmt, number

OVERFLOW = 9.9e37
RANGES = (1e-8, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0)


@dataclass
class SmuState:
    level: float = 0.0
    compliance: float = 1.05e-4
    auto_range: bool = True
    range: float = 1e-4
    nplc: float = 1.0
    output: bool = False
    values: list[float] = field(default_factory=list)
    list_mode: bool = False
    sweep_start: int = 1
    sweep_count: int = 0  # 2450: repetitions of the configured list sweep (0 = none armed)
    points: int = 1  # B2900: trigger count
    trigger_out: bool = False  # B2900: a trigger out per acquisition (ACQ:TOUT)
    lines: dict[int, str] = field(default_factory=dict)  # 2450 digital line modes
    stimulus: dict[int, str] = field(default_factory=dict)  # 2450 line -> event it outputs
    blocks: dict[int, tuple[str, list[str]]] = field(default_factory=dict)  # 2450 trigger model
    readings: list[tuple[float, float]] = field(default_factory=list)  # (current, source)


class Smu(ScpiInstrument):
    def __init__(self, model: BenchModel) -> None:
        self.model = model
        self.state = SmuState()
        super().__init__(model.lock)

    def reset(self) -> None:
        self.state = SmuState()

    # ---- physics ---------------------------------------------------------------------------

    def reading(self, voltage: float) -> float:
        s = self.state
        if not s.output:
            return 0.0
        current = self.model.current(voltage)
        current = max(-s.compliance, min(s.compliance, current))
        if not s.auto_range and abs(current) > 1.05 * s.range:
            return OVERFLOW
        return current

    def run_points(self, levels: list[float], emit: bool) -> None:
        """A list sweep: one reading per level into the buffer, and with ``emit`` a pulse on
        the trigger line (wired to the MCU's TRIG IN) after each."""
        s = self.state
        for v in levels:
            s.level = v
            s.readings.append((self.reading(v), v))
            if emit:
                self.model.trigger()

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


class Keithley2450(Smu):
    """2450 in its native SCPI language (``*LANG?`` -> ``SCPI``); list sweeps with
    ``:SOURce:LIST:VOLTage`` + ``:SOURce:SWEep:VOLTage:LIST``, ``:INITiate``, ``:TRACe:DATA?``."""

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
        a(f"{n}:COUNt", self.set("points", lambda v: int(number(v, 1, 300000))))
        a(f"{n}:COUNt?", self.get("points"))
        a(":OUTPut#[:STATe]", self.set("output", boolean))
        a(":OUTPut#[:STATe]?", self.get("output"))
        a(":OUTPut#[:VOLTage]:SMODe", lambda args, sfx: None)
        a(":READ?", self.read)
        a(":MEASure[:CURRent][:DC]?", self.read)
        a(":INITiate[:IMMediate]", self.initiate)
        a(":ABORt", lambda args, sfx: None)
        a(":TRACe:CLEar", lambda args, sfx: self.state.readings.clear())
        a(":TRACe:ACTual?", lambda args, sfx: str(len(self.state.readings)))
        a(":TRACe:ACTual:END?", lambda args, sfx: str(len(self.state.readings)))
        a(":TRACe:DATA?", self.trace_data)
        a(":FORMat[:DATA]", lambda args, sfx: _ascii(_one(args)))
        a(":DIGital:LINE#:MODE", self.line_mode)
        a(":TRIGger:DIGital#:OUT:STIMulus", self.line_stimulus)
        a(":TRIGger:DIGital#:OUT:LOGic", lambda args, sfx: None)
        a(":TRIGger:DIGital#:OUT:PULSewidth", lambda args, sfx: None)
        a(":TRIGger:LOAD", self.load_model)
        for block in ("CONFig:RECall", "CONFig:NEXT", "DELay:CONStant", "MEASure", "NOTify",
                      "BRANch:COUNter"):
            a(f":TRIGger:BLOCk:{block}", self.block(block))

    def extra_common(self, header: str, args: list[str]) -> str | None:
        if header == "*LANG?":
            return "SCPI"
        return super().extra_common(header, args)

    def line_mode(self, args: list[str], sfx: list[int]) -> None:
        if len(args) != 2:
            raise ScpiError(-109)
        kind = choice(args[0], "DIGital", "TRIGger", "SYNChronous")
        self.state.lines[sfx[0] if sfx else 1] = f"{kind} {choice(args[1], 'IN', 'OUT')}"

    def line_stimulus(self, args: list[str], sfx: list[int]) -> None:
        self.state.stimulus[sfx[0] if sfx else 1] = _one(args).upper()

    def load_model(self, args: list[str], sfx: list[int]) -> None:
        if _one(args).strip("\"'").upper() != "EMPTY":
            raise ScpiError(-224, "the emulator builds trigger models from the Empty model")
        self.state.blocks, self.state.sweep_count = {}, 0

    def block(self, kind: str):
        def handler(args: list[str], sfx: list[int]) -> None:
            if not args:
                raise ScpiError(-109)
            self.state.blocks[int(number(args[0], 1, 63))] = (kind, args[1:])

        return handler

    def run_model(self) -> None:
        """The trigger model as the blocks build it: recall the source list, then ``count``
        times (delay, measure, notify, next list point)."""
        s = self.state
        kinds = {kind: args for kind, args in s.blocks.values()}
        if "MEASure" not in kinds or not s.values:
            raise ScpiError(-221, "trigger model without a measure block or a source list")
        count = int(number(kinds["BRANch:COUNter"][0], 1)) if "BRANch:COUNter" in kinds else 1
        notify = kinds.get("NOTify", [None])[0]
        emit = notify is not None and any(
            s.lines.get(line) == "TRIGGER OUT" and stim == f"NOT{notify}"
            for line, stim in s.stimulus.items())
        s.readings.clear()
        self.run_points([s.values[i % len(s.values)] for i in range(count)], emit)

    def read(self, args: list[str], sfx: list[int]) -> str:
        for _ in range(self.state.points):
            value = self.reading(self.state.level)
            self.state.readings.append((value, self.state.level))
        return fmt(self.state.readings[-1][0])

    def sweep_list(self, args: list[str], sfx: list[int]) -> None:
        if not args:
            raise ScpiError(-109)
        s = self.state
        s.sweep_start = int(number(args[0], 1, max(1, len(s.values))))
        s.sweep_count = int(number(args[2], 1, 268435455)) if len(args) > 2 else 1
        if not s.values:
            raise ScpiError(-221, "no source list")
        s.readings.clear()  # creating a sweep clears its reading buffer
        s.blocks = {}  # and replaces the trigger model

    def initiate(self, args: list[str], sfx: list[int]) -> None:
        s = self.state
        if s.blocks:
            self.run_model()
        elif s.sweep_count:  # the built-in sweep raises no event per point
            s.readings.clear()
            self.run_points(s.values[s.sweep_start - 1:] * s.sweep_count, emit=False)
        else:
            self.read(args, sfx)

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
                rel = i * self.state.nplc / 60
                out.append(fmt(value if e == "READING" else source if e == "SOURCE" else rel))
        return ",".join(out)


class KeysightB2900(Smu):
    """B2900 series (B2902A here): ``:SOURce#:LIST:VOLTage`` with ``:SOURce#:VOLTage:MODE LIST``,
    ``:TRIGger#:COUNt``, ``:INITiate (@1)``, ``:FETCh:ARRay:CURRent? (@1)``."""

    idn = "Keysight Technologies,B2902A,MY00000001,3.4.2011.5100"
    queue_size = 30
    name = "B2900"

    def __init__(self, model: BenchModel) -> None:
        super().__init__(model)
        self.state.compliance = 1e-4
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
        a(f"{n}:FUNCtion[:ON]", accept(_sense_current))
        a(f"{n}:FUNCtion:OFF[:ALL]", lambda args, sfx: None)
        a(f"{n}:CURRent[:DC]:PROTection[:LEVel]",
          self.set("compliance", lambda v: number(v, 1e-9, 3.03)))
        a(f"{n}:CURRent[:DC]:PROTection[:LEVel]?", self.get("compliance"))
        a(f"{n}:CURRent[:DC]:RANGe[:UPPer]", self.set_range)
        a(f"{n}:CURRent[:DC]:RANGe[:UPPer]?", self.get("range"))
        a(f"{n}:CURRent[:DC]:RANGe:AUTO", self.set("auto_range", boolean))
        a(f"{n}:CURRent[:DC]:NPLCycles", self.set("nplc", lambda v: number(v, 4e-4, 100)))
        a(f"{n}:CURRent[:DC]:APERture", accept(lambda a: number(a, 8e-6, 2)))
        a(f"{n}:REMote", lambda args, sfx: None)
        a(":OUTPut#[:STATe]", self.set("output", boolean))
        a(":OUTPut#[:STATe]?", self.get("output"))
        a(":MEASure[:CURRent][:DC]?", self.measure)
        a(":TRIGger#[:ALL]:COUNt", self.set("points", lambda v: int(number(v, 1, 100000))))
        a(":TRIGger#:ACQuire:COUNt", self.set("points", lambda v: int(number(v, 1, 100000))))
        a(":TRIGger#:TRANsient:COUNt", self.set("points", lambda v: int(number(v, 1, 100000))))
        for trig in (":TRIGger#[:ALL]", ":TRIGger#:ACQuire", ":TRIGger#:TRANsient"):
            for sub in ("SOURce", "TIMer", "DELay", "TOUTput:SIGNal"):
                a(f"{trig}:{sub}", lambda args, sfx: None)
        a(":TRIGger#:ACQuire:TOUTput[:STATe]", self.set("trigger_out", boolean))
        a(":TRIGger#:TRANsient:TOUTput[:STATe]", accept(boolean))
        a(":INITiate[:IMMediate][:ALL]", self.initiate)
        a(":INITiate[:IMMediate]:ACQuire", self.initiate)
        a(":ABORt[:ALL]", lambda args, sfx: None)
        a(":IDLE#[:ALL]?", lambda args, sfx: "1")
        a(":FETCh:ARRay[:CURRent]?", lambda args, sfx: self.fetch(0))
        a(":FETCh:ARRay:VOLTage?", lambda args, sfx: self.fetch(1))
        a(":FORMat[:DATA]", lambda args, sfx: _ascii(args[0] if args else ""))
        a(":FORMat:ELEMents:SENSe", lambda args, sfx: None)

    def measure(self, args: list[str], sfx: list[int]) -> str:
        return fmt(self.reading(self.state.level))

    def initiate(self, args: list[str], sfx: list[int]) -> None:
        s = self.state
        if s.list_mode and not s.values:
            raise ScpiError(-221, "list mode with an empty list")
        levels = [s.values[i % len(s.values)] if s.list_mode else s.level for i in range(s.points)]
        s.readings.clear()
        self.run_points(levels, emit=s.trigger_out)

    def fetch(self, which: int) -> str:
        if not self.state.readings:
            raise ScpiError(-221, "no readings")
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
