"""Source-measure unit behaviour shared by the supported models (Keithley 2450, Keysight B2900).

The bench uses an SMU to force a small read voltage on the selected bit lines and measure the
current out of the selected source line. Every source level and current limit is checked against
the bench's limits before a byte is written. List sweeps put many reads in one transaction: the
list is loaded, the sweep runs on the instrument, and all readings come back in one buffered
fetch.
"""

from __future__ import annotations

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
    channel, ``{n}`` the number of points and ``{delay}`` the per-point source delay.
    """

    SETUP: ClassVar[tuple[str, ...]]  # source V, sense I, fixed ranges
    MEASURE: ClassVar[str]  # spot current query
    LIST_BEGIN: ClassVar[tuple[str, ...]]  # before the list values
    LIST_LOAD: ClassVar[str]  # first chunk of values: "{}" = comma-separated values
    LIST_APPEND: ClassVar[str]  # further chunks
    LIST_CHUNK: ClassVar[int] = 100  # values per command
    MAX_LIST: ClassVar[int]
    LIST_RUN: ClassVar[tuple[str, ...]]  # start the sweep and wait for it
    LIST_RUN_TRIGGERED: ClassVar[tuple[str, ...] | None] = None  # same, pulsing the trigger
    # output after every measurement, when the plain sweep cannot (None: LIST_RUN does)
    TRIGGER_OUT: ClassVar[tuple[str, ...]]  # route a pulse per measurement to line {line}
    TRIGGER_LINES: ClassVar[range]  # digital lines that can carry it
    LIST_FETCH: ClassVar[str]  # one query returning every reading
    LIST_END: ClassVar[tuple[str, ...]]  # back to spot mode

    def __init__(self, resource: Any, *, limits: SourceLimits, **kwargs: Any) -> None:
        super().__init__(resource, limits=limits, **kwargs)
        self._nplc = 1.0
        self.trigger_line: int | None = None

    def setup(
        self,
        *,
        voltage: float,
        current_limit: float,
        current_range: float,
        nplc: float,
        voltage_range: float = 2.0,
        trigger_out: int | None = None,
    ) -> None:
        """Reset and configure a fixed-range voltage source / current measurement, output off.
        All values are checked before the first byte.

        ``trigger_out``: a digital line that pulses after every measurement of a list sweep;
        wired to the MCU's TRIG IN it steps the MCU's route table in step with the sweep, so a
        batch of MAC reads needs no serial round trip per read."""
        settings = [("voltage_range", voltage_range), ("current_limit", current_limit),
                    ("current_range", current_range), ("nplc", nplc),
                    ("source_voltage", voltage)]
        commands = [self.command_for(name, value) for name, value in settings]
        if trigger_out is not None and trigger_out not in self.TRIGGER_LINES:
            raise LimitError(self.name, f"no digital line {trigger_out} (lines "
                             f"{self.TRIGGER_LINES.start}-{self.TRIGGER_LINES.stop - 1})")
        self.reset()
        with self.configuring():
            for command in self.SETUP:
                self.write(self.expand(command))
            for command in commands:
                self.write(command)
            if trigger_out is not None:
                for command in self.TRIGGER_OUT:
                    self.write(self._fill(command, {"line": str(int(trigger_out))}))
        self._nplc = nplc
        self.trigger_line = trigger_out

    def output_on(self) -> None:
        with self.configuring():
            self.output = True

    def output_off(self) -> None:
        """Output off (safe state)."""
        with self.configuring():
            self.output = False

    def measure_current(self) -> float:
        """One spot measurement at the programmed source voltage, A."""
        return float(self.query(self.expand(self.MEASURE)))

    def run_list(self, voltages: Sequence[float] | np.ndarray, *, delay: float = 0.0) -> np.ndarray:
        """Source each voltage in turn, measure after ``delay`` s, and return every current (A)
        from one buffered fetch. The sweep's duration is added to the timeout of the fetch."""
        values = np.asarray(voltages, dtype=float).ravel()
        if not 1 <= values.size <= self.MAX_LIST:
            raise LimitError(self.name, f"list of {values.size} points; 1..{self.MAX_LIST} allowed")
        bound = self.limits.max_voltage
        if np.abs(values).max() > bound:
            raise LimitError(self.name, f"list voltage {np.abs(values).max():g} V exceeds the "
                             f"bench limit {bound:g} V")
        n = values.size
        texts = [format_number(v) for v in values]
        chunks = [",".join(texts[i:i + self.LIST_CHUNK]) for i in range(0, n, self.LIST_CHUNK)]
        fill = {"n": str(n), "delay": format_number(delay)}
        with self.configuring():
            for command in self.LIST_BEGIN:
                self.write(self._fill(command, fill))
            self.write(self.expand(self.LIST_LOAD).format(chunks[0]))
            for chunk in chunks[1:]:
                self.write(self.expand(self.LIST_APPEND).format(chunk))
            run = self.LIST_RUN
            if self.trigger_line is not None and self.LIST_RUN_TRIGGERED is not None:
                run = self.LIST_RUN_TRIGGERED
            for command in run:
                self.write(self._fill(command, fill))
            sweep_s = n * (delay + self._nplc / 50.0 + 1e-3)  # 50 Hz: the slower line
            self.resource.timeout = (self.timeout + sweep_s) * 1000.0
            try:
                currents = self.query_floats(self._fill(self.LIST_FETCH, fill))
            finally:
                self.resource.timeout = self.timeout * 1000.0
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
