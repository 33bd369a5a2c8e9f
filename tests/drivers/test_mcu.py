"""MCU link: framing, routes, byte conversations over pyserial socket://, retries, route safety."""

from __future__ import annotations

import os
import random
import time
from pathlib import Path

import pytest
import serial
from driver_fakes import ScriptedServer

from drivers.errors import (
    IdentityError,
    InstrumentConnectionError,
    MuxCommandError,
    MuxLinkError,
    RouteError,
)
from drivers.mcu import (
    FRAME_OVERHEAD,
    MAX_LINE,
    FrameError,
    MuxController,
    Pacing,
    Route,
    RouteSyntaxError,
    SwitchState,
    TableStatus,
    decode_frame,
    encode_frame,
    format_state,
    pack_table,
    parse_fields,
    parse_state,
    parse_table_command,
    table_crc,
)

IDN = "OK fw=hil-mux/2.0 proto=2 boards=1,2,3,4 table=4096 rx=256 trig=2/2"
FLUSH = (b"\n", None)  # the bare newline that ends a partial line before the first frame


def x(seq: int, command: str, reply: str | None) -> tuple[bytes, bytes | None]:
    """One scripted exchange: the exact frame expected and the framed reply (None: silence)."""
    return encode_frame(seq, command), None if reply is None else encode_frame(seq, reply)


def corrupt(frame: bytes) -> bytes:
    """The frame with one payload character changed and its CRC left as it was."""
    return frame.replace(b"OK", b"OJ", 1)


@pytest.fixture
def mcu_link():
    """Start a scripted MCU, open the driver on ``socket://``; check the script at the end."""
    opened: list[tuple[ScriptedServer, MuxController]] = []

    def start(script, **kwargs) -> MuxController:
        server = ScriptedServer([FLUSH, x(0, "IDN?", IDN), *script])
        mcu = MuxController(f"socket://127.0.0.1:{server.port}", timeout=0.1, **kwargs)
        opened.append((server, mcu))
        return mcu

    yield start
    for server, mcu in opened:
        server.check()
        mcu.port.close()
        server.close()


# -- framing and routes (pure) ----------------------------------------------------------------


def test_frame_bytes_and_checksum() -> None:
    assert encode_frame(0, "IDN?") == b"0 IDN? *9CD1\n"
    assert decode_frame(b"2 OK 3:010:002:010:000 *5105\n") == (2, "OK 3:010:002:010:000")
    assert decode_frame(encode_frame(7, "OK 3:010:002:010:000")) == (7, "OK 3:010:002:010:000")
    assert decode_frame(encode_frame("-", "NAK FRAME")) == (None, "NAK FRAME")
    good = encode_frame(12, "SEL 3 2 5")
    for bad, reason in [
        (good.replace(b"2 5", b"2 6"), "CRC"),
        (good.replace(b"*", b"#"), "FRAME"),
        (b"12 SEL 3 2 5\n", "FRAME"),
        (encode_frame(300, "IDN?"), "FRAME"),
        (b"1 " + b"A" * MAX_LINE + b" *0000\n", "LONG"),
    ]:
        with pytest.raises(FrameError) as err:
            decode_frame(bad)
        assert err.value.reason == reason


def test_protocol_document_examples_are_valid_frames() -> None:
    doc = Path(__file__).parents[2] / "docs" / "mcu-protocol.md"
    lines = [line[2:] for line in doc.read_text().splitlines() if line[:2] in ("> ", "< ")]
    assert len(lines) >= 8
    for line in lines:
        decode_frame(line.encode())


def test_routes_canonical_text_and_switch_state() -> None:
    assert Route.parse("SEL 3 2 5") == Route.cell(3, 2, 5)
    assert Route.cell(3, 2, 5).text == "PUL 3:5:002"
    mac = Route.parse("MAC 17:1:01F 13:1:FFF")
    assert mac.text == "MAC 13:1:FFF 17:1:01F"  # sorted by board
    assert mac.switch_state() == {13: SwitchState(wl=1, bls=0xFFF, slm=1),
                                  17: SwitchState(wl=1, bls=0x01F, slm=1)}
    assert Route.cell(3, 12, 10).switch_state() == {3: SwitchState(0x200, 0x800, 0x200, 0)}
    assert sorted(Route.pulse([(2, 4, 0b101)]).cells()) == [(2, 1, 4), (2, 3, 4)]
    assert Route.parse("OPEN").switch_state() == {}
    text = format_state(mac.switch_state())
    assert text == "13:001:FFF:000:001 17:001:01F:000:001"
    assert parse_state(text) == mac.switch_state()


