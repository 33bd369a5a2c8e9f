"""Fault maps with open and short cells and open lines, and how the simulator shows them."""

from __future__ import annotations

import tomllib

import numpy as np
import pytest

from hil.backends.sim import SimBackend
from hil.bench import CELLS, DEFAULT_BENCH, data_file, load_bench, parse_bench
from hil.errors import BenchFileError, DataError
from hil.faults import (
    OK,
    OPEN,
    SHORT,
    STUCK_ON,
    LineFault,
    load_fault_map,
    read_fault_map,
)


@pytest.fixture(scope="module")
def bench():
    return load_bench()


def write(tmp_path, text):
    path = tmp_path / "faults.csv"
    path.write_text("board,row,col,mode\n" + text)
    return path


def test_cells_and_lines(bench, tmp_path):
    path = write(tmp_path, "2,1,1,open\n2,1,2,short\n3,4,*,open_bl\n3,*,10,open_sl\n"
                           "3,4,5,stuck_on\n")
    faults = load_fault_map(path, bench)
    assert faults.lines == (LineFault(3, "bl", 4), LineFault(3, "sl", 10))
    assert faults.cells[CELLS] == OPEN and faults.cells[CELLS + 1] == SHORT
    modes = read_fault_map(path, bench)
    row4 = 2 * CELLS + 30 + np.arange(10)
    col10 = 2 * CELLS + np.arange(12) * 10 + 9
    assert (modes[row4] == OPEN).all() and (modes[col10] == OPEN).all()
    assert np.count_nonzero(modes) == 2 + 10 + 12 - 1
    # a new chip mends a device, not a line
    healed = faults.modes(bench, replaced=np.array([CELLS, 2 * CELLS + 34]))
    assert healed[CELLS] == OK and healed[2 * CELLS + 34] == OPEN


@pytest.mark.parametrize("line, problem", [
    ("3,4,5,open_bl", "needs col '*'"),
    ("3,*,*,open_sl", "needs an integer col"),
    ("3,13,*,open_bl", "row 13 is off"),
    ("3,*,4,flaky", "open_bl, open_sl"),
    ("77,*,4,open_sl", "board 77 is not on bench"),
    ("3,*,4,open", "row,col must be integers"),
])
def test_bad_fault_lines(bench, tmp_path, line, problem):
    with pytest.raises(DataError, match=problem):
        read_fault_map(write(tmp_path, line + "\n"), bench)


def test_sim_open_and_short_cells(bench):
    modes = np.zeros(bench.n_devices, dtype=np.int8)
    modes[[0, 1]] = OPEN, SHORT
    modes[2] = STUCK_ON
    sim = SimBackend(bench, seed=0, modes=modes)
    before = sim.read(np.arange(4))
    sim.pulse(np.arange(4), -1, 50)
    after = sim.read(np.arange(4))
    assert before[0] == 0 and after[0] == 0
    rs = bench.sim.series_resistance
    assert before[1] > 0.9e6 / rs and after[1] > 0.9e6 / rs  # limited by the selector alone
    assert after[2] > 250 and after[3] < before[3]


def test_reads_stop_at_current_compliance():
    raw = tomllib.loads(data_file(DEFAULT_BENCH).read_text())
    raw["limits"]["current_compliance"] = 20e-6  # 20 uA at 0.2 V: 100 uS
    bench = parse_bench(raw, "test.toml", base=data_file(DEFAULT_BENCH).parent)
    modes = np.zeros(bench.n_devices, dtype=np.int8)
    modes[:2] = STUCK_ON, SHORT
    g = SimBackend(bench, seed=0, modes=modes).read(np.arange(3))
    np.testing.assert_allclose(g[:2], 100.0)
    assert g[2] < 100


def test_mac_sees_no_current_from_an_open_line(bench, tmp_path):
    modes = read_fault_map(write(tmp_path, "13,2,*,open_bl\n"), bench)
    sim = SimBackend(bench, seed=0, modes=modes)
    inputs = np.zeros((2, 65))
    inputs[0, 1] = 1  # row 2 of the hidden array: board 13's row 2 is open, board 14-16's not
    inputs[1, 2] = 1
    out = sim.mac("hidden", inputs)
    assert (out[0, :10] == 0).all() and (out[0, 10:] > 0).all() and (out[1] > 0).all()


def test_characterize_section_is_checked():
    from hil.characterization.classify import settings

    raw = tomllib.loads(data_file(DEFAULT_BENCH).read_text())
    base = data_file(DEFAULT_BENCH).parent
    raw["characterize"] = {"pulses": 30, "stuck_on_uS": 80}
    s = settings(parse_bench(raw, "b.toml", base=base))
    assert s.pulses == 30 and s.stuck_on_uS == 80.0 and s.reads == 3
    assert s.compliance_uS == pytest.approx(5000.0)
    for bad, problem in (({"pulse": 3}, "unknown key"), ({"pulses": 0}, "must be > 0"),
                         ({"form_stop": 3.0}, "exceeds limits.max_pulse_voltage"),
                         ({"reads": 1}, "must be >= 2")):
        raw["characterize"] = bad
        with pytest.raises(BenchFileError, match=problem):
            settings(parse_bench(raw, "b.toml", base=base))
