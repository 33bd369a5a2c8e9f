"""MCU multiplexer link: framing, routes, switch-state read-back, and the host-side driver.

The protocol is specified in ``docs/mcu-protocol.md``. This module is its reference
implementation: :func:`encode_frame` / :func:`decode_frame`, :class:`Route` (parse, canonical
text, implied switch state) and :class:`SwitchState` are meant to be imported by emulators and
firmware tests too, so both ends of the link share one definition.

The driver's safety rules: a single-route operation may only use an instrument on a route whose
switch read-back matched (:meth:`MuxController.set_route` sets and verifies it,
:meth:`MuxController.assert_route` refuses unless it is still in force); a table runs only after
its ``TBL CRC`` matched, paced by the MCU itself (protocol version 2: set entry, read back,
settle, raise TRIG OUT, wait for the completion edge or a dwell, step), and its data counts only
if ``TBL STAT`` reports every entry done with exactly the expected trigger edges.

With a host watchdog (``watchdog=`` seconds) the MCU opens every switch when the host falls
silent, so a host killed outright leaves no cell connected; a background thread keeps the link
alive while the host is busy elsewhere (waiting for an instrument, computing).
"""

from __future__ import annotations

import binascii
import contextlib
import re
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import serial

from drivers.errors import (
    IdentityError,
    InstrumentConnectionError,
    MuxCommandError,
    MuxLinkError,
    RouteError,
)

ROWS, COLS = 12, 10
MAX_LINE = 4096  # bytes, including the newline: the protocol's longest frame
DEFAULT_MAX_FRAME = 256  # bytes: what a UART-bridged board with a small buffer takes safely
DEFAULT_BAUD = 115200
PROTOCOL = "2"
FRAME_OVERHEAD = 12  # "<seq> " + " *XXXX\n" around a command, seq up to 3 digits
# Host-side allowance per table entry on top of a run's expected duration: covers an MCU whose
# link stalls while it paces (a USB CDC stack serviced between entries) and an MCU emulated in
# software, whose replies come after it computed the run. A real failure is still caught: the
# run's reply budget grows with its length, never without bound.
ENTRY_ALLOWANCE = 5e-3  # s
_FRAME = re.compile(rb"^(\d{1,3}|-) ([\x20-\x7e]+) \*([0-9A-F]{4})\Z")  # printable ASCII only
_HEX3 = re.compile(r"[0-9A-F]{3}\Z")


# ---------------------------------------------------------------------------------------------
# framing


class FrameError(ValueError):
    """A line that is not a valid frame; ``reason`` is the NAK reason (CRC, FRAME, LONG)."""

    def __init__(self, reason: str, line: bytes) -> None:
        super().__init__(f"{reason}: {line!r}")
        self.reason, self.line = reason, line


def crc16(data: bytes) -> int:
    """CRC-16/CCITT-FALSE, the frame checksum."""
    return binascii.crc_hqx(data, 0xFFFF)


def encode_frame(seq: int | str, text: str) -> bytes:
    """``<seq> <text> *<crc>\\n`` as bytes."""
    body = f"{seq} {text}".encode("ascii")
    return body + b" *%04X\n" % crc16(body)


def decode_frame(line: bytes) -> tuple[int | None, str]:
    """``(seq, text)`` of a frame line (with or without its newline); seq ``None`` for ``-``.

    Raises :class:`FrameError` for a line that is too long, malformed, or fails its checksum."""
    if len(line) > MAX_LINE:
        raise FrameError("LONG", line[:64])
    stripped = line.removesuffix(b"\n").removesuffix(b"\r")
    match = _FRAME.match(stripped)
    if match is None:
        raise FrameError("FRAME", line)
    seq_text, text, crc_text = match.groups()
    body = stripped[: match.start(3) - 2]
    if crc16(body) != int(crc_text, 16):
        raise FrameError("CRC", line)
    seq = None if seq_text == b"-" else int(seq_text)
    if seq is not None and seq > 255:
        raise FrameError("FRAME", line)
    return seq, text.decode("ascii")


# ---------------------------------------------------------------------------------------------
# switch state and routes


@dataclass(frozen=True)
class SwitchState:
    """One board's switches as bit masks: bit i = row (BL) or column (WL, SL) i+1."""

    wl: int = 0  # column gates on
    bls: int = 0  # bit lines on the source bus
    slg: int = 0  # source lines to ground
    slm: int = 0  # source lines to the measure bus

    def text(self, board: int) -> str:
        return f"{board}:{self.wl:03X}:{self.bls:03X}:{self.slg:03X}:{self.slm:03X}"


