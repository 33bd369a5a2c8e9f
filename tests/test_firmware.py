"""The MCU firmware (firmware/), built for the host: the shared protocol vectors, a fuzzed link,
and the host watchdog, each against the firmware and, where they must agree, the Python
emulator."""

from __future__ import annotations

import random
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from drivers.mcu import MAX_LINE, MuxController, Pacing, Route, decode_frame, encode_frame
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


def test_host_build_answers_every_protocol_vector(firmware_host) -> None:
    """On bench time, moved on after every reply to each deadline the firmware names until it
    names none: a table run ends before the next request, as on the Python emulator, whose runs
    take no host time."""
    ours, theirs = socket.socketpair()
    proc = subprocess.Popen([str(firmware_host), "--port", "0", "--bench-fd",
                             str(theirs.fileno())], pass_fds=(theirs.fileno(),),
                            stdout=subprocess.PIPE)
    theirs.close()
    bench = ours.makefile("rwb")
    try:
        port = int(proc.stdout.readline().decode().rsplit(":", 1)[1])
        link, wrong = Link(port), []
        for request, expected in load_vectors():
            if (got := link.ask(request)) != expected:
                wrong.append((request[:80], expected, got))
            command = b"Q\n"
            for _ in range(100_000):  # bounded: a run of the vectors has a few dozen deadlines
                bench.write(command)
                bench.flush()
                while not (answer := bench.readline()).startswith(b"N "):
                    pass
                if answer.split()[1] == b"-":
                    break
                command = b"T " + answer.split()[1] + b"\n"
        link.close()
    finally:
        proc.kill()
        proc.wait(5)
        proc.stdout.close()
        bench.close()
        ours.close()
    assert wrong == []


COMMANDS = [
    "IDN?", "STATE?", "OPEN", "TRG", "TBL STAT", "TBL CRC", "TBL ARM", "TBL CLR", "TBL GET 1",
    "SEL 3 2 5", "PUL 1:4:0F0 2:4:00F", "MAC 13:1:FFF 17:1:01F", "SEL 41 1 1", "PUL 1:1:001 1:2:1",
    "TBL SET 0 PUL 1:1:001;MAC 2:2:002;SEL 3 3 3", "TBL SCAN 1 MAC 1-10 1:FFF 40:001",
    "TBL SET 2 OPEN;OPEN", "TBL SCAN 0 PUL 2-4 7:003;3 MAC 5-5 8:800", "WDG?", "FROB",
    "TBL CFG out=1 in=0 wait=dwell settle=0 tout=1 time=1", "TBL CFG out=2 in=1 wait=edge",
    "TBL CFG?",
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
    every line exactly as the Python emulator does (so retransmissions, NAKs, refusals and
    unanswered empty lines agree), stays up, and a run's retransmitted start amid garbage gets
    the remembered reply instead of being refused as busy by a second execution."""
    stream = fuzz_stream(seed=12, frames=3000)
    lines = stream.split(b"\n")[:-1]
    reference = McuEmulator(BenchModel(load_bench(), seed=0))
    expected = [reference.respond(line) for line in lines]
    assert len(reference.executed) > 1000, "many frames were valid and executed"
    sock = connect(firmware)
    replies = sock.makefile("rb")
    rng, sent, lines_sent, got = random.Random(3), 0, 0, []
    answered = [n for n, e in enumerate(expected) if e is not None]
    deadline = time.monotonic() + 60
    while sent < len(stream) and time.monotonic() < deadline:
        chunk = stream[sent:sent + rng.randint(1, 300)]
        sock.sendall(chunk)
        sent += len(chunk)
        lines_sent += chunk.count(b"\n")
        while len(got) < len(answered) and answered[len(got)] < lines_sent:
            got.append(replies.readline().rstrip(b"\n"))
    assert sent >= len(stream), "the stream went through in time"
    mismatches = [(lines[n][:60], expected[n], g) for n, g in zip(answered, got, strict=True)
                  if expected[n] != g]
    assert mismatches == []
    run = [encode_frame(1, "TBL CLR"), encode_frame(2, "TBL SET 0 OPEN"),
           encode_frame(3, "TBL CFG out=1 in=0 wait=dwell settle=0 tout=1 time=10000000"),
           encode_frame(4, "TBL RUN"), b"4 TBL RUN *0000\n", b"\x00\xff garbage\n",
           encode_frame(4, "TBL RUN"), b"4 TBL R", b"UN *", encode_frame(4, "TBL RUN")[-5:]]
    sock.sendall(b"\n" + b"".join(run))  # the newline ends a partial line (no reply to it)
    answers = [decode_frame(replies.readline()) for _ in range(8)]
    assert answers[3] == answers[6] == answers[7] == (4, "OK"), answers
    sock.sendall(encode_frame(5, "TBL STAT") + encode_frame(6, "OPEN"))
    assert decode_frame(replies.readline())[1].startswith("OK state=running pos=0 len=1 out=1")
    assert decode_frame(replies.readline()) == (6, "OK")
    replies.close()
    sock.close()


def test_a_killed_host_holding_a_route_leaves_every_switch_open_within_the_watchdog_time(
        mcu_port):
    """A host process holds a verified single route, its driver keeping the watchdog fed, and
    is killed with SIGKILL (no cleanup runs): the MCU opens every switch by itself, once,
    within the watchdog time. The test stays silent on the link until then (a frame would
    feed the watchdog)."""
    watchdog = 0.2
    host = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from drivers.mcu import MuxController; "
         f"m = MuxController(sys.argv[1], timeout=1, watchdog={watchdog}); "
         "print(m.select_cell(3, 2, 5).text, flush=True); time.sleep(60)",
         f"socket://127.0.0.1:{mcu_port}"], stdout=subprocess.PIPE, text=True)
    try:
        assert host.stdout.readline().strip() == "PUL 3:5:002", "route set and read back"
        host.kill()
        killed = time.monotonic()
        host.wait(10)
    finally:
        host.kill()
        host.communicate(timeout=10)
    time.sleep(max(0.0, killed + watchdog * 1.5 - time.monotonic()))
    mux = MuxController(f"socket://127.0.0.1:{mcu_port}", timeout=1)
    assert mux.watchdog_status() == (round(watchdog * 1000), 1), "it expired once, before now"
    assert mux.state() == {}, "every switch open"
    mux.close()


def test_watchdog_stops_a_table_that_no_longer_steps(firmware):
    """A run waiting 10 s on one entry takes no step for longer than the watchdog time: with
    the host silent it is stopped (fault, abort) and every switch opens."""
    mux = MuxController(f"socket://127.0.0.1:{firmware}", timeout=1)
    mux.load_table([Route.cell(3, 2, 5)])
    mux.pace(Pacing(1, 0, "dwell", 0, 1, 10_000_000))
    mux.transact("WDG 200")
    mux.transact("TBL RUN")
    assert mux.state() != {}, "the entry is set while the run waits"
    time.sleep(0.45)
    status = mux.table_status()
    assert (status.state, status.why, status.pos) == ("fault", "abort", 0)
    assert mux.state() == {} and mux.watchdog_status() == (200, 1)
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
