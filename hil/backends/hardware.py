"""Bench-file sections of the hardware path: ``[instruments]``, ``[wiring]``, ``[clock]`` and
``[sequencer]``.

They are registered in :data:`hil.bench.EXTRA_SECTIONS` so a bench file is checked as strictly
as the rest (unknown key, wrong type, out-of-range value: one line naming file and key), and read
back as frozen dataclasses. Every key has a default, so a simulated bench without these sections
still has a bench clock for ``hil train --dry-run``.

``[instruments]`` says which instrument answers where::

    [instruments]
    generator_model = "33500B"          # or "81160A"
    generator_resource = "TCPIP::192.168.1.20::5025::SOCKET"
    smu_model = "2450"                  # or "B2900"
    smu_resource = "TCPIP::192.168.1.21::5025::SOCKET"
    mcu_port = "/dev/ttyACM0"           # anything pyserial opens, e.g. socket://127.0.0.1:5100
    mcu_baud = 115200                   # what pyserial sets (a USB CDC port ignores it)
    mcu_watchdog = 2.0                  # s of host silence before the MCU opens every switch
    mcu_boot_wait = 2.0                 # s after opening the port (boards that reset on DTR)
    mcu_max_frame = 256                 # bytes: longest frame sent (table uploads are split)
    timeout = 2.0                       # s, per instrument exchange
    visa_library = "@py"                # pyvisa-py; "@ivi" for an installed NI or Keysight VISA

``[wiring]`` says which trigger line goes where (``docs/timing.md``); the MCU paces every table,
raising one of its TRIG OUT lines per entry::

    [wiring]
    generator_trigger = 1     # MCU TRIG OUT line -> generator external trigger input (0: none)
    smu_trigger = 2           # MCU TRIG OUT line -> SMU trigger input (0: none)
    smu_trigger_line = 1      # ... arriving on this SMU line (2450 digital I/O 1-6, B2900 EXT 1-14)
    smu_complete = 1          # MCU TRIG IN line <- SMU trigger output (0: none, reads use a dwell)
    smu_complete_line = 2     # ... driven by this SMU line
    generator_sync = 2        # MCU TRIG IN line <- 33500B front-panel Sync (0: none)
    trigger_width = 2e-6      # s, TRIG OUT pulse width
    generator_latency = 2e-6  # s, longest trigger-to-pulse delay of the generator
    smu_latency = 20e-6       # s, longest trigger-to-aperture delay of the SMU (dwell mode)

Pulses need ``generator_trigger``, reads need ``smu_trigger``: a bench without them cannot run
the batched hardware path, and :func:`require_wiring` says so in one line. ``generator_sync`` is
optional: with it the MCU counts one Sync edge per pulse, so a pulse that never came discards
its batch and ``hil bench check`` sees the generator's trigger wire work (33500B only: the
81160A's trigger-output commands are not confirmed here).

``[clock]`` holds the durations the bench clock adds up (seconds); ``[sequencer]`` how operations
are batched into transactions.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from drivers import PULSE_GENERATORS, SOURCE_METERS
from drivers.mcu import Pacing
from drivers.scpi import DEFAULT_VISA_LIBRARY
from hil.bench import EXTRA_SECTIONS, Bench, Schema, _check_section
from hil.errors import BenchFileError

GENERATOR_MODELS = tuple(PULSE_GENERATORS)
SMU_MODELS = tuple(SOURCE_METERS)

_NUM = (int, float)


def _pos(v: float) -> str | None:
    return None if v > 0 else "must be > 0"


def _non_negative(v: float) -> str | None:
    return None if v >= 0 else "must be >= 0"


def _choice(*options: str):
    return lambda v: None if v in options else f"must be one of {', '.join(options)}"


INSTRUMENTS_SCHEMA: Schema = {
    "generator_model": (str, _choice(*GENERATOR_MODELS), "33500B"),
    "generator_resource": (str, None, ""),
    "generator_channel": (int, lambda v: None if v in (1, 2) else "must be 1 or 2", 1),
    "smu_model": (str, _choice(*SMU_MODELS), "2450"),
    "smu_resource": (str, None, ""),
    "mcu_port": (str, None, ""),
    "mcu_baud": (int, _pos, 115200),
    "mcu_watchdog": (_NUM, lambda v: None if v == 0 or 0.02 <= v <= 60 else
                     "must be 0 (off) or 0.02 to 60 s", 2.0),
    "mcu_boot_wait": (_NUM, lambda v: None if 0 <= v <= 10 else "must be in [0, 10] s", 2.0),
    "mcu_max_frame": (int, lambda v: None if 64 <= v <= 4096 else "must be in 64..4096", 256),
    "timeout": (_NUM, _pos, 2.0),
    "visa_library": (str, lambda v: None if v.strip() else "must not be empty",
                     DEFAULT_VISA_LIBRARY),
}


def _mcu_line(v: int) -> str | None:
    return None if v in (0, 1, 2) else "must be 0 (not wired), 1 or 2"


def _seconds(low: float, high: float):
    return lambda v: None if low <= v <= high else f"must be in [{low:g}, {high:g}] s"


WIRING_SCHEMA: Schema = {
    "generator_trigger": (int, _mcu_line, 0),
    "smu_trigger": (int, _mcu_line, 0),
    "smu_trigger_line": (int, _pos, 1),
    "smu_complete": (int, _mcu_line, 0),
    "smu_complete_line": (int, _pos, 2),
    "generator_sync": (int, _mcu_line, 0),
    "trigger_width": (_NUM, _seconds(1e-6, 1e-3), 2e-6),
    "generator_latency": (_NUM, _seconds(0, 1e-3), 2e-6),
    "smu_latency": (_NUM, _seconds(0, 1e-2), 20e-6),
}

CLOCK_SCHEMA: Schema = {
    "scpi_round_trip": (_NUM, _non_negative, 1e-3),
    "mcu_round_trip": (_NUM, _non_negative, 0.5e-3),
    "mcu_baud": (int, _pos, 12_000_000),
    "mux_settling": (_NUM, _non_negative, 20e-6),
    "smu_aperture": (_NUM, _pos, 200e-6),
    "mux_read_back": (_NUM, _non_negative, 5e-6),
}

SEQUENCER_SCHEMA: Schema = {
    "mode": (str, _choice("batched", "naive"), "batched"),
    "fan_out": (int, _pos, 8),
    "max_pulse_current": (_NUM, _pos, 5e-3),
    "max_conductance": (_NUM, _pos, 400.0),
    "table_capacity": (int, _pos, 1024),
    "list_capacity": (int, _pos, 2500),
}

EXTRA_SECTIONS.update(
    {"instruments": INSTRUMENTS_SCHEMA, "wiring": WIRING_SCHEMA, "clock": CLOCK_SCHEMA,
     "sequencer": SEQUENCER_SCHEMA}
)


@dataclass(frozen=True)
class InstrumentsConfig:
    generator_model: str
    generator_resource: str
    generator_channel: int
    smu_model: str
    smu_resource: str
    mcu_port: str
    mcu_baud: int
    mcu_watchdog: float
    mcu_boot_wait: float
    mcu_max_frame: int
    timeout: float
    visa_library: str


SMU_LINES = {"2450": range(1, 7), "B2900": range(1, 15)}  # digital I/O lines / rear EXT pins


@dataclass(frozen=True)
class Wiring:
    """The bench's trigger wires (``[wiring]``); line 0 means "not wired"."""

    generator_trigger: int
    smu_trigger: int
    smu_trigger_line: int
    smu_complete: int
    smu_complete_line: int
    generator_sync: int
    trigger_width: float
    generator_latency: float
    smu_latency: float

    def wires(self) -> list[tuple[str, str, str]]:
        """``(name, from, to)`` of every declared wire, endpoints as the emulator names them."""
        out = []
        if self.generator_trigger:
            out.append(("generator_trigger", f"mcu.out{self.generator_trigger}",
                        "generator.trig_in"))
        if self.smu_trigger:
            out.append(("smu_trigger", f"mcu.out{self.smu_trigger}",
                        f"smu.line{self.smu_trigger_line}"))
        if self.smu_complete:
            out.append(("smu_complete", f"smu.line{self.smu_complete_line}",
                        f"mcu.in{self.smu_complete}"))
        if self.generator_sync:
            out.append(("generator_sync", "generator.sync", f"mcu.in{self.generator_sync}"))
        return out

    def missing(self) -> list[str]:
        """What the batched hardware path needs and the wiring does not declare."""
        need = [("generator_trigger", "the generator's trigger input (pulses)"),
                ("smu_trigger", "the SMU's trigger input (reads)")]
        return [f"wiring.{key} (an MCU TRIG OUT line to {what})" for key, what in need
                if not getattr(self, key)]