@pytest.mark.parametrize(
    ("text", "code"),
    [("PUL 3:5:002 3:6:001", 5), ("SEL 3 13 5", 3), ("SEL 3 2 11", 3), ("PUL 3:5:000", 3),
     ("PUL 3:5:1000", 1), ("SEL 3 2", 1), ("SEL +3 2 5", 1), ("FLY 1", 2), ("OPEN 3", 1)],
)
def test_route_refusals_carry_protocol_codes(text: str, code: int) -> None:
    with pytest.raises(RouteSyntaxError) as err:
        Route.parse(text)
    assert err.value.code == code


def test_table_packing_round_trips() -> None:
    rng = random.Random(1)
    scan = [Route.mac([(13, c, 0xFFF), (17, c, 0x01F)]) for c in range(1, 11)]
    cells = [Route.cell(rng.randint(1, 4), rng.randint(1, 12), rng.randint(1, 10))
             for _ in range(400)]
    routes = cells[:5] + scan + cells[5:]
    commands = pack_table(routes)
    assert "TBL SCAN 5 MAC 1-10 13:FFF 17:01F" in commands
    assert all(len(encode_frame(255, c)) <= MAX_LINE for c in commands)
    rebuilt: list[Route] = []
    for command in commands:
        start, entries = parse_table_command(command.removeprefix("TBL "))
        assert start == len(rebuilt)
        rebuilt += entries
    assert rebuilt == routes
    assert len(commands) < len(routes) / 20  # many entries per frame


# -- conversations ------------------------------------------------------------------------------


def test_identify_select_verify_and_close_conversation(mcu_link) -> None:
    mcu = mcu_link([
        x(1, "PUL 3:5:002", "OK"),
        x(2, "STATE?", "OK 3:010:002:010:000"),
        x(3, "OPEN", "OK"),
        x(4, "STATE?", "OK"),
    ], boards=[3, 4])
    assert mcu.identity.boards == (1, 2, 3, 4) and mcu.identity.version == "2.0"
    assert (mcu.identity.rx, mcu.identity.trig_out, mcu.identity.trig_in) == (256, 2, 2)
    route = mcu.select_cell(3, 2, 5)
    mcu.assert_route(route)
    with pytest.raises(RouteError):
        mcu.assert_route(Route.cell(3, 3, 5))
    mcu.close()
    assert not mcu.port.is_open
    with pytest.raises(RouteError):
        mcu.assert_route(route)


def test_missing_board_refused(mcu_link) -> None:
    with pytest.raises(IdentityError, match=r"boards \[7\] not found"):
        mcu_link([], boards=[3, 7])


def test_corrupted_reply_is_retried_with_the_same_frame(mcu_link) -> None:
    command, reply = x(1, "MAC 2:4:0F0", "OK")
    mcu = mcu_link([(command, corrupt(reply)), (command, reply),
                    x(2, "STATE?", "OK 2:008:0F0:000:008")])
    mcu.connect_mac([(2, 4, 0x0F0)])
    assert mcu.stats.corrupt == 1 and mcu.stats.attempts == 4


def test_dropped_frame_is_retried_after_timeout(mcu_link) -> None:
    command, reply = x(1, "PUL 1:1:001", "OK")
    mcu = mcu_link([(command, None), (command, reply), x(2, "STATE?", "OK 1:001:001:001:000")])
    mcu.select_cell(1, 1, 1)
    assert mcu.stats.timeouts == 1


def test_nak_and_stale_replies(mcu_link) -> None:
    command, reply = x(1, "STATE?", "OK")
    stale = encode_frame(0, "OK fw=old")
    mcu = mcu_link([(command, encode_frame("-", "NAK CRC")), (command, stale + reply)])
    assert mcu.state() == {}
    assert mcu.stats.naks == 1


def test_retries_are_bounded(mcu_link) -> None:
    command, _ = x(1, "OPEN", None)
    mcu = mcu_link([(command, None)] * 3, retries=2)
    with pytest.raises(MuxLinkError, match=r"^MCU: no valid reply to 'OPEN' after 3 attempts"):
        mcu.open_all()


