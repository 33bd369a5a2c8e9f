"""Studies: results.csv schema, determinism across runs and executors, fault-injection sanity,
the report and its operator errors. Tiny data and epochs keep the module fast."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pandas as pd
import pytest

from hil.cli import main
from hil.faults import STUCK_OFF
from hil.network import NetworkSpec
from hil.studies.experiments import COLUMNS, drop_weights, inject_faults
from hil.training.baseline import fp32_accuracy, train_fp32
from hil.training.data import load_digits
from hil.training.setup import TrainParams, prepare
from hil.watch.app import create_app


@pytest.fixture(scope="module")
def digits_dir(small_data):
    """300 training and 200 test images: enough for a single layer to learn something."""
    return small_data


FAULTS = ["experiment", "faults", "--seeds", "2", "--epochs", "2", "--fractions", "0,0.2"]


def run_faults(digits_dir, out, *extra) -> pd.DataFrame:
    assert main([*FAULTS, "--data", str(digits_dir), "--out", str(out), *extra]) == 0
    return pd.read_csv(out / "results.csv")


@pytest.fixture(scope="module")
def faults_out(digits_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("faults")
    run_faults(digits_dir, out, "--workers", "2")
    return out


def test_faults_results_schema_and_outputs(faults_out):
    df = pd.read_csv(faults_out / "results.csv")
    assert list(df.columns) == COLUMNS
    # 2 networks x 2 seeds x 4 modes x 2 fractions, all measured after the last epoch
    assert len(df) == 32
    assert set(df["study"]) == {"faults"}
    assert set(df["mode"]) == {"stuck_off", "stuck_on", "pair_off", "fp32_dropped"}
    assert sorted(set(df["p"])) == [0.0, 0.2]
    assert set(df["epoch"]) == {2}
    assert dict(df.groupby("network")["hidden"].first()) == {"single": 0, "two": 20}
    assert df["test_accuracy"].between(0, 1).all()
    for name in ("faults.png", "results.md", "study.json"):
        assert (faults_out / name).stat().st_size > 0


def test_p0_is_the_trained_network_for_both_modes(faults_out):
    df = pd.read_csv(faults_out / "results.csv")
    p0 = df[df["p"] == 0].pivot_table("test_accuracy", ["network", "seed"], "mode")
    assert (p0["stuck_off"] == p0["stuck_on"]).all() and (p0["stuck_off"] == p0["pair_off"]).all()


def test_stuck_on_hurts_more_than_stuck_off(faults_out):
    df = pd.read_csv(faults_out / "results.csv")
    single = df[df["network"] == "single"].groupby(["mode", "p"])["test_accuracy"].mean()
    trained = single["stuck_off", 0.0]
    assert trained > 0.5  # the sanity check needs a network that learnt something
    assert single["stuck_on", 0.2] < single["stuck_off", 0.2] <= trained + 0.05
    assert single["stuck_on", 0.2] < 0.5 * trained


def test_lost_weights_are_whole_pairs_and_the_same_fraction(digits_dir):
    params = TrainParams(network="single", epochs=1, data=str(digits_dir))
    _, backend, trainer = prepare(params, say=lambda m: None)
    seen = []
    set_modes = backend.set_modes
    backend.set_modes = lambda modes: (seen.append(modes.copy()), set_modes(modes))
    out, repairs = inject_faults(trainer, seed=1, fractions=(0.15,))  # 195 devices, 98 pairs
    assert repairs == ()
    assert [m for m, _, _ in out] == ["stuck_off", "stuck_on", "pair_off"]
    layer = trainer.layers[0].devices
    off, _, pairs = (modes[layer] == STUCK_OFF for modes in seen)
    assert off.sum() == round(0.15 * layer.size) and pairs.sum() == 2 * round(0.15 * 650)
    assert (pairs[:, 0::2] == pairs[:, 1::2]).all(), "both devices of a lost weight fail"
    assert (off[:, 0::2] != off[:, 1::2]).any()


def test_dropped_weights_are_the_fp32_network_losing_weights(digits_dir):
    digits = load_digits(str(digits_dir))
    _, weights = train_fp32(digits, NetworkSpec.parse("two", 10), epochs=8, seed=3)
    out = drop_weights(weights, digits, seed=3, fractions=(0.0, 0.3, 1.0))
    assert [(m, p) for m, p, _ in out] == [("fp32_dropped", p) for p in (0.0, 0.3, 1.0)]
    trained, some, none = (a for _, _, a in out)
    assert trained == fp32_accuracy(digits, weights) > 0.5
    assert none == pytest.approx((digits.y_test == 0).mean()), "no weights: every output tanh(0)"
    assert some < trained


def test_repair_epochs_add_repaired_rows_and_change_nothing_else(digits_dir, faults_out,
                                                                 tmp_path):
    df = run_faults(digits_dir, tmp_path, "--seeds", "1", "--repair-epochs", "1",
                    "--workers", "1")
    plain = pd.read_csv(faults_out / "results.csv")
    assert df[~df["mode"].str.endswith("_repaired")].reset_index(drop=True).equals(
        plain[plain["seed"] == 0].reset_index(drop=True)), "the repair runs on a copy"
    fixed = df[df["mode"].str.endswith("_repaired")].set_index(["network", "mode", "p"])
    assert len(fixed) == 2 * 2 * 2 and list(df.columns) == COLUMNS
    broken = df.set_index(["network", "mode", "p"])["test_accuracy"]
    for net, gain in (("single", 0.3), ("two", 0.1)):  # two layers barely learn on 300 images
        assert fixed.loc[(net, "stuck_on_repaired", 0.2), "epoch"] == 3, "2 trained + 1 repair"
        assert fixed.loc[(net, "stuck_on_repaired", 0.2), "test_accuracy"] > broken[
            (net, "stuck_on", 0.2)] + gain
        assert fixed.loc[(net, "stuck_off_repaired", 0.0), "epoch"] == 2, "nothing to repair"
    costs = pd.read_csv(tmp_path / "repairs.csv")
    healthy = costs[costs["p"] == 0]
    assert (healthy["written_off"] == 0).all() and (healthy["tune_pulses"] == 0).all()
    assert (costs.loc[costs["p"] > 0, "written_off"] > 0).all()
    text = (tmp_path / "results.md").read_text()
    assert "two layers, stuck-off, 20 %" in text and "pulses: test + cancel + fine-tune" in text


def test_same_results_when_run_again(digits_dir, faults_out, tmp_path):
    again = run_faults(digits_dir, tmp_path, "--workers", "1")
    assert (tmp_path / "results.csv").read_bytes() == (faults_out / "results.csv").read_bytes()
    assert len(again) == 32


def test_dask_local_cluster_gives_the_same_results_csv(digits_dir, faults_out, tmp_path):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        run_faults(digits_dir, tmp_path, "--scheduler", cluster.scheduler_address)
    assert (tmp_path / "results.csv").read_bytes() == (faults_out / "results.csv").read_bytes()


def test_report_runs_every_study_and_reuses_them(digits_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    args = ["experiment", "report", "--seeds", "1", "--epochs", "2", "--hidden", "5",
            "--fractions", "0,0.1", "--data", str(digits_dir), "--workers", "2",
            "--out", "res", "--markdown", "docs/results.md"]
    assert main(args) == 0
    curves = pd.read_csv("res/curves/results.csv")
    # single and two layers, without and with 6.15 % failed devices, every epoch
    assert len(curves) == 2 * 2 * 2
    assert sorted(set(zip(curves["mode"], curves["p"], strict=True))) == [
        ("mixed", 0.0615), ("ok", 0.0)]
    hidden = pd.read_csv("res/hidden/results.csv")
    assert set(hidden["mode"]) == {"ok", "fp32"} and set(hidden["hidden"]) == {5}
    assert set(hidden["epoch"]) == {1, 2}
    text = (tmp_path / "docs/results.md").read_text()
    for link in ("../res/curves/curves.png", "../res/faults/faults.png",
                 "../res/hidden/hidden.png"):
        assert f"]({link})" in text
    assert str(tmp_path) not in text and str(digits_dir) not in text
    command = next(line for line in text.splitlines() if line.startswith("hil experiment report"))
    assert {"--seeds 1", "--epochs 2", "--hidden 5", "--fractions 0,0.1"} <= set(
        " ".join(pair) for pair in zip(command.split()[3::2], command.split()[4::2], strict=False))

    # the report trains each network once for all studies; alone, a study gives the same rows
    assert main(["experiment", "faults", "--seeds", "1", "--epochs", "2", "--fractions", "0,0.1",
                 "--data", str(digits_dir), "--out", "alone"]) == 0
    assert Path("alone/results.csv").read_bytes() == Path("res/faults/results.csv").read_bytes()

    before = {s: (tmp_path / f"res/{s}/study.json").stat().st_mtime_ns
              for s in ("curves", "faults", "hidden")}
    capsys.readouterr()
    assert main([*args, "--reuse"]) == 0
    assert "reusing" in capsys.readouterr().err
    after = {s: (tmp_path / f"res/{s}/study.json").stat().st_mtime_ns for s in before}
    assert after == before
    assert (tmp_path / "docs/results.md").read_text() == text


@pytest.mark.parametrize("extra, message", [
    (["--seeds", "0"], "--seeds must be at least 1"),
    (["--seeds", "1,x"], "comma-separated"),
    (["--epochs", "0"], "--epochs must be at least 1"),
    (["--fractions", "0,20"], "not percentages (20 % is 0.2)"),
    (["--device-curves", "missing.csv"], "missing.csv"),
])
def test_operator_errors_are_one_line(digits_dir, tmp_path, capsys, extra, message):
    code = main([*FAULTS, "--data", str(digits_dir), "--out", str(tmp_path), *extra])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err and err.startswith("hil: error:") and err.count("\n") == 1


def test_hidden_sizes_are_checked(digits_dir, tmp_path, capsys):
    code = main(["experiment", "hidden", "--hidden", "5,3", "--data", str(digits_dir),
                 "--out", str(tmp_path)])
    assert code == 2
    assert "hidden neurons must be 5-100" in capsys.readouterr().err


def test_device_curves_drive_the_simulator(digits_dir, tmp_path):
    from hil.bench import data_file
    from hil.curves import load_curves

    frame = load_curves(data_file("curves-default.csv")).to_frame()
    frame["conductance_uS"] *= 0.5  # devices with half the conductance window
    frame.to_csv(tmp_path / "half.csv", index=False)
    common = ["experiment", "curves", "--seeds", "1", "--epochs", "1", "--data", str(digits_dir)]
    assert main([*common, "--out", str(tmp_path / "default")]) == 0
    assert main([*common, "--device-curves", str(tmp_path / "half.csv"),
                 "--out", str(tmp_path / "half")]) == 0
    default = pd.read_csv(tmp_path / "default/results.csv")
    half = pd.read_csv(tmp_path / "half/results.csv")
    assert list(default.columns) == list(half.columns) and len(default) == len(half)
    assert not default["test_accuracy"].equals(half["test_accuracy"])
    meta = (tmp_path / "half/study.json").read_text()
    assert '"file": "half.csv"' in meta and str(tmp_path) not in meta


def test_an_existing_or_unwritable_out_is_refused_before_any_trial(digits_dir, tmp_path, capsys,
                                                                   monkeypatch):
    def no_trials(*a, **k):
        raise AssertionError("a trial ran")

    monkeypatch.setattr("hil.cli.experiment.run_studies", no_trials)
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "results.csv").write_text("kept")
    (tmp_path / "file").write_text("x")
    for out, words in ((tmp_path / "old", "is not empty"),
                       (tmp_path / "file" / "out", "not a directory")):
        assert main([*FAULTS, "--data", str(digits_dir), "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert words in err and err.startswith("hil: error:") and err.count("\n") == 1
    assert (tmp_path / "old" / "results.csv").read_text() == "kept"


def test_hil_watch_follows_a_study_as_its_trainings_finish(faults_out):
    view = create_app(faults_out).test_client().get("/view.json").get_json()
    assert view["kind"] == "study" and view["state"] == "done"
    progress = json.loads(sqlite3.connect(faults_out / "run.sqlite").execute(
        "SELECT value FROM meta WHERE key = 'progress'").fetchone()[0])
    trainings = json.loads((faults_out / "study.json").read_text())["trainings"]
    assert progress["done"] == progress["total"] == trainings  # each reported as it finished
    fig = next(f["figure"] for f in view["figures"] if f["id"] == "study")
    assert len(fig["data"]) == 8  # 2 networks x 4 modes
    assert fig["layout"]["xaxis"]["title"]["text"] == "fraction of failed devices"