@dataclass(frozen=True)
class ClockSettings:
    """Modelled durations (s): a SCPI query exchange on the LAN (a write costs a tenth of
    it), one MCU frame exchange (plus its bytes at ``mcu_baud``: the UART rate of a USB-serial
    bridge, or about 12e6 for a USB CDC device, which ignores the configured baud), switch
    settling before a pulse or a read, one SMU reading, and the MCU's write and read-back of
    the switch drivers at each table entry."""

    scpi_round_trip: float
    mcu_round_trip: float
    mcu_baud: int
    mux_settling: float
    smu_aperture: float
    mux_read_back: float


@dataclass(frozen=True)
class SequencerSettings:
    """``naive``: one transaction per pulse and per read; ``batched``: table mode and list
    sweeps. ``fan_out`` cells of one column may be pulsed at once, fewer if
    ``max_pulse_current`` would be exceeded by cells at ``max_conductance`` (uS)."""

    mode: str
    fan_out: int
    max_pulse_current: float
    max_conductance: float
    table_capacity: int
    list_capacity: int


def _section(bench: Bench, name: str) -> dict[str, Any]:
    return _check_section(bench.path, name, bench.raw.get(name, {}), EXTRA_SECTIONS[name])


def _build(cls: type, values: dict[str, Any]) -> Any:
    kinds = {f.name: f.type for f in fields(cls)}
    return cls(**{k: float(v) if kinds[k] == "float" else v for k, v in values.items()})


