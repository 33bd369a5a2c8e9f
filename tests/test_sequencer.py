"""Sequencer: limit checks, batching plans, the bench clock, sequences and the dry run."""

from __future__ import annotations

import dataclasses
import tomllib
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from hil.backends.base import RESET, SET
from hil.backends.hardware import clock_settings, sequencer_settings
from hil.backends.sequencer import SequenceError, Sequencer
from hil.backends.sim import SimBackend
from hil.bench import COLS, data_file, load_bench, parse_bench
from hil.cli import main
from hil.faults import STUCK_ON
from sequences.basic import program_verify, pulse_train, run
from tests.conftest import write_optdigits


@pytest.fixture(scope="module")
def bench():
    return load_bench()


def make(bench, mode="batched", **changes):
    settings = dataclasses.replace(sequencer_settings(bench), mode=mode, **changes)
    return Sequencer(SimBackend(bench, seed=0), settings)


def test_plan_pulses_every_pulse_once_per_column_under_fan_out(bench):
    seq = make(bench)
    rng = np.random.default_rng(0)
    devices = rng.choice(bench.n_devices, 200, replace=False)
    polarity = rng.choice([SET, RESET], 200)
    count = rng.integers(0, 5, 200)
    txs = seq.plan_pulses(devices, polarity, count)
    got: Counter = Counter()
    fan = seq.fan_out(1.8)
    for tx in txs:
        for step in tx.steps:
            assert step.size <= fan
            assert np.unique(step).size == step.size
            boards, cols = step // 120, step % COLS
            assert len(set(zip(boards.tolist(), cols.tolist(), strict=True))) == 1
            got.update((int(d), int(np.sign(tx.voltage))) for d in step)
    want = Counter({(int(d), int(p)): int(n) for d, p, n in zip(devices, polarity, count,
                                                                 strict=True) if n})
    assert got == want
    assert len(txs) == 2, "one burst per polarity"
    naive = make(bench, "naive").plan_pulses(devices, polarity, count)
    assert len(naive) == count.sum()


def test_fan_out_respects_generator_current(bench):
    assert make(bench, fan_out=8, max_pulse_current=1e-3).fan_out(1.8) == 1
    assert make(bench, fan_out=8, max_pulse_current=1.0).fan_out(1.8) == 8


@pytest.mark.parametrize("call,match", [
    (lambda s: s.pulse(np.array([1]), SET, voltage=3.0), "exceeds the bench limit"),
    (lambda s: s.pulse(np.array([1]), SET, width=1.0), "pulse width"),
    (lambda s: s.pulse(np.array([1, 1]), SET), "twice"),
    (lambda s: s.pulse(np.array([1]), 2), "polarity"),
    (lambda s: s.pulse(np.array([1]), SET, -1), "non-negative"),
    (lambda s: s.read(np.array([10**6])), "outside"),
    (lambda s: s.mac("output", np.full((1, 21), 0.5)), "binary"),
    (lambda s: s.mac("output", np.ones((1, 5))), r"\(k, 21\)"),
])
def test_operations_outside_the_limits_are_refused_before_anything_moves(bench, call, match):
    seq = make(bench)
    g = seq.inner.g.copy()
    with pytest.raises(SequenceError, match=match):
        call(seq)
    assert (seq.inner.g == g).all() and seq.clock.tally.seconds == 0


def test_sequencer_passes_physics_through_unchanged(bench):
    plain, seq = SimBackend(bench, seed=3), Sequencer(SimBackend(bench, seed=3))
    dev = bench.array_devices("output").ravel()[:50]
    x = (np.random.default_rng(1).random((7, 21)) > 0.5).astype(float)
    for be in (plain, seq):
        be.pulse(dev, SET, 3)
    np.testing.assert_array_equal(plain.read(dev), seq.read(dev))
    np.testing.assert_array_equal(plain.mac("output", x), seq.mac("output", x))
    levels = np.random.default_rng(2).integers(-15, 16, (3, 21))
    np.testing.assert_array_equal(plain.mac_levels("output", levels, True),
                                  seq.mac_levels("output", levels, True))
    assert seq.counts == plain.counts


def test_bench_clock_naive_batched_and_floor(bench):
    dev = bench.array_devices("hidden")[:12, 0]  # one column of one board: grouped pulses
    x = (np.random.default_rng(2).random((4, 65)) > 0.5).astype(float)
    tallies = {}
    for mode in ("naive", "batched"):
        seq = make(bench, mode)
        seq.pulse(dev, SET, 2)
        seq.read(dev)
        seq.mac("hidden", x)
        tallies[mode] = seq.clock.tally
    c = clock_settings(bench)
    for t in tallies.values():
        assert t.readings == 12 + 4 * 40
        assert t.floor == pytest.approx(t.pulses_fired * (c.mux_settling + bench.pulses.width)
                                        + t.readings * (c.mux_settling + c.smu_aperture))
        assert t.seconds > t.floor
    assert tallies["naive"].pulses_fired == 24 > tallies["batched"].pulses_fired
    assert tallies["naive"].transactions == 24 + 12 + 160
    # one-entry tables: clear, set, CRC, run, status, and a TBL CFG when the pacing changes
    assert tallies["naive"].mcu_frames == 5 * tallies["naive"].transactions + 2
    assert tallies["naive"].scpi_queries >= tallies["naive"].transactions
    assert tallies["naive"].seconds > 3 * tallies["batched"].seconds


