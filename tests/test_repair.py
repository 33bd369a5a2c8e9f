"""Repair after training on the simulated bench: the re-check, writing devices off, the low
common-mode rule and ``hil repair``'s records and operator errors. Tiny data keeps it fast."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from hil.characterization.classify import settings
from hil.characterization.recheck import recheck
from hil.cli import main
from hil.faults import OPEN, STUCK_OFF, STUCK_ON
from hil.records import RunStore
from hil.training.setup import TrainParams, prepare


@pytest.fixture(scope="module")
def trained(small_data):
    """A single layer trained two epochs: its backend, trainer and checkpoint."""
    params = TrainParams(network="single", epochs=2, seed=3, data=str(small_data))
    bench, backend, trainer = prepare(params, say=lambda m: None)
    trainer.run()
    return bench, backend, trainer, trainer.state_dict()


def fail(backend, devices, code) -> None:
    modes = backend.mode.copy()
    modes[devices] = code
    backend.set_modes(modes)


def test_a_healthy_network_is_read_and_barely_pulsed(trained):
    bench, backend, trainer, state = trained
    trainer.load_state_dict(state)
    found = recheck(backend, trainer.devices(), trainer.conductances(), settings(bench))
    assert found.found() == {} and found.failed.size == 0
    assert found.moved.sum() < 0.01 * found.devices.size, "only read noise moved them"
    assert found.counts.pulses == 20 * found.moved.sum()
    assert found.counts.device_reads >= 3 * found.devices.size


def test_recheck_finds_what_failed_and_tests_only_what_moved(trained):
    bench, backend, trainer, state = trained
    trainer.load_state_dict(state)
    cells = trainer.layers[0].devices
    g = trainer.layers[0].g
    high = cells[g > 15][:4]  # trained up: a stuck-off failure moves their reading
    assert high.size == 4
    low = cells[g < 4][:6]
    drifted = cells[g < 4][6:8]
    fail(backend, high, STUCK_OFF)
    fail(backend, low[:4], STUCK_ON)
    fail(backend, low[4:], OPEN)
    backend.g[drifted] = 30.0  # healthy, but not where training left it
    backend.set_modes(backend.mode)
    found = recheck(backend, trainer.devices(), trainer.conductances(), settings(bench))
    modes = dict(zip(found.devices.tolist(), found.modes.tolist(), strict=True))
    assert [modes[d] for d in high] == ["stuck_off"] * 4
    assert [modes[d] for d in low] == ["stuck_on"] * 4 + ["open"] * 2
    assert [modes[d] for d in drifted] == ["ok", "ok"], "moved but responding: kept"
    assert sorted(found.failed) == sorted([*high, *low])
    tested = set(found.devices[found.moved].tolist())
    assert {*high, *low, *drifted} <= tested and len(tested) < 20


def test_write_off_cancels_stuck_on_devices_and_never_pulses_failed_ones(trained):
    bench, backend, trainer, state = trained
    trainer.load_state_dict(state)
    layer = trainer.layers[0]
    stuck = layer.devices[:, 0::2][layer.g[:, 0::2] < 4][:5]  # G+ devices: partners alive
    fail(backend, stuck, STUCK_ON)
    found = recheck(backend, trainer.devices(), trainer.conductances(), settings(bench))
    pulses = backend.counts.pulses
    pulsed = []
    real = backend.pulse
    backend.pulse = lambda d, *a, **k: (pulsed.append(np.array(d)), real(d, *a, **k))
    try:
        done = trainer.repair(found.failed, found.g, 1)
    finally:
        backend.pulse = real
    assert (done["failed"], done["cancelled"], done["epochs"]) == (5, 5, 1)
    assert done["pulses"] + done["tune_pulses"] == backend.counts.pulses - pulses
    dead = np.isin(layer.devices, stuck)
    assert layer.dead[dead].all()
    w = layer.weights(trainer.cfg.g_unit)[dead.reshape(len(dead), -1, 2).any(axis=2)]
    assert np.abs(w).max() < 1.0, "stuck-on devices (3-4 weight units) cancelled"
    assert not np.isin(np.concatenate(pulsed), stuck).any(), "failed devices never pulsed"
    assert trainer.epoch == 3 and len(trainer.history) == 3
    # nothing more failed: a second repair finds nothing and trains nothing
    again = recheck(backend, trainer.devices(), trainer.conductances(), settings(bench))
    assert trainer.repair(again.failed, again.g, 2)["epochs"] == 0 and trainer.epoch == 3


def test_low_common_mode_keeps_one_device_of_each_pair_low(small_data):
    both_high = {}
    for cm in (10.0, math.inf):
        params = TrainParams(network="single", epochs=3, seed=1, data=str(small_data),
                             common_mode_uS=cm)
        _, _, trainer = prepare(params, say=lambda m: None)
        trainer.run()
        g = trainer.layers[0].g
        both_high[cm] = (np.minimum(g[:, 0::2], g[:, 1::2]) > 15.0).mean()
    assert both_high[10.0] < 0.002 < both_high[math.inf]


@pytest.mark.parametrize("written_off,pulse", [(False, "reset_pulses"), (True, "set_pulses")])
def test_low_common_mode_resets_a_high_partner_unless_it_is_written_off(trained, written_off,
                                                                          pulse):
    _, backend, trainer, state = trained
    trainer.load_state_dict(state)
    layer = trainer.layers[0]
    layer.g[0, :2] = (2.0, 300.0)  # weight (0, 0): G+ low, G- high
    layer.dead[0, 1] = written_off
    layer.refresh_masks(trainer.cfg)
    layer.acc[:] = 0.0
    dw = np.zeros_like(layer.acc)
    dw[0, 0] = 0.2  # raise w: SET G+, or first RESET G-
    before = backend.counts.as_dict()
    trainer._mixed_update(layer, dw)
    moved = {k: backend.counts.as_dict()[k] - before[k] for k in ("set_pulses", "reset_pulses")}
    assert moved[pulse] > 0 and sum(moved.values()) == moved[pulse]


@pytest.fixture(scope="module")
def run_dir(small_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("repair") / "run"
    assert main(["train", "--network", "single", "--epochs", "2", "--seed", "2", "--data",
                 str(small_data), "--out", str(out)]) == 0
    return out


def test_hil_repair_records_the_repair_as_epochs(run_dir, tmp_path, capsys):
    healthy = tmp_path / "healthy"
    healthy.mkdir()
    (healthy / "run.sqlite").write_bytes((run_dir / "run.sqlite").read_bytes())
    read = RunStore(healthy, create=False).load_checkpoint()["layers"][0][0]
    assert main(["repair", str(healthy)]) == 0
    assert "found nothing" in capsys.readouterr().err
    kept = RunStore(healthy, create=False).load_checkpoint()["layers"][0][0]
    assert not np.array_equal(read, kept), "the next repair compares with what this one read"
    assert list(RunStore(healthy, create=False).epochs()["epoch"]) == [1, 2]

    assert main(["repair", str(run_dir), "--epochs", "2", "--failures", "0.1:0.5"]) == 0
    words = capsys.readouterr()
    assert "stuck-on" in words.err and "after 2 fine-tuning epochs" in words.out
    store = RunStore(run_dir, create=False)
    assert list(store.epochs()["epoch"]) == [1, 2, 3, 4]
    rec = store.read_table("repairs").iloc[0]
    assert rec["after_epoch"] == 2 and rec["written_off"] > 50 and rec["cancelled"] > 20
    assert rec["accuracy_after"] > rec["accuracy_before"] + 0.2
    found = store.read_table("repair_devices")
    assert len(found) >= rec["written_off"] and set(found["after_epoch"]) == {2}
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["epochs"] == 4 and len(summary["repairs"]) == 1


@pytest.mark.parametrize("args,message", [
    (["--epochs", "-1"], "--epochs"),
    (["--failures", "3"], "--failures"),
])
def test_bad_repairs_are_one_line_errors(run_dir, capsys, args, message):
    assert main(["repair", str(run_dir), *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]


def test_repair_refuses_an_unfinished_run_or_other_data(small_data, tmp_path, capsys,
                                                        monkeypatch):
    out = tmp_path / "run"
    monkeypatch.setenv("HIL_OPTDIGITS_DIR", str(small_data))  # the run does not name its data
    assert main(["train", "--network", "single", "--epochs", "1", "--out", str(out)]) == 0
    monkeypatch.delenv("HIL_OPTDIGITS_DIR")
    capsys.readouterr()
    assert main(["repair", str(out)]) == 2
    assert "not on the data found now" in capsys.readouterr().err
    store = RunStore(out, create=False)
    state = store.load_checkpoint()
    store.save_checkpoint(0, {**state, "position": 5})
    monkeypatch.setenv("HIL_OPTDIGITS_DIR", str(small_data))
    assert main(["repair", str(out)]) == 2
    assert "has not finished training" in capsys.readouterr().err
