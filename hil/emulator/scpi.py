"""A small SCPI instrument framework for the emulated bench.

Real instruments accept every spelling SCPI allows (short or long mnemonics, any case, optional
nodes, numeric suffixes, a leading colon, compound ``;`` messages), so a driver that works
against an emulator that only knows one exact string might still fail on the bench. Each
emulated instrument therefore declares its commands as SCPI patterns::

    "[:SOURce#]:VOLTage[:LEVel][:IMMediate][:AMPLitude]"

(``#`` = optional numeric suffix, ``[..]`` = optional node, lower-case letters = long-form only),
and the parser matches headers the way an instrument does. Common behaviour lives here: error
queue with overflow, ``*IDN?``, ``*RST``, ``*CLS``, ``*ESR?``, ``*OPC``/``*OPC?``, ``*WAI``,
``*TRG``, ``SYST:ERR?``. A TCP server serves one instrument over a line-based socket exactly as
pyvisa-py's ``TCPIP::host::port::SOCKET`` resources expect.
"""

from __future__ import annotations

import contextlib
import math
import re
import socket
import socketserver
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

# IEEE 488.2 standard event status register bits
ESR_OPC, ESR_QYE, ESR_DDE, ESR_EXE, ESR_CME = 1, 4, 8, 16, 32

ERROR_TEXT = {
    -100: "Command error",
    -104: "Data type error",
    -108: "Parameter not allowed",
    -109: "Missing parameter",
    -113: "Undefined header",
    -114: "Header suffix out of range",
    -211: "Trigger ignored",
    -221: "Settings conflict",
    -222: "Data out of range",
    -224: "Illegal parameter value",
    -230: "Data corrupt or stale",
    -350: "Queue overflow",
}


class ScpiError(Exception):
    """Raised by a handler: the command is refused and ``code`` goes on the error queue."""

    def __init__(self, code: int, detail: str = "") -> None:
        text = ERROR_TEXT.get(code, "Error")
        super().__init__(f"{text}; {detail}" if detail else text)
        self.code = code


# --------------------------------------------------------------------------------------------
# header patterns


@dataclass(frozen=True)
class _Node:
    long: str
    short: str
    optional: bool
    suffix: bool

    def matches(self, name: str) -> bool:
        return name in (self.long, self.short)


_NODE = re.compile(r"(\[)?:?([A-Za-z]+)(#)?(\])?")


def compile_pattern(pattern: str) -> tuple[_Node, ...]:
    nodes = []
    for m in _NODE.finditer(pattern):
        word = m.group(2)
        short = "".join(ch for ch in word if ch.isupper())
        nodes.append(_Node(word.upper(), short or word.upper(), bool(m.group(1)), bool(m.group(3))))
    return tuple(nodes)


_MNEMONIC = re.compile(r"([A-Z]+?)(\d*)$")


def split_header(header: str) -> list[tuple[str, int | None]]:
    """``":sour1:VOLT:lev"`` -> ``[("SOUR", 1), ("VOLT", None), ("LEV", None)]``."""
    out = []
    for part in header.strip(":").split(":"):
        m = _MNEMONIC.match(part.upper())
        if not m:
            raise ScpiError(-113, header)
        out.append((m.group(1), int(m.group(2)) if m.group(2) else None))
    return out


def match(nodes: tuple[_Node, ...], mnemonics: list[tuple[str, int | None]]) -> list[int] | None:
    """Suffixes captured (``None`` if the header does not fit the pattern)."""

    def walk(i: int, j: int, caught: list[int]) -> list[int] | None:
        if i == len(nodes):
            return caught if j == len(mnemonics) else None
        node = nodes[i]
        if j < len(mnemonics):
            name, suffix = mnemonics[j]
            if node.matches(name) and (suffix is None or node.suffix):
                got = walk(i + 1, j + 1, caught + ([suffix] if suffix is not None else []))
                if got is not None:
                    return got
        return walk(i + 1, j, caught) if node.optional else None

    return walk(0, 0, [])


# --------------------------------------------------------------------------------------------
# parameter parsing helpers used by the instruments


def split_args(text: str) -> list[str]:
    """Comma-separated parameters; commas inside quotes or ``(@...)`` lists do not split."""
    args, depth, quote, cur = [], 0, "", []
    for ch in text:
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "," and depth == 0:
            args.append("".join(cur).strip())
            cur = []
            continue
        cur.append(ch)
    if cur or args:
        args.append("".join(cur).strip())
    return args