def instruments_config(bench: Bench) -> InstrumentsConfig:
    return _build(InstrumentsConfig, _section(bench, "instruments"))


def required_instruments(bench: Bench) -> InstrumentsConfig:
    """``[instruments]`` of a bench about to open its instruments: every address given.

    An empty address is what ``hil bench discover`` writes when it found none, or several, of a
    kind; the run stops here, naming the key, until the operator has chosen."""
    cfg = instruments_config(bench)
    for key in ("generator_resource", "smu_resource", "mcu_port"):
        if not getattr(cfg, key).strip():
            raise BenchFileError(bench.path, f"instruments.{key}", "missing (hil bench discover "
                                 "lists what answers; the comments beside it name candidates)")
    return cfg


def wiring(bench: Bench) -> Wiring:
    """The ``[wiring]`` section, checked against itself and the SMU model's lines."""
    w = _build(Wiring, _section(bench, "wiring"))
    cfg = instruments_config(bench)
    smu = cfg.smu_model
    lines = SMU_LINES[smu]
    problems = []
    if w.generator_trigger and w.generator_trigger == w.smu_trigger:
        problems.append(("smu_trigger", f"TRIG OUT {w.smu_trigger} already drives the generator"))
    if w.generator_sync and w.generator_sync == w.smu_complete:
        problems.append(("generator_sync", f"TRIG IN {w.smu_complete} already takes the SMU's"))
    if w.generator_sync and cfg.generator_model != "33500B":
        problems.append(("generator_sync", "supported for the 33500B only"))
    for key, used in (("smu_trigger_line", w.smu_trigger), ("smu_complete_line", w.smu_complete)):
        if used and getattr(w, key) not in lines:
            problems.append((key, f"the {smu} has lines {lines.start}-{lines.stop - 1}"))
    if w.smu_complete and not w.smu_trigger:
        problems.append(("smu_complete", "needs smu_trigger (the MCU triggers what completes)"))
    if w.smu_complete and w.smu_trigger and w.smu_trigger_line == w.smu_complete_line:
        problems.append(("smu_complete_line", "is the SMU's trigger input line"))
    if problems:
        key, problem = problems[0]
        raise BenchFileError(bench.path, f"wiring.{key}", problem)
    return w


