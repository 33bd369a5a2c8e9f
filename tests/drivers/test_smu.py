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


def test_2450_setup_spot_and_list_conversation() -> None:
    chunks = [",".join(["0.2"] * 100), ",".join(["0.2"] * 100), ",".join(["0.2"] * 50)]
    readings = ",".join(f"{i}e-06" for i in range(250))
    conversation = [
        *IDN_2450, *RESET,
        (":SOUR:FUNC VOLT", None), (':SENS:FUNC "CURR"', None),
        (":SENS:CURR:RANG:AUTO OFF", None), (":SENS:CURR:AZER OFF", None),
        (":SOUR:VOLT:RANG 2", None), (":SOUR:VOLT:ILIM 0.001", None),
        (":SENS:CURR:RANG 0.0001", None), (":SENS:CURR:NPLC 0.01", None),
        (":SOUR:VOLT 0.2", None), NO_ERROR,
        (":OUTP ON", None), NO_ERROR,
        (":READ?", "4.000000E-05"),
        (':TRAC:CLE "defbuffer1"', None),
        (":SOUR:LIST:VOLT " + chunks[0], None),
        (":SOUR:LIST:VOLT:APP " + chunks[1], None),
        (":SOUR:LIST:VOLT:APP " + chunks[2], None),
        (":SOUR:SWE:VOLT:LIST 1, 0.0001", None), (":INIT", None), ("*WAI", None),
        (':TRAC:DATA? 1, 250, "defbuffer1", READ', readings), NO_ERROR,
        (":OUTP OFF", None), NO_ERROR,
    ]
    with expected_protocol(Keithley2450, conversation, limits=LIMITS) as smu:
        smu.setup(**SETUP)
        smu.output_on()
        assert smu.measure_current() == pytest.approx(4e-5)
        currents = smu.run_list([0.2] * 250, delay=1e-4)
        smu.output_off()
        # the fetch waits for the whole sweep: its timeout covers 250 points
        base = smu.resource.timeout
        assert max(smu.resource.read_timeouts) > base == smu.resource.read_timeouts[-1]
    np.testing.assert_allclose(currents, np.arange(250) * 1e-6)


def test_b2900_channel_2_conversation() -> None:
    conversation = [
        *IDN_B2900, *RESET,
        (":SOUR2:FUNC:MODE VOLT", None), (":SOUR2:VOLT:MODE FIX", None),
        (':SENS2:FUNC "CURR"', None), (":SENS2:CURR:RANG:AUTO OFF", None),
        (":SOUR2:VOLT:RANG 2", None), (":SENS2:CURR:PROT 0.001", None),
        (":SENS2:CURR:RANG 0.0001", None), (":SENS2:CURR:NPLC 0.01", None),
        (":SOUR2:VOLT 0.2", None), NO_ERROR,
        (":SENS2:CURR:APER 0.0001", None),
        (":MEAS:CURR? (@2)", "+4.000000E-05"),
        (":SOUR2:VOLT:MODE LIST", None), (":SOUR2:LIST:VOLT 0.2,0,0.2", None),
        (":TRIG2:SOUR AINT", None), (":TRIG2:COUN 3", None), (":TRIG2:ACQ:DEL 0", None),
        (":INIT (@2)", None), ("*WAI", None),
        (":FETC:ARR:CURR? (@2)", "+1.0E-05,+0.0E+00,+3.0E-05"),
        (":SOUR2:VOLT:MODE FIX", None), NO_ERROR,
    ]
    with expected_protocol(KeysightB2900, conversation, limits=LIMITS, channel=2) as smu:
        smu.setup(**SETUP)
        smu.aperture = 1e-4
        assert smu.measure_current() == pytest.approx(4e-5)
        np.testing.assert_allclose(smu.run_list([0.2, 0.0, 0.2]), [1e-5, 0.0, 3e-5])


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
        with pytest.raises(LimitError, match="0.7 V exceeds"):
            smu.run_list([0.2, -0.7])
        with pytest.raises(LimitError, match="points"):
            smu.run_list([])


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


def test_2450_list_with_trigger_out_uses_notify_trigger_model() -> None:
    conversation = [
        *IDN_2450, *RESET,
        (":SOUR:FUNC VOLT", None), (':SENS:FUNC "CURR"', None),
        (":SENS:CURR:RANG:AUTO OFF", None), (":SENS:CURR:AZER OFF", None),
        (":SOUR:VOLT:RANG 2", None), (":SOUR:VOLT:ILIM 0.001", None),
        (":SENS:CURR:RANG 0.0001", None), (":SENS:CURR:NPLC 0.01", None),
        (":SOUR:VOLT 0.2", None),
        (":DIG:LINE3:MODE TRIG, OUT", None), (":TRIG:DIG3:OUT:STIM NOT1", None), NO_ERROR,
        (':TRAC:CLE "defbuffer1"', None), (":SOUR:LIST:VOLT 0.2,0.2", None),
        (':TRIG:LOAD "Empty"', None),
        (':TRIG:BLOC:CONF:REC 1, "VoltCustomSweepList"', None),
        (":TRIG:BLOC:DEL:CONS 2, 5e-05", None), (":TRIG:BLOC:MEAS 3", None),
        (":TRIG:BLOC:NOT 4, 1", None),
        (':TRIG:BLOC:CONF:NEXT 5, "VoltCustomSweepList"', None),
        (":TRIG:BLOC:BRAN:COUN 6, 2, 2", None), (":INIT", None), ("*WAI", None),
        (':TRAC:DATA? 1, 2, "defbuffer1", READ', "1e-05,2e-05"), NO_ERROR,
    ]
    with expected_protocol(Keithley2450, conversation, limits=LIMITS) as smu:
        smu.setup(**SETUP, trigger_out=3)
        np.testing.assert_allclose(smu.run_list([0.2, 0.2], delay=5e-5), [1e-5, 2e-5])


def test_b2900_trigger_out_is_a_setting() -> None:
    conversation = [
        *IDN_B2900, *RESET,
        (":SOUR1:FUNC:MODE VOLT", None), (":SOUR1:VOLT:MODE FIX", None),
        (':SENS1:FUNC "CURR"', None), (":SENS1:CURR:RANG:AUTO OFF", None),
        (":SOUR1:VOLT:RANG 2", None), (":SENS1:CURR:PROT 0.001", None),
        (":SENS1:CURR:RANG 0.0001", None), (":SENS1:CURR:NPLC 0.01", None),
        (":SOUR1:VOLT 0.2", None),
        (":TRIG1:ACQ:TOUT:SIGN EXT2", None), (":TRIG1:ACQ:TOUT ON", None), NO_ERROR,
    ]
    with expected_protocol(KeysightB2900, conversation, limits=LIMITS) as smu:
        smu.setup(**SETUP, trigger_out=2)
        with pytest.raises(LimitError, match="no digital line 15"):
            smu.setup(**SETUP, trigger_out=15)
