"""The hardware path end to end: drivers -> pyvisa-py / pyserial -> loopback -> emulated bench.

Every pulse the emulator delivers is compared with the plan: exactly the intended cells, the
intended polarity and voltage, even when MCU frames are corrupted or dropped on the way. The
module runs twice: with the Python MCU emulator, and with the MCU firmware's host build as the
bench's MCU (its switches are the ones the emulated generator's pulses reach).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import tomllib
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from drivers.errors import MuxCommandError, RouteError
from hil.backends.base import RESET, SET
from hil.backends.factory import make_backend
from hil.backends.sequencer import Sequencer
from hil.bench import load_bench, parse_bench
from hil.characterization.registry import Registry
from hil.cli import main
from hil.emulator import EmulatedBench
from hil.faults import OPEN, STUCK_ON
from hil.records import RunStore
from tests.conftest import write_optdigits

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module", params=["emulator", "firmware"])
def emu(request):
    firmware = request.getfixturevalue("firmware_host") if request.param == "firmware" else None
    with EmulatedBench(load_bench(), seed=5, mcu_firmware=firmware) as e:
        yield e


@pytest.fixture(scope="module")
def python_emu():
    """The bench with the Python MCU emulator only, for the slow interrupted-run tests whose
    MCU side (OPEN on exit) the firmware run of the module covers already."""
    with EmulatedBench(load_bench(), seed=5) as e:
        yield e


def bench_file(emu: EmulatedBench, path: Path, **instruments) -> Path:
    path.write_text(emu.bench_toml(settings={"instruments": {"timeout": 2.0, **instruments}}))
    return path


@pytest.fixture(scope="module")
def backend(emu, tmp_path_factory):
    path = bench_file(emu, tmp_path_factory.mktemp("bench") / "emu.toml")
    be = make_backend(load_bench(path))
    yield be
    be.close()


def delivered(emu: EmulatedBench, since: int) -> Counter:
    """(board, row, col, voltage) -> pulses, from the emulator's record."""
    out: Counter = Counter()
    for p in emu.pulses[since:]:
        lab = emu.model.bench.labels(np.array(p.devices))
        for b, r, c in zip(lab["board"], lab["row"], lab["col"], strict=True):
            out[(int(b), int(r), int(c), round(p.voltage, 6))] += 1
    return out


def planned(bench, devices, polarity, count, voltage) -> Counter:
    lab = bench.labels(devices)
    out: Counter = Counter()
    for b, r, c, p, n in zip(lab["board"], lab["row"], lab["col"], polarity, count, strict=True):
        if n:
            out[(int(b), int(r), int(c), round(p * voltage, 6))] += int(n)
    return out


def random_pulses(bench, rng, n=30):
    devices = rng.choice(bench.array_devices("hidden").ravel(), n, replace=False)
    polarity = rng.choice([SET, RESET], n)
    count = rng.integers(0, 4, n)
    return devices, polarity, count


def test_pulses_reach_exactly_the_planned_cells(emu, backend):
    rng = np.random.default_rng(0)
    bench = backend.bench
    for _ in range(3):
        devices, polarity, count = random_pulses(bench, rng)
        since = len(emu.pulses)
        backend.pulse(devices, polarity, count, voltage=1.5)
        assert delivered(emu, since) == planned(bench, devices, polarity, count, 1.5)
    fan = backend.fan_out(1.5)
    assert all(len(p.devices) <= fan for p in emu.pulses)
    assert emu.model.all_open()


@pytest.mark.parametrize("fault,command", [
    ("corrupt_request", "TBL"), ("drop_request", "TBL SCAN"), ("corrupt_reply", "TBL RUN"),
    ("drop_reply", "TBL CRC"), ("corrupt_request", "TBL SET"), ("drop_reply", "TBL RUN"),
    ("drop_reply", "TBL STAT"),
])
def test_corrupted_or_dropped_frames_are_retried_and_no_pulse_goes_astray(
        emu, backend, fault, command):
    rng = np.random.default_rng(1)
    bench = backend.bench
    mux = backend.inner.inst.mux
    devices, polarity, count = random_pulses(bench, rng)
    if command == "PUL":  # a single pulse goes through a verified direct route
        devices, polarity, count = devices[:1], polarity[:1], np.ones(1, dtype=int)
    else:  # consecutive columns make the driver load the table with TBL SCAN
        devices = bench.array_devices("hidden")[0, :12]
        polarity, count = np.full(12, SET), np.ones(12, dtype=int)
    before = (mux.stats.naks, mux.stats.timeouts, mux.stats.corrupt)
    emu.mcu.inject(fault, command)
    since = len(emu.pulses)
    backend.pulse(devices, polarity, count, voltage=1.2)
    assert not emu.mcu.faults, "the fault was injected"
    assert (mux.stats.naks, mux.stats.timeouts, mux.stats.corrupt) != before, "and detected"
    assert delivered(emu, since) == planned(bench, devices, polarity, count, 1.2)


