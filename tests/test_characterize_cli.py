"""``hil characterize`` and ``hil devices`` end to end on the simulated bench."""

from __future__ import annotations

import json
import sqlite3

import pandas as pd
import pytest

from hil.bench import load_bench
from hil.cli import main
from hil.curves import load_curves
from hil.emulator import EmulatedBench
from hil.faults import read_fault_map

FAULTS = """board,row,col,mode
35,1,1,stuck_on
36,8,4,stuck_on
37,2,9,stuck_off
38,12,10,stuck_off
39,3,3,open
39,11,5,open
40,6,2,stuck_on
40,6,*,open_bl
"""
# what the person with the tweezers must get: board, chip, pad, row, col, mode (board-map.csv);
# board 40's stuck-on device sits on the open bit line and cannot be judged
EXPECTED = [
    [35, 1, 1, 1, 1, "stuck_on"],
    [36, 17, 3, 8, 4, "stuck_on"],
    [37, 5, 4, 2, 9, "stuck_off"],
    [38, 30, 3, 12, 10, "stuck_off"],
    [39, 7, 1, 3, 3, "open"],
    [39, 28, 1, 11, 5, "open"],
]


@pytest.fixture()
def scenario(tmp_path):
    faults = tmp_path / "faults.csv"
    faults.write_text(FAULTS)
    return tmp_path, ["--fault-map", str(faults), "--registry", str(tmp_path / "reg.sqlite")]


def test_replacement_list_fabric_fault_and_re_characterisation(scenario, capsys):
    tmp, opts = scenario
    run1 = tmp / "run1"
    assert main(["characterize", "--boards", "35-40", *opts, "--out", str(run1)]) == 0
    printed = capsys.readouterr().out
    assert "board  chip  pad  row  col" in printed and "board 40 BL 6 open" in printed
    assert "predicted bench time" in printed

    replacements = pd.read_csv(run1 / "replacements.csv")
    assert list(replacements.columns) == ["board", "chip", "pad", "row", "col", "mode"]
    assert replacements.values.tolist() == EXPECTED

    summary = json.loads((run1 / "summary.json").read_text())
    assert summary["boards"] == [35, 36, 37, 38, 39, 40]
    assert summary["devices"] == 720
    assert summary["fabric_faults"] == [{"board": 40, "line": "bl", "index": 6}]
    assert summary["counts"]["fabric"] == 10 and summary["counts"]["stuck_on"] == 2
    assert summary["counts"]["ok"] == 720 - 10 - 6
    assert summary["predicted_bench_seconds"] > 0

    reads = pd.read_parquet(run1 / "reads.parquet")
    assert len(reads) == len(pd.read_csv(run1 / "reads.csv"))
    assert {"fabric", "read_map", "response_set", "response_reset", "curve_set"} <= set(
        reads["sequence"])
    with sqlite3.connect(run1 / "run.sqlite") as db:
        assert db.execute("SELECT count(*) FROM reads").fetchone()[0] == len(reads)
        assert db.execute("SELECT count(*) FROM replacements").fetchone()[0] == 6
    assert len(load_curves(run1 / "curves.csv").ids) == 10
    for name in ["conductance-cdf.png", "response-curves.png",
                 *[f"maps/board-{b}.png" for b in range(35, 41)]]:
        assert (run1 / name).stat().st_size > 1000, name

    # the swaps, as the operator records them
    for board, chip in {(b, c) for b, c, *_ in EXPECTED}:
        assert main(["devices", "replace", "--board", str(board), "--chip", str(chip),
                     "--registry", opts[-1]]) == 0
    capsys.readouterr()
    assert main(["devices", "list", "--mode", "replaced", "--registry", opts[-1]]) == 0
    assert capsys.readouterr().out.count("replaced") == 4 * len(EXPECTED) + 1  # + counts line

    run2 = tmp / "run2"
    assert main(["characterize", "--replaced", *opts, "--out", str(run2)]) == 0
    summary = json.loads((run2 / "summary.json").read_text())
    assert summary["devices"] == 4 * len(EXPECTED)
    assert summary["counts"]["ok"] == 4 * len(EXPECTED)
    assert pd.read_csv(run2 / "replacements.csv").empty
    capsys.readouterr()
    assert main(["devices", "list", "--board", "35", "--registry", opts[-1]]) == 0
    census = capsys.readouterr().out
    assert "stuck_on" not in census and "replaced" not in census.splitlines()[1]
    assert main(["devices", "history", "--board", "35", "--chip", "1",
                 "--registry", opts[-1]]) == 0
    history = capsys.readouterr().out.splitlines()
    pad1 = [line.split() for line in history[1:] if line.split()[2] == "1"]
    assert [line[7] for line in pad1] == ["stuck_on", "replaced", "ok"]


