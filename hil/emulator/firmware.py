"""The firmware's host build as the emulated bench's MCU.

``firmware/`` builds the MCU firmware for a PC (``make -C firmware host``): the same C core, its
serial link a TCP port, its shift-register hardware simulated. :class:`FirmwareMcu` runs that
executable and wires it into the shared :class:`~hil.emulator.model.BenchModel`:

* **switches**: the simulated hardware keeps the physical state of every switch in a file that
  both processes map; the model's switch arrays are views of it, so a pulse from the emulated
  generator reaches exactly the cells whose switches the *firmware* closed, and nothing in
  Python sets a switch;
* **time and trigger lines**: the firmware runs on the bench's time base, which this class
  gives it over a socket pair (``--bench-fd``): after every frame it moves the firmware on to
  each deadline the firmware names (a settle, a TRIG OUT width, a dwell, a timeout), running
  the bench's own events in between, exactly as the Python emulator paces a table; TRIG OUT
  pulses the firmware raises drive the bench's wires (``mcu.out1`` ...), and edges the wires
  bring to ``mcu.in1``/``mcu.in2`` go to the firmware's TRIG IN with their time;
* **the serial line**: frames reach the firmware through :class:`FaultyLink`, so tests can
  corrupt or drop them on the way, or hold a switch open, exactly as with the Python emulator.
"""

from __future__ import annotations

import math
import mmap
import os
import select
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from drivers.mcu import Route, RouteSyntaxError, parse_table_command
from hil.bench import COLS, ROWS
from hil.emulator.mcu import FaultyLink
from hil.emulator.model import BenchModel

LINES = 3 * COLS + ROWS  # switches per board in the switch file: WL, BLS, SLG, SLM
START_TIMEOUT = 10.0  # s for the executable to listen
REPLY_TIMEOUT = 5.0  # s for one reply or one answer on the bench link
MAX_STEPS = 200_000  # deadlines of one frame's table run: 4096 entries x a few each


class FirmwareError(RuntimeError):
    """The firmware executable could not be started or stopped answering."""


