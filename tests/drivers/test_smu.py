"""Byte conversations of the SMU drivers (Keithley 2450 native SCPI, Keysight B2900)."""

from __future__ import annotations

import numpy as np
import pytest
from driver_fakes import expected_protocol

from drivers.errors import IdentityError, LimitError
from drivers.keithley2450 import Keithley2450
from drivers.keysightb2900 import KeysightB2900
from drivers.smu import SourceLimits

LIMITS = SourceLimits(max_voltage=0.5, max_current=1e-3)
NO_ERROR = ("SYST:ERR?", '0,"No error"')
IDN_2450 = [("*IDN?", "KEITHLEY INSTRUMENTS,MODEL 2450,04096218,1.7.12b"), ("*LANG?", "SCPI")]
IDN_B2900 = [("*IDN?", "Keysight Technologies,B2912A,MY51140001,3.4.2011.5100")]
RESET = [("*RST", None), ("*CLS", None), NO_ERROR]
SETUP = dict(voltage=0.2, current_limit=1e-3, current_range=1e-4, nplc=0.01)


SETUP_2450 = [
    (":SOUR:FUNC VOLT", None), (':SENS:FUNC "CURR"', None),
    (":SENS:CURR:RANG:AUTO OFF", None), (":SENS:CURR:AZER OFF", None),
    (":SOUR:VOLT:RANG 2", None), (":SOUR:VOLT:ILIM 0.001", None),
    (":SENS:CURR:RANG 0.0001", None), (":SENS:CURR:NPLC 0.01", None),
    (":SOUR:VOLT 0.2", None),
]


def test_2450_setup_spot_and_mcu_paced_list_conversation() -> None:
    """Each point waits for a rising edge on line 1 (the default input edge is the falling
    one); line 2 pulses high (finding 4: the default logic is negative) for 10 us after each
    measurement; no plain list sweep (finding 6: its delay must be 0 or >= 50 us)."""
    chunks = [",".join(["0.2"] * 100), ",".join(["0.2"] * 100), ",".join(["0.2"] * 50)]
    readings = ",".join(f"{i}e-06" for i in range(250))
    conversation = [
        *IDN_2450, *RESET, *SETUP_2450,
        (":DIG:LINE1:MODE TRIG, IN", None), (":TRIG:DIG1:IN:EDGE RIS", None),
        (":DIG:LINE2:MODE TRIG, OUT", None), (":TRIG:DIG2:OUT:LOG POS", None),
        (":TRIG:DIG2:OUT:PULS 1e-05", None), (":TRIG:DIG2:OUT:STIM NOT1", None), NO_ERROR,
        (":OUTP ON", None), NO_ERROR,
        (":READ?", "4.000000E-05"),
        (':TRAC:CLE "defbuffer1"', None),
        (":SOUR:LIST:VOLT " + chunks[0], None),
        (":SOUR:LIST:VOLT:APP " + chunks[1], None),
        (":SOUR:LIST:VOLT:APP " + chunks[2], None),
        (':TRIG:LOAD "Empty"', None),
        (':TRIG:BLOC:CONF:REC 1, "VoltCustomSweepList"', None),
        (":TRIG:BLOC:WAIT 2, DIGIO1", None), (":TRIG:BLOC:MEAS 3", None),
        (":TRIG:BLOC:NOT 4, 1", None),
        (':TRIG:BLOC:CONF:NEXT 5, "VoltCustomSweepList"', None),
        (":TRIG:BLOC:BRAN:COUN 6, 250, 2", None), (":INIT", None), NO_ERROR,
        ('*WAI;:TRAC:DATA? 1, 250, "defbuffer1", READ', readings), NO_ERROR,
        (':TRAC:CLE "defbuffer1"', None), (":INIT", None), NO_ERROR,  # the same list again
        (":ABOR", None),
        (":OUTP OFF", None), NO_ERROR,
    ]
    with expected_protocol(Keithley2450, conversation, limits=LIMITS) as smu:
        smu.setup(**SETUP, trigger_in=1, complete_out=2)
        smu.output_on()
        assert smu.measure_current() == pytest.approx(4e-5)
        assert smu.arm_list([0.2] * 250) == 250
        currents = smu.fetch_list(250)
        assert smu.arm_list([0.2] * 250) == 250
        smu.abort()
        smu.output_off()
    np.testing.assert_allclose(currents, np.arange(250) * 1e-6)


