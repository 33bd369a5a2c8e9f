"""Resume on instruments reconciles with the bench: pulses fired after the checkpoint are
counted, in-flight batches named, the arrays re-read and adopted, and a different bench refused
unless accepted."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from drivers.errors import InstrumentTimeoutError
from hil.backends.base import SET
from hil.backends.sequencer import Sequencer
from hil.backends.sim import SimBackend
from hil.bench import CELLS, load_bench
from hil.cli import main
from hil.emulator import EmulatedBench
from hil.records import RunStore
from hil.training.journal import JournaledBackend
from hil.watch.app import create_app
from hil.watch.view import duration
from tests.conftest import write_optdigits

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return write_optdigits(tmp_path_factory.mktemp("tiny"), 12, 10)


def _delivered(emu: EmulatedBench, since: int = 0) -> int:
    """Pulses the cells received, counted per device as the record counts them."""
    return sum(len(p.devices) for p in emu.pulses[since:])


def _kill(path, tiny, out, preparing: bool = False) -> None:
    """SIGKILL a training on the emulated bench once pulses were fired after a checkpoint or,
    ``preparing``, while it prepares the arrays (pulses fired, no checkpoint yet)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "hil.cli", "train", "--bench", str(path), "--data", str(tiny),
         "--network", "single", "--epochs", "4", "--checkpoint-every", "4",
         "--out", str(out)], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
        if (out / "run.sqlite").exists():
            db = sqlite3.connect(out / "run.sqlite")
            try:
                row = db.execute("SELECT images FROM checkpoint").fetchone()
                journal = db.execute("SELECT count(*) FROM journal WHERE state = 'applied'"
                                     ).fetchone()[0]
            except sqlite3.OperationalError:
                row, journal = None, 0
            finally:
                db.close()
            if journal > 0 and (row is None if preparing else row and row[0] > 0):
                break
    assert proc.poll() is None, proc.communicate()[1].decode()[-800:]
    proc.kill()
    proc.wait()


@pytest.fixture
def killed(tiny, tmp_path, capsys):
    """An emulated bench and a run on it killed (SIGKILL) after pulses that followed a
    checkpoint; yields (bench, run directory)."""
    with EmulatedBench(load_bench(), seed=2) as emu:
        path = tmp_path / "emu.toml"
        path.write_text(emu.bench_toml())
        out = tmp_path / "run"
        _kill(path, tiny, out)
        capsys.readouterr()
        yield emu, out


def test_a_killed_run_resumes_on_the_bench_and_counts_every_pulse(killed, capsys):
    emu, out = killed
    emu.model.open_all()  # what power-on of a killed host's bench does
    for inst in (emu.generator, emu.smu):
        inst.reset()
    assert main(["train", "--resume", str(out)]) == 0
    err = capsys.readouterr().err
    found = re.search(r"re-read 1300 devices: (\d+) differ.*?fired after the checkpoint", err)
    assert found, err
    flight = re.search(r"in flight at the stop \((\d+) pulses", err)
    in_flight = int(flight[1]) if flight else 0
    assert emu.is_safe()
    delivered = _delivered(emu)
    summary = json.loads((out / "summary.json").read_text())
    recorded = summary["pulses"]["set"] + summary["pulses"]["reset"]
    assert recorded <= delivered <= recorded + in_flight


def test_a_run_killed_while_preparing_starts_again_and_counts_the_pulses_it_fired(
        tiny, tmp_path, capsys):
    bench = load_bench()
    with EmulatedBench(bench, seed=2) as emu:
        # every device well above the pre-set level: preparation has RESETs to fire
        emu.model.sim.pulse(np.arange(len(bench.board_ids) * CELLS), SET, 10)
        path = tmp_path / "emu.toml"
        path.write_text(emu.bench_toml())
        out = tmp_path / "run"
        _kill(path, tiny, out, preparing=True)
        capsys.readouterr()
        assert main(["train", "--resume", str(out)]) == 0
        err = capsys.readouterr().err
        assert "stopped before its first checkpoint; starting it again" in err
        fired = re.search(r"pulse batches \((\d+) pulses\) fired after the checkpoint", err)
        assert fired and int(fired[1]) > 0, err
        flight = re.search(r"in flight at the stop \((\d+) pulses", err)
        delivered = _delivered(emu)
    summary = json.loads((out / "summary.json").read_text())
    recorded = summary["pulses"]["set"] + summary["pulses"]["reset"]
    assert recorded <= delivered <= recorded + (int(flight[1]) if flight else 0)


