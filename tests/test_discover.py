"""``hil bench discover`` against the emulated bench: each instrument identified whatever the
order it is named in, a bench file written that ``hil bench check`` accepts, every problem one
line, and nothing but queries sent (the emulator's command logs)."""

from __future__ import annotations

import itertools
import threading
from pathlib import Path

import pytest

from hil.bench import load_bench
from hil.cli import main
from hil.emulator import EmulatedBench, emulated_wiring
from hil.emulator.scpi import LineServer, ScpiInstrument
from hil.emulator.smus import Keithley2450
from hil.errors import BenchFileError

QUERIES = {"*IDN?", "*LANG?"}  # all discovery may send a SCPI instrument


@pytest.fixture(scope="module")
def emu():
    with EmulatedBench(load_bench(), seed=3) as e:
        yield e


def discover(tmp_path: Path, *probes: str, write: str | None = "found.toml",
             extra: tuple[str, ...] = ()) -> tuple[int, Path]:
    out = tmp_path / write if write else None
    args = ["bench", "discover", "--no-scan", "--timeout", "0.3", "--probe", *probes, *extra]
    return main(args + (["--write", str(out)] if out else [])), out


def rows(text: str, resource: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith(resource + " ")]


def only_queries(emu: EmulatedBench) -> None:
    assert set(emu.generator.log) <= QUERIES and set(emu.smu.log) <= QUERIES
    assert set(emu.mcu.executed) <= {"IDN?"}


def test_each_instrument_identified_in_any_order_with_queries_only(emu, tmp_path, capsys):
    r = emu.resources
    named = [r["generator_resource"], r["smu_resource"], r["mcu_port"]]
    for order in itertools.permutations(named):
        for log in (emu.generator.log, emu.smu.log, emu.mcu.executed):
            log.clear()
        rc, _ = discover(tmp_path, *order, write=None)
        text = capsys.readouterr().out
        assert rc == 0
        assert "pulse generator 33500B" in rows(text, r["generator_resource"])[0]
        assert "source meter 2450" in rows(text, r["smu_resource"])[0]
        assert rows(text, r["mcu_port"])[0].endswith(" MCU")
        only_queries(emu)
        assert emu.smu.log == ["*IDN?", "*IDN?", "*LANG?"] and emu.mcu.executed == ["IDN?"]


def test_the_written_file_is_refused_until_wired_then_checks(emu, tmp_path, capsys):
    r = emu.resources
    rc, out = discover(tmp_path, r["mcu_port"], r["generator_resource"], r["smu_resource"])
    assert rc == 0
    bench = load_bench(out)
    assert bench.backend == "instruments"
    before = len(emu.generator.log), len(emu.smu.log), len(emu.mcu.executed)
    assert main(["bench", "check", "--bench", str(out)]) == 2  # the cables are not declared yet
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no usable trigger wiring" in err[0]
    assert before == (len(emu.generator.log), len(emu.smu.log), len(emu.mcu.executed))
    careless = tmp_path / "careless.toml"  # a placeholder uncommented without a cable traced
    careless.write_text(out.read_text().replace("\n# [wiring]\n", "\n[wiring]\n").replace(
        "# generator_trigger = <", "generator_trigger = <"))
    with pytest.raises(BenchFileError, match=r"syntax: Invalid value \(at line \d+"):
        load_bench(careless)
    fill_wiring(out, emulated_wiring(emu.generator_model))
    assert main(["bench", "check", "--bench", str(out)]) == 0
    assert "bench check passed" in capsys.readouterr().out


def fill_wiring(path: Path, wires: dict[str, int]) -> None:
    """What the operator does with the template: uncomment the section and each wire that
    exists with its line number; the durations as they stand."""
    lines, section = [], False
    for line in path.read_text().splitlines():
        key = line.removeprefix("# ").split(" = ")[0]
        if line == "# [wiring]":
            line, section = "[wiring]", True
        elif not section:
            pass
        elif line.startswith("# ") and key in wires:
            line = f"{key} = {wires[key]}"
        elif line.startswith("# ") and " = " in line and "<" not in line and key.isidentifier():
            line = line.removeprefix("# ")
        lines.append(line)
    path.write_text("\n".join(lines) + "\n")