def format_state(states: dict[int, SwitchState]) -> str:
    """The ``STATE?`` reply data: closed boards only, sorted by board id."""
    return " ".join(states[b].text(b) for b in sorted(states) if states[b] != SwitchState())


def parse_state(text: str) -> dict[int, SwitchState]:
    """Inverse of :func:`format_state`; raises ``ValueError`` on malformed text."""
    states: dict[int, SwitchState] = {}
    for token in text.split():
        parts = token.split(":")
        if len(parts) != 5:
            raise ValueError(f"bad switch group {token!r}")
        board = int(parts[0])
        states[board] = SwitchState(*(int(p, 16) for p in parts[1:]))
    return states


class RouteSyntaxError(ValueError):
    """A route text or route arguments the protocol refuses; ``code`` is its ERR code."""

    def __init__(self, code: int, text: str) -> None:
        super().__init__(text)
        self.code = code


KINDS = ("OPEN", "PUL", "MAC")


@dataclass(frozen=True)
class Route:
    """A complete switch configuration: ``OPEN``, a pulse route or a MAC route.

    ``groups`` are ``(board, col, rowmask)`` sorted by board, at most one per board: in each,
    the column's WL is on and the masked rows' BLs are on the source bus; the column's SL goes to
    ground (``PUL``) or to the measure bus (``MAC``).
    """

    kind: str = "OPEN"
    groups: tuple[tuple[int, int, int], ...] = field(default=())

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise RouteSyntaxError(2, f"unknown route kind {self.kind!r}")
        if (self.kind == "OPEN") != (not self.groups):
            raise RouteSyntaxError(1, f"{self.kind} with {len(self.groups)} groups")
        boards = [g[0] for g in self.groups]
        if len(set(boards)) != len(boards):
            raise RouteSyntaxError(5, "two groups on one board")
        for board, col, mask in self.groups:
            if board < 0 or not 1 <= col <= COLS or not 0 < mask < (1 << ROWS):
                raise RouteSyntaxError(3, f"group {board}:{col}:{mask:X} out of range")
        object.__setattr__(self, "groups", tuple(sorted(self.groups)))

    @classmethod
    def open(cls) -> Route:
        return cls()

    @classmethod
    def cell(cls, board: int, row: int, col: int) -> Route:
        """One cell for pulsing (rows and columns as on the PCB, 1-based)."""
        if not 1 <= row <= ROWS:
            raise RouteSyntaxError(3, f"row {row} out of range")
        return cls("PUL", ((board, col, 1 << (row - 1)),))

    @classmethod
    def pulse(cls, groups: Iterable[tuple[int, int, int]]) -> Route:
        """Pulse fan-out: ``(board, col, rowmask)`` groups."""
        return cls("PUL", tuple(groups))

    @classmethod
    def mac(cls, groups: Iterable[tuple[int, int, int]]) -> Route:
        """MAC read: ``(board, col, rowmask)`` groups, all SLs on the measure bus."""
        return cls("MAC", tuple(groups))

    @property
    def text(self) -> str:
        """Canonical text, as sent and as ``TBL GET`` returns it."""
        if self.kind == "OPEN":
            return "OPEN"
        return self.kind + " " + " ".join(f"{b}:{c}:{m:03X}" for b, c, m in self.groups)

    @classmethod
    def parse(cls, text: str) -> Route:
        """Route from its text (``OPEN``, ``SEL b r c``, ``PUL ...``, ``MAC ...``)."""
        words = text.split()
        if not words:
            raise RouteSyntaxError(1, "empty route")
        kind, args = words[0], words[1:]
        try:
            if kind == "OPEN" and not args:
                return cls.open()
            if kind == "SEL" and len(args) == 3:
                return cls.cell(*(_decimal(a) for a in args))
            if kind in ("PUL", "MAC") and args:
                groups = []
                for arg in args:
                    b, c, m = arg.split(":")
                    groups.append((_decimal(b), _decimal(c), _hex3(m)))
                return cls(kind, tuple(groups))
        except ValueError as exc:
            if isinstance(exc, RouteSyntaxError):
                raise
            raise RouteSyntaxError(1, f"bad route {text!r}") from exc
        if kind not in ("OPEN", "SEL", "PUL", "MAC"):
            raise RouteSyntaxError(2, f"unknown route {kind!r}")
        raise RouteSyntaxError(1, f"bad route {text!r}")

    def switch_state(self) -> dict[int, SwitchState]:
        """The switch state this route implies, per board (what ``STATE?`` must read back)."""
        states = {}
        for board, col, mask in self.groups:
            bit = 1 << (col - 1)
            if self.kind == "PUL":
                states[board] = SwitchState(wl=bit, bls=mask, slg=bit)
            else:
                states[board] = SwitchState(wl=bit, bls=mask, slm=bit)
        return states

    def cells(self) -> list[tuple[int, int, int]]:
        """``(board, row, col)`` of every cell the route connects, PCB numbering."""
        return [(b, r + 1, c) for b, c, m in self.groups for r in range(ROWS) if m >> r & 1]