def test_b2900_channel_2_pins_and_idle_poll_conversation() -> None:
    """Finding 3: the pins get their functions, polarity, width and the after-measurement
    position; finding 5: the fetch waits for the idle bits, not for *WAI/*OPC?."""
    conversation = [
        *IDN_B2900, *RESET,
        (":SOUR2:FUNC:MODE VOLT", None), (":SOUR2:VOLT:MODE FIX", None),
        (':SENS2:FUNC "CURR"', None), (":SENS2:CURR:RANG:AUTO OFF", None),
        (":SOUR2:VOLT:RANG 2", None), (":SENS2:CURR:PROT 0.001", None),
        (":SENS2:CURR:RANG 0.0001", None), (":SENS2:CURR:NPLC 0.01", None),
        (":SOUR2:VOLT 0.2", None),
        (":SOUR:DIG:EXT3:FUNC TINP", None), (":SOUR:DIG:EXT3:POL POS", None),
        (":SOUR:DIG:EXT4:FUNC TOUT", None), (":SOUR:DIG:EXT4:POL POS", None),
        (":SOUR:DIG:EXT4:TOUT:WIDT 1e-05", None), (":SOUR:DIG:EXT4:TOUT:POS AFT", None),
        (":TRIG2:ACQ:TOUT:SIGN EXT4", None), (":TRIG2:ACQ:TOUT ON", None), NO_ERROR,
        (":SENS2:CURR:APER 0.0001", None),
        (":MEAS:CURR? (@2)", "+4.000000E-05"),
        (":SOUR2:VOLT:MODE LIST", None), (":SOUR2:LIST:VOLT 0.2,0,0.2", None),
        (":TRIG2:SOUR EXT3", None), (":TRIG2:COUN 3", None), (":TRIG2:ACQ:DEL 0", None),
        (":INIT (@2)", None), NO_ERROR,
        (":STAT:OPER:COND?", "+2"), (":STAT:OPER:COND?", "+1152"),
        (":FETC:ARR:CURR? (@2)", "+1.0E-05,+0.0E+00,+3.0E-05"),
        (":SOUR2:VOLT:MODE FIX", None), NO_ERROR,
        (":ABOR:ALL (@2)", None),
    ]
    with expected_protocol(KeysightB2900, conversation, limits=LIMITS, channel=2) as smu:
        smu.setup(**SETUP, trigger_in=3, complete_out=4)
        smu.aperture = 1e-4
        assert smu.measure_current() == pytest.approx(4e-5)
        assert smu.arm_list([0.2, 0.0, 0.2]) == 3
        np.testing.assert_allclose(smu.fetch_list(3), [1e-5, 0.0, 3e-5])
        smu.abort()


@pytest.mark.parametrize("cls", [Keithley2450, KeysightB2900])
@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(SETUP, voltage=0.6), "source voltage 0.6 V exceeds the bench limit 0.5 V"),
        (dict(SETUP, current_limit=2e-3), "current limit 0.002 A exceeds the bench limit"),
        (dict(SETUP, nplc=1000), "model's range"),
    ],
)
def test_setup_out_of_limits_refused_before_any_byte(cls, kwargs, match) -> None:
    idn = IDN_2450 if cls is Keithley2450 else IDN_B2900
    with expected_protocol(cls, idn, limits=LIMITS) as smu, pytest.raises(LimitError,
                                                                          match=match):
        smu.setup(**kwargs)


@pytest.mark.parametrize("cls", [Keithley2450, KeysightB2900])
def test_list_out_of_limits_refused_before_any_byte(cls) -> None:
    idn = IDN_2450 if cls is Keithley2450 else IDN_B2900
    with expected_protocol(cls, idn, limits=LIMITS) as smu:
        with pytest.raises(LimitError, match="no trigger input line"):
            smu.arm_list([0.2])
        smu.trigger_line = 1
        with pytest.raises(LimitError, match="0.7 V exceeds"):
            smu.arm_list([0.2, -0.7])
        with pytest.raises(LimitError, match="points"):
            smu.arm_list([])


def test_2450_in_2400_language_refused() -> None:
    conversation = [IDN_2450[0], ("*LANG?", "SCPI2400")]
    with pytest.raises(IdentityError, match="SCPI2400"), expected_protocol(
        Keithley2450, conversation, limits=LIMITS
    ):
        pass


def test_model_named_by_bench_file_must_match() -> None:
    with pytest.raises(IdentityError, match="expects B2962A"), expected_protocol(
        KeysightB2900, IDN_B2900, limits=LIMITS, model="B2962A"
    ):
        pass
    with expected_protocol(Keithley2450, IDN_2450, limits=LIMITS, model="2450") as smu:
        assert smu.identity.serial == "04096218"
    # the family name accepts any model of the family, an exact model only itself
    with expected_protocol(KeysightB2900, IDN_B2900, limits=LIMITS, model="B2900"):
        pass
    with expected_protocol(KeysightB2900, IDN_B2900, limits=LIMITS, model="b2912a"):
        pass


@pytest.mark.parametrize("model", ["B2901A", "B2902B", "B2911C", "B2912C", "B2961C", "B2962C",
                                   "B2901BL", "B2901CL", "B2902C"])
def test_b2900_patterns_cover_the_c_and_bl_models(model) -> None:
    """Finding 9: the C models and the low-cost BL/CL variants are B2900s too."""
    idn = [("*IDN?", f"Keysight Technologies,{model},MY1,1.0")]
    with expected_protocol(KeysightB2900, idn, limits=LIMITS, model="B2900") as smu:
        assert smu.identity.model == model


def test_trigger_lines_checked_before_any_byte() -> None:
    with expected_protocol(KeysightB2900, IDN_B2900, limits=LIMITS) as smu:
        with pytest.raises(LimitError, match="no digital line 15"):
            smu.setup(**SETUP, trigger_in=15)
        with pytest.raises(LimitError, match="cannot be trigger input and output"):
            smu.setup(**SETUP, trigger_in=2, complete_out=2)
