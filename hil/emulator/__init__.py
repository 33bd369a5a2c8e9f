"""Emulated bench: SCPI servers for the pulse generator and the SMU and an MCU emulator, on
127.0.0.1 TCP ports, all sharing one :class:`~hil.emulator.model.BenchModel`.

Tests start it in-process (threads); ``hil bench serve`` runs it in the foreground and writes a
bench file whose ``[instruments]`` point at it, so ``hil train --bench FILE`` goes through every
byte of the hardware path (pyvisa-py ``TCPIP::127.0.0.1::PORT::SOCKET``, pyserial
``socket://127.0.0.1:PORT``) without hardware.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hil.bench import Bench, dump_toml, standalone_tables
from hil.emulator.generators import PulseGenerator, make_generator
from hil.emulator.mcu import McuEmulator
from hil.emulator.model import BenchModel, DeliveredPulse
from hil.emulator.scpi import LineServer
from hil.emulator.smus import Smu, make_smu

__all__ = ["BenchModel", "DeliveredPulse", "EmulatedBench", "dump_toml"]


class EmulatedBench:
    """All emulated instruments of one bench; a context manager that serves them."""

    def __init__(
        self,
        bench: Bench,
        *,
        generator: str = "33500B",
        smu: str = "2450",
        seed: int | None = None,
        modes: np.ndarray | None = None,
        ports: dict[str, int] | None = None,
    ) -> None:
        self.bench = bench
        self.model = BenchModel(bench, seed=seed, modes=modes)
        self.generator: PulseGenerator = make_generator(generator, self.model)
        self.smu: Smu = make_smu(smu, self.model)
        self.mcu = McuEmulator(self.model)
        self.generator_model, self.smu_model = generator, smu
        self._ports = ports or {}
        self.servers: dict[str, LineServer] = {}

    # ---- serving -----------------------------------------------------------------------

    def start(self) -> EmulatedBench:
        p = self._ports
        self.servers = {
            "generator": LineServer.for_instrument(self.generator, p.get("generator", 0)).start(),
            "smu": LineServer.for_instrument(self.smu, p.get("smu", 0)).start(),
            "mcu": LineServer(self.mcu.respond, p.get("mcu", 0)).start(),
        }
        return self

    def stop(self) -> None:
        for server in self.servers.values():
            server.stop()
        self.servers = {}

    def __enter__(self) -> EmulatedBench:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def resources(self) -> dict[str, str]:
        """Where the instruments answer, as the bench file's ``[instruments]`` writes it."""
        s = self.servers
        return {
            "generator_resource": f"TCPIP::127.0.0.1::{s['generator'].port}::SOCKET",
            "smu_resource": f"TCPIP::127.0.0.1::{s['smu'].port}::SOCKET",
            "mcu_port": f"socket://127.0.0.1:{s['mcu'].port}",
        }

    # ---- inspection --------------------------------------------------------------------

    @property
    def pulses(self) -> list[DeliveredPulse]:
        """Every pulse that reached cells, in order."""
        return self.model.pulses

    def is_safe(self) -> bool:
        """Safe state: generator and SMU outputs off, every switch open."""
        with self.model.lock:
            outputs = [ch.output for ch in self.generator.channels.values()]
            return not any(outputs) and not self.smu.state.output and self.model.all_open()

    # ---- bench file --------------------------------------------------------------------

    def bench_toml(self, base: Path | None = None) -> str:
        """The bench file, unchanged but for ``backend = "instruments"`` and an
        ``[instruments]`` section pointing at this emulator (paths made absolute)."""
        raw = standalone_tables(self.bench, base)
        raw["bench"] = {**raw.get("bench", {}), "backend": "instruments"}
        raw["instruments"] = {**raw.get("instruments", {}), "generator_model":
                              self.generator_model, "smu_model": self.smu_model, **self.resources}
        return dump_toml(raw)