def test_err_reply_raises_without_retry(mcu_link) -> None:
    mcu = mcu_link([x(1, "PUL 9:1:001", "ERR 4 board")])
    with pytest.raises(MuxCommandError, match="ERR 4 board") as err:
        mcu.select_cell(9, 1, 1)
    assert err.value.code == 4


def test_read_back_mismatch_opens_and_blocks_firing(mcu_link) -> None:
    mcu = mcu_link([
        x(1, "PUL 3:5:002", "OK"),
        x(2, "STATE?", "OK 3:010:006:010:000"),  # a second BL stuck closed
        x(3, "OPEN", "OK"),
    ])
    with pytest.raises(RouteError, match="does not match 'PUL 3:5:002'; switches opened"):
        mcu.select_cell(3, 2, 5)
    assert mcu.verified_route is None
    with pytest.raises(RouteError, match="refusing to fire"):
        mcu.assert_route(Route.cell(3, 2, 5))


def test_firmware_switch_fault_is_a_route_error(mcu_link) -> None:
    mcu = mcu_link([x(1, "PUL 3:5:002", "ERR 7 switch")])
    with pytest.raises(RouteError, match="ERR 7"):
        mcu.select_cell(3, 2, 5)


PACE = Pacing(out=2, in_=1, wait="edge", settle_us=20, tout_us=10, time_us=2000)
DONE6 = "OK state=done pos=6 len=6 out=6 before=0 during=6 after=0 why=none"


def test_table_load_verify_run_and_verdict(mcu_link) -> None:
    routes = [Route.mac([(1, c, 0x00F)]) for c in range(1, 6)] + [Route.cell(2, 3, 4)]
    crc = f"{table_crc(routes):04X}"
    load = [x(1, "TBL CLR", "OK"), x(2, "TBL SCAN 0 MAC 1-5 1:00F", "OK"),
            x(3, "TBL SET 5 PUL 2:4:004", "OK"), x(4, "TBL CRC", f"OK len=6 crc={crc}")]
    mcu = mcu_link([
        *load,
        x(5, "TBL CFG out=2 in=1 wait=edge settle=20 tout=10 time=2000", "OK"),
        x(6, "TBL RUN", "OK"),
        x(7, "TBL STAT", DONE6),
        *[(f, r) for f, r in (x(s + 7, c, rep) for s, (c, rep) in enumerate(
            [("TBL CLR", "OK"), ("TBL SCAN 0 MAC 1-5 1:00F", "OK"),
             ("TBL SET 5 PUL 2:4:004", "OK"), ("TBL CRC", f"OK len=6 crc={crc}")], 1))],
        # the same pacing again: no TBL CFG; an extra edge after the run discards the batch
        x(12, "TBL RUN", "OK"),
        x(13, "TBL STAT", DONE6.replace("after=0", "after=1")),
        x(14, "OPEN", "OK"),
    ])
    mcu.load_table(routes)
    assert mcu.run_table(PACE, 6).during == 6
    mcu.load_table(routes)
    with pytest.raises(RouteError, match="before/during/after the run 0/6/1, expected 0/6/0"):
        mcu.run_table(PACE, 6)
    with pytest.raises(RouteError, match="unverified"):
        mcu.run_table(PACE, 6)  # a refused batch leaves no table to run


def test_a_run_is_waited_for_as_long_as_it_lasts_not_a_fixed_reply_timeout(mcu_link) -> None:
    """An MCU that answers ``TBL RUN`` only as its run goes on (here after 0.5 s of a 0.6 s
    run) gets one frame and is waited for; a fixed reply timeout (0.1 s x 4 attempts) would
    have retransmitted and given up."""
    routes = [Route.mac([(1, c, 0x00F)]) for c in range(1, 7)]
    slow = Pacing(out=2, in_=1, wait="edge", settle_us=20, tout_us=10, time_us=100_000)
    mcu = mcu_link([
        x(1, "TBL CLR", "OK"), x(2, "TBL SCAN 0 MAC 1-6 1:00F", "OK"),
        x(3, "TBL CRC", f"OK len=6 crc={table_crc(routes):04X}"), x(4, slow.command, "OK"),
        (*x(5, "TBL RUN", "OK"), 0.5),
        x(6, "TBL STAT", DONE6),
    ])
    mcu.load_table(routes)
    assert mcu.run_allowance(slow, 6) > 2 * slow.seconds(6) > 0.5
    assert mcu.run_table(slow, 6).during == 6
    assert mcu.stats.attempts == mcu.stats.frames and mcu.stats.timeouts == 0


