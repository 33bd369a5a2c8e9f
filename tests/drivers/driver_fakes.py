"""Test doubles for byte-exact driver conversations.

* :class:`FakeResource` stands in for a pyvisa resource: it checks every written message against
  a scripted conversation and serves the scripted replies (the role of PyMeasure's
  ``expected_protocol``).
* :class:`ScriptedServer` is a TCP server on 127.0.0.1 that checks every received line against a
  script and answers it (or stays silent): real pyvisa-py sockets and pyserial ``socket://`` URLs
  talk to it, so the bytes on the wire, terminations included, are what is tested.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

Exchange = tuple[str, str | None]


class FakeResource:
    def __init__(self, conversation: Sequence[Exchange]) -> None:
        self.script = list(conversation)
        self.replies: list[str] = []
        self.read_termination: str | None = None
        self.write_termination: str | None = "\r\n"  # pyvisa's default, must be overridden
        self.timeout: float = 2000.0
        self.read_timeouts: list[float] = []
        self.closed = False

    def write(self, message: str) -> None:
        assert self.script, f"unexpected write {message!r}"
        sent, reply = self.script.pop(0)
        assert message == sent, f"wrote {message!r}, expected {sent!r}"
        if reply is not None:
            self.replies.append(reply)

    def read(self) -> str:
        assert self.replies, "read with no reply scripted"
        self.read_timeouts.append(self.timeout)
        return self.replies.pop(0)

    def close(self) -> None:
        self.closed = True


@contextmanager
def expected_protocol(cls: type, conversation: Sequence[Exchange], **kwargs: Any) -> Iterator[Any]:
    """Open ``cls`` on a :class:`FakeResource`; on exit the whole conversation must have been
    used, nothing more and nothing less."""
    resource = FakeResource(conversation)
    instrument = cls(resource, **kwargs)
    yield instrument
    assert not resource.script, f"never sent: {resource.script}"
    assert not resource.replies, f"never read: {resource.replies}"


class ScriptedServer:
    """Accepts one TCP connection; for each received line (``\\n``-terminated) pops the next
    ``(expected_line, reply)`` and sends ``reply`` unless it is ``None`` (an entry
    ``(expected_line, reply, seconds)`` replies that late). Mismatches are kept in ``errors``;
    every received line in ``received``."""

    def __init__(self, script: Sequence[tuple[bytes, bytes | None] |
                                        tuple[bytes, bytes | None, float]] = (), *,
                 listen: bool = True):
        self.script = list(script)
        self.received: list[bytes] = []
        self.errors: list[str] = []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.sock.listen(1)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        try:
            conn, _ = self.sock.accept()
        except OSError:
            return
        with conn:
            buffer = b""
            while True:
                try:
                    chunk = conn.recv(4096)
                except OSError:
                    return
                if not chunk:
                    return
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    line += b"\n"
                    self.received.append(line)
                    if not self.script:
                        self.errors.append(f"unexpected {line!r}")
                        continue
                    expected, reply, *late = self.script.pop(0)
                    if line != expected:
                        self.errors.append(f"got {line!r}, expected {expected!r}")
                    if reply is not None:
                        time.sleep(late[0] if late else 0.0)
                        conn.sendall(reply)

    def close(self) -> None:
        self.sock.close()

    def check(self) -> None:
        """Every scripted line arrived, in order, and nothing else."""
        deadline = time.monotonic() + 2.0
        while self.script and not self.errors and time.monotonic() < deadline:
            time.sleep(0.005)  # a write-only last line may still be in flight
        assert not self.errors, self.errors
        assert not self.script, f"never received: {self.script}"


def free_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
