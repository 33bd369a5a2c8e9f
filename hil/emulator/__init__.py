"""Emulated bench: SCPI servers for the pulse generator and the SMU and an MCU emulator, on
127.0.0.1 TCP ports, all sharing one :class:`~hil.emulator.model.BenchModel`.

Tests start it in-process (threads); ``hil bench serve`` runs it in the foreground and writes a
bench file whose ``[instruments]`` point at it, so ``hil train --bench FILE`` goes through every
byte of the hardware path (pyvisa-py ``TCPIP::127.0.0.1::PORT::SOCKET``, pyserial
``socket://127.0.0.1:PORT``) without hardware.

Trigger edges travel only on the wires the bench file's ``[wiring]`` declares; a bench without a
``[wiring]`` section is emulated with :data:`EMULATED_WIRING`, which the written bench file then
declares. :meth:`EmulatedBench.write_timeline` writes every event of the bench on its time base.
"""

from __future__ import annotations

import csv
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from hil.backends.hardware import wiring
from hil.bench import Bench, dump_toml, standalone_tables
from hil.emulator.firmware import FirmwareMcu
from hil.emulator.generators import PulseGenerator, make_generator
from hil.emulator.mcu import FaultyLink, McuEmulator
from hil.emulator.model import BenchModel, DeliveredPulse, Wire
from hil.emulator.scpi import LineServer
from hil.emulator.smus import Smu, make_smu

__all__ = ["EMULATED_WIRING", "BenchModel", "DeliveredPulse", "EmulatedBench", "dump_toml"]

# How the emulated bench is wired when the bench file says nothing (docs/timing.md): MCU TRIG
# OUT 1 to the generator's trigger input, TRIG OUT 2 to SMU line 1, SMU line 2 back to TRIG IN 1,
# and (33500B) the generator's Sync output to TRIG IN 2.
EMULATED_WIRING = {"generator_trigger": 1, "smu_trigger": 2, "smu_trigger_line": 1,
                   "smu_complete": 1, "smu_complete_line": 2}


