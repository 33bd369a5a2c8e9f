"""Byte conversations of the pulse generator drivers (33500B, 81160A)."""

from __future__ import annotations

import pytest
from driver_fakes import expected_protocol

from drivers.errors import IdentityError, LimitError, LoadError, SCPIError
from drivers.keysight33500 import Keysight33500B
from drivers.keysight81160 import Keysight81160A
from drivers.pulsegen import PulseLimits

LIMITS = PulseLimits(max_voltage=2.5, min_width=1e-8, max_width=1e-3)
NO_ERROR = ("SYST:ERR?", '+0,"No error"')
IDN_33500 = ("*IDN?", "Keysight Technologies,33522B,MY52800001,4.00-3.15-2.00-58-00")
IDN_81160 = ("*IDN?", "Agilent Technologies,81160A,DE50300001,2.0")

SETUP_33500 = [
    ("*RST", None), ("*CLS", None), NO_ERROR,
    ("OUTP1:LOAD INF", None), NO_ERROR, ("OUTP1:LOAD?", "+9.900000000000000E+37"),
    ("SOUR1:FUNC PULS", None), ("SOUR1:BURS:MODE TRIG", None), ("SOUR1:BURS:NCYC 1", None),
    ("SOUR1:BURS:STAT ON", None), ("TRIG1:SOUR EXT", None), ("TRIG1:SLOP POS", None),
    ("TRIG1:DEL 0", None), ("OUTP1:TRIG OFF", None), ("OUTP1 OFF", None), NO_ERROR,
]
SET_33500 = [  # period shrinks from the 1 ms default: width first
    ("OUTP1:POL NORM", None), ("SOUR1:VOLT:HIGH 1.8", None), ("SOUR1:VOLT:LOW 0", None),
    ("SOUR1:FUNC:PULS:WIDT 1e-06", None), ("SOUR1:FUNC:PULS:PER 2.0168e-06", None),
    ("SOUR1:FUNC:PULS:TRAN:BOTH 8.4e-09", None), NO_ERROR,
]
ARM_33500 = [("OUTP1 ON", None), NO_ERROR]


def test_33500_setup_set_arm_reset_conversation() -> None:
    """One pulse per rising edge on Ext Trig, never a bus trigger or a burst of several; a
    polarity change does not cycle the output relay (finding 12: the caller changes levels
    only with every switch open)."""
    reset_pulse = [
        ("OUTP1:POL INV", None), ("SOUR1:VOLT:LOW -1.8", None), ("SOUR1:VOLT:HIGH 0", None),
        ("SOUR1:FUNC:PULS:PER 2.0168e-06", None), ("SOUR1:FUNC:PULS:WIDT 1e-06", None),
        ("SOUR1:FUNC:PULS:TRAN:BOTH 8.4e-09", None), NO_ERROR,
    ]
    conversation = [IDN_33500, *SETUP_33500, *SET_33500, *ARM_33500, *reset_pulse,
                    ("OUTP1:SYNC ON", None), NO_ERROR]
    with expected_protocol(Keysight33500B, conversation, limits=LIMITS, name="awg") as awg:
        assert awg.resource.read_termination == "\n" and awg.resource.write_termination == "\n"
        awg.setup()
        awg.configure_pulse(1.8, 1e-6)
        awg.arm()
        awg.configure_pulse(1.8, 1e-6)  # unchanged: no bytes
        awg.arm()  # output already on: no bytes
        awg.configure_pulse(-1.8, 1e-6)  # the output stays on
        awg.enable_sync()


def test_81160_uses_its_own_commands_and_1_mohm_load() -> None:
    conversation = [
        IDN_81160,
        ("*RST", None), ("*CLS", None), NO_ERROR,
        (":OUTP1:LOAD 1000000", None), NO_ERROR, (":OUTP1:LOAD?", "+1.000000000000000E+06"),
        (":FUNC1 PULS", None), (":PULS:HOLD1 WIDT", None), (":ARM:SOUR1 EXT", None),
        (":ARM:SENS1 EDGE", None), (":ARM:SLOP1 POS", None),
        (":TRIG1:COUN 1", None), (":OUTP1 OFF", None), NO_ERROR,
        (":OUTP1:POL INV", None), (":VOLT1:LOW -1.5", None), (":VOLT1:HIGH 0", None),
        (":PULS:WIDT1 5e-08", None), (":PULS:PER1 1.02e-07", None),
        (":FUNC1:PULS:TRAN 1e-09", None), NO_ERROR,
        (":OUTP1 ON", None), NO_ERROR,
        (":OUTP1 OFF", None), NO_ERROR,
    ]
    with expected_protocol(Keysight81160A, conversation, limits=LIMITS) as awg:
        awg.setup()
        awg.configure_pulse(-1.5, 5e-8)
        awg.arm()  # no *TRG and no *OPC? after it: nothing confirms the 81160A's (finding 8)
        with pytest.raises(LimitError, match="no confirmed sync output"):
            awg.enable_sync()
        awg.output_off()