@pytest.mark.parametrize(("stat", "why"), [
    ("state=fault pos=2 len=6 out=3 before=0 during=2 after=0 why=timeout",
     "table ended fault \\(timeout\\) at entry 2 of 6"),
    ("state=done pos=6 len=6 out=6 before=1 during=6 after=0 why=none",
     "before/during/after the run 1/6/0"),
    ("state=done pos=6 len=6 out=6 before=0 during=5 after=0 why=none",
     "before/during/after the run 0/5/0, expected 0/6/0"),
    ("state=done pos=6 len=6 out=5 before=0 during=6 after=0 why=none",
     "5 trigger pulses raised for 6 entries"),
])
def test_any_missing_or_extra_edge_discards_the_batch(stat: str, why: str) -> None:
    status = TableStatus.parse(stat)
    assert status.problem(6) is not None and __import__("re").search(why, status.problem(6))
    assert TableStatus.parse(DONE6.removeprefix("OK ")).problem(6) is None


def test_pacing_is_checked_before_any_byte() -> None:
    with pytest.raises(ValueError, match="wait=edge needs an input line"):
        Pacing(out=1, in_=0, wait="edge", settle_us=20, tout_us=2, time_us=5)
    with pytest.raises(ValueError, match="out 1..2"):
        Pacing(out=3, in_=0, wait="dwell", settle_us=20, tout_us=2, time_us=5)
    assert Pacing(1, 2, "dwell", 20, 2, 5).seconds(10) == pytest.approx(250e-6)


def test_table_crc_mismatch_clears_and_refuses_running(mcu_link) -> None:
    mcu = mcu_link([
        x(1, "TBL CLR", "OK"),
        x(2, "TBL SET 0 PUL 2:4:004", "OK"),
        x(3, "TBL CRC", "OK len=1 crc=0000"),
        x(4, "TBL CLR", "OK"),
    ])
    with pytest.raises(RouteError, match="table cleared"):
        mcu.load_table([Route.cell(2, 3, 4)])
    with pytest.raises(RouteError, match="unverified"):
        mcu.run_table(PACE, 1)


def test_link_start_flushes_a_partial_line_and_waits_for_boot() -> None:
    """A host that died mid-frame left ``7 SEL 3`` in the MCU's buffer: the bare newline ends
    it (the MCU's NAK is dropped), so the first frame is answered at once, not after a timeout
    and a retry; the boot wait comes before any byte."""
    server = ScriptedServer([(b"7 SEL 3\n", encode_frame("-", "NAK FRAME")),
                             x(0, "IDN?", IDN)])
    sock = serial.serial_for_url(f"socket://127.0.0.1:{server.port}", timeout=0.2)
    sock.write(b"7 SEL 3")  # the crashed host's partial frame
    started = time.monotonic()
    mcu = MuxController(sock, timeout=0.2, boot_wait=0.3)
    assert time.monotonic() - started >= 0.3
    assert mcu.stats.attempts == 1 and mcu.stats.naks == 0
    server.check()
    sock.close()
    server.close()


def test_frames_fit_the_smaller_of_setting_and_firmware_limit(mcu_link) -> None:
    routes = [Route.cell(1 + i % 4, 1 + i % 12, 1 + (i * 7) % 10) for i in range(60)]
    frames = pack_table(routes, 128 - FRAME_OVERHEAD)
    crc = f"{table_crc(routes):04X}"
    mcu = mcu_link([x(1, "TBL CLR", "OK"), *(x(2 + i, c, "OK") for i, c in enumerate(frames)),
                    x(2 + len(frames), "TBL CRC", f"OK len=60 crc={crc}")], max_frame=128)
    mcu.load_table(routes)
    assert len(frames) > 3 and all(len(encode_frame(255, f)) <= 128 for f in frames)
    assert mcu.max_frame == 128
    with pytest.raises(MuxCommandError, match="exceeds the 128-byte limit"):
        mcu.transact("TBL SET 0 " + ";".join(r.text for r in routes))


