"""Source-measure unit behaviour shared by the supported models (Keithley 2450, Keysight B2900).

The bench uses an SMU to force a small read voltage on the selected bit lines and measure the
current out of the selected source line. Every source level and current limit is checked against
the bench's limits before a byte is written. List sweeps put many reads in one transaction: the
list is loaded and armed, every point waits for an edge on the SMU's trigger input (raised by
the bench's MCU once the point's route is set, read back and settled), the SMU's trigger output
answers each measurement *after* it ends, and all readings come back in one buffered fetch once
the instrument reports its trigger system idle.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from drivers.errors import InstrumentError, LimitError
from drivers.scpi import SCPIInstrument, format_number


@dataclass(frozen=True)
class SourceLimits:
    """The bench's limits, given to the driver (``[limits]`` of the bench file)."""

    max_voltage: float  # V, bound on |source voltage| (max_read_voltage)
    max_current: float  # A, bound on the current limit (current_compliance)


class SourceMeter(SCPIInstrument):
    """Voltage source, current measure, on one channel.

    Models declare the settings (``source_voltage``, ``voltage_range``, ``current_limit``,
    ``current_range``, ``nplc``, ``output``) and the command sequences below; ``{ch}`` is the
    channel, ``{n}`` the number of points, ``{line}`` a digital line and ``{width}`` a trigger
    output pulse width.
    """

    SETUP: ClassVar[tuple[str, ...]]  # source V, sense I, fixed ranges
    MEASURE: ClassVar[str]  # spot current query
    LIST_BEGIN: ClassVar[tuple[str, ...]]  # before the list values
    LIST_LOAD: ClassVar[str]  # first chunk of values: "{}" = comma-separated values
    LIST_APPEND: ClassVar[str]  # further chunks
    LIST_CHUNK: ClassVar[int] = 100  # values per command
    MAX_LIST: ClassVar[int]
    LIST_ARM: ClassVar[tuple[str, ...]]  # n points, each on an edge at line {line}; start
    LIST_REARM: ClassVar[tuple[str, ...]]  # the same list and trigger set-up again: start
    TRIGGER_IN: ClassVar[tuple[str, ...]]  # line {line} as a rising-edge trigger input
    COMPLETE_OUT: ClassVar[tuple[str, ...]]  # line {line} pulses {width} after each measurement
    TRIGGER_LINES: ClassVar[range]  # digital lines / pins that can do either
    LIST_FETCH: ClassVar[str]  # one query returning every reading
    FETCH_WAITS: ClassVar[bool] = False  # the fetch itself waits for the sweep to end
    LIST_END: ClassVar[tuple[str, ...]]  # back to spot mode
    ABORT: ClassVar[str]  # stop a running sweep or trigger model
    COMPLETE_WIDTH: ClassVar[float] = 10e-6  # s, trigger output pulse

    def __init__(self, resource: Any, *, limits: SourceLimits, **kwargs: Any) -> None:
        super().__init__(resource, limits=limits, **kwargs)
        self._nplc = 1.0
        self.trigger_line: int | None = None
        self.complete_line: int | None = None
        self._armed: tuple[str, ...] | None = None  # the list the trigger set-up holds

    def setup(
        self,
        *,
        voltage: float,
        current_limit: float,
        current_range: float,
        nplc: float,
        voltage_range: float = 2.0,
        trigger_in: int | None = None,
        complete_out: int | None = None,
    ) -> None:
        """Reset and configure a fixed-range voltage source / current measurement, output off.
        All values are checked before the first byte.

        ``trigger_in``: the digital line on which each point of a list sweep waits for a
        rising edge (wired from the MCU's TRIG OUT); ``complete_out``: a line that pulses
        high after every measurement of a list sweep (wired to the MCU's TRIG IN), so the MCU
        moves the switches only once the aperture has ended."""
        settings = [("voltage_range", voltage_range), ("current_limit", current_limit),
                    ("current_range", current_range), ("nplc", nplc),
                    ("source_voltage", voltage)]
        commands = [self.command_for(name, value) for name, value in settings]
        lines = [line for line in (trigger_in, complete_out) if line is not None]
        for line in lines:
            if line not in self.TRIGGER_LINES:
                raise LimitError(self.name, f"no digital line {line} (lines "
                                 f"{self.TRIGGER_LINES.start}-{self.TRIGGER_LINES.stop - 1})")
        if len(set(lines)) < len(lines):
            raise LimitError(self.name, f"line {lines[0]} cannot be trigger input and output")
        width = {"width": format_number(self.COMPLETE_WIDTH)}
        for line, block in ((trigger_in, self.TRIGGER_IN), (complete_out, self.COMPLETE_OUT)):
            if line is not None:
                commands += [self._fill(c, {"line": str(line), **width}) for c in block]
        self.reset()
        self._armed = None
        with self.configuring():
            for command in self.SETUP:
                self.write(self.expand(command))
            for command in commands:
                self.write(command)
        self._nplc = nplc
        self.trigger_line, self.complete_line = trigger_in, complete_out

    def output_on(self) -> None:
        with self.configuring():
            self.output = True

    def output_off(self) -> None:
        """Output off (safe state)."""
        with self.configuring():
            self.output = False

    def abort(self) -> None:
        """Stop a running sweep or trigger model (before the output can go off)."""
        self._armed = None
        self.write(self.expand(self.ABORT))

    def measure_current(self) -> float:
        """One spot measurement at the programmed source voltage, A."""
        self._armed = None
        return float(self.query(self.expand(self.MEASURE)))

    def arm_list(self, voltages: Sequence[float] | np.ndarray) -> int:
        """Load ``voltages`` and start a sweep whose every point waits for a rising edge on
        the trigger input line; returns the number of points. Nothing is measured until the
        edges come. The same list as last time is not sent again: only the restart is."""
        if self.trigger_line is None:
            raise LimitError(self.name, "no trigger input line set up: a list sweep would "
                             "have nothing to pace it")
        values = np.asarray(voltages, dtype=float).ravel()
        if not 1 <= values.size <= self.MAX_LIST:
            raise LimitError(self.name, f"list of {values.size} points; 1..{self.MAX_LIST} allowed")
        bound = self.limits.max_voltage
        if np.abs(values).max() > bound:
            raise LimitError(self.name, f"list voltage {np.abs(values).max():g} V exceeds the "
                             f"bench limit {bound:g} V")
        n = values.size
        texts = tuple(format_number(v) for v in values)
        fill = {"n": str(n), "line": str(self.trigger_line)}
        if texts == self._armed:
            with self.configuring():
                for command in self.LIST_REARM:
                    self.write(self._fill(command, fill))
            return n
        self._armed = None
        chunks = [",".join(texts[i:i + self.LIST_CHUNK]) for i in range(0, n, self.LIST_CHUNK)]
        with self.configuring():
            for command in self.LIST_BEGIN:
                self.write(self._fill(command, fill))
            self.write(self.expand(self.LIST_LOAD).format(chunks[0]))
            for chunk in chunks[1:]:
                self.write(self.expand(self.LIST_APPEND).format(chunk))
            for command in self.LIST_ARM:
                self.write(self._fill(command, fill))
        self._armed = texts
        return n

    def wait_idle(self) -> None:
        """Return once the sweep has ended (per model: :meth:`_idle`), or raise after the
        timeout."""
        deadline = time.monotonic() + self.timeout
        while not self._idle():
            if time.monotonic() > deadline:
                raise InstrumentError(self.name, f"sweep still running after {self.timeout} s")
            time.sleep(0.001)

    def _idle(self) -> bool:
        raise NotImplementedError(f"{type(self).__name__} fetches with a waiting query")

    def fetch_list(self, n: int) -> np.ndarray:
        """Every reading of the sweep armed with :meth:`arm_list` (A), once it is idle."""
        if not self.FETCH_WAITS:
            self.wait_idle()
        fill = {"n": str(n)}
        with self.configuring():
            currents = self.query_floats(self._fill(self.LIST_FETCH, fill))
            for command in self.LIST_END:
                self.write(self._fill(command, fill))
        if currents.size != n:
            raise InstrumentError(self.name, f"fetched {currents.size} readings, expected {n}")
        return currents

    def _fill(self, command: str, fill: dict[str, str]) -> str:
        out = self.expand(command)
        for key, value in fill.items():
            out = out.replace("{" + key + "}", value)
        return out

    def close(self) -> None:
        try:
            self.output_off()
        finally:
            super().close()