def number(arg: str, lo: float = -math.inf, hi: float = math.inf, *, inf_ok: bool = False) -> float:
    """A numeric parameter; ``MIN``/``MAX`` map to ``lo``/``hi``, ``INF`` only where allowed."""
    word = arg.strip().upper()
    if word in ("MIN", "MINIMUM"):
        return lo
    if word in ("MAX", "MAXIMUM"):
        return hi
    if inf_ok and word in ("INF", "INFINITY"):
        return math.inf
    try:
        value = float(word)
    except ValueError:
        raise ScpiError(-104, arg) from None
    if not lo <= value <= hi:
        raise ScpiError(-222, arg)
    return value


def boolean(arg: str) -> bool:
    word = arg.strip().upper()
    if word in ("1", "ON"):
        return True
    if word in ("0", "OFF"):
        return False
    raise ScpiError(-224, arg)


def choice(arg: str, *options: str) -> str:
    """A keyword parameter given as one of ``options`` (long forms, short = upper-case part)."""
    word = arg.strip().strip("\"'").upper()
    for opt in options:
        if word in (opt.upper(), "".join(ch for ch in opt if ch.isupper())):
            return opt.upper()
    raise ScpiError(-224, arg)


def fmt(value: float) -> str:
    return f"{value:+.9E}"


# --------------------------------------------------------------------------------------------


Handler = Callable[..., str | None]


class ScpiInstrument:
    """Common SCPI behaviour; subclasses add their command tables with :meth:`add`.

    Handlers are called ``handler(args, suffixes)`` under the shared bench lock and return the
    query reply (or ``None`` for a set command); they raise :class:`ScpiError` to refuse.
    """

    idn = "EMULATED,INSTRUMENT,0,0"
    queue_size = 20
    no_error = '+0,"No error"'
    name = "instrument"

    def __init__(self, lock: threading.RLock) -> None:
        self.lock = lock
        self.errors: deque[tuple[int, str]] = deque()
        self.esr = 0
        self.commands: list[tuple[tuple[_Node, ...], bool, Handler]] = []
        self.log: list[str] = []  # every message received, for tests and debugging
        self.add(":SYSTem:ERRor[:NEXT]?", lambda a, s: self.pop_error())
        self.add(":SYSTem:ERRor:COUNt?", lambda a, s: str(len(self.errors)))
        self.add(":SYSTem:CLEar", lambda a, s: self.errors.clear())
        self.reset()

    # ---- table -----------------------------------------------------------------------

    def add(self, pattern: str, handler: Handler) -> None:
        query = pattern.endswith("?")
        self.commands.append((compile_pattern(pattern.rstrip("?")), query, handler))

    def find(self, header: str) -> tuple[Handler, list[int]] | None:
        query = header.endswith("?")
        mnemonics = split_header(header.rstrip("?"))
        for nodes, is_query, handler in self.commands:
            if is_query == query and (caught := match(nodes, mnemonics)) is not None:
                return handler, caught
        return None

    # ---- state the subclasses define ---------------------------------------------------

    def reset(self) -> None:
        """``*RST``: default settings, outputs off. The error queue is kept (as on real units)."""

    def bus_trigger(self) -> None:
        """``*TRG``."""
        raise ScpiError(-211)

    def wait_complete(self) -> bool:
        """``*WAI`` / ``*OPC?``: wait as the model does for its pending operations; ``False``
        when they never completed (``*OPC?`` then never answers)."""
        return True

    def before_message(self) -> None:
        """Called under the lock as each message arrives (the bench clock moves on)."""

    def after_message(self) -> None:
        """Called under the lock after each message (waiters may look again)."""

    # ---- errors ----------------------------------------------------------------------

    def push_error(self, code: int, detail: str = "") -> None:
        text = ERROR_TEXT.get(code, "Error")
        if detail:
            text = f"{text}; {detail}"
        self.esr |= ESR_CME if -199 <= code <= -100 else ESR_QYE if code <= -400 else ESR_EXE
        if len(self.errors) >= self.queue_size:
            self.errors[-1] = (-350, ERROR_TEXT[-350])
        else:
            self.errors.append((code, text))

    def pop_error(self) -> str:
        if not self.errors:
            return self.no_error
        code, text = self.errors.popleft()
        return f'{code:+d},"{text}"'

    # ---- message processing -------------------------------------------------------------

    def common(self, header: str, args: list[str]) -> str | None:
        h = header.upper()
        if h == "*IDN?":
            return self.idn
        if h == "*RST":
            self.reset()
        elif h == "*CLS":
            self.errors.clear()
            self.esr = 0
        elif h == "*ESR?":
            value, self.esr = self.esr, 0
            return str(value)
        elif h == "*OPC?":
            return "1" if self.wait_complete() else None
        elif h == "*WAI":
            self.wait_complete()
        elif h == "*OPC":
            self.esr |= ESR_OPC
        elif h == "*STB?":
            return str((4 if self.errors else 0) | (32 if self.esr else 0))
        elif h in ("*ESE", "*SRE"):
            return None
        elif h == "*TRG":
            self.bus_trigger()
        else:
            return self.extra_common(h, args)
        return None

    def extra_common(self, header: str, args: list[str]) -> str | None:
        raise ScpiError(-113, header)

    def handle(self, message: str) -> str | None:
        """One received message (possibly compound) -> the reply line (without terminator)."""
        replies: list[str] = []
        with self.lock:
            self.log.append(message)
            self.before_message()
            try:
                self._units(message, replies)
            finally:
                self.after_message()
        return ";".join(replies) if replies else None

    def _units(self, message: str, replies: list[str]) -> None:
        path: list[str] = []
        for unit in _split_units(message):
            header, _, rest = unit.partition(" ")
            args = split_args(rest) if rest.strip() else []
            try:
                if header.startswith("*"):
                    reply = self.common(header, args)
                else:
                    reply, path = self._dispatch(header, args, path)
            except ScpiError as exc:
                detail = str(exc).partition("; ")[2]
                self.push_error(exc.code, detail or unit)
                continue
            if reply is not None:
                replies.append(reply)

    def _dispatch(
        self, header: str, args: list[str], path: list[str]
    ) -> tuple[str | None, list[str]]:
        candidates = [header]
        if not header.startswith(":") and path:  # relative to the previous header's path
            candidates.append(":".join(path + [header]))
        for cand in candidates:
            hit = self.find(cand)
            if hit is not None:
                handler, suffixes = hit
                parts = cand.strip(":").rstrip("?").split(":")
                return handler(args, suffixes), parts[:-1]
        raise ScpiError(-113, header)


