"""Emulated instruments: SCPI behaviour per model, and the shared physics they act on."""

from __future__ import annotations

import numpy as np
import pytest
import serial

from drivers.mcu import decode_frame, encode_frame
from hil.bench import load_bench
from hil.emulator import EmulatedBench, emulated_wiring
from hil.emulator.generators import Keysight33500B, Keysight81160A
from hil.emulator.mcu import RX_LIMIT, McuEmulator
from hil.emulator.model import BenchModel, Wire
from hil.emulator.smus import OVERFLOW, Keithley2450, KeysightB2900
from hil.emulator.timeline import read_timeline, violations


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
    gen.handle(":OUTP1?")  # a host message later (50 us of bench time): the burst is over
    assert [p.devices for p in model.pulses] == [(dev,)] * 3
    assert gen.handle("SYST:ERR?") == '+0,"No error"'
    ask(gen, ":OUTP1:LOAD 50", "*TRG", ":OUTP1?")
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


# ---- MCU ------------------------------------------------------------------------------------


def frame(mcu, seq, text):
    reply = mcu.respond(encode_frame(seq, text).rstrip(b"\n"))
    return decode_frame(reply)


def test_mcu_routes_read_back_and_refusals(model):
    mcu = McuEmulator(model)
    assert frame(mcu, 0, "IDN?")[1].startswith("OK fw=hil-mux/2.0 proto=2 boards=1,2,3")
    assert frame(mcu, 1, "SEL 3 2 5") == (1, "OK")
    assert frame(mcu, 2, "STATE?") == (2, "OK 3:010:002:010:000")
    assert model.pulse_cells().tolist() == [2 * 120 + 1 * 10 + 4]
    assert frame(mcu, 3, "PUL 3:5:001 3:6:001")[1] == "ERR 5 conflict"
    assert frame(mcu, 4, "MAC 99:1:001")[1] == "ERR 4 board"
    assert frame(mcu, 5, "FROB")[1] == "ERR 2 unknown"
    for seq, v1 in ((6, "TBL ARM"), (7, "TRG")):
        assert frame(mcu, seq, v1)[1] == "ERR 2 unknown", "gone in v2 (protocol section 4)"
    assert frame(mcu, 8, "STATE?") == (8, "OK 3:010:002:010:000"), "refusals change nothing"
    assert frame(mcu, 9, "TBL SCAN 0 MAC 1-3 1:003 2:001") == (9, "OK")
    assert frame(mcu, 10, "TBL GET 2")[1] == "OK MAC 1:3:003 2:3:001"
    assert frame(mcu, 11, "TBL RUN")[1] == "ERR 6 table", "no pacing configured yet"
    assert frame(mcu, 12, "TBL CFG out=1 in=0 wait=edge settle=20 tout=2 time=5")[1] == \
        "ERR 1 syntax"
    assert frame(mcu, 13, "TBL CFG out=3 in=0 wait=dwell settle=20 tout=2 time=5")[1] == \
        "ERR 3 range"
    assert frame(mcu, 14, "TBL CFG out=1 in=0 wait=dwell settle=20 tout=2 time=5") == (14, "OK")
    assert frame(mcu, 15, "TBL CFG?")[1] == "OK out=1 in=0 wait=dwell settle=20 tout=2 time=5"
    assert frame(mcu, 16, "TBL RUN") == (16, "OK")
    assert frame(mcu, 17, "TBL STAT")[1] == ("OK state=done pos=3 len=3 out=3 before=0 "
                                             "during=0 after=0 why=none")
    assert model.all_open()


def test_mcu_ignores_an_empty_line_and_refuses_frames_over_its_buffer(model):
    mcu = McuEmulator(model)
    assert mcu.respond(b"") is None and mcu.respond(b"\r") is None
    long = encode_frame(1, "TBL SET 0 " + ";".join(["PUL 1:1:001"] * 30)).rstrip(b"\n")
    assert len(long) > RX_LIMIT
    assert decode_frame(mcu.respond(long)) == (1, "NAK LONG")


def wired(model, *wires):
    model.wires = tuple(Wire(*w) for w in wires)


SETTLE, TOUT = 20, 2