def _decimal(text: str) -> int:
    if not (text.isascii() and text.isdigit()):
        raise ValueError(text)
    return int(text)


def _hex3(text: str) -> int:
    """A row mask: exactly three upper-case hex digits."""
    if not _HEX3.match(text):
        raise ValueError(text)
    return int(text, 16)


def table_crc(routes: Sequence[Route]) -> int:
    """What ``TBL CRC`` answers for a table holding ``routes``."""
    return crc16("\n".join(r.text for r in routes).encode("ascii"))


def parse_fields(text: str) -> dict[str, str]:
    """``key=value`` reply data as a dict."""
    return dict(token.split("=", 1) for token in text.split() if "=" in token)


# ---------------------------------------------------------------------------------------------
# driver


@dataclass(frozen=True)
class McuIdentity:
    firmware: str
    version: str
    boards: tuple[int, ...]
    table_size: int
    rx: int  # longest line the firmware accepts, newline included
    trig_out: int  # TRIG OUT lines
    trig_in: int  # TRIG IN lines


WAITS = ("edge", "dwell")


@dataclass(frozen=True)
class Pacing:
    """How the MCU paces a table (``TBL CFG``, protocol section 4.1): TRIG OUT line ``out``
    raised for ``tout_us`` once the entry has settled for ``settle_us``; completion on the first
    rising edge on TRIG IN ``in_`` within ``time_us`` (``wait="edge"``) or after a dwell of
    ``time_us`` (``wait="dwell"``); ``in_ = 0`` counts no edges."""

    out: int
    in_: int
    wait: str
    settle_us: int
    tout_us: int
    time_us: int

    def __post_init__(self) -> None:
        checks = [(1 <= self.out <= 2, "out 1..2"), (0 <= self.in_ <= 2, "in 0..2"),
                  (self.wait in WAITS, "wait edge or dwell"),
                  (self.wait == "dwell" or self.in_ >= 1, "wait=edge needs an input line"),
                  (0 <= self.settle_us <= 1_000_000, "settle 0..1000000 us"),
                  (1 <= self.tout_us <= 1000, "tout 1..1000 us"),
                  (1 <= self.time_us <= 10_000_000, "time 1..10000000 us")]
        for ok, rule in checks:
            if not ok:
                raise ValueError(f"table pacing {self}: {rule}")

    @property
    def command(self) -> str:
        return (f"TBL CFG out={self.out} in={self.in_} wait={self.wait} "
                f"settle={self.settle_us} tout={self.tout_us} time={self.time_us}")

    def seconds(self, entries: int) -> float:
        """Shortest duration of a run of ``entries`` (read-backs not counted)."""
        return entries * (self.settle_us + max(self.tout_us, self.time_us)) * 1e-6


@dataclass(frozen=True)
class TableStatus:
    """``TBL STAT``: state (idle | running | done | fault), position, length, TRIG OUT pulses
    raised, TRIG IN edges before/during/after the run, and why a fault happened."""

    state: str
    pos: int
    length: int
    out: int = 0
    before: int = 0
    during: int = 0
    after: int = 0
    why: str = "none"

    @classmethod
    def parse(cls, text: str) -> TableStatus:
        f = parse_fields(text)
        ints = ("pos", "len", "out", "before", "during", "after")
        return cls(f["state"], *(int(f[k]) for k in ints), f["why"])

    def problem(self, expected_edges: int) -> str | None:
        """Why the run's data must be discarded, or ``None`` (protocol section 4.2)."""
        if self.state != "done" or self.pos != self.length:
            why = f" ({self.why})" if self.state == "fault" else ""
            return f"table ended {self.state}{why} at entry {self.pos} of {self.length}"
        if self.out != self.length:
            return f"{self.out} trigger pulses raised for {self.length} entries"
        if (self.before, self.during, self.after) != (0, expected_edges, 0):
            return (f"trigger edges before/during/after the run {self.before}/{self.during}/"
                    f"{self.after}, expected 0/{expected_edges}/0")
        return None


