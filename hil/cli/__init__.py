"""The ``hil`` command line: :mod:`~hil.cli.main` is the entry point, one module per command."""

from hil.cli.main import main

__all__ = ["main"]
