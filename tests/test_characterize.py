"""Classification of every mode, the fabric self-test, and the curve round trip."""

from __future__ import annotations

import numpy as np
import pytest

from hil.backends.base import Backend
from hil.backends.sim import SimBackend
from hil.bench import CELLS, load_bench
from hil.characterization.characterize import characterize
from hil.characterization.classify import Settings, classify, open_lines, settings
from hil.faults import MODE_NAMES, OPEN, SHORT, STUCK_OFF, STUCK_ON, FaultMap, LineFault

TWO = np.arange(12 * CELLS, 40 * CELLS)  # boards 13-40: the two-layer network


@pytest.fixture(scope="module")
def bench():
    return load_bench()


@pytest.fixture(scope="module")
def s(bench) -> Settings:
    return settings(bench)


def board(bench, board_id: int) -> np.ndarray:
    return bench.board_pos(board_id) * CELLS + np.arange(CELLS)


def cell(bench, b: int, r: int, c: int) -> int:
    return int(bench.devices(np.array([b]), np.array([r]), np.array([c]))[0])


def modes_of(result) -> dict[int, str]:
    t = result.table
    return dict(zip(t["device"].tolist(), t["mode"].tolist(), strict=True))


@pytest.mark.parametrize("code", [STUCK_ON, STUCK_OFF, OPEN, SHORT])
def test_each_device_fault_is_classified(bench, s, code):
    modes = np.zeros(bench.n_devices, dtype=np.int8)
    bad = [cell(bench, 13, 1, 1), cell(bench, 13, 7, 4), cell(bench, 13, 12, 10)]
    modes[bad] = code
    result = characterize(SimBackend(bench, seed=5, modes=modes), board(bench, 13), s)
    got = modes_of(result)
    assert {d for d, m in got.items() if m != "ok"} == set(bad)
    assert {got[d] for d in bad} == {MODE_NAMES[code]}
    assert result.fabric == []
    assert set(result.failed["mode"]) == {MODE_NAMES[code]}


def test_working_devices_at_their_ceiling_are_not_stuck(bench, s):
    """A device trained high barely rises under SET; its RESET response must still count."""
    sim = SimBackend(bench, seed=1)
    devices = np.concatenate([board(bench, 13), board(bench, 14)])
    sim.pulse(devices, 1, 400)
    result = characterize(sim, devices, s)
    assert (result.table["mode"] == "ok").all()


class Flaky(Backend):
    """A bench where chosen devices misbehave in ways the simulator does not model."""

    def __init__(self, inner: SimBackend, noisy: np.ndarray, jumpy: np.ndarray) -> None:
        super().__init__(inner.bench)
        self.inner, self.noisy, self.jumpy = inner, noisy, jumpy
        self.rng = np.random.default_rng(0)
        self.reads = 0

    def pulse(self, devices, polarity, count=1, *, voltage=None, width=None):
        self.inner.pulse(devices, polarity, count, voltage=voltage, width=width)

    def read(self, devices):
        g = self.inner.read(devices)
        self.reads += 1
        noisy = np.isin(devices, self.noisy)
        g[noisy] *= 1 + 0.3 * self.rng.standard_normal(int(noisy.sum()))
        if self.reads % 7 == 0:  # telegraph noise: now and then a read drops by half
            g[np.isin(devices, self.jumpy)] *= 0.5
        return g

    def mac(self, array, inputs):
        return self.inner.mac(array, inputs)


def test_unstable_devices(bench, s):
    noisy = np.array([cell(bench, 13, 2, 2), cell(bench, 13, 9, 9)])
    jumpy = np.array([cell(bench, 13, 4, 5)])
    flaky = Flaky(SimBackend(bench, seed=2), noisy, jumpy)
    result = characterize(flaky, board(bench, 13), s)
    t = result.table.set_index("device")
    assert set(t.index[t["mode"] != "ok"]) == {*noisy, *jumpy}
    assert (t.loc[[*noisy, *jumpy], "mode"] == "unstable").all()
    assert t.loc[jumpy[0], "rule"] == "non-monotone"


def test_classify_rules_on_synthetic_traces(s):
    """Compliance hit, no current and the thresholds, independent of any backend."""
    n = 5
    flat = np.full((3, n), 2.0)
    rise = np.linspace(10, 100, s.pulses)[:, None] * np.ones(n)
    fall = np.linspace(90, 20, s.pulses)[:, None] * np.ones(n)
    read_map, set_t, reset_t = flat.copy(), rise.copy(), fall.copy()
    set_t[4:, 0] = s.compliance_uS  # device 0 reaches compliance
    read_map[:, 1], set_t[:, 1], reset_t[:, 1] = 0.0, 0.0, 0.0  # device 1: no current
    read_map[:, 2], set_t[:, 2], reset_t[:, 2] = 300.0, 301.0, 300.5  # device 2: stuck high
    read_map[:, 3], set_t[:, 3], reset_t[:, 3] = 1.0, 1.01, 1.0  # device 3: stuck low
    line = np.array([False, False, False, False, True])
    t = classify(s, read_map, set_t, reset_t, line)
    assert t["mode"].tolist() == ["short", "open", "stuck_on", "stuck_off", "fabric"]
    assert np.isnan(t.loc[4, "g_start_uS"])


