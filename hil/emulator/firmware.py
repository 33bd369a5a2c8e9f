"""The firmware's host build as the emulated bench's MCU.

``firmware/`` builds the MCU firmware for a PC (``make -C firmware host``): the same C core, its
serial link a TCP port, its shift-register hardware simulated. :class:`FirmwareMcu` runs that
executable and wires it into the shared :class:`~hil.emulator.model.BenchModel`:

* **switches**: the simulated hardware keeps the physical state of every switch in a file that
  both processes map; the model's switch arrays are views of it, so a pulse from the emulated
  generator reaches exactly the cells whose switches the *firmware* closed, and nothing in
  Python sets a switch;
* **TRIG IN**: each trigger edge the emulated instruments raise is one byte on a socket pair
  into the firmware, which answers once the edge's route is set and read back (the instrument
  waits for that, as the bench's trigger delay waits for the mux to settle);
* **the serial line**: frames reach the firmware through :class:`FaultyLink`, so tests can
  corrupt or drop them on the way, or hold a switch open, exactly as with the Python emulator.
"""

from __future__ import annotations

import mmap
import os
import select
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from drivers.mcu import Route, RouteSyntaxError
from hil.bench import COLS, ROWS
from hil.emulator.mcu import FaultyLink
from hil.emulator.model import BenchModel

LINES = 3 * COLS + ROWS  # switches per board in the switch file: WL, BLS, SLG, SLM
START_TIMEOUT = 10.0  # s for the executable to listen
REPLY_TIMEOUT = 5.0  # s for one reply or one trigger acknowledgement


class FirmwareError(RuntimeError):
    """The firmware executable could not be started or stopped answering."""


class FirmwareMcu(FaultyLink):
    """Run ``executable`` (the host build) as the MCU of ``model``; :meth:`close` stops it."""

    def __init__(self, executable: str | Path, model: BenchModel, port: int = 0) -> None:
        super().__init__(model)
        n = len(model.board_pos)
        fd, self._path = tempfile.mkstemp(prefix="hil-mux-", suffix=".switches")
        os.ftruncate(fd, 2 * n * LINES)
        self._map = mmap.mmap(fd, 2 * n * LINES)
        os.close(fd)
        cells = np.frombuffer(self._map, dtype=bool).reshape(2, n, LINES)
        self.closed, self.stuck = cells[0], cells[1]
        model.attach_switches(self.closed)
        self._trig, theirs = socket.socketpair()
        boards = ",".join(str(b) for b in model.board_pos)  # chain order = bench order
        try:
            self.process = subprocess.Popen(
                [str(executable), "--port", str(port), "--boards", boards, "--shm", self._path,
                 "--trig-fd", str(theirs.fileno())],
                pass_fds=(theirs.fileno(),), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        except OSError as exc:
            self._release()
            raise FirmwareError(f"cannot run the MCU firmware {executable}: {exc}") from exc
        finally:
            theirs.close()
        self.port = self._await_port()
        self._link = socket.create_connection(("127.0.0.1", self.port), timeout=REPLY_TIMEOUT)
        self._link.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._replies = self._link.makefile("rb")
        model.listeners.append(self.hardware_trigger)

    def _await_port(self) -> int:
        stdout = self.process.stdout
        assert stdout is not None
        ready, _, _ = select.select([stdout], [], [], START_TIMEOUT)
        line = stdout.readline().decode(errors="replace") if ready else ""
        if not line.startswith("listening on 127.0.0.1:"):
            self.close()
            raise FirmwareError(f"the MCU firmware did not start: {line.strip()!r}")
        return int(line.rsplit(":", 1)[1])

    # ---- the serial line ----------------------------------------------------------------

    def _frame(self, line: bytes) -> bytes:
        if self.faults:
            self._stick_next_route(line)
        try:
            self._link.sendall(line)
            reply = self._replies.readline()
        except OSError as exc:
            raise FirmwareError(f"the MCU firmware stopped answering: {exc}") from exc
        if not reply.endswith(b"\n"):
            raise FirmwareError("the MCU firmware closed its port")
        return reply.rstrip(b"\n")

    def _stick_next_route(self, line: bytes) -> None:
        """A pending ``stuck_switch`` holds open the BL of the first cell the next route
        command closes, as :meth:`McuEmulator.apply` does."""
        text = line.decode("ascii", errors="replace").split(" ", 1)[-1].rsplit(" *", 1)[0]
        try:
            route = Route.parse(text)
        except RouteSyntaxError:
            return
        if route.groups and self._take_fault("stuck_switch", ""):
            board, _, mask = route.groups[0]
            row = (mask & -mask).bit_length() - 1
            self.stuck[self.model.board_pos[board], COLS + row] = True

    def _unstick(self) -> None:
        self.stuck[:] = False

    # ---- TRIG IN ------------------------------------------------------------------------

    def hardware_trigger(self) -> None:
        """One rising edge on TRIG IN; returns once the firmware has handled it."""
        try:
            self._trig.sendall(b"E")
            self._trig.settimeout(REPLY_TIMEOUT)
            if self._trig.recv(1) != b"E":
                raise FirmwareError("the MCU firmware closed its trigger input")
        except OSError as exc:
            raise FirmwareError(f"the MCU firmware did not take a trigger edge: {exc}") from exc

    # ---- lifetime -----------------------------------------------------------------------

    def close(self) -> None:
        """Stop the firmware (SIGTERM, then SIGKILL) and release the switch file."""
        if self.hardware_trigger in self.model.listeners:
            self.model.listeners.remove(self.hardware_trigger)
        for closer in ("_replies", "_link", "_trig"):
            if hasattr(self, closer):
                getattr(self, closer).close()
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()
        self.model.detach_switches()
        self._release()

    def _release(self) -> None:
        self.closed = self.stuck = None  # type: ignore[assignment]
        deadline = time.monotonic() + 1
        while True:  # numpy views may still pin the map for a moment
            try:
                self._map.close()
                break
            except BufferError:
                if time.monotonic() > deadline:
                    break
                time.sleep(0.01)
        Path(self._path).unlink(missing_ok=True)