def pace(mcu, routes, out=1, in_=0, wait="dwell", time=5, settle=SETTLE):
    for i, text in enumerate(routes):
        assert mcu.execute(f"TBL SET {i} {text}") == ""
    mcu.execute(f"TBL CFG out={out} in={in_} wait={wait} settle={settle} tout={TOUT} "
                f"time={time}")
    mcu.execute("TBL RUN")
    return dict(kv.split("=") for kv in mcu.execute("TBL STAT").split())


GEN_WIRE = ("generator_trigger", "mcu.out1", "generator.trig_in")


def test_33500b_steps_one_route_per_pulse_only_when_mcu_paced(model):
    """Finding 1: a bus-triggered burst raises one trigger-out edge (at its start) and only with
    OUTP:TRIG ON; the MCU-paced table fires one pulse per entry on its own route."""
    wired(model, GEN_WIRE, ("generator_out", "generator.trig_out", "mcu.in2"))
    model.timeline = []
    mcu, gen = McuEmulator(model), Keysight33500B(model)
    cells = ["PUL 1:4:001", "PUL 1:5:001", "PUL 1:6:001"]
    configure(gen, 1.8, 0)  # the old driver's set-up: bus trigger, trigger output never on
    ask(gen, "BURS:NCYC 3", "*TRG", "OUTP?")
    assert not [e for e in model.timeline if e[2] == "edge"], "OUTP:TRIG off: no edge at all"
    ask(gen, "OUTP:TRIG ON", "*TRG", "OUTP?")
    edges = [e for e in model.timeline if e[2] == "edge"]
    assert len(edges) == 1, "one trigger-out edge per burst of 3, never one per pulse"
    model.pulses.clear()
    ask(gen, "BURS:NCYC 1", "TRIG:SOUR EXT", "OUTP:TRIG OFF")
    stat = pace(mcu, cells, time=4)
    assert stat["state"] == "done" and stat["out"] == "3"
    hit = [model.bench.labels(np.array(p.devices)) for p in model.pulses]
    assert [(int(h["row"][0]), int(h["col"][0])) for h in hit] == [(1, 4), (1, 5), (1, 6)]
    assert violations(model.timeline, SETTLE * 1e-6) == []
    ask(gen, "TRIG:SOUR BUS")  # not listening to the input: the table runs, nothing fires
    model.pulses.clear()
    mcu.execute("TBL CLR")
    assert pace(mcu, cells, time=4)["state"] == "done" and model.pulses == []


def test_timeline_shows_a_dwell_shorter_than_latency_plus_pulse(model):
    """Finding 2: the settle-and-dwell handshake is what keeps switches still during a pulse;
    paced too tightly, the timeline shows the switch moving inside the pulse."""
    wired(model, GEN_WIRE)
    model.timeline = []
    mcu, gen = McuEmulator(model), Keysight33500B(model)
    configure(gen, 1.8, 0)
    ask(gen, "TRIG:SOUR EXT")
    pace(mcu, ["PUL 1:4:001", "PUL 1:5:001"], time=1, settle=0)
    assert violations(model.timeline, SETTLE * 1e-6)
    model.timeline = []
    mcu.execute("TBL CLR")
    pace(mcu, ["PUL 1:4:001", "PUL 1:5:001"], time=4)
    assert violations(model.timeline, SETTLE * 1e-6) == []


B2900_NEW = [":SOUR:DIG:EXT1:FUNC TINP", ":SOUR:DIG:EXT1:POL POS",
             ":SOUR:DIG:EXT2:FUNC TOUT", ":SOUR:DIG:EXT2:POL POS",
             ":SOUR:DIG:EXT2:TOUT:WIDT 1e-5", ":SOUR:DIG:EXT2:TOUT:POS AFT",
             ":TRIG1:ACQ:TOUT:SIGN EXT2", ":TRIG1:ACQ:TOUT ON"]
B2450_NEW = [":DIG:LINE1:MODE TRIG, IN", ":TRIG:DIG1:IN:EDGE RIS",
             ":DIG:LINE2:MODE TRIG, OUT", ":TRIG:DIG2:OUT:LOG POS",
             ":TRIG:DIG2:OUT:PULS 1e-5", ":TRIG:DIG2:OUT:STIM NOT1"]