def test_width_and_period_never_cross_on_the_way() -> None:
    """Growing: period before width; shrinking: width before period."""
    wide = [("SOUR1:FUNC:PULS:PER 0.0002000168", None), ("SOUR1:FUNC:PULS:WIDT 0.0001", None)]
    narrow = [("SOUR1:FUNC:PULS:WIDT 1e-06", None), ("SOUR1:FUNC:PULS:PER 2.0168e-06", None)]
    tail = [("SOUR1:FUNC:PULS:TRAN:BOTH 8.4e-09", None), NO_ERROR]
    levels = SET_33500[:3]
    conversation = [IDN_33500, *SETUP_33500, *SET_33500, *levels, *wide, *tail,
                    *levels, *narrow, *tail]
    with expected_protocol(Keysight33500B, conversation, limits=LIMITS) as awg:
        awg.setup()
        awg.configure_pulse(1.8, 1e-6)
        awg.configure_pulse(1.8, 1e-4)
        awg.configure_pulse(1.8, 1e-6)
        with pytest.raises(LimitError, match="shorter than width plus edges"):
            awg.configure_pulse(1.8, 1e-6, period=1e-6)


def test_load_not_high_z_blocks_every_level() -> None:
    """A generator whose load reads back 50 ohm never gets a level written."""
    fifty = [("OUTP1:LOAD INF", None), NO_ERROR, ("OUTP1:LOAD?", "+5.000000000000000E+01")]
    conversation = [IDN_33500, ("*RST", None), ("*CLS", None), NO_ERROR, *fifty, *fifty]
    with expected_protocol(Keysight33500B, conversation, limits=LIMITS) as awg:
        with pytest.raises(LoadError, match="50 ohm"):
            awg.setup()
        with pytest.raises(LoadError):
            awg.configure_pulse(1.8, 1e-6)


@pytest.mark.parametrize(
    ("cls", "voltage", "width", "match"),
    [
        (Keysight33500B, 2.6, 1e-6, "bench limit 2.5 V"),
        (Keysight33500B, -2.6, 1e-6, "bench limit 2.5 V"),
        (Keysight33500B, 1.8, 2e-3, "bench limit 0.001 s"),
        (Keysight33500B, 1.8, 5e-9, "model's range"),  # below the 33500B's 16 ns
        (Keysight81160A, 1.8, 9e-9, "below the bench limit"),  # the 81160A could, the bench not
    ],
)
def test_out_of_limit_pulses_refused_before_any_byte(cls, voltage, width, match) -> None:
    idn = IDN_33500 if cls is Keysight33500B else IDN_81160
    with expected_protocol(cls, [idn], limits=LIMITS) as awg, pytest.raises(LimitError,
                                                                            match=match):
        awg.configure_pulse(voltage, width)


def test_error_queue_raised_after_block_names_command() -> None:
    conversation = [
        IDN_33500, *SETUP_33500, *SET_33500[:-1],
        ("SYST:ERR?", '-222,"Data out of range"'), ("SYST:ERR?", '-221,"Settings conflict"'),
        NO_ERROR,
    ]
    with expected_protocol(Keysight33500B, conversation, limits=LIMITS) as awg:
        awg.setup()
        with pytest.raises(SCPIError) as err:
            awg.configure_pulse(1.8, 1e-6)
    assert err.value.errors == [(-222, "Data out of range"), (-221, "Settings conflict")]
    assert "SOUR1:FUNC:PULS:TRAN:BOTH 8.4e-09" in str(err.value)


@pytest.mark.parametrize(
    ("idn", "model", "match"),
    [
        ("Keysight Technologies,33522B,MY1,1.0", "33511B", "expects 33511B"),
        ("KEITHLEY INSTRUMENTS,MODEL 2450,1,1.0", None, "not a Keysight 33500B"),
    ],
)
def test_identity_checked_on_open(idn, model, match) -> None:
    with pytest.raises(IdentityError, match=match), expected_protocol(
        Keysight33500B, [("*IDN?", idn)], limits=LIMITS, model=model, name="awg"
    ):
        pass


def test_81150a_is_refused_rather_than_driven_with_81160a_edges() -> None:
    """Finding 9: the 8115xA models share the commands but not the 1 ns edge."""
    with pytest.raises(IdentityError), expected_protocol(
        Keysight81160A, [("*IDN?", "Agilent Technologies,81150A,DE1,2.0")], limits=LIMITS
    ):
        pass
