"""Emulated instruments: SCPI behaviour per model, and the shared physics they act on."""

from __future__ import annotations

import numpy as np
import pytest
import serial

from drivers.mcu import decode_frame, encode_frame
from hil.bench import load_bench
from hil.emulator import EmulatedBench
from hil.emulator.generators import Keysight33500B, Keysight81160A
from hil.emulator.mcu import McuEmulator
from hil.emulator.model import BenchModel
from hil.emulator.smus import OVERFLOW, Keithley2450, KeysightB2900


@pytest.fixture(scope="module")
def bench():
    return load_bench()


@pytest.fixture
def model(bench):
    return BenchModel(bench, seed=1)


def ask(inst, *messages):
    return [inst.handle(m) for m in messages]


def route_one(model, pos=0, row=3, col=2, measure=False):
    model.open_all()
    model.wl[pos, col] = model.bls[pos, row] = True
    (model.slm if measure else model.slg)[pos, col] = True
    return pos * 120 + row * 10 + col


# ---- SCPI common behaviour ------------------------------------------------------------------


def test_scpi_spellings_error_queue_and_reset(model):
    gen = Keysight33500B(model)
    # short and long forms, any case, optional nodes, suffixes, compound messages
    ask(gen, "sour1:function:pulse:width 2e-6", ":SOURce1:FUNCtion:PULSe:PERiod 1e-5;*OPC")
    assert float(gen.handle("FUNC:PULS:WIDT?")) == pytest.approx(2e-6)
    assert float(gen.handle("SOUR1:FUNC:PULS:PER?")) == pytest.approx(1e-5)
    assert gen.handle("*ESR?") == "1" and gen.handle("*ESR?") == "0"
    ask(gen, "NOT:A:COMMAND 3", "VOLT:HIGH banana", "FUNC:PULS:WIDT 1e9")
    codes = [int(gen.handle("SYST:ERR?").split(",")[0]) for _ in range(4)]
    assert codes == [-113, -104, -222, 0]
    for _ in range(25):  # 20 entries, the last replaced by "Queue overflow"
        gen.handle("BOGUS")
    errors = [gen.handle("SYST:ERR?") for _ in range(20)]
    assert errors[-1].startswith("-350") and gen.handle("SYST:ERR?") == '+0,"No error"'
    ask(gen, "OUTP 1", "BOGUS", "*RST")
    assert gen.handle("OUTP?") == "0", "*RST turns the output off"
    assert gen.handle("SYST:ERR?").startswith("-113"), "*RST keeps the error queue"
    ask(gen, "BOGUS", "*CLS")
    assert gen.handle("SYST:ERR?") == '+0,"No error"'
    assert gen.handle("*OPC?") == "1"
    assert gen.handle("*IDN?").split(",")[1] == "33522B"


# ---- pulse generators ---------------------------------------------------------------------


def configure(gen, high, low, inverted=False, load="INF"):
    ask(gen, "FUNC PULS", f"OUTP:LOAD {load}", f"VOLT:HIGH {high}", f"VOLT:LOW {low}",
        f"OUTP:POL {'INV' if inverted else 'NORM'}", "FUNC:PULS:PER 1e-5", "FUNC:PULS:WIDT 1e-6",
        "BURS:MODE TRIG;BURS:NCYC 1;BURS:STAT ON", "TRIG:SOUR BUS", "OUTP ON")


def test_33500b_pulse_reaches_routed_cell_only_and_50_ohm_doubles(model):
    gen = Keysight33500B(model)
    dev = route_one(model)
    configure(gen, 1.8, 0)
    gen.handle("*TRG")
    assert [(p.devices, p.voltage) for p in model.pulses] == [((dev,), 1.8)]
    configure(gen, 1.8, 0, load=50)
    gen.handle("*TRG")
    assert model.pulses[-1].voltage == pytest.approx(3.6), "50 ohm setting doubles into hi-Z"
    configure(gen, 0, -1.8, inverted=True)
    gen.handle("*TRG")
    assert model.pulses[-1].voltage == pytest.approx(-1.8)
    assert model.pulses[-1].polarity == -1
    assert gen.handle("SYST:ERR?") == '+0,"No error"'
    model.open_all()
    gen.handle("*TRG")
    assert len(model.pulses) == 3, "a pulse with every switch open reaches no cell"