def test_silent_unknown_and_foreign_resources_are_one_line_each(emu, tmp_path, capsys):
    class Scope(ScpiInstrument):
        idn = "RIGOL TECHNOLOGIES,DS1054Z,DS1ZA000000001,00.04.04"

    class Tsp2450(Keithley2450):
        def extra_common(self, header, args):
            return "TSP" if header == "*LANG?" else super().extra_common(header, args)

    scope = Scope(threading.RLock())
    tsp = Tsp2450(emu.model)
    servers = [LineServer(lambda line: None).start(),  # accepts, never answers
               LineServer.for_instrument(scope).start(),
               LineServer(lambda line: b"$GPGGA,123519,4807.038,N*47").start(),  # a GPS
               LineServer(lambda line: None).start(),
               LineServer.for_instrument(tsp).start()]
    silent, unknown, gps, quiet, lang = (s.port for s in servers)
    mcu_port = emu.servers["mcu"].port
    probes = {
        f"TCPIP::127.0.0.1::{silent}::SOCKET": "no reply to *IDN? within 0.3 s",
        f"TCPIP::127.0.0.1::{unknown}::SOCKET": "RIGOL TECHNOLOGIES DS1054Z",
        f"socket://127.0.0.1:{gps}": "not the MCU's framing; something else is on this port",
        f"socket://127.0.0.1:{quiet}": "no reply to the MCU's IDN? frame",
        "TCPIP::127.0.0.1::1::SOCKET": "nothing listens there",
        f"TCPIP::127.0.0.1::{mcu_port}::SOCKET": f"probe it as socket://127.0.0.1:{mcu_port}",
        f"TCPIP::127.0.0.1::{lang}::SOCKET": "command language is TSP",
    }
    try:
        emu.mcu.executed.clear()
        rc, out = discover(tmp_path, *probes)
    finally:
        for s in servers:
            s.stop()
    text = capsys.readouterr().out
    assert rc == 0
    for resource, why in probes.items():
        found = rows(text, resource)
        assert len(found) == 1 and why in found[0], (resource, found)
    assert "no driver for this model" in rows(text, f"TCPIP::127.0.0.1::{unknown}::SOCKET")[0]
    assert scope.log == ["*IDN?"] and set(tsp.log) <= QUERIES
    assert emu.mcu.executed == []  # "*IDN?" is not a frame: refused unread, nothing executed
    # the 2450 that is there but in the wrong language is the SMU, with what to change
    assert "smu_resource" in out.read_text() and "fix before use" in out.read_text()
    assert "command language is TSP" in text.split("\n\n")[1]


def test_several_or_none_of_a_kind_are_said_plainly_and_the_file_refuses(emu, tmp_path,
                                                                          capsys):
    r = emu.resources
    with EmulatedBench(load_bench(), smu="B2900", seed=4) as other:
        rc, out = discover(tmp_path, r["smu_resource"], other.resources["smu_resource"],
                           r["generator_resource"])
        only_queries(other)
    text = capsys.readouterr().out
    assert rc == 0
    assert ("source meter: 2 answered" in text and "smu_resource left empty" in text
            and "MCU: none answered: mcu_port left empty" in text)
    written = out.read_text()
    assert f'# smu_resource = "{r["smu_resource"]}"' in written
    assert 'smu_resource = ""' in written.splitlines()
    fill_wiring(out, emulated_wiring("33500B"))
    assert main(["bench", "check", "--bench", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "instruments.smu_resource: missing" in err[0]


def test_discover_does_not_overwrite_and_needs_something_to_ask(tmp_path, capsys):
    (tmp_path / "found.toml").write_text("kept")
    rc, out = discover(tmp_path, "socket://127.0.0.1:1")
    assert rc == 2 and out.read_text() == "kept"
    assert main(["bench", "discover", "--no-scan"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "exists" in err[0] and "--probe" in err[1]


def test_listed_resources_merge_the_library_and_pyserial_without_repeats(monkeypatch):
    import warnings
    from types import SimpleNamespace

    from serial.tools import list_ports

    from hil.backends import discovery

    class FakeManager:
        def list_resources(self, query):
            warnings.warn("TCPIP::hislip resource discovery requires the zeroconf package\n"
                          "to be installed", UserWarning, stacklevel=1)
            return ("USB0::0x05E6::0x2450::04000001::INSTR", "ASRL/dev/ttyACM0::INSTR",
                    "ASRL3::INSTR")

    monkeypatch.setattr(discovery, "resource_manager", lambda library: FakeManager())
    monkeypatch.setattr(list_ports, "comports", lambda: [
        SimpleNamespace(device="/dev/ttyACM0"), SimpleNamespace(device="/dev/ttyUSB0")])
    listed, notes = discovery.listed_resources("@py")
    assert listed == ["USB0::0x05E6::0x2450::04000001::INSTR", "/dev/ttyACM0", "COM3",
                      "/dev/ttyUSB0"]
    assert notes == ["TCPIP::hislip resource discovery requires the zeroconf package to be "
                     "installed"]


def test_boards_the_mcu_does_not_report_are_named(emu, tmp_path, capsys):
    text = Path(load_bench().sim.curves).with_name("bench-default.toml").read_text()
    base = tmp_path / "base.toml"
    base.write_text(text.replace("count = 40", "count = 42").replace(
        'map = "board-map.csv"', f'map = "{load_bench().sim.curves.with_name("board-map.csv")}"'))
    rc, _ = discover(tmp_path, emu.resources["mcu_port"], write=None, extra=("--bench", str(base)))
    assert rc == 0
    assert f"the MCU does not report boards [41, 42] of {base}" in capsys.readouterr().out
