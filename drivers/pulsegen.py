"""Pulse generator behaviour shared by the supported models (33500B, 81160A).

The models differ only in command strings and ranges, which each subclass declares; everything
that matters for the cells lives here once:

* the output load is set to high impedance and *read back* before any level is written — a
  generator left at its 50 ohm default drives twice the programmed voltage into a 1T1R cell;
* every level, width and edge is checked against the model's range and the bench's limits before
  the first byte of a configuration goes out;
* a RESET is a negative pulse from 0 V (levels 0 / -V with the output inverted about the offset);
* each edge on the external trigger input fires exactly one pulse: the bench's MCU raises that
  edge once the route of the pulse is set, read back and settled (``docs/timing.md``), so no
  generator needs to step anything. No bus trigger, no burst of several pulses: a 33500B raises
  its trigger output once per *burst* (Operating and Service Guide, p. 264), so a burst of N
  pulses can never step N routes;
* levels change with the output left on (no relay cycling per polarity change), which is safe
  only while every switch is open: the caller reconfigures between tables, when the MCU has
  opened everything.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from drivers.errors import LimitError, LoadError
from drivers.scpi import Control, SCPIInstrument, at_least_limit, in_range, within_limit

HIGH_Z_OHMS = 1e6  # a load setting at least this high makes the doubling error negligible


def level_control(get: str, set_: str, doc: str, max_level: float) -> Control:
    """A pulse level: the model's range and the bench's maximum |voltage|."""
    return Control(get, set_, doc, validators=(
        in_range(-max_level, max_level, "V"), within_limit("max_voltage", "level", "V")))


def width_control(get: str, set_: str, low: float, high: float) -> Control:
    """A pulse width: the model's range and the bench's min/max width."""
    return Control(get, set_, "Pulse width, s.", validators=(
        in_range(low, high, "s"),
        at_least_limit("min_width", "width", "s"),
        within_limit("max_width", "width", "s", magnitude=False),
    ))


@dataclass(frozen=True)
class PulseLimits:
    """The bench's limits, given to the driver (``[limits]`` of the bench file)."""

    max_voltage: float  # V, bound on |level|
    min_width: float  # s
    max_width: float  # s


@dataclass(frozen=True)
class PulseShape:
    """One pulse configuration; equal shapes need no bytes on the bus."""

    voltage: float  # V, signed: > 0 SET, < 0 RESET
    width: float  # s
    edge: float  # s, leading and trailing
    period: float  # s, the waveform period (one pulse per trigger; must exceed width + edges)


class PulseGenerator(SCPIInstrument):
    """A SCPI pulse generator firing one pulse per edge on its external trigger input.

    Typical use: ``setup()`` once, then ``configure_pulse(1.8, 1e-6)`` (with every switch open)
    and ``arm()`` per table; ``configure_pulse`` writes nothing when the shape is unchanged.
    """

    MIN_WIDTH: ClassVar[float]
    MAX_WIDTH: ClassVar[float]
    MIN_EDGE: ClassVar[float]
    MAX_EDGE: ClassVar[float]
    MAX_LEVEL: ClassVar[float]
    DEFAULT_PERIOD: ClassVar[float]  # pulse period after *RST
    HIGH_Z: ClassVar[str]  # what to write to select a high-impedance load
    SETUP: ClassVar[tuple[str, ...]]  # pulse function, one pulse per rising external edge

    # declared per model
    load: Control
    output: Control
    polarity: Control
    high: Control
    low: Control
    width: Control
    period: Control
    edge: Control

    def __init__(self, resource: Any, *, limits: PulseLimits, **kwargs: Any) -> None:
        super().__init__(resource, limits=limits, **kwargs)
        self._shape: PulseShape | None = None
        self._high_z = False
        self._output_on = False

    def setup(self) -> None:
        """Reset, select high-impedance load (verified), pulse function, one pulse per rising
        edge on the external trigger input, output off."""
        self.reset()
        self._shape, self._high_z, self._output_on = None, False, False
        self.ensure_high_z()
        with self.configuring():
            for command in self.SETUP:
                self.write(self.expand(command))
            self.output = False

    SYNC_ON: ClassVar[tuple[str, ...]] = ()  # a sync output marking each pulse, if the model has

    def enable_sync(self) -> None:
        """Turn on the output that marks each pulse (wired to the MCU to count them)."""
        if not self.SYNC_ON:
            raise LimitError(self.name, "this model has no confirmed sync output command")
        with self.configuring():
            for command in self.SYNC_ON:
                self.write(self.expand(command))

    def ensure_high_z(self) -> None:
        """Write the high-impedance load setting and read it back; :class:`LoadError` unless it
        reads back as at least 1 Mohm."""
        with self.configuring():
            self.write(self.command_for("load", self.HIGH_Z))
        value = self.load
        if value < HIGH_Z_OHMS:
            raise LoadError(self.name, f"output load reads back {value:g} ohm, not high "
                            "impedance; refusing to set levels")
        self._high_z = True

    def configure_pulse(
        self,
        voltage: float,
        width: float,
        *,
        edge: float | None = None,
        period: float | None = None,
    ) -> None:
        """Configure one pulse of ``voltage`` (signed) and ``width`` per trigger edge.

        Every value is validated before anything is written. The output is left as it is: call
        only with every switch open (the source bus then reaches no cell while levels move).
        """
        edge = self.MIN_EDGE if edge is None else edge
        period = 2 * (width + edge) if period is None else period
        shape = PulseShape(float(voltage), float(width), float(edge), float(period))
        if shape == self._shape:
            return
        top, bottom = (shape.voltage, 0.0) if shape.voltage >= 0 else (0.0, shape.voltage)
        # levels in an order that never has high < low on the way
        levels = [("high", top), ("low", bottom)]
        if shape.voltage < 0:
            levels.reverse()
        if shape.period < shape.width + 2 * shape.edge:
            raise LimitError(self.name, f"period {shape.period:g} s shorter than width plus "
                             f"edges {shape.width + 2 * shape.edge:g} s")
        # period and width in an order that never has width > period on the way
        timing = [("period", shape.period), ("width", shape.width)]
        previous = self.DEFAULT_PERIOD if self._shape is None else self._shape.period
        if shape.period < previous:
            timing.reverse()
        settings = [("polarity", "INV" if shape.voltage < 0 else "NORM"), *levels, *timing,
                    ("edge", shape.edge)]
        commands = [self.command_for(name, value) for name, value in settings]
        if not self._high_z:
            self.ensure_high_z()
        with self.configuring():
            for command in commands:
                self.write(command)
        self._shape = shape

    def arm(self) -> None:
        """Output on, ready for trigger edges (written only when it is off)."""
        if self._shape is None:
            raise RuntimeError(f"{self.name}: arm() before configure_pulse()")
        if not self._output_on:
            with self.configuring():
                self.output = True
            self._output_on = True

    def output_off(self) -> None:
        """Output off (safe state); always written, whatever the driver believes."""
        with self.configuring():
            self.output = False
        self._output_on = False

    def close(self) -> None:
        try:
            self.output_off()
        finally:
            super().close()
