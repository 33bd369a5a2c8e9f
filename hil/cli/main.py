"""``hil`` command line: one readable line and exit code 2 for every operator error."""

from __future__ import annotations

import argparse
import importlib
import sys

from drivers.errors import InstrumentError
from hil import __version__
from hil.errors import HilError

# Each module adds its sub-commands with ``register(subparsers)``.
COMMAND_MODULES = [
    "hil.cli.train", "hil.cli.bench", "hil.cli.characterize", "hil.cli.experiment",
    "hil.cli.repair",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hil",
        description="Train neural networks inside 1T1R memristor arrays, characterise boards "
        "and flag failed devices, on real instruments or on the simulated bench.",
    )
    parser.add_argument("--version", action="version", version=f"memristor-hil {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except (HilError, InstrumentError) as exc:
        print(f"hil: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("hil: interrupted", file=sys.stderr)
        return 130

