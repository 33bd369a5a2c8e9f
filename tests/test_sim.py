from __future__ import annotations

from dataclasses import replace

import numpy as np

from hil.backends.base import RESET, SET
from hil.backends.sim import SimBackend
from hil.bench import load_bench
from hil.curves import load_curves, synthesize_default_curves
from hil.faults import STUCK_OFF, STUCK_ON, FailureRate

BENCH = load_bench().for_network("single", [(65, 20)])


def _devices(n=200):
    return BENCH.array_devices("single").ravel()[:n]


def test_fresh_devices_are_low_and_pulses_stay_within_curve_bounds():
    be = SimBackend(BENCH, seed=1)
    assert be.g.max() < 5.0 and abs(be.g.mean() - 1.9) < 0.2
    d = _devices()
    be.pulse(d, SET, 400)
    top = max(s.max() for s in be.curves.set)
    assert be.g[d].max() <= top and be.g[d].min() > 250
    be.pulse(d, RESET, 2000)
    assert be.g[d].max() < 5.0 and be.g[d].min() > 0


def test_response_is_monotone_and_state_dependent():
    quiet = replace(BENCH, sim=replace(BENCH.sim, device_spread=0.0, cycle_noise=0.0))
    be = SimBackend(quiet, seed=2)
    d = _devices()
    trace = [be.g[d].copy()]
    for _ in range(150):
        be.pulse(d, SET)
        trace.append(be.g[d].copy())
    trace = np.array(trace)
    assert (np.diff(trace, axis=0) >= 0).all()
    steps = np.diff(trace, axis=0)
    low = steps[(trace[:-1] > 5) & (trace[:-1] < 30)].mean()
    high = steps[trace[:-1] > 250].mean()
    assert high < low / 3
    for _ in range(60):
        before = be.g[d].copy()
        be.pulse(d, RESET)
        assert (be.g[d] <= before).all()


def test_stronger_or_longer_pulses_take_bigger_steps_and_reads_do_not_disturb():
    small, big, wide = (SimBackend(BENCH, seed=3) for _ in range(3))
    d = _devices()
    small.pulse(d, SET, voltage=1.6)
    big.pulse(d, SET, voltage=2.0)
    wide.pulse(d, SET, width=4e-6, voltage=1.6)
    assert big.g[d].mean() > small.g[d].mean() and wide.g[d].mean() > small.g[d].mean()
    before = small.g.copy()
    small.pulse(d, SET, voltage=0.2)  # a read-level voltage is below the switching threshold
    assert np.array_equal(small.g, before)


def test_stuck_devices_stay_stuck():
    modes = FailureRate(0.2, 0.5).place(BENCH, seed=0)
    be = SimBackend(BENCH, seed=4, modes=modes)
    on, off = np.flatnonzero(modes == STUCK_ON), np.flatnonzero(modes == STUCK_OFF)
    expected, sd = 0.1 * BENCH.n_devices, np.sqrt(0.1 * 0.9 * BENCH.n_devices)
    assert abs(len(on) - expected) < 4 * sd and abs(len(off) - expected) < 4 * sd
    g0 = be.g.copy()
    be.pulse(on, RESET, 50)
    be.pulse(off, SET, 50)
    assert np.array_equal(be.g[on], g0[on]) and np.array_equal(be.g[off], g0[off])
    assert g0[on].min() >= 300 and g0[off].max() <= 2


def test_seeds_reproduce_exactly_and_differ_between_seeds():
    def run(seed):
        be = SimBackend(BENCH, seed=seed)
        d = _devices()
        be.pulse(d, SET, 5)
        return be.read(d), be.mac("single", np.ones((2, 65)))

    a, b, c = run(7), run(7), run(8)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not np.array_equal(a[0], c[0])


def test_mac_sums_cell_currents_through_series_resistance():
    be = SimBackend(BENCH, seed=5)
    be.pulse(_devices(1300), SET, 30)
    idx = BENCH.array_devices("single")
    x = (np.random.default_rng(0).random((64, 65)) > 0.5).astype(float)
    expected = 0.2 * x @ be.apparent(be.g[idx])
    got = be.mac("single", x)
    rel = (got - expected) / expected
    assert abs(rel.mean()) < 0.002 and 0.0005 < rel.std() < 0.015
    assert (be.apparent(be.g) < be.g).all()


def test_shipped_curves_are_the_documented_synthesis():
    shipped = load_curves(BENCH.sim.curves)
    synth = synthesize_default_curves()
    for a, b in zip(shipped.set + shipped.reset, synth.set + synth.reset, strict=True):
        assert np.allclose(a, b, atol=1e-4)


def test_fused_bit_plane_mac_has_the_statistics_of_plane_by_plane_reads():
    from hil.backends.base import Backend

    be = SimBackend(BENCH, seed=6)
    be.pulse(_devices(1300), SET, 20)
    levels = np.random.default_rng(1).integers(-15, 16, (1, 65))
    fused = np.array([be.mac_levels("single", levels, True)[0] for _ in range(3000)])
    before = be.counts.mac_reads
    planes = np.array([Backend.mac_levels(be, "single", levels, True)[0] for _ in range(3000)])
    assert be.counts.mac_reads - before == 3000 * 8 * 20  # eight reads a vector either way
    assert np.allclose(fused.mean(0), planes.mean(0), atol=0.1)
    assert np.allclose(fused.std(0), planes.std(0), rtol=0.1)
