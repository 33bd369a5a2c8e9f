"""``hil bench serve`` (the emulated bench in the foreground) and ``hil bench check`` (is every
instrument of a bench file there, the right model, reachable, every declared trigger wire
carrying its edge, and everything left safe?); ``hil bench discover`` lives in
:mod:`hil.cli.discover`."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import threading
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from drivers import PULSE_GENERATORS, SOURCE_METERS
from drivers.errors import InstrumentError
from drivers.mcu import MuxController, Pacing, Route
from drivers.pulsegen import PulseLimits
from drivers.scpi import resource_manager
from drivers.smu import SourceLimits, SourceMeter
from hil.backends.hardware import (
    GENERATOR_MODELS,
    SMU_MODELS,
    clock_settings,
    instruments_config,
    pulse_pacing,
    read_pacing,
    require_wiring,
    required_instruments,
    smu_nplc,
)
from hil.backends.instruments import Instruments, current_range, open_mux
from hil.bench import Bench, load_bench
from hil.cli import discover
from hil.emulator import EmulatedBench
from hil.emulator.firmware import FirmwareError
from hil.errors import HilError
from hil.records import write_atomic


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="serve an emulated bench, or discover or check a bench's "
                       "instruments")
    bsub = p.add_subparsers(dest="bench_command", metavar="ACTION", required=True)

    s = bsub.add_parser(
        "serve", help="run the emulated bench until interrupted",
        description="Serve an emulated pulse generator, SMU and MCU on 127.0.0.1, sharing one "
        "simulated-bench physics model, and write a bench file that points at them.")
    s.add_argument("--bench", metavar="FILE", help="bench to emulate (default: embedded)")
    s.add_argument("--write", metavar="OUT", required=True, help="bench file to write")
    s.add_argument("--generator", choices=GENERATOR_MODELS, default="33500B")
    s.add_argument("--smu", choices=SMU_MODELS, default="2450")
    s.add_argument("--seed", type=int, help="physics seed (default: the bench's [sim] seed)")
    s.add_argument("--mcu-firmware", metavar="PATH",
                   help="run the MCU firmware's host build (make -C firmware host) as the MCU "
                   "instead of the Python emulator")
    s.add_argument("--timeline", metavar="CSV", help="record every event of the bench (switch "
                   "changes, settling, pulses, apertures, trigger edges) on its time base and "
                   "write them here when the server stops")
    s.add_argument("--port", type=int, metavar="BASE",
                   help="serve on fixed ports BASE (generator), BASE+1 (SMU), BASE+2 (MCU), so "
                   "the bench file stays valid across restarts (default: free ports)")
    s.set_defaults(run=serve)

    c = bsub.add_parser(
        "check", help="identify every instrument and verify the MCU link",
        description="Identify the generator, SMU and MCU named in [instruments], verify the "
        "generator's high-impedance load, the MCU's boards and switch read-back, and leave every "
        "output off and every switch open.")
    c.add_argument("--bench", metavar="FILE", required=True)
    c.set_defaults(run=check)

    discover.register(bsub)


def serve(args: argparse.Namespace, ready: Callable[[EmulatedBench], None] | None = None,
          stop: threading.Event | None = None) -> int:
    """Serve until Ctrl-C / SIGTERM (or ``stop``, for tests)."""
    bench = load_bench(args.bench)
    resource_manager(instruments_config(bench).visa_library)  # the written file will need it
    base = Path(args.bench).resolve().parent if args.bench else None
    stop = stop or threading.Event()
    firmware = getattr(args, "mcu_firmware", None)
    if firmware is not None and not os.access(firmware, os.X_OK):
        raise HilError(f"--mcu-firmware {firmware}: not an executable (build it with "
                       "make -C firmware host)")
    timeline = getattr(args, "timeline", None)
    if args.seed is not None and args.seed < 0:
        raise HilError(f"--seed {args.seed}: seeds are integers >= 0")
    ports = None
    if args.port is not None:
        if not 1024 <= args.port <= 65533:
            raise HilError(f"--port {args.port}: BASE must be 1024-65533 (three ports from it)")
        ports = dict(zip(EmulatedBench.INSTRUMENTS, range(args.port, args.port + 3),
                         strict=True))
    out = Path(args.write)
    if not out.parent.is_dir() or not os.access(out.parent, os.W_OK):
        raise HilError(f"--write {out}: cannot write there ({out.parent} is not a writable "
                       "directory)")
    try:
        emu = EmulatedBench(bench, generator=args.generator, smu=args.smu, seed=args.seed,
                            ports=ports, mcu_firmware=firmware)
    except FirmwareError as exc:
        raise HilError(str(exc)) from exc
    try:
        emu.start()
    except OSError as exc:
        emu.stop()
        raise HilError(f"--port {args.port}: {exc.strerror} (another bench serving there?)"
                       ) from None
    try:
        if threading.current_thread() is threading.main_thread():
            # from the moment the bench file exists, a SIGTERM still writes the timeline
            signal.signal(signal.SIGTERM, lambda *a: stop.set())
        if timeline:
            emu.record_timeline()
        write_atomic(out, lambda p: p.write_text(emu.bench_toml(base)))
        for key, value in emu.resources.items():
            print(f"{key:>20} = {value}")
        print(f"bench file written to {out}; serving until interrupted (Ctrl-C)", flush=True)
        if ready is not None:
            ready(emu)
        try:
            while not stop.wait(0.2):
                pass
        except KeyboardInterrupt:
            pass
        safe = emu.is_safe()
    finally:
        emu.stop()
    if timeline:
        rows = emu.write_timeline(Path(timeline))
        print(f"timeline: {rows} events written to {timeline}")
    print(f"emulated bench stopped ({'safe state' if safe else 'NOT in safe state'}, "
          f"{len(emu.pulses)} pulses delivered)")
    return 0


def check(args: argparse.Namespace) -> int:
    bench = load_bench(args.bench)
    if bench.backend != "instruments":
        raise HilError(f"{args.bench}: bench.backend is {bench.backend!r}; nothing to check "
                       "(set backend = \"instruments\" and an [instruments] section)")
    require_wiring(bench)  # before any instrument is touched
    lines, problems = check_bench(bench)
    for line in lines:
        print(line)
    if problems:
        raise HilError("; ".join(problems))
    print("bench check passed: every instrument identified, every declared wire carried its "
          "edge, outputs off, switches open")
    return 0


def check_bench(bench: Bench) -> tuple[list[str], list[str]]:
    """Report lines and problems; each instrument is checked even if another fails, and each
    is left with its output off (switches open) whatever happened. Then, if all three answer,
    every declared wire: an edge is sent and seen to arrive."""
    cfg = required_instruments(bench)
    resource_manager(cfg.visa_library)  # one line for a library that cannot load, not one each
    lim = bench.limits
    lines: list[str] = []
    problems: list[str] = []

    def attempt(label: str, action: Callable[[], str]) -> bool:
        try:
            lines.append(f"{label:<18} ok    {action()}")
            return True
        except (InstrumentError, OSError) as exc:
            lines.append(f"{label:<18} FAIL  {exc}")
            problems.append(str(exc))
            return False

    def generator() -> str:
        gen = PULSE_GENERATORS[cfg.generator_model].open(
            cfg.generator_resource, model=cfg.generator_model, timeout=cfg.timeout,
            channel=cfg.generator_channel, visa_library=cfg.visa_library,
            limits=PulseLimits(lim.max_pulse_voltage, lim.min_pulse_width, lim.max_pulse_width))
        try:
            gen.setup()  # reset, high-impedance load verified, output off, errors drained
            on = gen.output
        finally:
            gen.close()
        return f"{_idn(gen.identity)}; load high-Z verified; output {'ON' if on else 'off'}"

    def smu() -> str:
        inst = SOURCE_METERS[cfg.smu_model].open(
            cfg.smu_resource, model=cfg.smu_model, timeout=cfg.timeout,
            visa_library=cfg.visa_library,
            limits=SourceLimits(lim.max_read_voltage, lim.current_compliance))
        try:
            inst.setup(voltage=bench.pulses.read_voltage, current_limit=lim.current_compliance,
                       current_range=current_range(lim.current_compliance),
                       nplc=smu_nplc(clock_settings(bench)))
            on = inst.output
        finally:
            inst.close()
        return f"{_idn(inst.identity)}; configured without errors; output {'ON' if on else 'off'}"

    def mcu() -> str:
        mux = open_mux(bench)
        try:
            # a run killed mid-pulse leaves the table armed ("ERR 8 busy" to any route):
            # disarm and open first, as every run does
            mux.open_all()
            for board in bench.board_ids:  # every BL, a WL/SL on each side, both SL paths
                mux.set_route(Route.pulse([(board, 1, 0xFFF)]))
                mux.set_route(Route.mac([(board, 10, 0xFFF)]))
            mux.open_all()
            ident = mux.identity
        finally:
            with contextlib.suppress(InstrumentError, OSError):
                mux.close()
        return (f"firmware {ident.firmware}/{ident.version}, {len(ident.boards)} boards, table "
                f"{ident.table_size}, frames up to {mux.max_frame} bytes; switch read-back "
                f"verified on {len(bench.board_ids)} boards; all open")

    answered = [attempt("generator", generator), attempt("smu", smu), attempt("mcu", mcu)]
    if all(answered):
        lines += check_wires(bench, problems)
    return lines, problems


def check_wires(bench: Bench, problems: list[str]) -> list[str]:
    """Send an edge down every declared wire with every switch open and see it arrive: the
    SMU takes one reading per edge from the MCU and answers with its completion edge; the
    generator fires one pulse into the open bus and its Sync edge comes back. A wire whose
    arrival the instruments cannot show is reported ``sent``."""
    w, clock = require_wiring(bench), clock_settings(bench)
    inst = Instruments(bench)
    out: list[str] = []

    def report(name: str, ok: bool, text: str) -> None:
        out.append(f"wire {name:<17} {'ok    ' if ok else 'BROKEN'} {text}")
        if not ok:
            problems.append(f"wire {name}: {text}")

    try:
        mux, smu, gen = inst.mux, inst.smu, inst.generator
        mux.open_all()
        smu.setup(voltage=bench.pulses.read_voltage, current_limit=bench.limits.current_compliance,
                  current_range=current_range(bench.limits.current_compliance),
                  nplc=smu_nplc(clock), trigger_in=w.smu_trigger_line,
                  complete_out=w.smu_complete_line if w.smu_complete else None)
        where = f"MCU TRIG OUT {w.smu_trigger} -> SMU line {w.smu_trigger_line}"
        dwell = read_pacing(replace(w, smu_complete=0), clock)
        try:
            _one_entry(mux, smu, dwell, 0)
            report("smu_trigger", True, f"{where}: the SMU took its reading on the edge")
        except (InstrumentError, OSError) as exc:
            report("smu_trigger", False, f"{where}: {exc}")
        if w.smu_complete:
            where = f"SMU line {w.smu_complete_line} -> MCU TRIG IN {w.smu_complete}"
            try:
                _one_entry(mux, smu, read_pacing(w, clock), 1)
                report("smu_complete", True, f"{where}: one edge after the reading")
            except (InstrumentError, OSError) as exc:
                report("smu_complete", False, f"{where}: {exc}")
        where = f"MCU TRIG OUT {w.generator_trigger} -> generator trigger input"
        gen.setup()
        gen.configure_pulse(bench.pulses.read_voltage, bench.pulses.width)
        if w.generator_sync:
            gen.enable_sync()
        gen.arm()
        try:
            mux.load_table([Route.open()])
            pacing = pulse_pacing(w, clock, bench.pulses.width, gen.MIN_EDGE)
            mux.run_table(pacing, 1 if w.generator_sync else 0)
            if w.generator_sync:
                report("generator_trigger", True, f"{where}: the generator fired once")
                report("generator_sync", True, f"generator Sync -> MCU TRIG IN "
                       f"{w.generator_sync}: one edge for the pulse")
            else:
                out.append(f"wire {'generator_trigger':<17} sent   {where}: edge sent; the "
                           "generator reports no trigger count (wire its Sync output as "
                           "generator_sync to see it arrive)")
        except (InstrumentError, OSError) as exc:
            report("generator_trigger", False, f"{where} (or its Sync wire back): {exc}")
    finally:
        problems += inst.close()
    return out


def _one_entry(mux: MuxController, smu: SourceMeter, pacing: Pacing, edges: int) -> None:
    """One reading on an all-open route, paced by the MCU; the SMU must have taken it."""
    mux.load_table([Route.open()])
    n = smu.arm_list([0.0])
    try:
        mux.run_table(pacing, edges)
    except BaseException:
        smu.abort()
        raise
    smu.fetch_list(n)


def _idn(identity) -> str:
    return f"{identity.maker} {identity.model} (serial {identity.serial})"