def test_clock_section_of_the_bench_file_drives_the_clock(bench):
    raw = tomllib.loads(data_file("bench-default.toml").read_text())
    raw["clock"] = {"smu_aperture": 2e-3, "mux_settling": 0}
    slow = parse_bench(raw, "slow.toml")
    x = np.ones((2, 21))
    fast_seq, slow_seq = make(bench), Sequencer(SimBackend(slow, seed=0))
    for s in (fast_seq, slow_seq):
        s.mac("output", x)
    assert slow_seq.clock.tally.floor == pytest.approx(40 * 2e-3)
    assert fast_seq.clock.tally.floor < slow_seq.clock.tally.floor


def test_sequences_run_on_any_backend(bench):
    dev = bench.array_devices("output")[0, :6]
    for backend in (SimBackend(bench, seed=4), make(bench)):
        result = run(program_verify(dev, 30.0, tolerance_uS=2.0), backend)
        assert result.converged.all() and (result.pulses > 0).all()
        trace = run(pulse_train(dev, SET, 5), backend)
        assert trace.shape == (6, 6) and (trace[-1] > trace[0]).all()


def test_program_verify_gives_up_devices_that_do_not_move(bench):
    backend = SimBackend(bench, seed=2)
    dev = bench.array_devices("output")[0, :8]
    run(program_verify(dev, 150.0, tolerance_uS=20.0), backend)  # as after an earlier run
    modes = backend.mode.copy()
    modes[dev[:3]] = STUCK_ON  # no pulse moves them
    backend.set_modes(modes)
    ops = []
    result = run(program_verify(dev, 2.5, tolerance_uS=2.5, max_rounds=60, max_burst=16,
                                stall_rounds=3, stall_fraction=0.04), backend,
                 observe=lambda op, _: ops.append(op))
    assert result.stalled.tolist() == [True] * 3 + [False] * 5
    assert result.converged[3:].all() and (result.conductance[:3] > 250).all()
    assert (result.pulses[:3] <= 4 * 16).all(), "a stuck device is given up after a few bursts"
    assert ops[0].devices.tolist() == dev.tolist()
    for pulse, read in zip(ops[1::2], ops[2::2], strict=True):
        assert read.devices.tolist() == pulse.devices.tolist(), "only pulsed devices are re-read"


def test_dry_run_moves_nothing_and_reports_both_clocks(tmp_path, capsys, monkeypatch):
    data = write_optdigits(tmp_path / "d", 20, 10)
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--dry-run", "--epochs", "1", "--data", str(data)]) == 0
    out = capsys.readouterr().out
    assert "batched:" in out and "naive:" in out and "floor:" in out
    assert "preparing the arrays (included): 0 pulses" in out
    assert not Path("runs").exists(), "a dry run writes no run records"


def test_bench_clock_paces_each_entry_as_the_mcu_does(bench):
    """With the links free, a pulse table lasts its entries: read-back, settling, then the
    longer of the trigger pulse and the dwell (generator latency + width + edges, whole us); a
    read table: read-back, settling, then the SMU's latency and aperture."""
    raw = tomllib.loads(data_file("bench-default.toml").read_text())
    raw["clock"] = {"scpi_round_trip": 0, "mcu_round_trip": 0, "mcu_baud": 10**12,
                    "mux_settling": 20e-6, "mux_read_back": 5e-6, "smu_aperture": 200e-6}
    raw["wiring"] = {"generator_trigger": 1, "smu_trigger": 2, "trigger_width": 2e-6,
                     "generator_latency": 2e-6, "smu_latency": 20e-6}
    free = parse_bench(raw, "free.toml")
    seq = Sequencer(SimBackend(free, seed=0))
    dev = free.array_devices("hidden")[:12, 0]
    seq.pulse(dev, SET, 1, width=1e-6)  # one column: fan-out 8, so two entries
    pulse_s = seq.clock.tally.seconds
    assert pulse_s == pytest.approx(2 * (5e-6 + 20e-6 + 4e-6), rel=1e-3)  # dwell 3.017 -> 4 us
    seq.read(dev)
    assert seq.clock.tally.seconds - pulse_s == pytest.approx(12 * (5e-6 + 20e-6 + 220e-6),
                                                              rel=1e-3)
