"""Characterisation sequences run as plain generators on any backend."""

from __future__ import annotations

import numpy as np
import pytest

from hil.backends.base import RESET, SET
from hil.backends.sim import SimBackend
from hil.bench import load_bench
from hil.faults import SHORT, STUCK_OFF, STUCK_ON
from sequences.basic import Pulse, Read, run
from sequences.characterize import forming, pulse_response, read_map, response_curves


@pytest.fixture(scope="module")
def bench():
    return load_bench()


def test_forming_stops_each_device_at_its_threshold(bench):
    modes = np.zeros(bench.n_devices, dtype=np.int8)
    modes[[0, 1, 2]] = STUCK_OFF, STUCK_ON, SHORT
    sim = SimBackend(bench, seed=0, modes=modes)
    devices = np.arange(40)
    ops = []
    formed_at, g = run(
        forming(devices, start=1.0, step=0.1, stop=2.4, threshold_uS=10.0, limit_uS=1000.0),
        sim, lambda op, answer: ops.append(op))
    pulses = [op for op in ops if isinstance(op, Pulse)]
    voltages = [op.voltage for op in pulses]
    assert voltages == sorted(voltages) and voltages[0] == pytest.approx(1.0)
    assert max(voltages) <= 2.4 + 1e-9
    assert all(op.polarity == SET for op in pulses)
    pulsed = set(np.concatenate([op.devices for op in pulses]).tolist())
    assert not {1, 2} & pulsed  # already conducting (stuck-on) or at the limit: never ramped
    assert np.isnan(formed_at[0]) and g[0] < 10  # stuck-off rides the whole ramp, never forms
    ok = np.arange(3, 40)
    assert np.isfinite(formed_at[ok]).all() and (g[ok] >= 10).all()
    # each device got exactly one pulse per step until it formed
    steps = np.round((formed_at[ok] - 1.0) / 0.1).astype(int) + 1
    counts = np.array([sum(d in op.devices for op in pulses) for d in ok])
    assert (counts == steps).all()


def test_pulse_response_and_read_map(bench):
    sim = SimBackend(bench, seed=1)
    devices = np.arange(12)
    ops = []
    reads = run(read_map(devices, 3), sim, lambda op, a: ops.append(op))
    assert reads.shape == (3, 12) and [op.step for op in ops] == [0, 1, 2]
    up, down = run(pulse_response(devices, 8), sim)
    assert up.shape == down.shape == (8, 12)
    assert (up[-1] > up[0]).all() and (down[-1] < down[0]).all()
    assert sim.counts.set_pulses == sim.counts.reset_pulses == 8 * 12


def test_response_curves_start_at_the_floor(bench):
    sim = SimBackend(bench, seed=2)
    ops = []
    up, down = run(response_curves(np.arange(3), 50), sim, lambda op, a: ops.append(op))
    assert isinstance(ops[0], Pulse) and ops[0].polarity == RESET and ops[0].count == 50
    assert isinstance(ops[1], Read) and ops[1].sequence == "curve_set"
    assert up.shape == down.shape == (51, 3)
    np.testing.assert_array_equal(down[0], up[-1])