@dataclass
class LinkStats:
    """Traffic on the link, for the bench clock (bytes at the baud rate) and for diagnostics."""

    frames: int = 0  # commands completed
    attempts: int = 0  # frames sent, retransmissions included
    bytes_out: int = 0
    bytes_in: int = 0
    naks: int = 0
    timeouts: int = 0
    corrupt: int = 0


def _open_port(url: str, name: str, baudrate: int, timeout: float) -> serial.SerialBase:
    """The port, opened exclusively: a serial device node can be opened by any number of
    programs at once, and two hosts writing frames to one MCU would each route the other's
    cells. pyserial's ``exclusive`` takes a non-blocking ``flock`` on POSIX ports (pyserial API
    docs, ``Serial(exclusive=...)``); Windows opens COM ports exclusively anyway, and URL
    handlers such as ``socket://`` ignore it (a socket is one peer's by itself)."""
    try:
        return serial.serial_for_url(url, baudrate=baudrate, timeout=timeout, exclusive=True)
    except (serial.SerialException, OSError, ValueError) as exc:
        if "exclusively lock" in str(exc):
            raise InstrumentConnectionError(
                name, f"{url} is in use by another program (another hil, a terminal?); "
                "it is opened exclusively so that one host alone drives the MCU") from exc
        raise InstrumentConnectionError(name, f"cannot open {url}: {exc}") from exc