SMU_WIRES = (("smu_trigger", "mcu.out2", "smu.line1"), ("smu_complete", "smu.line2", "mcu.in1"))
K2450_ARM = [':TRIG:LOAD "Empty"', ':TRIG:BLOC:CONF:REC 1, "VoltCustomSweepList"',
             ":TRIG:BLOC:WAIT 2, DIGIO1", ":TRIG:BLOC:MEAS 3", ":TRIG:BLOC:NOT 4, 1",
             ':TRIG:BLOC:CONF:NEXT 5, "VoltCustomSweepList"', ":TRIG:BLOC:BRAN:COUN 6, 3, 2",
             ":INIT"]
B2900_ARM = [":SOUR1:VOLT:MODE LIST", ":TRIG1:SOUR EXT1", ":TRIG1:COUN 3", ":INIT (@1)"]
FETCH = {Keithley2450: ':TRAC:DATA? 1, 3, "defbuffer1", READ',
         KeysightB2900: ":FETC:ARR:CURR? (@1)"}


def smu_read_table(model, cls, setup, arm):
    """Three MAC reads on three single-cell routes, MCU-paced on the completion edge; returns
    the readings, the expected currents and the table status."""
    wired(model, *SMU_WIRES)
    model.timeline = []
    mcu, smu = McuEmulator(model), cls(model)
    devs = [model.bench.devices([1], [r], [4])[0] for r in (1, 2, 3)]
    model.sim.g[devs] = [20.0, 120.0, 300.0]
    expected = 0.2e-6 * model.sim.apparent(model.conductance(devs))
    nplc = ":SENS:CURR:NPLC 0.01" if cls is Keithley2450 else ":SENS1:CURR:NPLC 0.01"
    ask(smu, ":OUTP1 ON", nplc, *setup, ":SOUR1:LIST:VOLT 0.2,0.2,0.2", *arm)
    stat = pace(mcu, ["MAC 1:4:001", "MAC 1:4:002", "MAC 1:4:004"], out=2, in_=1, wait="edge",
                time=2000)
    reply = smu.handle(FETCH[cls])
    values = np.array([float(v) for v in reply.split(",")]) if reply else np.zeros(0)
    return values, expected, stat, smu


@pytest.mark.parametrize("cls,setup,arm", [(Keithley2450, B2450_NEW, K2450_ARM),
                                           (KeysightB2900, B2900_NEW, B2900_ARM)])
def test_smu_read_tables_land_each_reading_on_its_route(model, cls, setup, arm):
    values, expected, stat, smu = smu_read_table(model, cls, setup, arm)
    np.testing.assert_allclose(values, expected, rtol=0.1)
    assert (stat["state"], stat["during"], stat["after"]) == ("done", "3", "0")
    assert violations(model.timeline, SETTLE * 1e-6) == []
    assert smu.handle(":SYST:ERR?").split(",")[0] in ("0", "+0")


def test_b2900_pin_not_in_tout_raises_nothing_and_bef_shifts_readings(model):
    """Finding 3: the old set-up (ACQ:TOUT routed, pin left at its default function) raises no
    edge, so an edge-paced table times out on entry 0; a pin pulsing before the measurement
    steps the switches during every aperture."""
    old = [":SOUR:DIG:EXT1:FUNC TINP", ":SOUR:DIG:EXT1:POL POS",
           ":TRIG1:ACQ:TOUT:SIGN EXT2", ":TRIG1:ACQ:TOUT ON"]
    values, _, stat, _ = smu_read_table(model, KeysightB2900, old, B2900_ARM)
    assert (stat["state"], stat["why"], stat["pos"]) == ("fault", "timeout", "0")
    before = [c.replace("POS AFT", "POS BEF") for c in B2900_NEW]
    values, expected, stat, _ = smu_read_table(BenchModel(model.bench, seed=1), KeysightB2900,
                                               before, B2900_ARM)
    assert not np.allclose(values[:2], expected[:2], rtol=0.1), "each reading is a route late"


