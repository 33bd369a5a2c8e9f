"""The MCU firmware (firmware/), built for the host: the shared protocol vectors, a fuzzed link,
and the host watchdog, each against the firmware and, where they must agree, the Python
emulator."""

from __future__ import annotations

import random
import socket
import subprocess
import time
from collections.abc import Iterator

import pytest

from drivers.mcu import MAX_LINE, MuxController, Route, decode_frame, encode_frame
from hil.bench import load_bench
from hil.emulator.mcu import McuEmulator
from hil.emulator.model import BenchModel
from hil.emulator.scpi import LineServer
from tests.mcu_vectors import load_vectors


@pytest.fixture
def firmware(firmware_host) -> Iterator[int]:
    """A freshly started host build (boards 1-40, as the default bench); yields its port."""
    proc = subprocess.Popen([str(firmware_host), "--port", "0"], stdout=subprocess.PIPE)
    try:
        line = proc.stdout.readline().decode()
        assert line.startswith("listening on 127.0.0.1:"), line
        yield int(line.rsplit(":", 1)[1])
        assert proc.poll() is None, "the firmware is still running"
    finally:
        proc.kill()
        proc.wait(5)
        proc.stdout.close()


@pytest.fixture(params=["emulator", "firmware"])
def mcu_port(request) -> Iterator[int]:
    """The port of an MCU: the Python emulator or the firmware's host build."""
    if request.param == "firmware":
        yield request.getfixturevalue("firmware")
        return
    emulator = McuEmulator(BenchModel(load_bench(), seed=0))
    server = LineServer(emulator.respond).start()
    yield server.port
    server.stop()
    emulator.close()


def connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # small writes leave at once
    return sock


class Link:
    """A raw byte stream to an MCU and its reply lines."""

    def __init__(self, port: int) -> None:
        self.sock = connect(port)
        self.replies = self.sock.makefile("rb")

    def ask(self, line: bytes) -> bytes:
        self.sock.sendall(line + b"\n")
        return self.replies.readline().rstrip(b"\n")

    def close(self) -> None:
        self.replies.close()
        self.sock.close()


def test_host_build_answers_every_protocol_vector(firmware) -> None:
    link = Link(firmware)
    wrong = [(request[:80], expected, got) for request, expected in load_vectors()
             if (got := link.ask(request)) != expected]
    link.close()
    assert wrong == []


COMMANDS = [
    "IDN?", "STATE?", "OPEN", "TRG", "TBL STAT", "TBL CRC", "TBL ARM", "TBL CLR", "TBL GET 1",
    "SEL 3 2 5", "PUL 1:4:0F0 2:4:00F", "MAC 13:1:FFF 17:1:01F", "SEL 41 1 1", "PUL 1:1:001 1:2:1",
    "TBL SET 0 PUL 1:1:001;MAC 2:2:002;SEL 3 3 3", "TBL SCAN 1 MAC 1-10 1:FFF 40:001",
    "TBL SET 2 OPEN;OPEN", "TBL SCAN 0 PUL 2-4 7:003;3 MAC 5-5 8:800", "WDG?", "FROB",
]


def _mutate(rng: random.Random, frame: bytes) -> bytes:
    """A frame hit by line noise: bits flipped, bytes dropped or doubled, cut short."""
    data = bytearray(frame.rstrip(b"\n"))
    for _ in range(rng.randint(1, 3)):
        i = rng.randrange(len(data))
        kind = rng.randrange(4)
        if kind == 0:
            data[i] ^= 1 << rng.randrange(8)
        elif kind == 1:
            del data[i]
        elif kind == 2:
            data.insert(i, data[i])
        else:
            del data[i:]
            break
        if not data:
            break
    return bytes(data) + b"\n"


def fuzz_stream(seed: int, frames: int) -> bytes:
    """Valid frames, retransmissions, mutated frames, garbage (with and without newlines) and
    over-long lines, in one byte stream."""
    rng = random.Random(seed)
    out, seq, last = [], 0, encode_frame(0, "IDN?")
    out.append(last)
    for _ in range(frames):
        pick = rng.random()
        if pick < 0.45:
            seq = seq % 255 + 1
            last = encode_frame(seq, rng.choice(COMMANDS))
            out.append(last)
        elif pick < 0.6:
            out.append(last)  # a retransmission
        elif pick < 0.85:
            out.append(_mutate(rng, last if rng.random() < 0.5 else
                               encode_frame(rng.randrange(256), rng.choice(COMMANDS))))
        elif pick < 0.97:
            out.append(bytes(rng.randrange(256) for _ in range(rng.randint(1, 40))))
        else:
            out.append(b"7 " + b"A" * rng.randint(MAX_LINE - 8, MAX_LINE + 50) + b"\n")
    return b"".join(out)