def _split_units(message: str) -> list[str]:
    units, quote, cur = [], "", []
    for ch in message:
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch == ";":
            units.append("".join(cur).strip())
            cur = []
            continue
        cur.append(ch)
    units.append("".join(cur).strip())
    return [u for u in units if u]


# --------------------------------------------------------------------------------------------
# line server


class LineServer(socketserver.ThreadingTCPServer):
    """A TCP server on 127.0.0.1 that hands each received line (bytes, without its ``\\n``) to
    ``respond`` and writes back what it returns plus ``\\n`` (``None``: no reply). Port 0 picks
    a free port (see ``port``)."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, respond: Callable[[bytes], bytes | None], port: int = 0) -> None:
        self.respond = respond
        self.connections: set[socket.socket] = set()
        self.awake = threading.Event()  # cleared: the instrument does not answer (stalled)
        self.awake.set()
        super().__init__(("127.0.0.1", port), _LineHandler)

    @classmethod
    def for_instrument(cls, instrument: ScpiInstrument, port: int = 0) -> LineServer:
        def respond(line: bytes) -> bytes | None:
            reply = instrument.handle(line.decode("ascii", errors="replace").rstrip("\r"))
            return None if reply is None else reply.encode("ascii")

        return cls(respond, port)

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def start(self) -> LineServer:
        threading.Thread(target=self.serve_forever, daemon=True, name=f"emu:{self.port}").start()
        return self

    def stop(self) -> None:
        """Stop listening and drop every open connection, as an instrument switched off does."""
        self.shutdown()
        self.server_close()
        for conn in list(self.connections):
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()
        self.awake.set()


class _LineHandler(socketserver.StreamRequestHandler):
    def setup(self) -> None:
        super().setup()
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.connections.add(self.request)  # type: ignore[attr-defined]

    def finish(self) -> None:
        self.server.connections.discard(self.request)  # type: ignore[attr-defined]
        with contextlib.suppress(OSError):
            super().finish()

    def handle(self) -> None:
        quickack = getattr(socket, "TCP_QUICKACK", None)
        while True:
            try:
                if quickack is not None:  # ACK at once: a client's Nagle wait never stalls
                    self.request.setsockopt(socket.IPPROTO_TCP, quickack, 1)
                raw = self.rfile.readline()
            except OSError:
                return
            if not raw:
                return
            self.server.awake.wait()  # type: ignore[attr-defined]  # a stalled unit answers late
            reply = self.server.respond(raw.rstrip(b"\n"))  # type: ignore[attr-defined]
            if reply is not None:
                try:
                    self.wfile.write(reply + b"\n")
                    self.wfile.flush()
                except OSError:
                    return
