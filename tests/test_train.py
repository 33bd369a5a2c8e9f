from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from hil.bench import CELLS, load_bench
from hil.cli import main
from hil.cli import train as cmd_train
from hil.faults import STUCK_OFF, STUCK_ON, FailureRate
from hil.records import RunStore
from hil.training.setup import TrainParams, prepare
from hil.training.trainer import OnlineTrainer, PRESET_uS
from sequences.basic import program_verify, run


def _train(args, env=None):
    return subprocess.Popen([sys.executable, "-m", "hil.cli", "train", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)


def test_resume_after_kill_ends_exactly_like_an_uninterrupted_run(tmp_path, small_data):
    common = ["--network", "two", "--epochs", "40", "--seed", "5", "--data", str(small_data),
              "--checkpoint-every", "50", "--failures", "0.05:0.5"]
    assert main(["train", *common, "--out", str(tmp_path / "whole")]) == 0
    proc = _train([*common, "--out", str(tmp_path / "killed")])
    store_db = tmp_path / "killed" / "run.sqlite"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # kill as soon as a checkpoint inside an epoch exists
        time.sleep(0.01)
        if store_db.exists():
            row = RunStore(tmp_path / "killed").db.execute(
                "SELECT images FROM checkpoint").fetchone()
            if row and row[0] % 300:
                break
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "killed" / "summary.json").exists()
    assert main(["train", "--resume", str(tmp_path / "killed")]) == 0
    whole = json.loads((tmp_path / "whole" / "summary.json").read_text())
    resumed = json.loads((tmp_path / "killed" / "summary.json").read_text())
    assert resumed == whole
    a = RunStore(tmp_path / "whole")
    b = RunStore(tmp_path / "killed")
    assert np.array_equal(a.snapshot(40, "hidden"), b.snapshot(40, "hidden"))


@pytest.mark.parametrize("stop_in", ["prepare_arrays", "_train"])
def test_a_run_stopped_before_or_after_preparing_resumes_exactly(tmp_path, small_data,
                                                                  monkeypatch, stop_in):
    common = ["--network", "single", "--epochs", "2", "--seed", "3", "--data", str(small_data),
              "--failures", "0.06:0.5"]
    assert main(["train", *common, "--out", str(tmp_path / "whole")]) == 0

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    target = OnlineTrainer if stop_in == "prepare_arrays" else cmd_train
    with monkeypatch.context() as m:
        m.setattr(target, stop_in, interrupted)
        assert main(["train", *common, "--out", str(tmp_path / "stopped")]) == 130
    store = RunStore(tmp_path / "stopped")
    assert (store.load_checkpoint() is None) == (stop_in == "prepare_arrays")
    assert main(["train", "--resume", str(tmp_path / "stopped")]) == 0
    whole, resumed = (json.loads((tmp_path / d / "summary.json").read_text())
                      for d in ("whole", "stopped"))
    assert resumed == whole and whole["prepared"]["stuck_on"] > 0


def test_a_checkpoint_of_another_format_is_refused_in_one_line(tmp_path, small_data, capsys):
    run = tmp_path / "r"
    assert main(["train", "--network", "single", "--epochs", "1", "--data", str(small_data),
                 "--out", str(run)]) == 0
    store = RunStore(run)
    state = store.load_checkpoint()
    del state["format"]
    store.save_checkpoint(0, state)
    capsys.readouterr()
    assert main(["train", "--resume", str(run)]) == 2
    err = capsys.readouterr().err.strip()
    assert "another version of memristor-hil" in err and len(err.splitlines()) == 1


def test_run_records_summary_plots_and_database(tmp_path, small_data):
    out = tmp_path / "run"
    assert main(["train", "--network", "single", "--epochs", "2", "--data", str(small_data),
                 "--out", str(out)]) == 0
    s = json.loads((out / "summary.json").read_text())
    assert s["network"] == "65-10" and s["epochs"] == 2 and s["seed"] == 0
    assert len(s["test_accuracy_per_epoch"]) == 2 and 0 <= s["test_accuracy"] <= 1
    assert s["test_accuracy"] > 0.5  # it learns, even on 300 images
    assert s["pulses"]["set"] > 0 and s["reads"] > 0
    assert s["data"] == {"name": "uci-optdigits", "train": 300, "test": 200}
    for png in ("accuracy.png", "conductance-maps.png", "conductance-cdf.png"):
        assert (out / png).stat().st_size > 1000
    store = RunStore(out)
    ep = store.epochs()
    assert ep["epoch"].tolist() == [1, 2]
    assert ep["test_accuracy"].tolist() == s["test_accuracy_per_epoch"]
    assert store.snapshot(2, "single").shape == (65, 20)
    assert "[arrays.single]" in store.meta()["bench_file"]
    assert main(["train", "--out", str(out), "--data", str(small_data)]) == 2  # no overwrite


