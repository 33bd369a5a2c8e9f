"""``hil bench discover``: which instrument answers where, and a bench file for them."""

from __future__ import annotations

import argparse
from pathlib import Path

from hil.backends.discovery import Finding, bench_text, discover, resolution, summary
from hil.backends.hardware import instruments_config
from hil.bench import load_bench
from hil.errors import HilError


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``discover`` to the ``hil bench`` actions."""
    d = sub.add_parser(
        "discover", help="find the instruments and write a bench file for them",
        description="Ask every VISA resource the library lists, every serial port, and each "
        "--probe who it is (*IDN? on SCPI resources, the MCU's IDN? frame on serial ports; "
        "queries only, nothing is configured), print what answered and which driver fits, and "
        "with --write a bench file naming the pulse generator, SMU and MCU found.")
    d.add_argument("--probe", metavar="RESOURCE", nargs="+", action="extend", default=[],
                   help="also ask these: VISA resources (TCPIP::192.168.1.20::5025::SOCKET, "
                   "USB0::...::INSTR, GPIB0::24::INSTR) or serial ports and pyserial URLs "
                   "(/dev/ttyACM0, COM3, socket://host:port)")
    d.add_argument("--no-scan", action="store_true",
                   help="ask only the --probe resources: no VISA listing (which broadcasts on "
                   "the LAN) and no serial ports")
    d.add_argument("--bench", metavar="FILE", help="bench file to start from: boards, arrays, "
                   "limits, visa_library (default: the embedded bench)")
    d.add_argument("--visa-library", metavar="LIB",
                   help='VISA library: "@py" (pyvisa-py), "@ivi" (NI or Keysight VISA) or a '
                   "library path (default: the bench file's, else @py)")
    d.add_argument("--timeout", type=float, default=1.0, metavar="S",
                   help="seconds to wait for each answer (default 1)")
    d.add_argument("--write", metavar="OUT", help="bench file to write (not overwritten)")
    d.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.no_scan and not args.probe:
        raise HilError("--no-scan asks only the --probe resources: give at least one")
    if args.timeout <= 0:
        raise HilError(f"--timeout must be > 0, got {args.timeout:g}")
    out = Path(args.write) if args.write else None
    if out is not None and out.exists():
        raise HilError(f"{out} exists; discover writes a new file (give another name)")
    base = load_bench(args.bench)
    cfg = instruments_config(base)
    library = args.visa_library or cfg.visa_library
    notes: list[str] = []
    findings: list[Finding] = []
    asked = discover(args.probe, visa_library=library, scan=not args.no_scan,
                     timeout=args.timeout, baudrate=cfg.mcu_baud,
                     boot_wait=cfg.mcu_boot_wait, notes=notes)
    print(f"{'resource':<34} {'answered':<56} driver")
    for finding in asked:
        findings.append(finding)
        print(f"{finding.resource:<34} {finding.answer:<56} {finding.verdict}", flush=True)
    if not findings:
        print("nothing to ask: the VISA library and pyserial list no resources (name a LAN "
              "socket instrument with --probe TCPIP::ADDRESS::5025::SOCKET)")
    for note in notes:
        print(f"note: {note}")
    print()
    for line in summary(findings):
        print(line)
    mcus = resolution(findings)["mcu"]
    missing = sorted(set(base.board_ids) - set(mcus[0].boards)) if len(mcus) == 1 else []
    if missing:
        print(f"the MCU does not report boards {missing} of {base.path}: edit [boards] and "
              "[arrays] to the boards fitted")
    if out is not None:
        base_dir = Path(args.bench).resolve().parent if args.bench else None
        out.write_text(bench_text(base, base_dir, findings, library))
        print(f"bench file written to {out}: resolve what is said above, fill [wiring] from "
              f"the cables, then hil bench check --bench {out}")
    return 0