def test_2450_negative_logic_steps_at_the_end_of_the_output_pulse(model):
    """Finding 4: with the default (negative) logic the completion edge comes a pulse width
    after the measurement; set positive, it comes when the aperture ends."""
    for logic, late in (("NEG", 1e-5), ("POS", 0.0)):
        setup = [c.replace("LOG POS", f"LOG {logic}") for c in B2450_NEW]
        m = BenchModel(model.bench, seed=1)
        smu_read_table(m, Keithley2450, setup, K2450_ARM)
        ends = [t for t, s, e, _ in m.timeline if e == "aperture_end"]
        edges = [t for t, s, e, x in m.timeline if e == "edge" and x == "smu_complete"]
        assert len(ends) == len(edges) == 3
        assert np.allclose(np.array(edges) - np.array(ends), late)


def test_b2900_opc_does_not_wait_for_the_sweep_and_a_fetch_comes_up_short(model):
    """Finding 5: ``*WAI`` (and ``*OPC?``) return while the sweep still runs on the B2900, so
    the old INIT / *WAI / FETC gets fewer readings; polling the idle bits gets them all."""
    smu = KeysightB2900(model)
    ask(smu, ":OUTP1 ON", ":SENS1:CURR:NPLC 1", ":SOUR1:LIST:VOLT 0.2,0.2,0.2",
        ":SOUR1:VOLT:MODE LIST", ":TRIG1:SOUR AINT", ":TRIG1:COUN 3", ":INIT (@1)", "*WAI")
    assert smu.handle("*OPC?") == "1"
    early = smu.handle(":FETC:ARR:CURR? (@1)")
    assert early is None or len(early.split(",")) < 3, "fetched before the sweep ended"
    for _ in range(10_000):
        if int(smu.handle(":STAT:OPER:COND?")) & 18 == 18:
            break
    assert len(smu.handle(":FETC:ARR:CURR? (@1)").split(",")) == 3


def test_2450_plain_list_sweep_delay_is_zero_or_at_least_50_us(model):
    """Finding 6: the plain list sweep's delay is 0 or 50 us to 10 ks."""
    smu = Keithley2450(model)
    ask(smu, ":SOUR:LIST:VOLT 0.2,0.2", ":SOUR:SWE:VOLT:LIST 1, 2e-05")
    assert smu.handle(":SYST:ERR?").startswith("-222")
    ask(smu, ":SOUR:SWE:VOLT:LIST 1, 0", ":SOUR:SWE:VOLT:LIST 1, 5e-05")
    assert smu.handle(":SYST:ERR?").startswith("0,")


@pytest.mark.parametrize("cls,arm,abort", [(Keithley2450, K2450_ARM, ":ABOR"),
                                           (KeysightB2900, B2900_ARM, ":ABOR:ALL (@1)")])
def test_output_stays_on_behind_a_waiting_sweep_until_aborted(model, cls, arm, abort):
    """Finding 7: a sweep waiting for edges refuses OUTP OFF; :ABOR ends it first."""
    smu = cls(model)
    setup = B2450_NEW if cls is Keithley2450 else B2900_NEW
    ask(smu, ":OUTP1 ON", *setup, ":SOUR1:LIST:VOLT 0.2,0.2,0.2", *arm, ":OUTP1 OFF")
    assert smu.handle(":OUTP1?") == "1" and smu.handle(":SYST:ERR?").startswith(("-221", "+-"))
    ask(smu, abort, ":OUTP1 OFF")
    assert smu.handle(":OUTP1?") == "0"


def test_2450_wai_holds_the_connection_until_the_trigger_model_ends(model):
    """A *WAI behind a trigger model waiting for edges holds every later command (as on the
    instrument); ending the model (here :ABOR from another link) releases it."""
    import threading

    smu = Keithley2450(model)
    ask(smu, ":OUTP ON", *B2450_NEW, ":SOUR:LIST:VOLT 0.2,0.2,0.2", *K2450_ARM)
    done = threading.Event()
    waiter = threading.Thread(target=lambda: (smu.handle("*WAI;:OUTP OFF"), done.set()))
    waiter.start()
    assert not done.wait(0.3), "OUTP OFF waits behind *WAI"
    smu.handle(":ABOR")
    assert done.wait(5)
    waiter.join(5)
    assert smu.handle(":OUTP?") == "0"


