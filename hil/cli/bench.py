"""``hil bench serve`` (the emulated bench in the foreground) and ``hil bench check`` (is every
instrument of a bench file there, the right model, reachable and left safe?)."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import threading
from collections.abc import Callable
from pathlib import Path

from drivers import PULSE_GENERATORS, SOURCE_METERS
from drivers.errors import InstrumentError
from drivers.mcu import MuxController, Route
from drivers.pulsegen import PulseLimits
from drivers.smu import SourceLimits
from hil.backends.hardware import GENERATOR_MODELS, SMU_MODELS, clock_settings, instruments_config
from hil.backends.instruments import current_range
from hil.bench import Bench, load_bench
from hil.emulator import EmulatedBench
from hil.emulator.firmware import FirmwareError
from hil.errors import HilError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="serve an emulated bench, or check a bench's instruments")
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
    s.set_defaults(run=serve)

    c = bsub.add_parser(
        "check", help="identify every instrument and verify the MCU link",
        description="Identify the generator, SMU and MCU named in [instruments], verify the "
        "generator's high-impedance load, the MCU's boards and switch read-back, and leave every "
        "output off and every switch open.")
    c.add_argument("--bench", metavar="FILE", required=True)
    c.set_defaults(run=check)


def serve(args: argparse.Namespace, ready: Callable[[EmulatedBench], None] | None = None,
          stop: threading.Event | None = None) -> int:
    """Serve until Ctrl-C / SIGTERM (or ``stop``, for tests)."""
    bench = load_bench(args.bench)
    base = Path(args.bench).resolve().parent if args.bench else None
    stop = stop or threading.Event()
    firmware = args.mcu_firmware
    if firmware is not None and not os.access(firmware, os.X_OK):
        raise HilError(f"--mcu-firmware {firmware}: not an executable (build it with "
                       "make -C firmware host)")
    try:
        emu = EmulatedBench(bench, generator=args.generator, smu=args.smu, seed=args.seed,
                            mcu_firmware=firmware)
    except FirmwareError as exc:
        raise HilError(str(exc)) from exc
    with emu:
        out = Path(args.write)
        out.write_text(emu.bench_toml(base))
        for key, value in emu.resources.items():
            print(f"{key:>20} = {value}")
        print(f"bench file written to {out}; serving until interrupted (Ctrl-C)", flush=True)
        if ready is not None:
            ready(emu)
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, lambda *a: stop.set())
        try:
            while not stop.wait(0.2):
                pass
        except KeyboardInterrupt:
            pass
        safe = emu.is_safe()
    print(f"emulated bench stopped ({'safe state' if safe else 'NOT in safe state'}, "
          f"{len(emu.pulses)} pulses delivered)")
    return 0


def check(args: argparse.Namespace) -> int:
    bench = load_bench(args.bench)
    if bench.backend != "instruments":
        raise HilError(f"{args.bench}: bench.backend is {bench.backend!r}; nothing to check "
                       "(set backend = \"instruments\" and an [instruments] section)")
    lines, problems = check_bench(bench)
    for line in lines:
        print(line)
    if problems:
        raise HilError("; ".join(problems))
    print("bench check passed: every instrument identified, outputs off, switches open")
    return 0


def check_bench(bench: Bench) -> tuple[list[str], list[str]]:
    """Report lines and problems; each instrument is checked even if another fails, and each
    is left with its output off (switches open) whatever happened."""
    cfg = instruments_config(bench)
    lim = bench.limits
    lines: list[str] = []
    problems: list[str] = []

    def attempt(label: str, action: Callable[[], str]) -> None:
        try:
            lines.append(f"{label:<10} ok    {action()}")
        except (InstrumentError, OSError) as exc:
            lines.append(f"{label:<10} FAIL  {exc}")
            problems.append(str(exc))

    def generator() -> str:
        gen = PULSE_GENERATORS[cfg.generator_model].open(
            cfg.generator_resource, model=cfg.generator_model, timeout=cfg.timeout,
            channel=cfg.generator_channel,
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
            limits=SourceLimits(lim.max_read_voltage, lim.current_compliance))
        try:
            inst.setup(voltage=bench.pulses.read_voltage, current_limit=lim.current_compliance,
                       current_range=current_range(lim.current_compliance),
                       nplc=max(0.01, clock_settings(bench).smu_aperture * 50),
                       trigger_out=cfg.smu_trigger_line)
            on = inst.output
        finally:
            inst.close()
        return f"{_idn(inst.identity)}; configured without errors; output {'ON' if on else 'off'}"

    def mcu() -> str:
        mux = MuxController(cfg.mcu_port, name=f"MCU at {cfg.mcu_port}", boards=bench.board_ids,
                            baudrate=cfg.mcu_baud, timeout=min(cfg.timeout, 0.5))
        try:
            for board in bench.board_ids:  # every BL, a WL/SL on each side, both SL paths
                mux.set_route(Route.pulse([(board, 1, 0xFFF)]))
                mux.set_route(Route.mac([(board, 10, 0xFFF)]))
            mux.open_all()
            ident = mux.identity
        finally:
            with contextlib.suppress(InstrumentError, OSError):
                mux.close()
        return (f"firmware {ident.firmware}/{ident.version}, {len(ident.boards)} boards, table "
                f"{ident.table_size}; switch read-back verified on {len(bench.board_ids)} boards; "
                "all open")

    attempt("generator", generator)
    attempt("smu", smu)
    attempt("mcu", mcu)
    return lines, problems


def _idn(identity) -> str:
    return f"{identity.maker} {identity.model} (serial {identity.serial})"