def test_a_different_bench_is_refused_unless_accepted(killed, capsys):
    emu, out = killed
    emu.smu.idn = "KEITHLEY INSTRUMENTS,MODEL 2450,04999999,1.7.12b"  # another unit
    assert main(["train", "--resume", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "not the bench this run started on" in err[-1] and "04999999" in err[-1]
    assert emu.is_safe()
    assert main(["train", "--resume", str(out), "--accept-bench"]) == 0
    assert "continuing on another bench" in capsys.readouterr().err


def _fault_when_pulsing(emu, fault) -> threading.Thread:
    def act():
        deadline = time.monotonic() + 120
        while len(emu.pulses) < 50 and time.monotonic() < deadline:
            time.sleep(0.02)
        fault()

    thread = threading.Thread(target=act, daemon=True)
    thread.start()
    return thread


def _bench_file(emu, tmp_path, wait: float) -> Path:
    """The emulated bench's file with ``wait`` s of recovery. The timeout stays at 2 s: the
    emulated instruments share this process with the trainer, and on a loaded machine a shorter
    one can expire spontaneously outside any pause (opening the bench, its final safe state),
    which ends a run by design."""
    path = tmp_path / "emu.toml"
    path.write_text(emu.bench_toml(settings={"instruments": {"timeout": 2.0},
                                             "recovery": {"wait": wait}}))
    return path


@pytest.mark.parametrize("fault", ["restart_smu", "restart_mcu", "restart_firmware_mcu",
                                   "stall_generator"])
def test_a_lost_or_silent_instrument_pauses_the_run_which_then_continues(tiny, tmp_path, capsys,
                                                                        request, fault):
    bench = load_bench()
    firmware = request.getfixturevalue("firmware_host") if "firmware" in fault else None
    with EmulatedBench(bench, seed=2, mcu_firmware=firmware) as emu:
        path = _bench_file(emu, tmp_path, 30)
        action = {"restart_smu": lambda: emu.power_cycle("smu", 2.0),
                  "restart_mcu": lambda: emu.power_cycle("mcu", 2.0),
                  "restart_firmware_mcu": lambda: emu.power_cycle("mcu", 2.0),
                  "stall_generator": lambda: emu.stall_for("generator", 4.0)}[fault]
        thread = _fault_when_pulsing(emu, action)
        rc = main(["train", "--bench", str(path), "--data", str(tiny), "--network", "single",
                   "--epochs", "3", "--out", str(tmp_path / "run")])
        thread.join(30)
        err = capsys.readouterr().err
        assert rc == 0, err[-1500:]
        assert "pausing the run" in err and "answer again" in err and "re-read 1300" in err
        assert emu.is_safe()
        delivered = _delivered(emu)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["pulses"]["set"] + summary["pulses"]["reset"] <= delivered
    assert summary["bench_seconds"] > 0  # the bench clock went on through the pause
    view = create_app(tmp_path / "run").test_client().get("/view.json").get_json()
    assert f"bench time {duration(summary['bench_seconds'])}" in view["progress"]["lines"]


def test_instruments_that_stay_away_stop_the_run_resumably(tiny, tmp_path, capsys):
    bench = load_bench()
    with EmulatedBench(bench, seed=2) as emu:
        path = _bench_file(emu, tmp_path, 2)
        thread = _fault_when_pulsing(emu, lambda: emu.power_off("smu"))
        rc = main(["train", "--bench", str(path), "--data", str(tiny), "--network", "single",
                   "--epochs", "3", "--out", str(tmp_path / "run")])
        thread.join(30)
        err = capsys.readouterr().err.strip().splitlines()
        assert rc == 2 and "did not answer again within 2 s" in err[-1], err[-3:]
        emu.power_on("smu")
        assert main(["train", "--resume", str(tmp_path / "run")]) == 0
        assert emu.is_safe()


def test_an_instrument_swapped_during_a_pause_stops_the_run_resumably(tiny, tmp_path, capsys):
    """Another SMU answering after the pause is not the bench the host's picture belongs to:
    the run stops, and --resume decides (refused, or continued with --accept-bench)."""
    with EmulatedBench(load_bench(), seed=2) as emu:
        path = _bench_file(emu, tmp_path, 30)

        def swap() -> None:
            emu.power_off("smu")
            emu.smu.idn = "KEITHLEY INSTRUMENTS,MODEL 2450,04999999,1.7.12b"  # another unit
            emu.power_on("smu")

        thread = _fault_when_pulsing(emu, swap)
        rc = main(["train", "--bench", str(path), "--data", str(tiny), "--network", "single",
                   "--epochs", "3", "--out", str(tmp_path / "run")])
        thread.join(30)
        err = capsys.readouterr().err.strip().splitlines()
        assert rc == 2 and "not those the run was using" in err[-1] and "04999999" in err[-1]
        assert emu.is_safe()
        assert main(["train", "--resume", str(tmp_path / "run")]) == 2
        assert main(["train", "--resume", str(tmp_path / "run"), "--accept-bench"]) == 0


def test_a_pause_hands_the_counts_and_the_bench_clock_to_the_reopened_instruments(tmp_path):
    """Without the hand-over the reopened sequencer starts its clock and counts at zero: the
    bench-time ETA and the record would forget everything before the pause."""
    bench = load_bench()
    opened: list[Sequencer] = []

    def reopen() -> Sequencer:
        opened.append(Sequencer(SimBackend(bench, seed=0)))
        return opened[-1]

    store = RunStore.create(tmp_path / "run", kind="train")
    journaled = JournaledBackend(reopen(), store, reopen=reopen, say=lambda msg: None, poll=0)
    journaled.pulse(np.arange(10), SET, 2)
    journaled.read(np.arange(10))
    clock, counts = journaled.bench_seconds, journaled.counts.as_dict()
    first = opened[0].inner
    calls = iter([InstrumentTimeoutError("SMU", "no reply")])

    def fail_once(devices):
        exc = next(calls, None)
        if exc is not None:
            raise exc
        return SimBackend.read(first, devices)

    first.read = fail_once
    assert journaled.read(np.arange(4)).shape == (4,)  # paused, reopened, asked again
    assert journaled.inner is opened[1] and journaled.pauses == 1
    assert journaled.counts.set_pulses == counts["set_pulses"] == 20
    assert journaled.counts.device_reads == counts["device_reads"] + 4
    assert journaled.bench_seconds > clock > 0
