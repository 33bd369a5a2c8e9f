"""Emulated multiplexer MCU: the firmware side of ``docs/mcu-protocol.md`` on a TCP socket that
pyserial opens as ``socket://127.0.0.1:PORT``.

Framing, routes and switch-state encoding come from :mod:`drivers.mcu` (one definition for both
ends of the link); the switches themselves are the shared :class:`BenchModel`'s, so a route
decides which cells the emulated generator and SMU reach, and ``STATE?`` reads them back.

Tables run as protocol version 2 says (section 4.1): the emulator paces them on the bench time
base (set entry, read back, settle, raise TRIG OUT, wait for the completion edge or the dwell,
step), its TRIG OUT lines drive the wires the bench file declares, and it counts the edges that
reach its TRIG IN lines before, during and after a run.

Faults can be injected per frame for tests (:meth:`McuEmulator.inject`): a request corrupted
or dropped on its way in, a reply corrupted or dropped on its way out, or a switch that does not
follow its driver. The host must detect each and never let a pulse reach another cell.
"""

from __future__ import annotations

import re
import threading
import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from drivers.mcu import (
    MAX_LINE,
    FrameError,
    Pacing,
    Route,
    RouteSyntaxError,
    SwitchState,
    decode_frame,
    encode_frame,
    format_state,
    parse_table_command,
    table_crc,
)
from hil.bench import CELLS, COLS
from hil.emulator.model import BenchModel

FIRMWARE = "hil-mux/2.0"
RX_LIMIT = 256  # bytes per line this firmware accepts (a small UART buffer, the strict case)
READ_BACK = 5e-6  # s to write the switch drivers and read them back (a few SPI transfers)
DEFAULT_SETTLE = 20e-6  # s: route commands settle this long before any TBL CFG
TABLE_COMMANDS = ("CLR", "SET", "SCAN", "GET", "CRC", "CFG", "CFG?", "RUN", "STAT")
RUNNING_OK = ("IDN?", "STATE?", "OPEN", "TBL STAT", "TBL CFG?", "WDG?")
WATCHDOG_MS = (20, 60000)  # the range WDG accepts (0 disarms)
_SEQ = re.compile(rb"\d{1,3}\Z")
FAULTS = ("corrupt_request", "drop_request", "corrupt_reply", "drop_reply", "stuck_switch")


class _Refused(Exception):
    def __init__(self, code: int, text: str) -> None:
        super().__init__(text)
        self.code, self.text = code, text


@dataclass
class _Fault:
    kind: str
    command: str  # applies to the next frame whose command starts with this ("" = any)


@dataclass
class _Run:
    """Edge bookkeeping of a table (protocol section 4.2)."""

    edges: list[float] = field(default_factory=list)  # TRIG IN edge times since TBL CLR/CFG
    start: float | None = None  # bench time the run started
    end: float | None = None  # ... and ended
    out: int = 0
    why: str = "none"
    window: float | None = None  # rising TRIG OUT edge of the entry awaiting completion
    completion: float | None = None

    def counts(self) -> tuple[int, int, int]:
        if self.start is None:
            return len(self.edges), 0, 0
        before = sum(t < self.start for t in self.edges)
        if self.end is None:
            return before, len(self.edges) - before, 0
        after = sum(t > self.end for t in self.edges)
        return before, len(self.edges) - before - after, after