def test_version_1_firmware_is_refused(mcu_link) -> None:
    server = ScriptedServer([FLUSH, x(0, "IDN?", "OK fw=hil-mux/1.0 boards=1 table=4096")])
    with pytest.raises(IdentityError, match="protocol 1, this host needs version 2"):
        MuxController(f"socket://127.0.0.1:{server.port}", timeout=0.1)
    server.close()


def test_loop_port_without_mcu_fails_cleanly() -> None:
    """``loop://`` echoes every frame back: an echo is no reply, and the retries end."""
    port = serial.serial_for_url("loop://", timeout=0.05)
    with pytest.raises(MuxLinkError, match="unexpected reply 'IDN\\?'"):
        MuxController(port, name="MCU", timeout=0.05, retries=1)
    port.close()


def test_driver_framing_and_routes_agree_with_every_protocol_vector() -> None:
    """Each vector's reply decodes and re-encodes byte for byte; each request the MCU NAKs is
    one the driver's decoder refuses for the same reason, each it executes one the driver
    frames identically; a refused route carries the code the driver's own parser gives it, and
    every table entry read back is in the driver's canonical form."""
    from tests.mcu_vectors import load_vectors

    vectors = load_vectors()
    rx = next(int(parse_fields(decode_frame(reply)[1][3:])["rx"]) for request, reply in vectors
              if request.split(b" ")[1:2] == [b"IDN?"])  # the vectors' firmware's line limit
    for request, reply in vectors:
        seq, text = decode_frame(reply + b"\n")
        assert encode_frame("-" if seq is None else seq, text) == reply + b"\n"
        if text.startswith("NAK"):
            try:
                reason = "FRAME" if decode_frame(request + b"\n")[0] is None else "none"
            except FrameError as exc:  # a request carries a seq: `-` is only for replies
                reason = exc.reason
            if len(request) + 1 > rx:  # longer than the firmware takes, whatever else it is
                reason = "LONG"
            assert reason == text.split()[1], request[:80]
            continue
        req_seq, command = decode_frame(request + b"\n")
        assert req_seq == seq
        if request.endswith(b"\r"):
            request = request[:-1]
        assert encode_frame(seq, command) == request + b"\n" or "  " in command
        words = command.split()
        if words and words[0] in ("SEL", "PUL", "MAC"):
            code = text.split()[1] if text.startswith("ERR") else None
            if code in (None, "4", "8"):  # board and busy are the MCU's state, not syntax
                Route.parse(command)
            else:
                with pytest.raises(RouteSyntaxError) as refused:
                    Route.parse(command)
                assert str(refused.value.code) == code
        if words[:2] == ["TBL", "GET"] and text.startswith("OK "):
            assert Route.parse(text[3:]).text == text[3:]


def test_watchdog_armed_after_identify_and_an_expiry_forgets_the_verified_route(mcu_link):
    mcu = mcu_link([
        x(1, "WDG 1000", "OK"),
        x(2, "PUL 3:5:002", "OK"),
        x(3, "STATE?", "OK 3:010:002:010:000"),
        x(4, "WDG?", "OK ms=1000 expired=1"),  # the MCU opened everything meanwhile
        x(5, "OPEN", "OK"),
        x(6, "STATE?", "OK"),
    ], watchdog=1.0)
    route = mcu.select_cell(3, 2, 5)
    mcu.assert_route(route)
    assert mcu.watchdog_status() == (1000, 1)
    with pytest.raises(RouteError, match="refusing to fire"):
        mcu.assert_route(route)
    mcu.close()


def test_a_port_another_program_holds_is_refused_not_shared(tmp_path) -> None:
    """Two hosts writing frames to one MCU would route each other's cells: the port is opened
    exclusively. A pseudo-terminal stands in for the MCU's device node; without the lock the
    second opener would get as far as a silent IDN? and time out instead."""
    controller, device = os.openpty()
    path = os.ttyname(device)
    holder = serial.Serial(path, exclusive=True)  # another hil on this MCU
    try:
        with pytest.raises(InstrumentConnectionError, match="in use by another program"):
            MuxController(path, name="MCU", timeout=0.05, retries=0)
    finally:
        holder.close()
        os.close(controller)
        os.close(device)