def require_wiring(bench: Bench) -> Wiring:
    """The wiring, or :class:`BenchFileError` naming what the batched hardware path lacks."""
    w = wiring(bench)
    missing = w.missing()
    if missing:
        raise BenchFileError(bench.path, "wiring", "no usable trigger wiring: declare "
                             + " and ".join(missing))
    return w


def clock_settings(bench: Bench) -> ClockSettings:
    return _build(ClockSettings, _section(bench, "clock"))


def sequencer_settings(bench: Bench) -> SequencerSettings:
    return _build(SequencerSettings, _section(bench, "sequencer"))


# ---------------------------------------------------------------------------------------------
# how the MCU paces tables on this bench (docs/timing.md)


def pulse_pacing(wiring: Wiring, clock: ClockSettings, width: float, edge: float) -> Pacing:
    """One pulse per entry: TRIG OUT to the generator once settled, then a dwell covering
    the generator's trigger latency, its pulse and edges (rounded up to whole microseconds);
    with a sync wire the MCU counts one edge per pulse."""
    return Pacing(wiring.generator_trigger, wiring.generator_sync, "dwell",
                  _us(clock.mux_settling), _us(wiring.trigger_width),
                  _us(wiring.generator_latency + width + 2 * edge))


def read_pacing(wiring: Wiring, clock: ClockSettings) -> Pacing:
    """One reading per entry: TRIG OUT to the SMU once settled, then its completion edge (a
    timeout well beyond the aperture) or, unwired, a dwell covering latency and aperture."""
    tout = _us(wiring.trigger_width)
    span = wiring.smu_latency + clock.smu_aperture
    if wiring.smu_complete:
        return Pacing(wiring.smu_trigger, wiring.smu_complete, "edge", _us(clock.mux_settling),
                      tout, _us(10 * span + 1e-3))
    return Pacing(wiring.smu_trigger, 0, "dwell", _us(clock.mux_settling), tout, _us(span))


def pulse_entry_seconds(wiring: Wiring, clock: ClockSettings, width: float,
                        edge: float) -> float:
    """Bench time of one entry of a pulse table: read-back, settling, then the longer of the
    trigger pulse and the dwell (as :func:`pulse_pacing` has the MCU do)."""
    dwell = _us(wiring.generator_latency + width + 2 * edge)
    return clock.mux_read_back + (_us(clock.mux_settling)
                                  + max(_us(wiring.trigger_width), dwell)) * 1e-6


def read_entry_seconds(wiring: Wiring, clock: ClockSettings) -> float:
    """Bench time of one entry of a read table: read-back, settling, then the SMU's trigger
    latency and aperture (its completion edge comes after the aperture; without that wire the
    dwell is the same span, rounded up to whole microseconds)."""
    span = wiring.smu_latency + clock.smu_aperture
    if not wiring.smu_complete:
        span = _us(span) * 1e-6
    return (clock.mux_read_back + _us(clock.mux_settling) * 1e-6
            + max(_us(wiring.trigger_width) * 1e-6, span))


def smu_nplc(clock: ClockSettings) -> float:
    """Integration in power-line cycles for the modelled aperture (50 Hz: the longer)."""
    return max(0.01, clock.smu_aperture * 50)


def _us(seconds: float) -> int:
    return max(1, int(np.ceil(seconds * 1e6 - 1e-6)))
