"""A characterisation run is never overwritten, keeps every finished board, says whether it is
complete, and continues where it stopped (Ctrl-C, SIGTERM, SIGKILL) to the same replacement
list an uninterrupted run gives; the bench is left safe either way."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pandas as pd
import pytest

from hil.bench import load_bench
from hil.characterization import characterize as lib
from hil.cli import main
from hil.emulator import EmulatedBench
from hil.faults import read_fault_map
from hil.records import RunStore

FAULTS = "board,row,col,mode\n13,1,1,stuck_on\n14,8,4,stuck_off\n15,3,3,open\n15,11,*,open_bl\n"


@pytest.fixture()
def opts(tmp_path):
    faults = tmp_path / "faults.csv"
    faults.write_text(FAULTS)
    return ["--boards", "13-15", "--fault-map", str(faults),
            "--registry", str(tmp_path / "reg.sqlite")]


def _parts(run) -> int:
    db = sqlite3.connect(run / "run.sqlite")
    try:
        return db.execute("SELECT count(*) FROM parts").fetchone()[0]
    except sqlite3.OperationalError:
        return 0
    finally:
        db.close()


def test_an_existing_run_is_never_overwritten(tmp_path, opts, capsys, small_data):
    train = tmp_path / "train"
    assert main(["train", "--network", "single", "--epochs", "1", "--data", str(small_data),
                 "--out", str(train)]) == 0
    before = {p.name: p.stat().st_mtime_ns for p in train.iterdir()}
    capsys.readouterr()
    assert main(["characterize", *opts, "--out", str(train)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "never overwritten" in err[0]
    assert {p.name: p.stat().st_mtime_ns for p in train.iterdir()} == before
    assert not RunStore(train).has_table("devices")


def test_ctrl_c_leaves_an_incomplete_run_that_resumes_board_by_board(tmp_path, opts, capsys,
                                                                     monkeypatch):
    assert main(["characterize", *opts, "--out", str(tmp_path / "whole")]) == 0
    real, calls = lib.characterize, {"n": 0}

    def stopped_at_the_second_board(*a, **k):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(*a, **k)

    with monkeypatch.context() as m:
        m.setattr("hil.cli.characterize.characterize", stopped_at_the_second_board)
        assert main(["characterize", *opts, "--out", str(tmp_path / "cut")]) == 130
    cut = tmp_path / "cut"
    assert RunStore(cut).state == "interrupted" and _parts(cut) == 1
    assert not (cut / "replacements.csv").exists() and not (cut / "summary.json").exists()
    capsys.readouterr()
    assert main(["characterize", "--resume", str(cut)]) == 0
    assert "1 board(s) done, 2 to go" in capsys.readouterr().err
    assert RunStore(cut).state == "complete"
    for name in ("replacements.csv",):
        assert pd.read_csv(cut / name).equals(pd.read_csv(tmp_path / "whole" / name))
    whole, resumed = (json.loads((tmp_path / d / "summary.json").read_text())
                      for d in ("whole", "cut"))
    assert resumed["counts"] == whole["counts"]
    assert resumed["fabric_faults"] == whole["fabric_faults"]
    assert main(["characterize", "--resume", str(cut)]) == 2  # complete: nothing to resume


def _characterize(args):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "hil.cli", "characterize", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)


def _wait_for_a_board(run, proc) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if (run / "run.sqlite").exists() and _parts(run) >= 1:
            return
        time.sleep(0.05)
    raise AssertionError("no board finished in time")


def test_sigkill_keeps_the_boards_already_measured(tmp_path, opts):
    out = tmp_path / "killed"
    proc = _characterize([*opts, "--out", str(out)])
    _wait_for_a_board(out, proc)
    proc.kill()
    proc.wait()
    assert RunStore(out).state == "running" and not (out / "summary.json").exists()
    assert main(["characterize", "--resume", str(out)]) == 0
    assert pd.read_csv(out / "replacements.csv")["mode"].tolist() == [
        "stuck_on", "stuck_off", "open"]


def test_sigterm_on_the_emulated_bench_leaves_it_safe_and_the_run_resumable(tmp_path):
    faults = tmp_path / "faults.csv"
    faults.write_text("board,row,col,mode\n13,1,1,stuck_on\n14,9,3,open\n")
    bench = load_bench()
    with EmulatedBench(bench, seed=5, modes=read_fault_map(faults, bench)) as emu:
        path = tmp_path / "emu.toml"
        path.write_text(emu.bench_toml(settings={
            "characterize": {"pulses": 6, "reads": 2, "curve_devices": 0}}))
        out = tmp_path / "r"
        reg = ["--registry", str(tmp_path / "reg.sqlite")]
        proc = _characterize(["--bench", str(path), "--boards", "13-16", *reg, "--out", str(out)])
        _wait_for_a_board(out, proc)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 130 and b"Traceback" not in err
        assert err.decode().strip().splitlines()[-1] == "hil: interrupted"
        assert emu.is_safe()
        assert RunStore(out).state == "interrupted"
        assert main(["characterize", "--resume", str(out)]) == 0
        assert emu.is_safe()
    assert pd.read_csv(out / "replacements.csv").values.tolist() == [
        [13, 1, 1, 1, 1, "stuck_on"], [14, 22, 1, 9, 3, "open"]]