def test_open_lines_rule():
    current = np.ones((2, 12, 10))
    current[0, 3, :] = 0  # an open bit line
    current[1, :, 6] = 0  # an open source line
    current[1, 5, :9] = 0  # nine dead cells on a row leave it alive
    bl, sl = open_lines(current, 0.02)
    assert np.flatnonzero(bl[0]).tolist() == [3] and not bl[1].any()
    assert np.flatnonzero(sl[1]).tolist() == [6] and not sl[0].any()


def test_fabric_faults_are_lines_not_devices(bench, s):
    lines = (
        LineFault(20, "bl", 5),  # inside the hidden array: found by MAC reads
        LineFault(40, "bl", 12),  # beyond the output array's last row: found by single reads
        LineFault(23, "sl", 7),
    )
    cells = np.zeros(bench.n_devices, dtype=np.int8)
    cells[cell(bench, 20, 5, 3)] = STUCK_ON  # hidden behind the open line
    cells[board(bench, 21)[20:29]] = OPEN  # nine of ten devices of row 3 open: not a line fault
    modes = FaultMap(cells, lines).modes(bench)
    result = characterize(SimBackend(bench, seed=3, modes=modes), TWO, s)
    assert result.fabric == list(lines[:1] + lines[2:] + lines[1:2])  # in board order
    behind = np.concatenate([f.devices(bench) for f in lines])
    t = result.table.set_index("device")
    assert (t.loc[behind, "mode"] == "fabric").all()
    assert (t.loc[behind, "pulses"] == 0).all()  # nobody pulses a dead line
    assert set(t.index[t["mode"] == "open"]) == set(board(bench, 21)[20:29])
    assert len(result.failed) == 9


def test_every_fault_found_on_28_boards(bench, s):
    """Precision and recall 100 % over the two-layer network's boards, all modes at once."""
    rng = np.random.default_rng(11)
    cells = np.zeros(bench.n_devices, dtype=np.int8)
    picked = rng.choice(TWO, size=200, replace=False)
    cells[picked] = rng.choice([STUCK_ON, STUCK_OFF, OPEN, SHORT], size=picked.size)
    lines = (LineFault(15, "sl", 2), LineFault(31, "bl", 9))
    modes = FaultMap(cells, lines).modes(bench)
    result = characterize(SimBackend(bench, seed=4, modes=modes), TWO, s)
    dark = np.zeros(bench.n_devices, dtype=bool)
    for f in lines:
        dark[f.devices(bench)] = True
    truth = np.where(dark[TWO], "fabric", [MODE_NAMES[m] for m in cells[TWO]])
    assert result.table["mode"].tolist() == truth.tolist()
    assert result.fabric == list(lines)


def test_curve_round_trip_keeps_the_statistics(bench, s):
    """characterise -> curves -> simulator -> characterise: the same device population."""
    first = characterize(SimBackend(bench, seed=0), TWO, s)
    assert first.curves is not None and len(first.curves.ids) == s.curve_devices
    again = characterize(SimBackend(bench, seed=7, curves=first.curves), TWO, s)
    assert (again.table["mode"] == "ok").all()
    for col in ("g_start_uS", "g_top_uS", "g_bottom_uS"):
        a = np.percentile(first.table[col], [10, 50, 90])
        b = np.percentile(again.table[col], [10, 50, 90])
        np.testing.assert_allclose(b, a, rtol=0.08, err_msg=col)
    # the curves span the device window the simulator needs
    assert max(c[-1] for c in first.curves.set) > 300
    assert min(c[-1] for c in first.curves.reset) < 5


def test_forming_before_judging(bench, s):
    modes = np.zeros(bench.n_devices, dtype=np.int8)
    modes[cell(bench, 13, 6, 6)] = STUCK_OFF
    sim = SimBackend(bench, seed=6, modes=modes)
    result = characterize(sim, board(bench, 13), s, form=True)
    formed = result.reads[(result.reads["sequence"] == "form")]
    assert formed["step"].max() >= 1
    last = formed.sort_values("step").groupby(["row", "col"])["conductance_uS"].last()
    assert (last.drop(index=(6, 6)) >= s.form_threshold_uS).all()
    assert last[(6, 6)] < s.form_threshold_uS
    assert set(result.failed["mode"]) == {"stuck_off"} and len(result.failed) == 1
    t = result.table.set_index("device")
    assert t.loc[cell(bench, 13, 6, 6), "pulses"] > t["pulses"].min()  # rode the whole ramp
