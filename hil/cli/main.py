"""``hil`` command line: one readable line and exit code 2 for every operator error."""

from __future__ import annotations

import argparse
import importlib
import sys

from drivers.errors import InstrumentError
from hil import __version__
from hil.cli.console import console
from hil.errors import HilError

# The module that adds each command with ``register(subparsers)``. Only the one named on the
# command line is imported (a command's libraries take seconds to import, and most commands
# need few of them); help, a typo or no command imports them all.
COMMANDS = {
    "train": "hil.cli.train", "bench": "hil.cli.bench", "characterize": "hil.cli.characterize",
    "devices": "hil.cli.characterize", "experiment": "hil.cli.experiment",
    "repair": "hil.cli.repair", "watch": "hil.cli.watch",
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hil",
        description="Train neural networks inside 1T1R memristor arrays, characterise boards "
        "and flag failed devices, on real instruments or on the simulated bench.",
    )
    parser.add_argument("--version", action="version", version=f"memristor-hil {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    wanted = [COMMANDS[command]] if command in COMMANDS else COMMANDS.values()
    for name in dict.fromkeys(wanted):
        importlib.import_module(name).register(sub)
    for command in _commands(parser):
        command.add_argument("--quiet", action="store_true",
                             help="no progress bars or chatter; results and errors only "
                             "(log.txt keeps every line)")
        for action in command._actions:
            _show_default(action)
    return parser


def _commands(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    """The parsers that run something (``hil train``, ``hil devices list``, ...)."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        return [parser]
    return [leaf for a in subs for p in a.choices.values() for leaf in _commands(p)]


def _show_default(action: argparse.Action) -> None:
    """Every option's help ends with its default, or says it is required (flags and options
    without a default say so too)."""
    if not action.option_strings or action.help == argparse.SUPPRESS:
        return
    action.help = action.help or ""
    if "default:" in action.help or isinstance(action, argparse._HelpAction):
        return
    if action.required:
        action.help += " (required)"
    elif isinstance(action, argparse._StoreTrueAction):
        action.help += " (default: off)"
    elif action.default is not None:
        action.help += f" (default: {action.default})"
    elif not action.required:
        action.help += " (default: none)"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(argv[0] if argv else None).parse_args(argv)
    console.quiet = bool(getattr(args, "quiet", False))
    try:
        return int(args.run(args) or 0)
    except (HilError, InstrumentError) as exc:
        console.error(f"hil: error: {exc}")
        return exc.exit_code
    except KeyboardInterrupt:
        console.error("hil: interrupted")
        return 130
    finally:
        console.close()

