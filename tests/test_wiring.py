"""The bench file's ``[wiring]``: schema, cross-checks, refusal of benches without usable
wiring (exit 2, one line) and ``hil bench check`` sending an edge down every declared wire."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from hil.backends.hardware import require_wiring, wiring
from hil.bench import load_bench, parse_bench
from hil.cli import main
from hil.emulator import EmulatedBench, dump_toml, emulated_wiring
from hil.errors import BenchFileError
from tests.conftest import write_optdigits


def raw_bench(**sections) -> dict:
    raw = tomllib.loads(Path(load_bench().sim.curves).parent.joinpath(
        "bench-default.toml").read_text())
    raw["boards"]["map"] = str(Path(load_bench().sim.curves).parent / raw["boards"]["map"])
    raw["sim"]["curves"] = str(load_bench().sim.curves)
    raw.update(sections)
    return raw


@pytest.mark.parametrize(("section", "match"), [
    ({"generator_trigger": 3}, "wiring.generator_trigger: must be 0 .not wired., 1 or 2"),
    ({"smu_trigger_line": 0}, "wiring.smu_trigger_line: must be > 0"),
    ({"trigger_width": 1e-9}, "wiring.trigger_width: must be in"),
    ({"generator_trigger": 1, "smu_trigger": 1}, "wiring.smu_trigger: TRIG OUT 1 already"),
    ({"smu_trigger": 2, "smu_trigger_line": 7}, "wiring.smu_trigger_line: the 2450 has lines 1-6"),
    ({"smu_complete": 1}, "wiring.smu_complete: needs smu_trigger"),
    ({"smu_trigger": 2, "smu_complete": 1, "smu_complete_line": 1},
     "wiring.smu_complete_line: is the SMU's trigger input line"),
    ({"smu_complete": 1, "smu_trigger": 2, "generator_sync": 1},
     "wiring.generator_sync: TRIG IN 1 already"),
    ({"wire": 1}, "wiring.wire: unknown key"),
])
def test_wiring_is_checked_key_by_key_and_as_a_whole(section, match):
    with pytest.raises(BenchFileError, match=match):
        wiring(parse_bench(raw_bench(wiring=section), "x.toml"))


def test_b2900_has_fourteen_lines_and_sync_needs_a_33500b():
    raw = raw_bench(instruments={"smu_model": "B2900", "generator_model": "81160A"},
                    wiring={"smu_trigger": 2, "smu_trigger_line": 14})
    assert wiring(parse_bench(raw, "x.toml")).smu_trigger_line == 14
    raw["wiring"]["generator_sync"] = 2
    with pytest.raises(BenchFileError, match="generator_sync: supported for the 33500B only"):
        wiring(parse_bench(raw, "x.toml"))


def test_no_usable_wiring_names_what_is_missing():
    with pytest.raises(BenchFileError, match=r"wiring: no usable trigger wiring: declare "
                       r"wiring.generator_trigger .* and wiring.smu_trigger"):
        require_wiring(parse_bench(raw_bench(), "x.toml"))
    w = require_wiring(parse_bench(raw_bench(wiring=emulated_wiring("33500B")), "x.toml"))
    assert [name for name, _, _ in w.wires()] == [
        "generator_trigger", "smu_trigger", "smu_complete", "generator_sync"]


@pytest.fixture(scope="module")
def emu():
    with EmulatedBench(load_bench(), seed=3) as e:
        yield e


def without_wiring(emu: EmulatedBench, path: Path, **wiring_keys) -> Path:
    raw = tomllib.loads(emu.bench_toml())
    if wiring_keys:
        raw["wiring"] = wiring_keys
    else:
        del raw["wiring"]
    path.write_text(dump_toml(raw))
    return path


@pytest.mark.parametrize("command", ["train", "characterize", "bench check"])
def test_benches_without_usable_wiring_are_refused_in_one_line(emu, tmp_path, capsys, command):
    data = write_optdigits(tmp_path / "data", 4, 2)
    bad = without_wiring(emu, tmp_path / "bad.toml")
    half = without_wiring(emu, tmp_path / "half.toml", generator_trigger=1)
    for path, missing in ((bad, "wiring.generator_trigger"), (half, "wiring.smu_trigger")):
        argv = {"train": ["train", "--data", str(data), "--out", str(tmp_path / "run")],
                "characterize": ["characterize", "--boards", "13", "--registry",
                                 str(tmp_path / "reg.sqlite"), "--out", str(tmp_path / "r")],
                "bench check": ["bench", "check"]}[command]
        sent = len(emu.mcu.received)
        assert main([*argv, "--bench", str(path)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and missing in err[0] and "no usable trigger wiring" in err[0]
        assert len(emu.mcu.received) == sent, "refused before any instrument was touched"
    assert not (tmp_path / "run").exists() and not (tmp_path / "r").exists()


def test_bench_check_reports_a_declared_wire_that_carries_nothing(tmp_path, capsys):
    """The emulated bench has no completion wire; a bench file declaring one is told so."""
    raw = raw_bench(wiring={**emulated_wiring("33500B"), "smu_complete": 0})
    with EmulatedBench(parse_bench(raw, "x.toml"), seed=3) as emu:
        path = without_wiring(emu, tmp_path / "emu.toml", **emulated_wiring("33500B"))
        assert main(["bench", "check", "--bench", str(path)]) == 2
        captured = capsys.readouterr()
        lines = {line.split()[1]: line.split()[2] for line in captured.out.splitlines()
                 if line.startswith("wire ")}
        assert lines == {"smu_trigger": "ok", "smu_complete": "BROKEN",
                         "generator_trigger": "ok", "generator_sync": "ok"}
        assert len(captured.err.strip().splitlines()) == 1
        assert "wire smu_complete" in captured.err and "timeout" in captured.err
        assert emu.is_safe()


def test_bench_check_on_81160a_and_b2900_says_which_wire_it_cannot_see(tmp_path, capsys):
    with EmulatedBench(load_bench(), generator="81160A", smu="B2900", seed=3) as emu:
        path = tmp_path / "emu.toml"
        path.write_text(emu.bench_toml())
        assert main(["bench", "check", "--bench", str(path)]) == 0
        status = {line.split()[1]: line.split()[2] for line in capsys.readouterr().out
                  .splitlines() if line.startswith("wire ")}
        assert status == {"smu_trigger": "ok", "smu_complete": "ok", "generator_trigger": "sent"}
        assert emu.is_safe()