def test_33500b_refuses_trigger_outside_bus_burst_and_fires_nothing_when_off(model):
    gen = Keysight33500B(model)
    route_one(model)
    configure(gen, 1.8, 0)
    ask(gen, "TRIG:SOUR IMM", "*TRG")
    assert gen.handle("SYST:ERR?").startswith("-211")
    ask(gen, "TRIG:SOUR BUS", "OUTP OFF", "*TRG")
    assert model.pulses == []


def test_81160a_manual_arm_fires_trigger_count(model):
    gen = Keysight81160A(model)
    dev = route_one(model)
    ask(gen, ":FUNC1 PULS", ":OUTP1:LOAD 1000000", ":VOLT1:HIGH 1.8", ":VOLT1:LOW 0",
        ":PULS:PER1 1e-5", ":PULS:WIDT1 1e-6", ":ARM:SOUR1 MAN", ":TRIG1:COUN 3", ":OUTP1 ON")
    assert float(gen.handle(":OUTP1:LOAD?")) >= 1e6
    gen.handle("*TRG")
    assert [p.devices for p in model.pulses] == [(dev,)] * 3
    assert gen.handle("SYST:ERR?") == '+0,"No error"'
    ask(gen, ":OUTP1:LOAD 50", "*TRG")
    assert model.pulses[-1].voltage == pytest.approx(3.6)


# ---- SMUs -----------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", [Keithley2450, KeysightB2900])
def test_smu_reads_connected_cells_with_compliance_and_range(model, cls):
    smu = cls(model)
    dev = route_one(model, measure=True)
    limit = ":SOUR:VOLT:ILIM" if cls is Keithley2450 else ":SENS1:CURR:PROT"
    meas = ":READ?" if cls is Keithley2450 else ":MEAS:CURR? (@1)"
    ask(smu, ":SOUR1:VOLT 0.2", f"{limit} 1e-3")
    assert float(smu.handle(meas)) == 0.0, "output off measures nothing"
    smu.handle(":OUTP1 ON")
    expected = 0.2 * model.sim.apparent(model.conductance([dev]))[0] * 1e-6
    assert float(smu.handle(meas)) == pytest.approx(expected, rel=0.1)
    model.sim.g[dev] = 5000.0  # a short: 0.4 mA through the selector, over a 0.1 mA limit
    smu.handle(f"{limit} 1e-4")
    assert float(smu.handle(meas)) == pytest.approx(1e-4)
    ask(smu, f"{limit} 1e-2", ":SENS1:CURR:RANG 1e-4")
    assert float(smu.handle(meas)) == OVERFLOW, "a fixed range overflows above 105 %"
    model.open_all()
    ask(smu, ":SENS1:CURR:RANG:AUTO ON")
    assert float(smu.handle(meas)) == 0.0, "no route, no current"
    assert smu.handle(":SYST:ERR?").split(",")[0] in ("0", "+0")
    smu.handle("*RST")
    assert smu.handle(":OUTP1?") == "0"


