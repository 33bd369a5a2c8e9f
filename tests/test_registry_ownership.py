"""The device registry is about real benches: simulated and emulated runs keep out of the lab's
registry, rows are keyed by a bench identity that includes the backend, and a registry path
that does not exist is refused everywhere but in the first characterisation."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from hil.bench import load_bench
from hil.characterization.registry import Registry, default_path, flagged_devices
from hil.cli import main


def _error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("hil: error:"), err
    return err[0]


def test_a_simulated_characterisation_does_not_block_training(tmp_path, small_data, capsys):
    assert main(["characterize", "--boards", "1-4", "--failures", "0.05",
                 "--out", str(tmp_path / "c")]) == 0
    assert "device registry: not written" in capsys.readouterr().out
    assert not default_path().exists()
    assert main(["train", "--network", "single", "--epochs", "1", "--data", str(small_data),
                 "--out", str(tmp_path / "t")]) == 0


def test_rows_are_keyed_by_the_bench_identity(tmp_path, capsys):
    reg = tmp_path / "reg.sqlite"
    assert main(["characterize", "--boards", "1-2", "--failures", "0.2:1", "--seed", "1",
                 "--registry", str(reg), "--out", str(tmp_path / "c")]) == 0
    assert f"device registry: {reg} (created)" in capsys.readouterr().out
    sim = load_bench()
    assert sim.identity == "default (simulated)"
    assert len(flagged_devices(sim, reg)) > 0
    real = replace(sim, backend="instruments")
    emulated = replace(real, emulated=True)
    assert real.identity == "default" and emulated.identity == "default (emulated)"
    assert flagged_devices(real, reg).empty and flagged_devices(emulated, reg).empty
    with Registry(reg) as r:
        assert set(r.db.execute("SELECT DISTINCT bench FROM devices").fetchall()) == {
            ("default (simulated)",)}


def test_the_emulated_bench_file_says_it_is_emulated(tmp_path):
    from hil.emulator import EmulatedBench

    with EmulatedBench(load_bench()) as emu:
        path = tmp_path / "emu.toml"
        path.write_text(emu.bench_toml())
    bench = load_bench(path)
    assert bench.emulated and not bench.real and bench.identity.endswith("(emulated)")


def test_a_registry_path_that_does_not_exist_is_refused(tmp_path, small_data, capsys):
    nope = tmp_path / "nope" / "reg.sqlite"
    assert main(["train", "--network", "single", "--epochs", "1", "--data", str(small_data),
                 "--registry", str(nope), "--out", str(tmp_path / "t")]) == 2
    assert "no device registry there" in _error(capsys)
    assert not (tmp_path / "t").exists()
    for argv in (["list"], ["history", "--board", "3"], ["replace", "--board", "3", "--chip", "1"]):
        assert main(["devices", *argv, "--registry", str(nope)]) == 2
        assert "no device registry there" in _error(capsys)
    assert not nope.parent.exists()


def test_flagged_cells_of_an_explicit_registry_still_block_a_simulated_run(tmp_path, small_data,
                                                                           capsys):
    reg = tmp_path / "reg.sqlite"
    bench = load_bench()
    with Registry(reg, create=True) as r:
        r.record(bench, np.array([0]), np.array(["stuck_on"]), np.zeros(1), run="t")
    assert main(["train", "--network", "single", "--epochs", "1", "--data", str(small_data),
                 "--registry", str(reg), "--out", str(tmp_path / "t")]) == 2
    assert "flagged and not replaced" in _error(capsys)
