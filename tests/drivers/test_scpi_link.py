"""The SCPI base over real pyvisa-py sockets: bytes on the wire and typed link errors."""

from __future__ import annotations

import pytest
from driver_fakes import ScriptedServer, free_port

from drivers.errors import IdentityError, InstrumentConnectionError, InstrumentTimeoutError
from drivers.keysight33500 import Keysight33500B
from drivers.pulsegen import PulseLimits

LIMITS = PulseLimits(max_voltage=2.5, min_width=1e-8, max_width=1e-3)


def resource(port: int) -> str:
    return f"TCPIP::127.0.0.1::{port}::SOCKET"


def test_bytes_on_the_wire_use_newline_terminations() -> None:
    server = ScriptedServer([
        (b"*IDN?\n", b"Keysight Technologies,33522B,MY1,1.0\n"),
        (b"OUTP1:LOAD?\n", b"+9.900000000000000E+37\n"),
        (b"OUTP1 OFF\n", None),
        (b"SYST:ERR?\n", b'+0,"No error"\n'),
    ])
    try:
        awg = Keysight33500B.open(resource(server.port), limits=LIMITS, timeout=2.0)
        assert awg.identity.model == "33522B"
        assert awg.load > 1e37
        awg.close()  # leaves the output off
        server.check()
    finally:
        server.close()


def test_refused_connection_names_instrument() -> None:
    with pytest.raises(InstrumentConnectionError, match="^pulse generator: "):
        Keysight33500B.open(resource(free_port()), name="pulse generator", limits=LIMITS)


def test_silent_instrument_times_out_naming_it() -> None:
    server = ScriptedServer([(b"*IDN?\n", None)])
    try:
        with pytest.raises(InstrumentTimeoutError, match=r"^awg: no reply to '\*IDN\?'"):
            Keysight33500B.open(resource(server.port), name="awg", limits=LIMITS, timeout=0.2)
    finally:
        server.close()


def test_wrong_instrument_on_the_port() -> None:
    server = ScriptedServer([(b"*IDN?\n", b"KEITHLEY INSTRUMENTS,MODEL 2450,1,1\n")])
    try:
        with pytest.raises(IdentityError, match="not a Keysight 33500B"):
            Keysight33500B.open(resource(server.port), name="awg", limits=LIMITS)
    finally:
        server.close()


def test_bad_resource_name_is_a_connection_error() -> None:
    with pytest.raises(InstrumentConnectionError, match="cannot open"):
        Keysight33500B.open("NOSUCH::THING", name="awg", limits=LIMITS)