def emulated_wiring(generator: str) -> dict[str, int]:
    return {**EMULATED_WIRING, "generator_sync": 2 if generator == "33500B" else 0}


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
        mcu_firmware: str | Path | None = None,
    ) -> None:
        """``mcu_firmware``: the firmware's host build (``make -C firmware host``) to run as
        the MCU instead of the Python emulator."""
        raw = {k: (dict(v) if isinstance(v, dict) else v) for k, v in bench.raw.items()}
        raw["wiring"] = raw.get("wiring") or emulated_wiring(generator)
        raw["instruments"] = {**raw.get("instruments", {}), "smu_model": smu,
                              "generator_model": generator}
        self.raw = raw
        self.wiring = wiring(_with_raw(bench, raw))
        self.bench = bench
        wires = tuple(Wire(*w) for w in self.wiring.wires())
        self.model = BenchModel(bench, seed=seed, modes=modes, wires=wires)
        self.generator: PulseGenerator = make_generator(generator, self.model)
        self.smu: Smu = make_smu(smu, self.model)
        self.mcu: FaultyLink = (McuEmulator(self.model) if mcu_firmware is None
                                else FirmwareMcu(mcu_firmware, self.model))
        self.generator_model, self.smu_model = generator, smu
        self._ports = ports or {}
        self.servers: dict[str, LineServer] = {}

    # ---- serving -----------------------------------------------------------------------

    INSTRUMENTS = ("generator", "smu", "mcu")

    def start(self) -> EmulatedBench:
        for name in self.INSTRUMENTS:
            self._serve(name)
        return self

    def _serve(self, name: str) -> None:
        port = self._ports.get(name, 0)
        try:
            server = (LineServer(self.mcu.respond, port) if name == "mcu" else
                      LineServer.for_instrument(getattr(self, name), port))
        except OSError as exc:
            raise OSError(exc.errno, f"{name}: cannot listen on 127.0.0.1:{port}: "
                          f"{exc.strerror}") from None
        self.servers[name] = server.start()
        self._ports[name] = server.port  # a restarted instrument answers where it did

    def stop(self) -> None:
        for server in self.servers.values():
            server.stop()
        self.servers = {}
        self.mcu.close()

    # ---- faults: power cycles and stalls -----------------------------------------------

    def power_off(self, name: str) -> None:
        """Switch one instrument off: its connections drop and nothing answers on its port.
        The devices keep their conductances (they are non-volatile); the switches open."""
        self.servers.pop(name).stop()
        if name == "mcu":
            self.mcu.power_off()  # it takes the bench's lock as it needs (a firmware run ends)
            return
        with self.model.lock:
            getattr(self, name).reset()  # outputs off with the power

    def power_on(self, name: str) -> None:
        """Switch it on again in its power-on state (``*RST`` settings, empty error queue; the
        MCU with every switch open and an empty table), on the same address as before."""
        if name == "mcu":
            self.mcu.power_on()
        else:
            with self.model.lock:
                instrument = getattr(self, name)
                instrument.reset()
                instrument.errors.clear()
        self._serve(name)

    def stall(self, name: str, stalled: bool = True) -> None:
        """Make one instrument stop answering (``stalled``) or answer again: what it received
        meanwhile is answered late, as a unit busy in a long operation does."""
        (self.servers[name].awake.clear if stalled else self.servers[name].awake.set)()

    def power_cycle(self, name: str, off: float) -> None:
        """Off, ``off`` seconds, on again; blocks (a fault drill runs it beside a run)."""
        self.power_off(name)
        time.sleep(off)
        self.power_on(name)

    def stall_for(self, name: str, seconds: float) -> None:
        """Silent for ``seconds``, then answering again; blocks like :meth:`power_cycle`."""
        self.stall(name)
        time.sleep(seconds)
        self.stall(name, False)

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

    def record_timeline(self) -> None:
        """Keep every event from now on (``write_timeline`` writes them)."""
        with self.model.lock:
            self.model.timeline = []

    def timeline(self) -> list[tuple[float, str, str, str]]:
        """The events recorded so far (and those due by the bench's present time), in time
        order."""
        with self.model.lock:
            self.model.advance(self.model.now)
            return sorted(self.model.timeline or [], key=lambda e: e[0])

    def write_timeline(self, path: Path) -> int:
        """Write ``t_us,source,event,target`` rows; returns how many."""
        rows = self.timeline()
        with open(path, "w", newline="") as f:
            out = csv.writer(f)
            out.writerow(["t_us", "source", "event", "target"])
            out.writerows((f"{t * 1e6:.3f}", s, e, x) for t, s, e, x in rows)
        return len(rows)

    def bench_toml(self, base: Path | None = None,
                   settings: dict[str, dict[str, Any]] | None = None) -> str:
        """The bench file, unchanged but for ``backend = "instruments"``, ``emulated = true``
        (so its devices are never taken for a real bench's in the registry), an
        ``[instruments]`` section pointing at this emulator and the ``[wiring]`` it emulates
        (paths made absolute); ``settings`` ({section: {key: value}}) added last, such as a
        short ``[instruments] timeout`` for a fault drill."""
        raw = standalone_tables(_with_raw(self.bench, self.raw), base)
        raw["bench"] = {**raw.get("bench", {}), "backend": "instruments", "emulated": True}
        raw["instruments"] = {**raw.get("instruments", {}), "generator_model":
                              self.generator_model, "smu_model": self.smu_model,
                              "mcu_boot_wait": 0.0, **self.resources}
        for section, values in (settings or {}).items():
            raw[section] = {**raw.get(section, {}), **values}
        return dump_toml(raw)


def _with_raw(bench: Bench, raw: dict[str, Any]) -> Bench:
    return replace(bench, raw=raw)