def test_81160a_opc_answers_before_the_burst_ends_33500b_after(model):
    """Finding 8: nothing confirms the 81160A's *OPC? waits for a burst: the emulator answers at
    once (the stricter case), the 33500B's documented wait holds."""
    gen = Keysight81160A(model)
    route_one(model)
    ask(gen, ":FUNC1 PULS", ":OUTP1:LOAD 1000000", ":VOLT1:HIGH 1.8", ":VOLT1:LOW 0",
        ":PULS:PER1 1e-3", ":PULS:WIDT1 1e-6", ":ARM:SOUR1 MAN", ":TRIG1:COUN 3", ":OUTP1 ON",
        "*TRG;*OPC?")
    assert len(model.pulses) == 1
    model.advance(model.now + 1.0)  # the rest of that burst
    model.pulses.clear()
    gen = Keysight33500B(model)
    configure(gen, 1.8, 0)
    ask(gen, "FUNC:PULS:PER 1e-3", "BURS:NCYC 3", "*TRG;*OPC?")
    assert len(model.pulses) == 3


def test_edges_before_and_after_a_run_are_counted_and_strays_stop_it(model):
    """Finding 10: an edge after the last entry is no longer lost (``after``), and in edge mode
    an edge while none is awaited stops the run."""
    mcu = McuEmulator(model)
    stat = pace(mcu, ["MAC 1:4:001"], out=2, in_=1, wait="dwell", time=5)
    mcu.edge_in(1, model.now + 1e-6)
    after = dict(kv.split("=") for kv in mcu.execute("TBL STAT").split())
    assert (stat["after"], after["after"], after["state"]) == ("0", "1", "done")
    mcu.execute("TBL CLR")
    mcu.edge_in(1, model.now)
    model.advance(model.now + 1e-5)
    stat = pace(mcu, ["MAC 1:4:001", "MAC 1:4:002"], out=2, in_=1, wait="edge", time=50)
    assert stat["before"] == "1" and stat["why"] == "timeout"  # nothing answers out 2
    wired(model, ("echo", "mcu.out2", "mcu.in1"), ("echo2", "mcu.out2", "mcu.in1"))
    mcu.execute("TBL CLR")
    stat = pace(mcu, ["MAC 1:4:001", "MAC 1:4:002"], out=2, in_=1, wait="edge", time=50)
    assert (stat["state"], stat["why"], stat["pos"]) == ("fault", "stray", "0")  # a double edge
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

    import serial

    from hil.cli.bench import serve

    out = tmp_path / "emu.toml"
    stop, started = threading.Event(), []
    firmware = str(request.getfixturevalue("firmware_host")) if mcu == "firmware" else None
    timeline = tmp_path / "timeline.csv"
    args = argparse.Namespace(bench=None, write=str(out), generator="81160A", smu="B2900",
                              seed=None, port=None, mcu_firmware=firmware,
                              timeline=str(timeline))
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
        assert written.raw["wiring"] == emulated_wiring("81160A")  # the wires it emulates
        port = serial.serial_for_url(raw["mcu_port"], timeout=5)
        port.write(encode_frame(0, "SEL 3 2 5"))
        assert decode_frame(port.read_until(b"\n")) == (0, "OK")
        assert started[0].model.pulse_cells().tolist() == [2 * 120 + 1 * 10 + 4]
        port.close()
    finally:
        stop.set()
        thread.join(10)
    assert not thread.is_alive()
    rows = read_timeline(timeline)  # complete once the server stopped
    assert timeline.read_text().startswith("t_us,source,event,target\n")
    if mcu == "emulator":
        assert [(s, e, x) for _, s, e, x in rows] == [("mcu", "switch", "PUL 3:5:002"),
                                                      ("mcu", "settled", "PUL 3:5:002")]
    else:  # the firmware's switch changes reach the timeline (their targets are not decoded)
        assert [(s, e) for _, s, e, _ in rows][:1] == [("mcu", "switch")]


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
