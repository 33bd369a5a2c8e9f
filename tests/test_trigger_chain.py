"""The trigger chain end to end through the drivers on the emulated bench: every pulse and
aperture on its route, settled, no switch moving during one (from the bench timeline), for
both generator models and both SMU families, in training, characterisation and forming."""

from __future__ import annotations

import tomllib
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from hil.backends.base import RESET, SET
from hil.backends.factory import make_backend
from hil.backends.hardware import clock_settings
from hil.bench import load_bench
from hil.characterization.characterize import characterize
from hil.characterization.classify import settings
from hil.emulator import EmulatedBench, dump_toml
from hil.emulator.timeline import pulsed_cells, violations
from hil.training.data import load_digits
from hil.training.setup import TrainParams, prepare
from tests.conftest import write_optdigits


def open_backend(emu: EmulatedBench, tmp: Path, **sections):
    raw = tomllib.loads(emu.bench_toml())
    raw.update(sections)
    path = tmp / "emu.toml"
    path.write_text(dump_toml(raw))
    return path


def spy_pulses(backend) -> Counter:
    """Count every pulse the caller plans, per device (the backend's own pulse, wrapped)."""
    planned: Counter = Counter()
    inner = backend.pulse

    def pulse(devices, polarity, count=1, **kw):
        d = np.asarray(devices).ravel()
        for dev, n in zip(d.tolist(), np.broadcast_to(count, d.shape).tolist(), strict=True):
            planned[int(dev)] += int(n)
        return inner(devices, polarity, count, **kw)

    backend.pulse = pulse
    return planned


def delivered(emu: EmulatedBench) -> Counter:
    out: Counter = Counter()
    for target in pulsed_cells(emu.timeline()):
        out.update(t for t in target.split(";") if t)
    return out


def as_cells(bench, planned: Counter) -> Counter:
    """``board:row:col`` of the planned devices, on the bench the caller planned them on."""
    devices = np.array(sorted(planned))
    lab = bench.labels(devices)
    return Counter({f"{b}:{r}:{c}": planned[d] for b, r, c, d in
                    zip(lab["board"], lab["row"], lab["col"], devices.tolist(), strict=True)})


@pytest.mark.parametrize("generator,smu", [("81160A", "2450"), ("33500B", "B2900")])
def test_both_generators_and_both_smus_keep_the_timing(tmp_path, generator, smu):
    bench = load_bench()
    with EmulatedBench(bench, generator=generator, smu=smu, seed=2) as emu:
        emu.record_timeline()
        backend = make_backend(load_bench(open_backend(emu, tmp_path)))
        try:
            planned = spy_pulses(backend)
            rng = np.random.default_rng(1)
            devices = rng.choice(bench.array_devices("hidden").ravel(), 40, replace=False)
            backend.pulse(devices[:20], SET, rng.integers(1, 4, 20), voltage=1.5)
            backend.pulse(devices[20:], RESET, 2)
            g = backend.read(devices)
            np.testing.assert_allclose(g, emu.model.sim.apparent(emu.model.conductance(devices)),
                                       rtol=0.15, atol=0.5)
            x = (rng.random((3, 65)) > 0.5).astype(float)
            assert backend.mac("hidden", x).shape == (3, 40)
        finally:
            backend.close()
        assert emu.is_safe()
        events = emu.timeline()
        settle = clock_settings(bench).mux_settling
        assert violations(events, settle) == []
        assert delivered(emu) == as_cells(backend.bench, planned)
        kinds = Counter(e for _, _, e, _ in events)
        assert kinds["aperture_start"] == kinds["aperture_end"] == 40 + 3 * 40
        edges = Counter(target for _, _, e, target in events if e == "edge")
        assert edges["generator_trigger"] == kinds["pulse_start"]
        if generator == "33500B":
            assert edges["generator_sync"] == kinds["pulse_start"]


def test_safe_state_aborts_a_sweep_waiting_for_edges(tmp_path):
    """Finding 7: OUTP OFF alone is refused behind a waiting sweep; the safe state aborts."""
    with EmulatedBench(load_bench(), seed=2) as emu:
        backend = make_backend(load_bench(open_backend(emu, tmp_path)))
        smu = backend.inner.inst.smu
        smu.arm_list([0.2] * 5)  # the MCU never runs it: the sweep waits
        backend.close()
        assert emu.is_safe()


def test_a_training_epoch_through_the_drivers_keeps_every_pulse_on_plan(tmp_path):
    data = write_optdigits(tmp_path / "data", 12, 10)
    with EmulatedBench(load_bench(), seed=4) as emu:
        emu.record_timeline()
        path = open_backend(emu, tmp_path)
        _, backend, trainer = prepare(TrainParams(network="two", epochs=1, seed=0,
                                                  bench=str(path)), digits=load_digits(data))
        planned = spy_pulses(backend)
        with backend:
            trainer.run()
        assert emu.is_safe()
        events = emu.timeline()
    assert sum(planned.values()) > 20
    assert violations(events, clock_settings(load_bench()).mux_settling) == []
    assert delivered(emu) == as_cells(backend.bench, planned)


@pytest.mark.parametrize("form", [False, True])
def test_characterisation_and_forming_through_the_drivers_keep_the_timing(tmp_path, form):
    bench = load_bench()
    with EmulatedBench(bench, seed=6) as emu:
        emu.record_timeline()
        path = tmp_path / "emu.toml"
        path.write_text(emu.bench_toml(settings={
            "characterize": {"pulses": 3, "reads": 2, "curve_devices": 0}}))
        cbench = load_bench(path)
        backend = make_backend(cbench)
        planned = spy_pulses(backend)
        devices = bench.devices(np.full(6, 13), np.arange(1, 7), np.full(6, 2))
        with backend:
            result = characterize(backend, devices, settings(cbench), form=form)
        assert emu.is_safe()
        events = emu.timeline()
    assert len(result.table) == 6 and sum(planned.values()) > 0
    assert violations(events, clock_settings(bench).mux_settling) == []
    assert delivered(emu) == as_cells(backend.bench, planned)