class FaultyLink:
    """The serial line into an MCU, with faults injected per frame for tests; a subclass answers
    each line that arrives (:meth:`_frame`)."""

    def __init__(self, model: BenchModel) -> None:
        self.model = model
        self.faults: deque[_Fault] = deque()
        self.received: list[bytes] = []

    def inject(self, kind: str, command: str = "") -> None:
        """Apply fault ``kind`` to the next frame whose command starts with ``command``.

        ``stuck_switch`` instead makes the bit line of the next routed cell fail to close (until
        :meth:`clear_faults`)."""
        if kind not in FAULTS:
            raise ValueError(f"unknown fault {kind!r}; known: {', '.join(FAULTS)}")
        self.faults.append(_Fault(kind, command))

    def clear_faults(self) -> None:
        self.faults.clear()
        self._unstick()

    def _unstick(self) -> None:
        """Free every switch a ``stuck_switch`` fault held open."""
        raise NotImplementedError

    def _take_fault(self, kind: str, text: str) -> bool:
        for fault in self.faults:
            if fault.kind == kind and text.startswith(fault.command):
                self.faults.remove(fault)
                return True
        return False

    def respond(self, line: bytes) -> bytes | None:
        with self.model.lock:
            self.model.host_message()
            try:
                return self._respond(line)
            finally:
                self.model.changed.notify_all()

    def _respond(self, line: bytes) -> bytes | None:
        self.received.append(line)
        if not line.rstrip(b"\r"):
            return None  # an empty line ends a partial one and is not answered
        text = _peek_command(line)
        if self._take_fault("drop_request", text):
            return None
        if self._take_fault("corrupt_request", text):
            line = _flip(line)
        reply = self._frame(line + b"\n")
        if self._take_fault("drop_reply", text):
            return None
        if self._take_fault("corrupt_reply", text):
            reply = _flip(reply)
        return reply

    def _frame(self, line: bytes) -> bytes:
        raise NotImplementedError

    def close(self) -> None:
        """Release what the MCU holds (threads, processes)."""

    @property
    def running(self) -> bool:
        """A table run is in progress."""
        raise NotImplementedError