def test_fuzzed_link_never_executes_twice_nor_crashes_and_agrees_with_the_emulator(firmware):
    """A few thousand random and mutated frames, fed in random chunks: the firmware answers
    every line exactly as the Python emulator does (so retransmissions, NAKs and refusals
    agree), stays up, and a retransmitted trigger amid garbage still steps its table once."""
    stream = fuzz_stream(seed=12, frames=3000)
    lines = stream.split(b"\n")[:-1]
    reference = McuEmulator(BenchModel(load_bench(), seed=0))
    expected = [reference._frame(line + b"\n") for line in lines]  # noqa: SLF001
    assert len(reference.executed) > 1000, "many frames were valid and executed"
    sock = connect(firmware)
    replies = sock.makefile("rb")
    rng, sent, lines_sent, got = random.Random(3), 0, 0, []
    deadline = time.monotonic() + 60
    while sent < len(stream) and time.monotonic() < deadline:
        chunk = stream[sent:sent + rng.randint(1, 300)]
        sock.sendall(chunk)
        sent += len(chunk)
        lines_sent += chunk.count(b"\n")
        while len(got) < lines_sent:
            got.append(replies.readline().rstrip(b"\n"))
    assert sent >= len(stream), "the stream went through in time"
    mismatches = [(line[:60], e, g) for line, e, g in zip(lines, expected, got, strict=True)
                  if e != g]
    assert mismatches == []
    link = [encode_frame(1, "TBL SET 0 OPEN;OPEN"), encode_frame(2, "TBL ARM"),
            encode_frame(3, "TRG"), b"3 TRG *0000\n", b"\x00\xff garbage", b"\n",
            encode_frame(3, "TRG"), b"3 TR", b"G *", encode_frame(3, "TRG")[-5:]]
    sock.sendall(b"\n" + encode_frame(0, "TBL CLR") + b"".join(link))  # ends a partial line
    for _ in range(9):
        replies.readline()
    sock.sendall(encode_frame(4, "TBL STAT"))
    assert decode_frame(replies.readline()) == (4, "OK state=armed pos=1 len=2")
    replies.close()
    sock.close()


@pytest.mark.parametrize("armed", [False, True])
def test_watchdog_opens_every_switch_when_the_host_falls_silent(mcu_port, armed):
    mux = MuxController(f"socket://127.0.0.1:{mcu_port}", timeout=1)
    if armed:
        mux.load_table([Route.cell(3, 2, 5), Route.cell(3, 2, 6)])
        mux.arm_table()
    else:
        mux.select_cell(3, 2, 5)
    mux.transact("WDG 200")
    time.sleep(0.1)
    assert mux.state() != {}, "fed in time: the switches stay"
    time.sleep(0.35)
    assert mux.state() == {}, "silent for longer than 200 ms: every switch open"
    assert mux.watchdog_status() == (200, 1)
    assert mux.table_status().state == ("fault" if armed else "idle")
    mux.close()


def test_driver_keeps_the_link_alive_while_the_host_is_busy(mcu_port):
    mux = MuxController(f"socket://127.0.0.1:{mcu_port}", timeout=1, watchdog=0.1)
    route = mux.select_cell(3, 2, 5)
    time.sleep(0.5)  # five watchdog times without a command from the host's own thread
    mux.assert_route(route)
    assert mux.state() != {} and mux.watchdog_status() == (100, 0)
    mux.close()


def test_uf2_packing_checks_boot2_and_lays_blocks_from_the_start_of_flash() -> None:
    import importlib.util
    import struct
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "firmware" / "tools" / "uf2.py"
    spec = importlib.util.spec_from_file_location("uf2", path)
    uf2 = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(uf2)
    assert uf2.boot2_crc(b"123456789") == 0x0376E6E7  # the CRC-32/MPEG-2 check value
    body = bytes(range(252))
    boot2 = body + struct.pack("<I", uf2.boot2_crc(body))
    out = uf2.pack(boot2, b"\xAA" * 300)
    assert len(out) == 3 * 512
    blocks = [out[i:i + 512] for i in range(0, len(out), 512)]
    for n, block in enumerate(blocks):
        magic0, magic1, flags, addr, size, number, count, family = struct.unpack(
            "<8I", block[:32])
        assert (magic0, magic1, flags, size, number, count, family) == (
            0x0A324655, 0x9E5D5157, 0x2000, 256, n, 3, 0xE48BFF56)
        assert addr == 0x10000000 + 256 * n and block[-4:] == struct.pack("<I", 0x0AB16F30)
    assert blocks[0][32:288] == boot2 and blocks[1][32:288] == b"\xAA" * 256
    with pytest.raises(ValueError, match="checksum"):
        uf2.pack(body + b"\0\0\0\0", b"")
