"""Bench-file sections of the hardware path: ``[instruments]``, ``[clock]`` and ``[sequencer]``.

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
    smu_trigger_line = 1                # digital output wired to the MCU's TRIG IN
    mcu_port = "/dev/ttyACM0"           # anything pyserial opens, e.g. socket://127.0.0.1:5100
    mcu_baud = 115200                   # what pyserial sets (a USB CDC port ignores it)
    mcu_watchdog = 2.0                  # s of host silence before the MCU opens every switch
    timeout = 2.0                       # s, per instrument exchange

``[clock]`` holds the durations the bench clock adds up (seconds); ``[sequencer]`` how operations
are batched into transactions.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from drivers import PULSE_GENERATORS, SOURCE_METERS
from hil.bench import EXTRA_SECTIONS, Bench, Schema, _check_section

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
    "smu_trigger_line": (int, _pos, 1),
    "mcu_port": (str, None, ""),
    "mcu_baud": (int, _pos, 115200),
    "mcu_watchdog": (_NUM, lambda v: None if v == 0 or 0.02 <= v <= 60 else
                     "must be 0 (off) or 0.02 to 60 s", 2.0),
    "timeout": (_NUM, _pos, 2.0),
}

CLOCK_SCHEMA: Schema = {
    "scpi_round_trip": (_NUM, _non_negative, 1e-3),
    "mcu_round_trip": (_NUM, _non_negative, 0.5e-3),
    "mcu_baud": (int, _pos, 12_000_000),
    "mux_settling": (_NUM, _non_negative, 20e-6),
    "smu_aperture": (_NUM, _pos, 200e-6),
    "pulse_gap": (_NUM, _non_negative, 1e-6),
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
    {"instruments": INSTRUMENTS_SCHEMA, "clock": CLOCK_SCHEMA, "sequencer": SEQUENCER_SCHEMA}
)


@dataclass(frozen=True)
class InstrumentsConfig:
    generator_model: str
    generator_resource: str
    generator_channel: int
    smu_model: str
    smu_resource: str
    smu_trigger_line: int
    mcu_port: str
    mcu_baud: int
    mcu_watchdog: float
    timeout: float


@dataclass(frozen=True)
class ClockSettings:
    """Modelled durations (s): a SCPI query exchange on the LAN (a write costs a tenth of
    it), one MCU frame exchange (plus its bytes at ``mcu_baud``: the UART rate of a USB-serial
    bridge, or about 12e6 for a USB CDC device, which ignores the configured baud), switch
    settling before a pulse or a read, one SMU reading, and the idle gap between the pulses of
    a burst."""

    scpi_round_trip: float
    mcu_round_trip: float
    mcu_baud: int
    mux_settling: float
    smu_aperture: float
    pulse_gap: float


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


def clock_settings(bench: Bench) -> ClockSettings:
    return _build(ClockSettings, _section(bench, "clock"))


def sequencer_settings(bench: Bench) -> SequencerSettings:
    return _build(SequencerSettings, _section(bench, "sequencer"))