class MuxController:
    """Host side of the MCU link over pyserial.

    ``port`` is an open ``serial.SerialBase`` or a pyserial URL (``/dev/ttyUSB0``, ``COM3``,
    ``socket://127.0.0.1:PORT``, ``loop://``). ``boards``, when given, are the board ids the bench
    file expects; :meth:`identify` (run on opening) refuses if any is missing.
    """

    def __init__(
        self,
        port: serial.SerialBase | str,
        *,
        name: str = "MCU",
        boards: Iterable[int] | None = None,
        baudrate: int = DEFAULT_BAUD,
        timeout: float = 0.5,
        retries: int = 3,
        identify: bool = True,
        boot_wait: float = 0.0,
        max_frame: int = DEFAULT_MAX_FRAME,
        watchdog: float | None = None,
    ) -> None:
        """``boot_wait``: seconds to wait after opening the port before the first byte (boards
        that reset on DTR run a bootloader first); ``max_frame``: the longest frame to send,
        lowered further to what the firmware declares in ``IDN?``."""
        self.name = name
        self.timeout, self.retries = timeout, retries
        if not 64 <= max_frame <= MAX_LINE:
            raise ValueError(f"max_frame {max_frame} outside 64..{MAX_LINE}")
        self.max_frame = max_frame
        if isinstance(port, str):
            port = _open_port(port, name, baudrate, timeout)
        else:
            port.timeout = timeout
        self.port = port
        self.stats = LinkStats()
        self.last_line = b""  # the last line received, valid or not: what answers on the port
        self._seq = -1
        self._verified: Route | None = None
        self._table: tuple[Route, ...] | None = None
        self._pacing: Pacing | None = None
        self.expected_boards = None if boards is None else tuple(sorted(boards))
        self._lock = threading.RLock()  # one command in flight, keep-alives included
        self._last_io = time.monotonic()
        self._keepalive: threading.Thread | None = None
        self._stop = threading.Event()
        self.watchdog_expired = 0
        self._start_link(boot_wait)
        self.identity = self.identify() if identify else None
        if watchdog:
            self.start_watchdog(watchdog)

    def _start_link(self, boot_wait: float) -> None:
        """Wait out a reset-on-open, then end any partial line the MCU holds with a bare
        newline and drop what comes back (a ``NAK FRAME`` for the partial line, or nothing)."""
        if boot_wait > 0:
            time.sleep(boot_wait)
        try:
            self.port.write(b"\n")
            self.port.flush()
            self.port.timeout = 0.05
            for _ in range(100):  # bounded: a babbling port cannot hold the host here
                if not self.port.read(MAX_LINE):
                    break
        except (serial.SerialException, OSError) as exc:
            raise InstrumentConnectionError(self.name, f"cannot start the link: {exc}") from exc
        finally:
            self.port.timeout = self.timeout

    # -- link ---------------------------------------------------------------------------------

    def _next_seq(self) -> int:
        self._seq = 0 if self._seq < 0 else self._seq % 255 + 1
        return self._seq

    def transact(self, text: str, timeout: float | None = None) -> str:
        """Send one command and return the data of its ``OK`` reply.

        Waits ``timeout`` s (default: the link's) for each reply; retransmits the same frame on
        NAK, timeout or a corrupt reply, at most ``retries`` times; discards stale replies
        (other seq). ``ERR`` raises :class:`MuxCommandError`.
        """
        with self._lock:
            try:
                return self._transact(text, self.timeout if timeout is None else timeout)
            finally:
                self._last_io = time.monotonic()

    def _transact(self, text: str, timeout: float) -> str:
        seq = self._next_seq()
        frame = encode_frame(seq, text)
        if len(frame) > self.max_frame:
            raise MuxCommandError(self.name, 3, f"frame of {len(frame)} bytes exceeds the "
                                  f"{self.max_frame}-byte limit", text)
        problem = "no attempt"
        for _ in range(self.retries + 1):
            self._send(frame)
            outcome = self._await_reply(seq, timeout)
            if isinstance(outcome, str):
                kind, _, data = outcome.partition(" ")
                if kind == "OK":
                    self.stats.frames += 1
                    return data
                if kind == "ERR":
                    code, _, msg = data.partition(" ")
                    self.stats.frames += 1
                    raise MuxCommandError(self.name, int(code) if code.isdigit() else -1,
                                          msg, text)
                if kind == "NAK":
                    self.stats.naks += 1
                    problem = f"NAK {data}"
                    continue
                self.stats.corrupt += 1
                problem = f"unexpected reply {outcome!r}"
                continue
            problem = outcome.args[0]
        raise MuxLinkError(self.name, f"no valid reply to {text!r} after "
                           f"{self.retries + 1} attempts (last: {problem})")

    def _send(self, frame: bytes) -> None:
        try:
            self.port.reset_input_buffer()  # bytes left from an earlier attempt are stale
            self.port.write(frame)
            self.port.flush()
        except (serial.SerialException, OSError) as exc:
            raise InstrumentConnectionError(self.name, f"write failed: {exc}") from exc
        self.stats.attempts += 1
        self.stats.bytes_out += len(frame)

    def _await_reply(self, seq: int, timeout: float) -> str | _Failure:
        """The text of the reply to ``seq`` within ``timeout`` s, or a :class:`_Failure`
        (timeout, corrupt)."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.stats.timeouts += 1
                return _Failure("timeout")
            self.port.timeout = remaining
            try:
                line = self.port.read_until(b"\n", MAX_LINE + 1)
            except (serial.SerialException, OSError) as exc:
                raise InstrumentConnectionError(self.name, f"read failed: {exc}") from exc
            self.stats.bytes_in += len(line)
            self.last_line = line or self.last_line
            if not line.endswith(b"\n"):
                self.stats.timeouts += 1
                return _Failure("timeout" if not line else f"partial reply {line!r}")
            try:
                reply_seq, reply = decode_frame(line)
            except FrameError as exc:
                self.stats.corrupt += 1
                return _Failure(f"corrupt reply ({exc.reason})")
            if reply_seq == seq or (reply_seq is None and reply.startswith("NAK")):
                return reply
            # a reply to an earlier attempt: keep listening

    # -- commands -----------------------------------------------------------------------------

    def identify(self) -> McuIdentity:
        """``IDN?``: firmware and boards present; checks the expected boards are there."""
        fields = parse_fields(self.transact("IDN?"))
        if fields.get("proto") != PROTOCOL:
            raise IdentityError(self.name, f"MCU speaks protocol {fields.get('proto', '1')}, "
                                f"this host needs version {PROTOCOL} (MCU-paced tables)")
        try:
            firmware, _, version = fields["fw"].partition("/")
            boards = tuple(sorted(int(b) for b in fields["boards"].split(",") if b))
            outs, _, ins = fields["trig"].partition("/")
            identity = McuIdentity(firmware, version, boards, int(fields["table"]),
                                   int(fields["rx"]), int(outs), int(ins))
        except (KeyError, ValueError) as exc:
            raise IdentityError(self.name, f"unexpected IDN? reply {fields}") from exc
        self.max_frame = min(self.max_frame, identity.rx)
        if self.expected_boards is not None:
            missing = sorted(set(self.expected_boards) - set(boards))
            if missing:
                raise IdentityError(self.name, f"boards {missing} not found on the MCU (found "
                                    f"{list(boards)})")
        return identity

    def state(self) -> dict[int, SwitchState]:
        """Physical switch read-back (``STATE?``)."""
        text = self.transact("STATE?")
        try:
            return parse_state(text)
        except ValueError as exc:
            raise MuxLinkError(self.name, f"unreadable STATE? reply {text!r}") from exc

    def set_route(self, route: Route) -> Route:
        """Set ``route`` and verify the switch read-back; on a mismatch open everything and
        raise :class:`RouteError`. Returns the route, now the verified one."""
        self._verified = None
        self._table = None
        try:
            self.transact(route.text)
        except MuxCommandError as exc:
            if exc.code != 7:
                raise
            raise RouteError(self.name, f"MCU found its switch read-back wrong for "
                             f"{route.text!r} (ERR 7); switches opened") from exc
        found, expected = self.state(), route.switch_state()
        if found != expected:
            self._force_open()
            raise RouteError(self.name, f"switch read-back {format_state(found) or 'OPEN'!r} "
                             f"does not match {route.text!r}; switches opened")
        self._verified = route
        return route

    def select_cell(self, board: int, row: int, col: int) -> Route:
        """One cell for pulsing (WL of the column on, BL of the row to the source bus, SL of the
        column to ground), verified."""
        return self.set_route(Route.cell(board, row, col))

    def select_pulse(self, groups: Iterable[tuple[int, int, int]]) -> Route:
        """Pulse fan-out route from ``(board, col, rowmask)`` groups, verified."""
        return self.set_route(Route.pulse(groups))

    def connect_mac(self, groups: Iterable[tuple[int, int, int]]) -> Route:
        """MAC read route from ``(board, col, rowmask)`` groups, verified."""
        return self.set_route(Route.mac(groups))

    def open_all(self) -> None:
        """Safe state: every switch open, table disarmed; verified by read-back."""
        self.set_route(Route.open())

    @property
    def verified_route(self) -> Route | None:
        """The route in force whose read-back matched, or ``None``."""
        return self._verified

    def assert_route(self, route: Route) -> None:
        """Refuse (``RouteError``) unless ``route`` is in force and its read-back matched. Call
        right before firing a pulse; costs no bytes."""
        if route.kind == "OPEN" or self._verified != route:
            held = self._verified.text if self._verified else "no verified route"
            raise RouteError(self.name, f"refusing to fire on {route.text!r}: {held}")

    # -- table mode ---------------------------------------------------------------------------

    def load_table(self, routes: Sequence[Route]) -> None:
        """Load ``routes`` into the table (packed into few frames) and verify it with
        ``TBL CRC``; a mismatch clears the table and raises :class:`RouteError`."""
        routes = tuple(routes)
        self._verified = None
        self._table = None
        self.transact("TBL CLR")
        for command in pack_table(routes, self.max_frame - FRAME_OVERHEAD):
            self.transact(command)
        fields = parse_fields(self.transact("TBL CRC"))
        expected = (str(len(routes)), f"{table_crc(routes):04X}")
        if (fields.get("len"), fields.get("crc")) != expected:
            self.transact("TBL CLR")
            raise RouteError(self.name, f"table read-back len={fields.get('len')} "
                             f"crc={fields.get('crc')} does not match len={expected[0]} "
                             f"crc={expected[1]}; table cleared")
        self._table = routes

    def pace(self, pacing: Pacing) -> None:
        """``TBL CFG``, sent only when the pacing changes."""
        if pacing != self._pacing:
            self._pacing = None
            self.transact(pacing.command)
            self._pacing = pacing

    def run_table(self, pacing: Pacing, expected_edges: int) -> TableStatus:
        """Run the verified table with ``pacing`` and wait for it to end; raise
        :class:`RouteError` (switches opened) unless it ran to its end with exactly
        ``expected_edges`` trigger edges received during the run and none before or after."""
        if not self._table:
            raise RouteError(self.name, "refusing to run an unverified or empty table")
        self.pace(pacing)
        self._verified = None
        n = len(self._table)
        duration, lasts = pacing.seconds(n), self.run_allowance(pacing, n)
        budget = lasts + (self.retries + 1) * self.timeout
        started = time.monotonic()
        run_end, deadline = started + lasts, started + budget

        def status() -> TableStatus:  # a reply may come as late as the run's end
            return self.table_status(self.timeout + max(0.0, run_end - time.monotonic()))

        self.transact("TBL RUN", timeout=self.timeout + lasts)
        state = status()
        if state.state == "running" and duration > 1e-3:
            time.sleep(duration)  # the shortest the run can take
            state = status()
        while state.state == "running":
            if time.monotonic() > deadline:
                self._force_open()
                raise RouteError(self.name, f"table still running at entry {state.pos} of "
                                 f"{n} after {budget:.3g} s; switches opened")
            time.sleep(min(0.01, duration / 10))
            state = status()
        problem = state.problem(expected_edges)
        if problem is not None:
            self._force_open()
            raise RouteError(self.name, f"{problem}; batch discarded, switches opened")
        return state

    def run_allowance(self, pacing: Pacing, entries: int) -> float:
        """Seconds a run of ``entries`` may last: its expected duration twice and
        :data:`ENTRY_ALLOWANCE` per entry. Replies to ``TBL RUN`` and ``TBL STAT`` are awaited
        until then plus one link timeout (a fixed reply timeout would fail a long table on an
        MCU that answers late while it paces), and the host gives up on a run still going one
        retransmission cycle of the link after it."""
        return 2 * pacing.seconds(entries) + entries * ENTRY_ALLOWANCE

    def table_status(self, timeout: float | None = None) -> TableStatus:
        """``TBL STAT``, its reply awaited ``timeout`` s (default: the link's)."""
        text = self.transact("TBL STAT", timeout)
        try:
            return TableStatus.parse(text)
        except (KeyError, ValueError) as exc:
            raise MuxLinkError(self.name, f"unreadable TBL STAT reply {text!r}") from exc

    # -- host watchdog ------------------------------------------------------------------------

    def start_watchdog(self, seconds: float) -> None:
        """Arm the MCU's host watchdog (``WDG``) and keep the link alive from a background
        thread: a ``WDG?`` whenever the link has been idle for a quarter of ``seconds``."""
        self.transact(f"WDG {round(seconds * 1000)}")
        if self._keepalive is None:
            self._stop.clear()
            self._keepalive = threading.Thread(target=self._keep_alive, args=(seconds / 4,),
                                               daemon=True, name=f"{self.name} keep-alive")
            self._keepalive.start()

    def _keep_alive(self, period: float) -> None:
        while not self._stop.wait(max(0.0, self._last_io + period - time.monotonic())):
            if time.monotonic() - self._last_io < period:
                continue
            try:
                self.watchdog_status()
            except (MuxLinkError, MuxCommandError, InstrumentConnectionError):
                self._last_io = time.monotonic()  # the next command in the foreground fails

    def watchdog_status(self) -> tuple[int, int]:
        """``(timeout ms, times expired)`` from ``WDG?``. If the watchdog has opened the
        switches since the last look, the verified route and table are forgotten, so nothing
        fires on a route that is no longer there."""
        fields = parse_fields(self.transact("WDG?"))
        try:
            ms, expired = int(fields["ms"]), int(fields["expired"])
        except (KeyError, ValueError) as exc:
            raise MuxLinkError(self.name, f"unreadable WDG? reply {fields}") from exc
        with self._lock:
            if expired != self.watchdog_expired:
                self._verified, self._table = None, None
                self.watchdog_expired = expired
        return ms, expired

    def _stop_keepalive(self) -> None:
        self._stop.set()
        if self._keepalive is not None:
            self._keepalive.join(5)
            self._keepalive = None

    # -- lifetime -----------------------------------------------------------------------------

    def _force_open(self) -> None:
        """``OPEN`` without read-back (used while already failing); the table may not run
        again."""
        self._verified = None
        self._table = None
        with contextlib.suppress(MuxLinkError, MuxCommandError, InstrumentConnectionError):
            self.transact("OPEN")

    def close(self) -> None:
        """Open every switch (verified) and close the port; the watchdog stays armed."""
        self._stop_keepalive()
        try:
            if self.port.is_open:
                self.open_all()
        finally:
            self.port.close()

    def __enter__(self) -> MuxController:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Failure(Exception):
    """Why an attempt got no usable reply (kept as a value, not raised)."""


def pack_table(routes: Sequence[Route], limit: int = MAX_LINE - 32) -> list[str]:
    """Commands that store ``routes`` as table entries 0.. in few frames: runs of routes that
    differ only by a column stepping by one become ``TBL SCAN`` specs (several ``;``-separated
    specs per frame); the rest are packed into ``TBL SET`` frames of several ``;``-separated
    routes, each frame up to ``limit`` bytes."""
    commands: list[str] = []
    pending: list[str] = []  # parts of the frame being filled, all of one verb
    verb, start = "", 0

    def flush() -> None:
        if pending:
            commands.append(f"TBL {verb} {start} " + ";".join(pending))
            pending.clear()

    def add(kind: str, at: int, part: str) -> None:
        nonlocal verb, start
        size = len(f"TBL {verb} {start} ") + sum(len(p) + 1 for p in pending) + len(part)
        if pending and (kind != verb or size > limit):
            flush()
        if not pending:
            verb, start = kind, at
            part = part.removeprefix(f"{at} ") if kind == "SCAN" else part
        pending.append(part)

    i = 0
    while i < len(routes):
        run = _scan_run(routes, i)
        if run >= 3:
            first, last = routes[i], routes[i + run - 1]
            masks = " ".join(f"{b}:{m:03X}" for b, _, m in first.groups)
            add("SCAN", i, f"{i} {first.kind} {first.groups[0][1]}-{last.groups[0][1]} {masks}")
            i += run
            continue
        add("SET", i, routes[i].text)
        i += 1
    flush()
    return commands


def parse_table_command(args: str) -> tuple[int, list[Route]]:
    """``(start, routes)`` of the arguments of ``TBL SET`` / ``TBL SCAN`` (the text after
    ``TBL``), the inverse of :func:`pack_table`; raises :class:`RouteSyntaxError`. Each further
    ``;``-separated scan spec carries its own start index, which must follow on."""
    words = args.split(" ", 2)
    if len(words) != 3 or not words[1].isdigit():
        raise RouteSyntaxError(1, f"bad table command {args!r}")
    verb, start, rest = words[0], int(words[1]), words[2]
    if verb == "SET":
        return start, [Route.parse(text) for text in rest.split(";")]
    if verb == "SCAN":
        routes: list[Route] = []
        for n, spec in enumerate(rest.split(";")):
            if n:
                at, _, spec = spec.partition(" ")
                if not at.isdigit() or int(at) != start + len(routes):
                    raise RouteSyntaxError(1, f"scan spec {n} does not follow on in {args!r}")
            routes += _scan_spec(spec, args)
        return start, routes
    raise RouteSyntaxError(2, f"unknown table command {verb!r}")


def _scan_spec(spec: str, args: str) -> list[Route]:
    """Entries of one scan spec ``<kind> <c1>-<c2> <board>:<rowmask> ...``."""
    fields = spec.split(" ")
    if len(fields) < 2:
        raise RouteSyntaxError(1, f"bad table scan {args!r}")
    kind, span, *masks = fields
    try:
        first, last = (_decimal(c) for c in span.split("-"))
        pairs = [(_decimal(b), _hex3(m)) for b, m in (g.split(":") for g in masks)]
    except ValueError as exc:
        raise RouteSyntaxError(1, f"bad table scan {args!r}") from exc
    if kind not in ("PUL", "MAC") or not masks or not 1 <= first <= last <= COLS:
        raise RouteSyntaxError(1 if kind in ("PUL", "MAC") else 2, f"bad scan {args!r}")
    return [Route(kind, tuple((b, c, m) for b, m in pairs)) for c in range(first, last + 1)]


def _scan_run(routes: Sequence[Route], i: int) -> int:
    """Length of the run from ``i`` that a ``TBL SCAN`` can express (1 if none)."""
    first = routes[i]
    if first.kind == "OPEN" or len({c for _, c, _ in first.groups}) != 1:
        return 1
    key = [(b, m) for b, _, m in first.groups]
    col = first.groups[0][1]
    n = 1
    while i + n < len(routes):
        nxt = routes[i + n]
        if (nxt.kind != first.kind or [(b, m) for b, _, m in nxt.groups] != key
                or {c for _, c, _ in nxt.groups} != {col + n}):
            break
        n += 1
    return n