class McuEmulator(FaultyLink):
    """Protocol state machine; :meth:`respond` takes one received line and returns the reply."""

    def __init__(self, model: BenchModel, table_size: int = 4096) -> None:
        super().__init__(model)
        self.table_size = table_size
        self.table: list[Route] = []
        self.table_state, self.pos = "idle", 0
        self.pacing: Pacing | None = None
        self.run = _Run()
        for line in (1, 2):
            model.inputs[f"mcu.in{line}"] = lambda t, width, n=line: self.edge_in(n, t)
        self._last: tuple[int, str, bytes] | None = None  # seq, body, reply of last executed
        self.stuck: set[tuple[int, int]] = set()  # (board pos, row) BLs that will not close
        self.executed: list[str] = []  # commands executed (retransmissions excluded)
        self._cache: dict[Route, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        self._cell_cache: dict[Route, tuple[np.ndarray, np.ndarray]] = {}
        self.watchdog_ms, self.watchdog_expired = 0, 0
        self._fed = time.monotonic()
        self._watchdog: threading.Thread | None = None
        self._closed, self._wake = threading.Event(), threading.Event()

    def power_off(self) -> None:
        """Switched off: with the supply every switch opens."""
        self.model.open_all()

    def power_on(self) -> None:
        """The state after power-up: every switch open, the route table empty and idle, no
        frame remembered (a retransmission after a restart is a new command), the watchdog
        disarmed (protocol section 4.4)."""
        with self.model.lock:
            self.model.open_all()
            self.table, (self.table_state, self.pos) = [], ("idle", 0)
            self._last = None
            self._cache.clear()
            self._cell_cache.clear()
            self.watchdog_ms = 0

    def close(self) -> None:
        """Stop the watchdog thread (if one runs)."""
        self._closed.set()
        self._wake.set()
        if self._watchdog is not None:
            self._watchdog.join(5)

    def _unstick(self) -> None:
        self.stuck.clear()

    @property
    def running(self) -> bool:
        return self.table_state == "running"

    # ---- link ---------------------------------------------------------------------------

    def _frame(self, line: bytes) -> bytes:
        try:
            if len(line) > RX_LIMIT:
                raise FrameError("LONG", line[:64])
            seq, text = decode_frame(line)
        except FrameError as exc:
            head = line.split(b" ", 1)[0]
            seq_text = head.decode() if _SEQ.match(head) and int(head) <= 255 else "-"
            return _reply(seq_text, f"NAK {exc.reason}")
        self._fed = time.monotonic()  # every frame that arrives intact feeds the watchdog
        if seq is None:
            return _reply("-", "NAK FRAME")
        if seq != 0 and self._last is not None and self._last[:2] == (seq, text):
            return self._last[2]  # a retransmission: same answer, not executed again
        try:
            data = self.execute(text)
            reply = _reply(str(seq), "OK" + (f" {data}" if data else ""))
        except _Refused as exc:
            reply = _reply(str(seq), f"ERR {exc.code} {exc.text}")
        self._last = (seq, text, reply)
        return reply

    # ---- commands -------------------------------------------------------------------------

    def execute(self, text: str) -> str:
        self.executed.append(text)
        words = text.split()
        cmd = words[0] if words else ""
        if self.table_state == "running" and " ".join(words[:2]) not in RUNNING_OK \
                and cmd not in RUNNING_OK:
            raise _Refused(8, "busy")
        if cmd == "IDN?" and len(words) == 1:
            boards = ",".join(str(b) for b in sorted(self.model.board_pos))
            return (f"fw={FIRMWARE} proto=2 boards={boards} table={self.table_size} "
                    f"rx={RX_LIMIT} trig=2/2")
        if cmd == "STATE?" and len(words) == 1:
            return format_state(self.read_back())
        if cmd == "OPEN" and len(words) == 1:
            if self.table_state == "running":
                self._stop("fault", "abort")
            self._open()
            return ""
        if cmd in ("SEL", "PUL", "MAC"):
            route = self.parse(text)
            self.apply(route)
            self.model.advance(self.model.now + self._settle())
            self.model.record(self.model.now, "mcu", "settled", lambda: route.text)
            return ""
        if cmd == "TBL" and len(words) >= 2:
            return self.table_command(words[1], words[2:])
        if cmd == "WDG" and len(words) == 2:
            self.set_watchdog(_index(words[1]))
            return ""
        if cmd == "WDG?" and len(words) == 1:
            return f"ms={self.watchdog_ms} expired={self.watchdog_expired}"
        if cmd in ("IDN?", "STATE?", "OPEN", "TBL", "WDG", "WDG?"):
            raise _Refused(1, "syntax")
        raise _Refused(2, "unknown")

    # ---- host watchdog (protocol section 4.4) ------------------------------------------------

    def set_watchdog(self, ms: int) -> None:
        if ms and not WATCHDOG_MS[0] <= ms <= WATCHDOG_MS[1]:
            raise _Refused(3, "range")
        self.watchdog_ms, self._fed = ms, time.monotonic()
        self._wake.set()  # a shorter time than the one being waited for counts at once
        if ms and self._watchdog is None:
            self._watchdog = threading.Thread(target=self._watch, daemon=True, name="mcu-wdg")
            self._watchdog.start()

    def _watch(self) -> None:
        """Open every switch (and stop a running table) when the host has been silent, and no
        table step has happened, for the watchdog time."""
        while not self._closed.is_set():
            self._wake.wait(self._expires_in())
            self._wake.clear()
            with self.model.lock:
                if not self.watchdog_ms or self._expires_in() > 0:
                    continue  # disarmed or fed meanwhile
                if self.table_state == "running" or not self.model.all_open():
                    if self.table_state == "running":
                        self._stop("fault", "abort")
                    self._open()
                    self.watchdog_expired += 1
                self._fed = time.monotonic()

    def _expires_in(self) -> float:
        if not self.watchdog_ms:
            return 0.5
        return max(0.0, self._fed + self.watchdog_ms / 1000 - time.monotonic())

    def parse(self, text: str) -> Route:
        try:
            return self._known(Route.parse(text))
        except RouteSyntaxError as exc:
            raise _refusal(exc) from None

    def _known(self, route: Route) -> Route:
        if any(b not in self.model.board_pos for b, _, _ in route.groups):
            raise _Refused(4, "board")
        return route

    def table_command(self, sub: str, args: list[str]) -> str:
        if sub == "CLR" and not args:
            self.table, self.table_state, self.pos = [], "idle", 0
            self.run = _Run()
            return ""
        if sub in ("SET", "SCAN") and args:
            try:
                start, routes = parse_table_command(" ".join([sub, *args]))
            except RouteSyntaxError as exc:
                raise _refusal(exc) from None
            self._store(start, [self._known(r) for r in routes])
            return ""
        if sub == "GET" and len(args) == 1:
            i = _index(args[0])
            if i >= len(self.table):
                raise _Refused(6, "table")
            return self.table[i].text
        if sub == "CRC" and not args:
            return f"len={len(self.table)} crc={table_crc(self.table):04X}"
        if sub == "CFG" and args:
            self.pacing = _pacing(args)
            return ""
        if sub == "CFG?" and not args:
            return (self.pacing.command.removeprefix("TBL CFG ") if self.pacing else
                    "out=0 in=0 wait=dwell settle=0 tout=0 time=0")
        if sub == "RUN" and not args:
            if not self.table or self.pacing is None:
                raise _Refused(6, "table")
            self._run_table()
            return ""
        if sub == "STAT" and not args:
            before, during, after = self.run.counts()
            return (f"state={self.table_state} pos={self.pos} len={len(self.table)} "
                    f"out={self.run.out} before={before} during={during} after={after} "
                    f"why={self.run.why}")
        if sub in TABLE_COMMANDS:
            raise _Refused(1, "syntax")  # a sub-command of version 2 with wrong arguments
        raise _Refused(2, "unknown")  # version 1's TBL ARM, or any other (protocol section 4)

    def _store(self, start: int, routes: list[Route]) -> None:
        if start > len(self.table) or start + len(routes) > self.table_size:
            raise _Refused(6, "table")
        self.table[start:start + len(routes)] = routes

    # ---- switches ---------------------------------------------------------------------------

    def apply(self, route: Route) -> None:
        """Drive the switches of ``route`` (all others open); a stuck BL stays open, and the
        read-back then disagrees: everything is opened again and the route refused."""
        m = self.model
        pos, cols, rows = self._compiled(route)
        m.advance(m.now + READ_BACK / 2)  # the drivers change half-way through the write
        m.record(m.now, "mcu", "switch", lambda: route.text)
        m.open_all()
        m.wl[pos, cols] = True
        m.bls[pos] = rows
        (m.slg if route.kind == "PUL" else m.slm)[pos, cols] = True
        if not (self.stuck or self.faults):  # the switches are exactly the route's
            m.routed = self._cells(route)
        m.advance(m.now + READ_BACK / 2)
        if not (self.stuck or self.faults):
            return  # nothing can make the read-back differ from the command
        if pos.size and self._take_fault("stuck_switch", ""):
            self.stuck.add((int(pos[0]), int(np.flatnonzero(rows[0])[0])))
        for sp, sr in self.stuck:
            m.bls[sp, sr] = False
        if route.switch_state() != self.read_back():
            self._open()
            raise _Refused(7, "switch")

    def _compiled(self, route: Route) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Board positions, 0-based columns and (groups, rows) BL pattern of a route; cached,
        since table mode applies the same few routes over and over."""
        hit = self._cache.get(route)
        if hit is None:
            if len(self._cache) > 100_000:
                self._cache.clear()
            g = route.groups
            pos = np.array([self.model.board_pos[b] for b, _, _ in g], dtype=np.int64)
            cols = np.array([c - 1 for _, c, _ in g], dtype=np.int64)
            masks = np.array([m for _, _, m in g], dtype=np.int64)
            rows = (masks[:, None] >> np.arange(self.model.bls.shape[1])) & 1 == 1
            hit = self._cache[route] = (pos, cols, rows)
        return hit

    def _cells(self, route: Route) -> tuple[np.ndarray, np.ndarray]:
        """(pulse, measure) devices of a route, sorted as the model's own lookup sorts them."""
        hit = self._cell_cache.get(route)
        if hit is None:
            pos, cols, rows = self._compiled(route)
            g, r = np.nonzero(rows)
            cells = np.sort(pos[g] * CELLS + r * COLS + cols[g])
            none = np.zeros(0, dtype=np.int64)
            hit = self._cell_cache[route] = (cells, none) if route.kind == "PUL" else (none,
                                                                                       cells)
            if len(self._cell_cache) > 100_000:
                self._cell_cache.clear()
        return hit

    def read_back(self) -> dict[int, SwitchState]:
        m = self.model
        masks = np.stack([a @ (1 << np.arange(a.shape[1])) for a in (m.wl, m.bls, m.slg, m.slm)])
        ids = list(m.board_pos)
        return {ids[p]: SwitchState(*(int(v) for v in masks[:, p]))
                for p in np.flatnonzero(masks.any(axis=0))}

    def _open(self) -> None:
        """Open every switch, as one recorded switch change."""
        self.model.record(self.model.now, "mcu", "switch", "OPEN")
        self.model.open_all()

    def _settle(self) -> float:
        return DEFAULT_SETTLE if self.pacing is None else self.pacing.settle_us * 1e-6

    # ---- table runs (protocol section 4.1) ---------------------------------------------------

    def _run_table(self) -> None:
        """Pace the whole table on the bench time base; the reply goes out when it has started
        (the host polls ``TBL STAT``), which on the emulator is after it ended."""
        m, cfg, run = self.model, self.pacing, self.run
        assert cfg is not None
        self.table_state, run.start, run.out = "running", m.now, 0
        tout, time = cfg.tout_us * 1e-6, cfg.time_us * 1e-6
        for i, route in enumerate(self.table):
            self.pos = i
            try:
                self.apply(route)
            except _Refused:
                self._stop("fault", "switch")
                return
            if self.table_state != "running":  # a stray edge during the read-back
                self._open()
                return
            run.window, run.completion = None, None
            m.advance(m.now + cfg.settle_us * 1e-6, until=self._stopped)
            if self.table_state != "running":
                return
            m.record(m.now, "mcu", "settled", route.text if m.timeline is not None else "")
            rise = run.window = m.now
            run.out += 1
            m.emit(f"mcu.out{cfg.out}", rise, tout)
            if cfg.wait == "edge":
                m.advance(rise + time, until=lambda: run.completion is not None
                          or self.table_state != "running")
                if self.table_state != "running":
                    return
                if run.completion is None:
                    self._stop("fault", "timeout")
                    return
                end = max(run.completion, rise + tout)
            else:
                end = rise + max(time, tout)
            run.window = None
            m.advance(end, until=self._stopped)
            if self.table_state != "running":
                return
        self._open()
        self.pos = len(self.table)
        self._stop("done", "none")

    def _stopped(self) -> bool:
        return self.table_state != "running"

    def _stop(self, state: str, why: str) -> None:
        if state == "fault":
            self._open()
        self.table_state, self.run.why, self.run.end = state, why, self.model.now

    def edge_in(self, line: int, t: float) -> None:
        """A rising edge on TRIG IN ``line`` at bench time ``t``."""
        cfg, run = self.pacing, self.run
        if cfg is None or line != cfg.in_:
            return
        run.edges.append(t)
        if self.table_state != "running" or cfg.wait != "edge":
            return
        if run.window is not None and run.completion is None and t >= run.window:
            run.completion = t
        else:  # an edge while no completion is awaited: the run stops at once
            self.model.now = t
            self._stop("fault", "stray")


def _pacing(args: list[str]) -> Pacing:
    keys = ("out", "in", "wait", "settle", "tout", "time")
    pairs = [a.partition("=") for a in args]
    if [k for k, _, _ in pairs] != list(keys) or any(not v for _, _, v in pairs):
        raise _Refused(1, "syntax")
    values = {k: v for k, _, v in pairs}
    numbers = [values[k] for k in keys if k != "wait"]
    if not all(v.isdigit() for v in numbers) or values["wait"] not in ("edge", "dwell"):
        raise _Refused(1, "syntax")
    out, in_, settle, tout, time = (int(v) for v in numbers)
    if values["wait"] == "edge" and in_ == 0:
        raise _Refused(1, "syntax")
    try:
        return Pacing(out, in_, values["wait"], settle, tout, time)
    except ValueError:
        raise _Refused(3, "range") from None


def _refusal(exc: RouteSyntaxError) -> _Refused:
    return _Refused(exc.code, {1: "syntax", 2: "unknown", 3: "range", 5: "conflict"}
                    .get(exc.code, "syntax"))


def _index(text: str) -> int:
    if not text.isdigit():
        raise _Refused(1, "syntax")
    return int(text)


def _reply(seq: str, text: str) -> bytes:
    return encode_frame(seq, text).rstrip(b"\n")


def _peek_command(line: bytes) -> str:
    """The command text of a frame line, for matching faults (best effort, no CRC check)."""
    parts = line.decode("ascii", errors="replace").split(" ", 1)
    return parts[1].rsplit(" *", 1)[0] if len(parts) == 2 else ""


def _flip(line: bytes) -> bytes:
    """One bit flipped in the middle of the body: what a noisy line does to a frame."""
    if len(line) < 2:
        return b"?"
    i = min(len(line) // 2, MAX_LINE - 1)
    return line[:i] + bytes([line[i] ^ 0x04]) + line[i + 1:]
