"""The emulated bench keeps its addresses: ``hil bench serve --port BASE`` serves the same ports
at every start, and an instrument switched off and on again comes back in its power-on state on
the same address (its connections dropped, the devices' conductances kept)."""

from __future__ import annotations

import argparse
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest
import pyvisa

from hil.bench import load_bench
from hil.cli import main
from hil.cli.bench import serve
from hil.emulator import EmulatedBench
from hil.emulator.timeline import read_timeline


def _free_base() -> int:
    for base in range(47000, 60000, 7):
        socks = []
        try:
            for port in range(base, base + 3):
                s = socket.socket()
                socks.append(s)
                s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no three free ports")


def _serve_once(tmp_path, base: int) -> str:
    out = tmp_path / "emu.toml"
    stop, started = threading.Event(), []
    args = argparse.Namespace(bench=None, write=str(out), generator="33500B", smu="2450",
                              seed=None, port=base)
    thread = threading.Thread(target=serve, args=(args, started.append, stop))
    thread.start()
    try:
        for _ in range(200):
            if started:
                break
            threading.Event().wait(0.05)
        return out.read_text()
    finally:
        stop.set()
        thread.join(10)


def test_bench_serve_port_keeps_the_bench_file_valid_across_restarts(tmp_path):
    base = _free_base()
    first = _serve_once(tmp_path, base)
    assert f"TCPIP::127.0.0.1::{base}::SOCKET" in first
    assert f"socket://127.0.0.1:{base + 2}" in first
    assert _serve_once(tmp_path, base) == first


def test_bench_serve_operator_errors_are_one_line(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    base = _free_base()
    for argv, words in ((["--write", str(tmp_path / "file" / "emu.toml")], "cannot write"),
                        (["--write", str(tmp_path / "e.toml"), "--port", "80"], "1024-65533"),
                        (["--write", str(tmp_path / "e.toml"), "--seed", "-1"], "--seed -1")):
        assert main(["bench", "serve", *argv]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and words in err[0], err
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", base + 1))
        busy.listen()
        assert main(["bench", "serve", "--write", str(tmp_path / "e.toml"),
                     "--port", str(base)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "smu: cannot listen" in err[0], err


def test_a_power_cycled_instrument_comes_back_reset_on_the_same_address():
    bench = load_bench()
    with EmulatedBench(bench, seed=3) as emu:
        rm = pyvisa.ResourceManager("@py")
        res = emu.resources["smu_resource"]
        inst = rm.open_resource(res, read_termination="\n", write_termination="\n",
                                timeout=2000)
        inst.write(":OUTP ON")
        assert inst.query(":OUTP?").strip() == "1"
        g = emu.model.sim.g.copy() if hasattr(emu.model, "sim") else None
        emu.power_off("smu")
        assert not emu.smu.state.output
        with pytest.raises((pyvisa.errors.VisaIOError, OSError)):
            inst.query("*IDN?")  # the connection went with the power
        inst.close()
        emu.power_on("smu")
        assert emu.resources["smu_resource"] == res
        inst = rm.open_resource(res, read_termination="\n", write_termination="\n",
                                timeout=2000)
        assert inst.query(":OUTP?").strip() == "0"
        inst.close()
        if g is not None:
            assert (emu.model.sim.g == g).all()
        emu.stall("generator")
        gen = rm.open_resource(emu.resources["generator_resource"], read_termination="\n",
                               write_termination="\n", timeout=300)
        with pytest.raises(pyvisa.errors.VisaIOError):
            gen.query("*IDN?")  # stalled: no answer within the timeout
        emu.stall("generator", False)
        assert "33522B" in gen.read()  # the late answer arrives once it is awake again
        gen.close()


def test_sigterm_stops_the_served_bench_and_still_writes_its_timeline(tmp_path):
    """``hil bench serve`` under a process manager ends with SIGTERM: the timeline of what the
    bench saw is written and the bench says it ended safe."""
    out, timeline = tmp_path / "emu.toml", tmp_path / "events.csv"
    serve_proc = subprocess.Popen(
        [sys.executable, "-m", "hil.cli", "bench", "serve", "--write", str(out), "--timeline",
         str(timeline)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not out.exists() and serve_proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert main(["bench", "check", "--bench", str(out)]) == 0  # traffic for the timeline
        serve_proc.send_signal(signal.SIGTERM)
        stdout, stderr = serve_proc.communicate(timeout=60)
    finally:
        serve_proc.kill()
    assert serve_proc.returncode == 0, stderr[-500:]
    assert "emulated bench stopped (safe state" in stdout
    rows = read_timeline(timeline)
    assert rows and {"switch", "edge"} <= {r[2] for r in rows}