def test_a_switch_that_does_not_close_stops_the_pulse(emu, backend):
    device = backend.bench.array_devices("output")[:1, 0]
    emu.mcu.inject("stuck_switch")
    since = len(emu.pulses)
    try:
        with pytest.raises((RouteError, MuxCommandError), match="switch"):
            backend.pulse(device, SET)
        assert emu.pulses[since:] == [] and emu.model.all_open()
    finally:
        emu.mcu.clear_faults()


def test_reads_and_mac_match_the_emulated_devices(emu, backend):
    bench = backend.bench
    dev = bench.array_devices("output")
    truth = emu.model.sim.apparent(emu.model.conductance(dev))
    g = backend.read(dev.ravel()).reshape(dev.shape)
    np.testing.assert_allclose(g, truth, rtol=0.1)
    x = (np.random.default_rng(2).random((6, dev.shape[0])) > 0.5).astype(float)
    x[3] = 0  # an all-zero vector carries no current
    current = backend.mac("output", x)
    np.testing.assert_allclose(current, 0.2 * x @ truth, rtol=0.05, atol=1e-9)
    assert isinstance(backend, Sequencer) and backend.clock.tally.readings > 0


def test_close_leaves_outputs_off_and_switches_open(emu, tmp_path):
    be = make_backend(load_bench(bench_file(emu, tmp_path / "b.toml")))
    be.pulse(be.bench.array_devices("output")[:1, 0], SET)
    assert not emu.is_safe(), "the generator output is on after firing"
    be.close()
    assert emu.is_safe()
    be.close()  # idempotent