@pytest.mark.parametrize("argv, problem", [
    (["--boards", "41"], "board 41 is not on bench"),
    (["--boards", "3-x"], "expected numbers and ranges"),
    (["--cells", "13:1"], "row 13 outside 1-12"),
    (["--cells", "1:1:1"], "expected ROW:COL items"),
    (["--replaced"], "no replaced cells waiting"),
    (["--failures", "2"], "--failures '2'"),
    (["--seed", "-1"], "--seed -1"),
])
def test_operator_errors_are_one_line(scenario, capsys, argv, problem):
    tmp, opts = scenario
    assert main(["characterize", *argv, "--registry", opts[-1], "--out", str(tmp / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert problem in err and len(err.splitlines()) == 1
    assert not (tmp / "r").exists(), "a refused start leaves no run behind"


def test_cells_selection(scenario):
    tmp, opts = scenario
    out = tmp / "cells"
    assert main(["characterize", "--boards", "39", "--cells", "1-2:1-10,11:5", *opts,
                 "--out", str(out)]) == 0
    devices = pd.read_csv(out / "devices.csv")
    assert len(devices) == 21
    assert devices.loc[devices["mode"] != "ok", ["row", "col", "mode"]].values.tolist() == [
        [11, 5, "open"]]


def test_characterize_through_the_drivers_on_the_emulated_bench(tmp_path, capsys):
    """The same sequence over the instrument backend: drivers, loopback, emulated instruments."""
    faults = tmp_path / "faults.csv"
    faults.write_text("board,row,col,mode\n13,1,1,stuck_on\n13,9,3,open\n13,11,*,open_bl\n")
    bench = load_bench()
    with EmulatedBench(bench, seed=5, modes=read_fault_map(faults, bench)) as emu:
        path = tmp_path / "emu.toml"
        path.write_text(emu.bench_toml(settings={
            "characterize": {"pulses": 6, "reads": 2, "curve_devices": 0}}))
        assert main(["characterize", "--bench", str(path), "--boards", "13",
                     "--registry", str(tmp_path / "reg.sqlite"), "--out", str(tmp_path / "r")]) == 0
        assert emu.is_safe()
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["fabric_faults"] == [{"board": 13, "line": "bl", "index": 11}]
    assert pd.read_csv(tmp_path / "r" / "replacements.csv").values.tolist() == [
        [13, 1, 1, 1, 1, "stuck_on"], [13, 22, 1, 9, 3, "open"]]


def test_a_board_with_no_current_is_one_fault_not_22_open_lines(tmp_path, capsys):
    faults = tmp_path / "faults.csv"
    faults.write_text("board,row,col,mode\n" + "".join(f"12,{r},*,open_bl\n" for r in range(1, 13))
                      + "13,4,*,open_bl\n")
    assert main(["characterize", "--boards", "12-13", "--fault-map", str(faults),
                 "--registry", str(tmp_path / "reg.sqlite"), "--out", str(tmp_path / "r")]) == 0
    printed = capsys.readouterr().out
    assert "board 12: no line conducts" in printed and "board 12 BL" not in printed
    assert "board 13 BL 4 open" in printed
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert len([f for f in summary["fabric_faults"] if f["board"] == 12]) == 22
