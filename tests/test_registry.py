"""Device registry: first sighting, history, pulses, replacements, what training must avoid."""

from __future__ import annotations

import numpy as np
import pytest

from hil.bench import CELLS, load_bench
from hil.characterization.registry import REPLACED, Registry, default_path, flagged_devices
from hil.errors import HilError


@pytest.fixture(scope="module")
def bench():
    return load_bench()


def test_record_replace_and_history(bench, tmp_path):
    devices = np.arange(CELLS)  # board 1
    modes = np.full(CELLS, "ok", dtype=object)
    modes[0] = "stuck_on"  # board 1 (1,1): chip 1 pad 1
    modes[5] = "open"  # (1,6): chip 3 pad 2
    with Registry(tmp_path / "reg.sqlite", create=True) as reg:
        reg.record(bench, devices, modes, np.full(CELLS, 40), run="run1", time="2024-01-01T00:00")
        reg.record(bench, devices, modes, np.full(CELLS, 40), run="run2", time="2024-01-02T00:00")
        census = reg.census(bench)
        assert len(census) == CELLS
        assert census["pulses"].eq(80).all()
        assert census["first_seen"].eq("2024-01-01T00:00").all()
        assert census["checked"].eq("2024-01-02T00:00").all()
        flagged = reg.flagged(bench)
        assert flagged[["board", "chip", "pad", "mode"]].values.tolist() == [
            [1, 1, 1, "stuck_on"], [1, 3, 2, "open"]]
        assert flagged["device"].tolist() == [0, 5]

        swapped = reg.replace(bench, 1, 1, time="2024-01-03T00:00")
        assert swapped[["chip", "pad"]].values.tolist() == [[1, 1], [1, 2], [1, 3], [1, 4]]
        assert reg.flagged(bench)["chip"].tolist() == [3]  # chip 1 is new now
        chip1 = reg.census(bench, board=1, mode=REPLACED)
        assert len(chip1) == 4 and chip1["pulses"].eq(0).all()
        assert chip1["installed"].eq("2024-01-03T00:00").all()
        assert sorted(reg.replaced_devices(bench, pending=True)) == [0, 1, 10, 11]

        reg.record(bench, np.array([0, 1, 10, 11]), np.array(["ok"] * 4), np.full(4, 40),
                   run="run3", time="2024-01-04T00:00")
        assert reg.replaced_devices(bench, pending=True).size == 0
        assert sorted(reg.replaced_devices(bench)) == [0, 1, 10, 11]
        history = reg.history(bench, board=1, chip=1)
        first = history[history["pad"] == 1]
        assert first["mode"].tolist() == ["stuck_on", "stuck_on", REPLACED, "ok"]
        assert first["event"].tolist() == ["classified", "classified", "replaced", "classified"]
        now = reg.census(bench, board=1)
        assert now.loc[(now["chip"] == 1) & (now["pad"] == 1), "pulses"].item() == 40
        assert now.loc[(now["chip"] == 1) & (now["pad"] == 1), "first_seen"].item() == (
            "2024-01-01T00:00")


def test_pad_replacement_and_errors(bench, tmp_path):
    with Registry(tmp_path / "reg.sqlite", create=True) as reg:
        one = reg.replace(bench, 2, 7, pad=3)
        assert one[["row", "col", "chip", "pad"]].values.tolist() == [[4, 4, 7, 3]]
        with pytest.raises(HilError, match="board 99 is not on bench"):
            reg.replace(bench, 99, 1)
        with pytest.raises(HilError, match="no chip 31"):
            reg.replace(bench, 2, 31)


def test_pulses_from_training_accumulate(bench, tmp_path):
    with Registry(tmp_path / "reg.sqlite", create=True) as reg:
        reg.add_pulses(bench, np.array([3, 4]), np.array([10, 0]))
        reg.add_pulses(bench, np.array([3]), np.array([5]))
        census = reg.census(bench)
        assert census[["row", "col", "pulses"]].values.tolist() == [[1, 4, 15]]


def test_flagged_devices_for_the_trainer(bench, tmp_path):
    missing = tmp_path / "none.sqlite"
    with pytest.raises(HilError, match="no device registry there"):
        flagged_devices(bench, missing)  # a misspelt path is not an empty registry
    assert not missing.exists()  # asking does not create a registry
    assert flagged_devices(bench).empty  # the default one, not there yet: nothing is flagged
    path = tmp_path / "reg.sqlite"
    with Registry(path, create=True) as reg:
        devices = np.array([0, CELLS + 5, 39 * CELLS + 119])
        reg.record(bench, devices, np.array(["stuck_off", "fabric", "ok"]), np.zeros(3), "r")
    flagged = flagged_devices(bench, path)
    assert flagged["device"].tolist() == [0, CELLS + 5]
    assert flagged["mode"].tolist() == ["stuck_off", "fabric"]
    # a bench holding only some of the boards sees only its own flagged cells, at its indices
    network = bench.for_network("two", [(65, 40), (21, 20)])
    assert flagged_devices(network, path).empty
    with Registry(path, create=True) as reg:
        reg.record(bench, np.array([13 * CELLS + 11]), np.array(["stuck_on"]), np.zeros(1), "r")
    assert flagged_devices(network, path)["device"].tolist() == [CELLS + 11]  # board 14 (2,2)


def test_default_path(monkeypatch, tmp_path):
    monkeypatch.setenv("HIL_REGISTRY", str(tmp_path / "x.sqlite"))
    assert default_path() == tmp_path / "x.sqlite"
    monkeypatch.delenv("HIL_REGISTRY")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    if default_path().parent.parent == tmp_path:  # Linux layout
        assert default_path() == tmp_path / "memristor-hil" / "devices.sqlite"