def test_bench_check_reports_and_refuses_wrong_or_missing_instruments(emu, tmp_path, capsys):
    good = bench_file(emu, tmp_path / "good.toml")
    with emu.model.lock:  # left armed by a run killed mid-pulse: check disarms it first
        emu.mcu.table, emu.mcu.table_state, emu.mcu.pos = [], "armed", 0
    assert main(["bench", "check", "--bench", str(good)]) == 0
    out = capsys.readouterr().out
    assert "switch read-back verified on 40 boards" in out
    status = {line.split()[1]: line.split()[2] for line in out.splitlines()
              if line.startswith("wire ")}
    assert status == dict.fromkeys(
        ("smu_trigger", "smu_complete", "generator_trigger", "generator_sync"), "ok")
    assert [line.split()[1] for line in out.splitlines()[:3]] == ["ok"] * 3
    assert emu.is_safe()
    wrong = bench_file(emu, tmp_path / "wrong.toml", smu_model="B2900")
    assert main(["bench", "check", "--bench", str(wrong)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "2450" in err[0] and "B2900" in err[0]
    missing = bench_file(emu, tmp_path / "missing.toml",
                         generator_resource="TCPIP::127.0.0.1::1::SOCKET")
    assert main(["bench", "check", "--bench", str(missing)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "127.0.0.1::1" in err[0]
    assert emu.is_safe()


def test_bench_file_checks_hardware_sections(tmp_path):
    raw = tomllib.loads(Path(load_bench().sim.curves).parent.joinpath(
        "bench-default.toml").read_text())
    raw["clock"] = {"smu_aperture": -1}
    with pytest.raises(Exception, match="clock.smu_aperture: must be > 0"):
        parse_bench(raw, "x.toml")
    raw["clock"] = {"aperture": 1e-4}
    with pytest.raises(Exception, match="clock.aperture: unknown key"):
        parse_bench(raw, "x.toml")


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    return write_optdigits(tmp_path_factory.mktemp("tiny"), 12, 10)


def test_training_smoke_through_the_drivers(emu, tiny_data, tmp_path, capsys):
    """One epoch of the single-layer network: every pulse lands inside its array."""
    path = bench_file(emu, tmp_path / "emu.toml")
    since = len(emu.pulses)
    rc = main(["train", "--bench", str(path), "--data", str(tiny_data), "--epochs", "1",
               "--network", "single", "--out", str(tmp_path / "run")])
    assert rc == 0
    assert "test accuracy" in capsys.readouterr().out
    assert emu.is_safe()
    hit = {d for p in emu.pulses[since:] for d in p.devices}
    assert hit, "the training pulsed"
    assert hit <= set(emu.model.bench.array_devices("single").ravel().tolist())


def test_preparation_finds_stuck_on_devices_through_the_drivers(tiny_data, tmp_path):
    bench = load_bench()
    cells = bench.array_devices("single")
    modes = np.zeros(bench.n_devices, dtype=np.int8)
    pick = np.random.default_rng(0).choice(cells[:, 0::2].size, 8, replace=False)
    stuck, partner = cells[:, 0::2].ravel()[pick], cells[:, 1::2].ravel()[pick]  # G+, its G-
    modes[stuck] = STUCK_ON
    with EmulatedBench(bench, seed=5, modes=modes) as emu:
        path = bench_file(emu, tmp_path / "emu.toml")
        assert main(["train", "--bench", str(path), "--data", str(tiny_data), "--epochs", "1",
                     "--network", "single", "--out", str(tmp_path / "run")]) == 0
        assert emu.is_safe()
        partners = emu.model.sim.g[partner]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["prepared"]["stuck_on"] == 8 and summary["prepared"]["cancelled"] == 8
    assert (partners > 200).all(), "partners programmed up against the stuck devices"


def start_training(path: Path, data: Path, out: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "hil.cli", "train", "--bench", str(path), "--data",
         str(data), "--epochs", "50", "--out", str(out)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        # a test run started in the background inherits SIGINT ignored: give Ctrl-C back
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupted_training_leaves_the_bench_safe(python_emu, tiny_data, tmp_path, sig):
    emu = python_emu
    path = bench_file(emu, tmp_path / "emu.toml")
    start = len(emu.pulses)
    proc = start_training(path, tiny_data, tmp_path / "run")
    deadline = time.monotonic() + 60
    while len(emu.pulses) == start and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert len(emu.pulses) > start, "training was pulsing when interrupted"
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err.decode()[-500:]
    assert emu.is_safe()


def test_killed_training_leaves_every_switch_open_within_the_watchdog_time(emu, tiny_data,
                                                                             tmp_path):
    """SIGKILL runs no cleanup: the instruments stay as they were. In a training the switches
    are closed while a table runs, so the training is killed the moment the MCU is running
    one of its tables (deterministic: every batch is a run); the run must end on its own
    and every switch be open within the watchdog time of the bench's clock, no run left
    behind. (The emulated run may lag the wall clock on a loaded machine; the bench's time
    base is the one the instruments live on. A host killed holding a single route, where the
    watchdog itself opens the switches, is in tests/test_firmware.py.)"""
    watchdog = 0.3
    path = bench_file(emu, tmp_path / "emu.toml", mcu_watchdog=watchdog)
    proc = start_training(path, tiny_data, tmp_path / "run")
    deadline, killed_at = time.monotonic() + 60, None
    try:
        while time.monotonic() < deadline and proc.poll() is None and killed_at is None:
            if emu.mcu.running:
                proc.kill()
                killed_at = emu.model.now  # bench time
            time.sleep(0.0005)
        assert killed_at is not None, "the training was killed while a table ran"
        proc.wait(10)
        wait_until = time.monotonic() + 30  # bounds the emulation catching up, not the MCU
        while (emu.mcu.running or not emu.model.all_open()) and time.monotonic() < wait_until:
            time.sleep(0.005)
    finally:
        proc.kill()
        proc.communicate(timeout=10)
    assert not emu.mcu.running, "no run left behind"
    assert emu.model.all_open(), "every switch open"
    assert emu.model.now - killed_at <= watchdog, "within the watchdog time of the kill"
    emu.generator.handle("OUTP OFF")  # what the killed host could not do
    emu.smu.handle(":OUTP OFF")


def test_repair_through_the_drivers_finds_devices_failed_after_training(tiny_data, tmp_path,
                                                                        capsys):
    """Devices fail in the emulated arrays after a short training; ``hil repair`` finds them
    through the drivers, records them, leaves a healthy device that moved in service and never
    pulses the failed ones while fine-tuning."""
    bench = load_bench()
    run_dir = tmp_path / "run"
    with EmulatedBench(bench, seed=5) as emu:
        path = bench_file(emu, tmp_path / "emu.toml")
        assert main(["train", "--bench", str(path), "--data", str(tiny_data), "--epochs", "1",
                     "--network", "single", "--out", str(run_dir)]) == 0
        cells = bench.array_devices("single").ravel()
        pick = np.random.default_rng(1).permutation(cells)
        failed, opened, drifted = pick[:6], pick[6:8], pick[8:10]
        sim = emu.model.sim
        with emu.model.lock:
            sim.g[drifted] = 40.0  # healthy devices that moved since training
            modes = sim.mode.copy()
            modes[failed], modes[opened] = STUCK_ON, OPEN
            sim.set_modes(modes)
        since = len(emu.pulses)
        capsys.readouterr()
        assert main(["repair", str(run_dir), "--epochs", "1",
                     "--registry", os.environ["HIL_REGISTRY"]]) == 0
        assert emu.is_safe()
        out = capsys.readouterr()
        tested = {d for p in emu.pulses[since:] if round(abs(p.voltage), 3) == 1.8
                  for d in p.devices}
        tuned = {d for p in emu.pulses[since:] if round(abs(p.voltage), 3) == 1.6
                 for d in p.devices}
    assert "found 2 open, 6 stuck-on" in out.err, out.err
    assert {*failed, *opened, *drifted} <= tested and len(tested) < 20, "a short test only"
    assert tuned and not tuned & {*failed, *opened}, "failed devices are never pulsed again"
    with Registry(os.environ["HIL_REGISTRY"]) as reg:
        flagged = reg.flagged(load_bench(path))
    assert sorted(flagged["device"]) == sorted([*failed, *opened])
    store = RunStore(run_dir, create=False)
    assert list(store.epochs()["epoch"]) == [1, 2], "the repair is the run's second epoch"
    repairs = store.read_table("repairs")
    assert repairs.loc[0, ["written_off", "cancelled", "epochs"]].tolist() == [8, 6, 1]