def test_paper_rule_pulses_pairs_in_opposite_directions(small_data):
    params = TrainParams(network="single", epochs=1, data=str(small_data), update="paper")
    _, backend, trainer = prepare(params, say=lambda m: None)
    g0 = trainer.layers[0].g.copy()
    trainer.run()
    c = backend.counts
    assert c.set_pulses == c.reset_pulses > 0  # every update is one SET and one RESET
    assert not np.array_equal(trainer.layers[0].g, g0)


def test_failed_devices_are_placed_alike_on_every_bench_and_reported(tmp_path, small_data):
    params = TrainParams(network="two", seed=4, epochs=1, data=str(small_data),
                         failures="0.0615:0.5")
    bench, backend, _ = prepare(params, say=lambda m: None)
    n = bench.n_devices
    assert abs((backend.mode != 0).sum() - 0.0615 * n) < 4 * np.sqrt(0.0615 * n)
    # the whole bench, as hil characterize places them: the network's boards fail alike
    whole = load_bench()
    shared = [b for b in bench.board_ids if b in whole.board_ids]
    assert len(shared) >= 2
    modes = FailureRate.parse("0.0615:0.5").place(whole, seed=4)
    for b in shared:
        on_net = backend.mode[bench.board_pos(b) * CELLS:][:CELLS]
        assert np.array_equal(on_net, modes[whole.board_pos(b) * CELLS:][:CELLS])
    fmap = tmp_path / "faults.csv"
    fmap.write_text("board,row,col,mode\n1,3,4,stuck_on\n2,12,10,stuck_off\n")
    _, backend, _ = prepare(TrainParams(network="single", epochs=1, data=str(small_data),
                                        fault_map=str(fmap)), say=lambda m: None)
    assert (backend.mode != 0).sum() == 2


def test_preparation_presets_used_devices_and_cancels_stuck_on_ones(small_data):
    params = TrainParams(network="single", epochs=1, data=str(small_data), failures="0.06:1.0")
    _, backend, trainer = prepare(params, say=lambda m: None)
    layer = trainer.layers[0]
    stuck = backend.mode[layer.devices] == STUCK_ON
    pairs = stuck.reshape(65, 10, 2)
    lone = pairs.any(axis=2) & ~pairs.all(axis=2)  # pairs with one stuck device and a live one
    used = ~stuck & ~np.roll(stuck, 1, axis=1) & ~np.roll(stuck, -1, axis=1)
    used[:, 4:] = False  # a few healthy devices left high by an earlier run
    run(program_verify(layer.devices[used], 150.0, tolerance_uS=20.0), backend)
    trainer = OnlineTrainer(backend, trainer.digits, trainer.cfg)
    layer = trainer.layers[0]
    w_stuck = np.abs(layer.weights(100.0))[lone]
    before = backend.counts.pulses
    done = trainer.prepare_arrays()
    first = backend.counts.pulses - before
    assert {k: done[k] for k in ("preset", "stuck_on", "cancelled", "uncancelled")} == {
        "preset": int(used.sum() + stuck.sum()), "stuck_on": int(stuck.sum()),
        "cancelled": int(lone.sum()), "uncancelled": int(stuck.sum() - lone.sum())}
    assert 0 <= done["partly"] < done["cancelled"] and done["pulses"] == first
    assert np.array_equal(layer.dead, stuck), "only the stuck devices are written off"
    assert (layer.g[used] < trainer.cfg.g_preset).all() and np.median(layer.g[used]) < PRESET_uS
    after = np.abs(layer.weights(100.0))[lone]
    assert w_stuck.min() > 2.5 and after.mean() < 0.3, "stuck-on pairs start near w = 0"
    cancelling = pairs[:, :, ::-1].reshape(stuck.shape) & ~stuck
    g_high = trainer.cfg.g_high
    assert (layer.ceiling[~cancelling] == g_high).all()
    assert (layer.ceiling[cancelling] > g_high).mean() > 0.9, "they may be SET back up later"
    pulses = backend.counts.pulses
    again = trainer.prepare_arrays()
    assert (again["preset"], again["stuck_on"], again["cancelled"]) == (0, 0, int(lone.sum()))
    assert backend.counts.pulses - pulses < 0.05 * first, "a prepared array stays prepared"