def test_list_sweeps_step_the_mcu_table_only_with_trigger_output(model):
    mcu = McuEmulator(model)
    devs = [model.bench.devices([1], [r], [4])[0] for r in (1, 2, 3)]
    for i, text in enumerate(["MAC 1:4:001", "MAC 1:4:002", "MAC 1:4:004"]):
        mcu.execute(f"TBL SET {i} {text}")
    expected = 0.2e-6 * model.sim.apparent(model.conductance(devs))
    k2450 = (Keithley2450(model), [":SOUR:LIST:VOLT 0.2,0.2,0.2", ":DIG:LINE1:MODE TRIG, OUT",
                                   ":TRIG:DIG1:OUT:STIM NOT1", ':TRIG:LOAD "Empty"',
                                   ':TRIG:BLOC:CONF:REC 1, "VoltCustomSweepList"',
                                   ":TRIG:BLOC:DEL:CONS 2, 0", ":TRIG:BLOC:MEAS 3",
                                   ":TRIG:BLOC:NOT 4, 1",
                                   ':TRIG:BLOC:CONF:NEXT 5, "VoltCustomSweepList"',
                                   ":TRIG:BLOC:BRAN:COUN 6, 3, 2"], ":INIT",
             ':TRAC:DATA? 1, 3, "defbuffer1", READ')
    b2900 = (KeysightB2900(model), [":SOUR1:LIST:VOLT 0.2,0.2,0.2", ":SOUR1:VOLT:MODE LIST",
                                    ":TRIG1:COUN 3", ":TRIG1:ACQ:TOUT:SIGN EXT1",
                                    ":TRIG1:ACQ:TOUT ON"], ":INIT (@1)", ":FETC:ARR:CURR? (@1)")
    for smu, setup, run, fetch in (k2450, b2900):
        ask(smu, ":OUTP1 ON", *setup)
        mcu.execute("TBL ARM")
        smu.handle(run)
        values = np.array([float(v) for v in smu.handle(fetch).split(",")])
        np.testing.assert_allclose(values, expected, rtol=0.1)
        assert mcu.execute("TBL STAT") == "state=done pos=3 len=3"
        assert model.all_open()
        assert smu.handle(":SYST:ERR?").split(",")[0] in ("0", "+0")
    # the 2450's built-in list sweep raises no event per point: the table stays on entry 0
    smu = Keithley2450(model)
    ask(smu, ":OUTP ON", ":SOUR:LIST:VOLT 0.2,0.2,0.2", ":SOUR:SWE:VOLT:LIST 1, 0")
    mcu.execute("TBL ARM")
    smu.handle(":INIT")
    assert mcu.execute("TBL STAT") == "state=armed pos=0 len=3"


# ---- MCU ------------------------------------------------------------------------------------


def frame(mcu, seq, text):
    reply = mcu.respond(encode_frame(seq, text).rstrip(b"\n"))
    return decode_frame(reply)


def test_mcu_routes_read_back_and_refusals(model):
    mcu = McuEmulator(model)
    assert frame(mcu, 0, "IDN?")[1].startswith("OK fw=hil-mux/1.0 boards=1,2,3")
    assert frame(mcu, 1, "SEL 3 2 5") == (1, "OK")
    assert frame(mcu, 2, "STATE?") == (2, "OK 3:010:002:010:000")
    assert model.pulse_cells().tolist() == [2 * 120 + 1 * 10 + 4]
    assert frame(mcu, 3, "PUL 3:5:001 3:6:001")[1] == "ERR 5 conflict"
    assert frame(mcu, 4, "MAC 99:1:001")[1] == "ERR 4 board"
    assert frame(mcu, 5, "FROB")[1] == "ERR 2 unknown"
    assert frame(mcu, 6, "STATE?") == (6, "OK 3:010:002:010:000"), "refusals change nothing"
    assert frame(mcu, 7, "TBL SCAN 0 MAC 1-3 1:003 2:001") == (7, "OK")
    assert frame(mcu, 8, "TBL GET 2")[1] == "OK MAC 1:3:003 2:3:001"
    assert frame(mcu, 9, "TBL ARM") == (9, "OK")
    assert frame(mcu, 10, "SEL 1 1 1")[1] == "ERR 8 busy"
    for seq in (11, 12, 13):
        frame(mcu, seq, "TRG")
    assert frame(mcu, 14, "TBL STAT")[1] == "OK state=done pos=3 len=3"
    assert model.all_open()


