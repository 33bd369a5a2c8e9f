"""The bench file's ``visa_library``: every command that opens an instrument uses it, and a
library that cannot be loaded is one line naming it and what to install (exit 2), before any
instrument is touched or any run directory made."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from drivers.errors import InstrumentConnectionError, VisaLibraryError
from drivers.scpi import open_resource, resource_manager
from hil.bench import load_bench
from hil.cli import main
from hil.emulator import EmulatedBench
from tests.conftest import write_optdigits

STAND_IN = "@hilstandin"  # no pyvisa-hilstandin package exists: the wrapper cannot load


@pytest.fixture(scope="module")
def emu():
    with EmulatedBench(load_bench(), seed=2) as e:
        yield e


def bench_with(emu: EmulatedBench, path: Path, library: str) -> Path:
    path.write_text(emu.bench_toml(settings={"instruments": {"visa_library": library}}))
    return path


def test_every_command_that_opens_an_instrument_uses_the_bench_files_library(
        emu, tmp_path, capsys):
    bench = bench_with(emu, tmp_path / "b.toml", STAND_IN)
    data = write_optdigits(tmp_path / "digits", 5, 5)
    commands = {
        "bench check": ["bench", "check", "--bench", str(bench)],
        "train": ["train", "--bench", str(bench), "--data", str(data), "--epochs", "1",
                  "--out", str(tmp_path / "train")],
        "characterize": ["characterize", "--bench", str(bench), "--boards", "1",
                         "--out", str(tmp_path / "char")],
        "bench serve": ["bench", "serve", "--bench", str(bench),
                        "--write", str(tmp_path / "served.toml")],
        "bench discover": ["bench", "discover", "--bench", str(bench), "--no-scan",
                           "--probe", emu.resources["smu_resource"]],
    }
    for name, argv in commands.items():
        for log in (emu.generator.log, emu.smu.log, emu.mcu.executed):
            log.clear()
        assert main(argv) == 2, name
        captured = capsys.readouterr()
        err = captured.err.strip().splitlines()
        assert len(err) == 1 and STAND_IN in err[0] and "pip install pyvisa-hilstandin" in err[0], \
            (name, captured.err)
        assert not emu.generator.log and not emu.smu.log and not emu.mcu.executed, name
    assert not any((tmp_path / d).exists() for d in ("train", "char", "served.toml"))
    # the same file with the default library works: it was the setting that failed
    assert main(["bench", "check", "--bench", str(bench_with(emu, bench, "@py"))]) == 0


def test_library_hints_name_what_to_install():
    with pytest.raises(VisaLibraryError, match="correct the library path.*@py"):
        resource_manager("/nonexistent/libvisa.so")
    with pytest.raises(VisaLibraryError, match=r"'@hilstandin'.*pip install pyvisa-hilstandin"):
        resource_manager(STAND_IN)


@pytest.mark.parametrize("resource, modules, extra", [
    ("USB0::0x05E6::0x2450::04000001::INSTR", ("usb",), "usb"),
    ("GPIB0::24::INSTR", ("gpib", "gpib_ctypes"), "gpib"),
])
def test_a_connection_without_its_package_names_the_extra(resource, modules, extra):
    if any(importlib.util.find_spec(m) for m in modules):
        pytest.skip(f"{modules[0]} is installed here")
    with pytest.raises(InstrumentConnectionError, match=rf"memristor-hil\[{extra}\]"):
        open_resource(resource_manager("@py"), resource, "SMU", 0.5)