def test_a_stuck_on_device_with_a_stuck_off_partner_is_reported_uncancelled(small_data):
    params = TrainParams(network="single", epochs=1, data=str(small_data))
    _, backend, trainer = prepare(params, say=lambda m: None)
    cells = trainer.layers[0].devices
    modes = backend.mode.copy()
    modes[cells[:3, 0]], modes[cells[:3, 1]] = STUCK_ON, STUCK_OFF  # G+ on, its G- off
    modes[cells[5, 2]] = STUCK_ON  # and one with a working partner
    backend.set_modes(modes)
    trainer = OnlineTrainer(backend, trainer.digits, trainer.cfg)
    done = trainer.prepare_arrays()
    assert (done["stuck_on"], done["cancelled"], done["uncancelled"]) == (4, 1, 3)
    dead = trainer.layers[0].dead
    assert dead[:3, :2].all() and dead[5, 2] and dead.sum() == 7


@pytest.mark.parametrize("args", [["--failures", "2"], ["--epochs", "0"],
                                  ["--fault-map", "/nonexistent.csv"], ["--resume", "/nope"]])
def test_bad_options_are_one_line_errors(tmp_path, small_data, capsys, args):
    rc = main(["train", "--network", "single", "--data", str(small_data),
               "--out", str(tmp_path / "r"), *args])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and err[0].startswith("hil: error:")
    assert not (tmp_path / "r").exists(), "a refused start leaves no run behind"


def test_sigterm_stops_cleanly_and_leaves_a_resumable_run(tmp_path, small_data):
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = _train(["--network", "single", "--epochs", "500", "--data", str(small_data),
                   "--checkpoint-every", "20", "--out", str(out)], env=env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (out / "run.sqlite").exists():
        time.sleep(0.05)
    time.sleep(1.0)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and b"Traceback" not in err
    assert RunStore(out).load_checkpoint() is not None


def test_training_refuses_flagged_cells_or_leaves_them_alone(tmp_path, small_data, capsys):
    from hil.characterization.registry import Registry

    reg = tmp_path / "devices.sqlite"
    bench, _, _ = prepare(TrainParams(network="single", data=str(small_data)),
                          say=lambda m: None)
    bad = bench.devices(np.array([3, 3]), np.array([2, 7]), np.array([4, 9]))
    with Registry(reg, create=True) as r:
        r.record(bench, bad, np.array(["stuck_on", "stuck_off"]), np.zeros(2), run="t")
    rc = main(["train", "--network", "single", "--epochs", "1", "--data", str(small_data),
               "--registry", str(reg), "--out", str(tmp_path / "refused")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "2 cells" in err[0] and "board 3 chip" in err[0]

    params = TrainParams(network="single", epochs=1, data=str(small_data), registry=str(reg),
                         exclude_flagged=True)
    _, backend, trainer = prepare(params, say=lambda m: None,
                                    flagged=lambda b: cmd_train.flagged_cells(b, params, print))
    layer = trainer.layers[0]
    flagged = np.isin(layer.devices, bad)
    assert flagged.sum() == 2 and layer.dead[flagged].all() and not layer.dead[~flagged].any()
    g0 = backend.g[bad].copy()
    trainer.run()
    assert np.array_equal(backend.g[bad], g0)  # never pulsed


def test_first_crossing_matches_image_by_image_accumulation():
    from hil.training.trainer import _first_crossing

    rng = np.random.default_rng(3)
    for _ in range(200):
        b, r, c = rng.integers(1, 12), rng.integers(1, 6), rng.integers(1, 5)
        acc = rng.normal(0, 0.02, (r, c))
        xl = rng.normal(0, 0.03, (b, r))
        d = rng.normal(0, 0.5, (b, c))
        running, expected = acc.copy(), b
        for i in range(b):  # the accumulator as the sequential trainer builds it
            running += np.outer(xl[i], d[i])
            if (np.abs(running) >= 0.03).any():
                expected = i
                break
        assert _first_crossing(acc, xl, d, 0.03) == expected