def test_mcu_naks_bad_frames_and_answers_retransmissions_without_executing(model):
    mcu = McuEmulator(model)
    bad = bytearray(encode_frame(1, "SEL 1 1 1").rstrip(b"\n"))
    bad[3] ^= 0x01
    assert decode_frame(mcu.respond(bytes(bad))) == (1, "NAK CRC")
    assert decode_frame(mcu.respond(b"garbage")) == (None, "NAK FRAME")
    assert model.all_open()
    first = mcu.respond(encode_frame(2, "SEL 1 1 1").rstrip(b"\n"))
    again = mcu.respond(encode_frame(2, "SEL 1 1 1").rstrip(b"\n"))
    assert first == again and mcu.executed.count("SEL 1 1 1") == 1


def test_servers_answer_over_tcp(bench):
    import pyvisa

    with EmulatedBench(bench, generator="81160A", smu="B2900", seed=0) as emu:
        rm = pyvisa.ResourceManager("@py")
        res = emu.resources
        for key, model in (("generator_resource", "81160A"), ("smu_resource", "B2902A")):
            inst = rm.open_resource(res[key], read_termination="\n", write_termination="\n",
                                    timeout=2000)
            assert inst.query("*IDN?").split(",")[1] == model
            inst.close()
        port = serial.serial_for_url(res["mcu_port"], timeout=2)
        port.write(encode_frame(0, "IDN?"))
        assert decode_frame(port.read_until(b"\n"))[1].startswith("OK fw=")
        port.close()
        assert emu.is_safe()
        assert 'backend = "instruments"' in emu.bench_toml()


@pytest.mark.parametrize("mcu", ["emulator", "firmware"])
def test_bench_serve_writes_a_bench_file_pointing_at_the_emulator(tmp_path, request, mcu):
    import argparse
    import threading

    from hil.cli.bench import serve

    out = tmp_path / "emu.toml"
    stop, started = threading.Event(), []
    firmware = str(request.getfixturevalue("firmware_host")) if mcu == "firmware" else None
    args = argparse.Namespace(bench=None, write=str(out), generator="81160A", smu="B2900",
                              seed=None, mcu_firmware=firmware)
    thread = threading.Thread(target=serve, args=(args, started.append, stop))
    thread.start()
    try:
        for _ in range(100):
            if started:
                break
            threading.Event().wait(0.05)
        written = load_bench(out)
        assert written.backend == "instruments"
        raw = written.raw["instruments"]
        assert raw["generator_model"] == "81160A" and raw["smu_model"] == "B2900"
        assert raw == {**raw, **started[0].resources}
        assert raw["mcu_port"].startswith("socket://127.0.0.1:")
        port = serial.serial_for_url(raw["mcu_port"], timeout=5)
        port.write(encode_frame(0, "SEL 3 2 5"))
        assert decode_frame(port.read_until(b"\n")) == (0, "OK")
        assert started[0].model.pulse_cells().tolist() == [2 * 120 + 1 * 10 + 4]
        port.write(encode_frame(1, "OPEN"))
        port.read_until(b"\n")
        port.close()
    finally:
        stop.set()
        thread.join(10)
    assert not thread.is_alive()


def test_bench_serve_refuses_a_missing_firmware_in_one_line(tmp_path, capsys):
    from hil.cli import main

    assert main(["bench", "serve", "--mcu-firmware", str(tmp_path / "nope"), "--write",
                 str(tmp_path / "emu.toml")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nope" in err[0] and "make -C firmware host" in err[0]


def test_mcu_emulator_answers_every_protocol_vector(model):
    from tests.mcu_vectors import load_vectors

    mcu = McuEmulator(model)
    wrong = [(request[:80], expected, got) for request, expected in load_vectors()
             if (got := mcu.respond(request)) != expected]
    assert wrong == []