class FirmwareMcu(FaultyLink):
    """Run ``executable`` (the host build) as the MCU of ``model``; :meth:`close` stops it."""

    def __init__(self, executable: str | Path, model: BenchModel, port: int = 0) -> None:
        super().__init__(model)
        self.executable, self._wanted_port = executable, port
        self._start()

    def _start(self) -> None:
        """Run the executable with a fresh switch file (every switch open) and connect to it."""
        model, executable, port = self.model, self.executable, self._wanted_port
        n = len(model.board_pos)
        fd, self._path = tempfile.mkstemp(prefix="hil-mux-", suffix=".switches")
        os.ftruncate(fd, 2 * n * LINES)
        self._map = mmap.mmap(fd, 2 * n * LINES)
        os.close(fd)
        cells = np.frombuffer(self._map, dtype=bool).reshape(2, n, LINES)
        self.closed, self.stuck = cells[0], cells[1]
        model.attach_switches(self.closed)
        self._bench, theirs = socket.socketpair()
        self._bench.settimeout(REPLY_TIMEOUT)
        self._bench_in = self._bench.makefile("rb")
        self._next: int | None = None  # the firmware's next deadline (us of bench time)
        self._edge_seen = False
        self._runner: threading.Thread | None = None
        boards = ",".join(str(b) for b in model.board_pos)  # chain order = bench order
        try:
            self.process = subprocess.Popen(
                [str(executable), "--port", str(port), "--boards", boards, "--shm", self._path,
                 "--bench-fd", str(theirs.fileno())],
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
        for line in (1, 2):
            model.inputs[f"mcu.in{line}"] = lambda t, width, n=line: self._edge(n, t)

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
        self._tell(f"T {_us(self.model.now)}")  # the firmware's time catches up with the bench
        try:
            self._link.sendall(line)
            reply = self._replies.readline()
        except OSError as exc:
            raise FirmwareError(f"the MCU firmware stopped answering: {exc}") from exc
        if not reply.endswith(b"\n"):
            raise FirmwareError("the MCU firmware closed its port")
        firmware_now = self._tell("Q")
        if self._next is None:
            self.model.advance(firmware_now * 1e-6)  # what the frame took (a route's settling)
        else:  # a run started: it goes on behind the reply, as the firmware's does
            self._runner = threading.Thread(target=self._pace_run, args=(firmware_now,),
                                            daemon=True, name="firmware-run")
            self._runner.start()
        return reply.rstrip(b"\n")

    @property
    def running(self) -> bool:
        """A table run is in progress."""
        return self._next is not None

    def _pace_run(self, firmware_now: int) -> None:
        with self.model.lock:
            try:
                self._follow(firmware_now)
            except FirmwareError:
                self._next = None  # the firmware is gone: nothing left to pace
            self.model.changed.notify_all()

    def _follow(self, firmware_now: int) -> None:
        """Bench time moves on with a running table, deadline by deadline, the bench's own
        events (pulses, apertures, trigger edges back into the firmware) in between. Every other
        message to the bench waits for it (the model's lock), so the instruments' data are
        complete once the host sees the run ended."""
        m = self.model
        m.advance(firmware_now * 1e-6)
        for _ in range(MAX_STEPS):
            if self._next is None:
                return
            self._edge_seen = False
            m.advance(self._next * 1e-6, until=lambda: self._edge_seen)
            if not self._edge_seen:
                self._tell(f"T {self._next}")
        raise FirmwareError("the MCU firmware's table run did not end")

    def _edge(self, line: int, t: float) -> None:
        """A rising edge on TRIG IN ``line`` at bench time ``t``."""
        self._tell(f"E {line} {_us(t)}")
        self._edge_seen = True

    def _tell(self, command: str) -> int:
        """One line to the firmware's bench link; carries out what its hardware did meanwhile
        (switch changes onto the timeline, TRIG OUT pulses onto the wires), keeps its next
        deadline, and returns its time (us)."""
        try:
            self._bench.sendall(command.encode() + b"\n")
            while True:
                words = self._bench_in.readline().split()
                if not words:
                    raise FirmwareError("the MCU firmware closed its bench link")
                if words[0] == b"N":
                    self._next = None if words[1] == b"-" else int(words[1])
                    return int(words[2])
                t = int(words[2]) * 1e-6
                if words[0] == b"S":
                    self.model.record(t, "mcu", "switch", "")
                elif words[0] == b"O":
                    self.model.record(t, "mcu", "settled", "")
                    self.model.emit(f"mcu.out{int(words[1])}", t, int(words[3]) * 1e-6)
        except OSError as exc:
            raise FirmwareError(f"the MCU firmware's bench link failed: {exc}") from exc

    def _stick_next_route(self, line: bytes) -> None:
        """A pending ``stuck_switch`` holds open the BL of the first cell the next route
        command closes, as :meth:`McuEmulator.apply` does."""
        text = line.decode("ascii", errors="replace").split(" ", 1)[-1].rsplit(" *", 1)[0]
        try:
            if text.startswith(("TBL SET", "TBL SCAN")):
                route = parse_table_command(text.removeprefix("TBL "))[1][0]
            else:
                route = Route.parse(text)
        except (RouteSyntaxError, IndexError):
            return
        if route.groups and self._take_fault("stuck_switch", ""):
            board, _, mask = route.groups[0]
            row = (mask & -mask).bit_length() - 1
            self.stuck[self.model.board_pos[board], COLS + row] = True

    def _unstick(self) -> None:
        self.stuck[:] = False

    # ---- lifetime -----------------------------------------------------------------------

    def power_off(self) -> None:
        """Switched off: the firmware stops and, without supply, every switch opens."""
        self.close()
        self.model.open_all()

    def power_on(self) -> None:
        """Switched on again: the firmware starts from reset (every switch open, the table empty,
        the watchdog disarmed, no frame remembered), as the board's power-up does."""
        self._runner, self._next, self._edge_seen = None, None, False
        self._start()

    def close(self) -> None:
        """Stop the firmware (SIGTERM, then SIGKILL) and release the switch file."""
        if self._runner is not None:
            self._runner.join(30)
        for line in (1, 2):
            self.model.inputs.pop(f"mcu.in{line}", None)
        for closer in ("_replies", "_link", "_bench_in", "_bench"):
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


def _us(t: float) -> int:
    """Bench time in whole microseconds, rounded up: nothing is handled before it happened."""
    return math.ceil(t * 1e6 - 1e-6)
