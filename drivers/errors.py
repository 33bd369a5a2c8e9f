"""Typed instrument errors. Each names the instrument, so the CLI's one-line message tells the
operator which box to look at; the CLI turns each into one line and exit code 2 instead of a
traceback. Drivers import nothing from ``hil``: they stand on their own below it."""

from __future__ import annotations


class InstrumentError(Exception):
    """Base: something an instrument (or its link) did or refused."""

    exit_code = 2

    def __init__(self, instrument: str, problem: str) -> None:
        super().__init__(f"{instrument}: {problem}")
        self.instrument, self.problem = instrument, problem


class InstrumentConnectionError(InstrumentError):
    """Nothing answers at the resource (refused, unreachable, no such port)."""


class VisaLibraryError(InstrumentError):
    """The VISA library a bench names cannot be loaded; the message says what to install."""

    def __init__(self, library: str, problem: str) -> None:
        super().__init__(f"VISA library {library!r}", problem)
        self.library = library


class InstrumentTimeoutError(InstrumentError):
    """The instrument did not answer within its timeout."""


class IdentityError(InstrumentError):
    """``*IDN?`` (or the MCU's ``IDN?``) names a different model than the bench file expects."""


class LimitError(InstrumentError):
    """A value outside the instrument's or the bench's limits; refused before any byte is sent."""


class SCPIError(InstrumentError):
    """The instrument's error queue was not empty after a configuration block.

    ``errors`` holds every ``(code, message)`` drained from ``SYST:ERR?``; ``commands`` the
    commands of the block, so the message says what provoked it.
    """

    def __init__(
        self, instrument: str, errors: list[tuple[int, str]], commands: list[str]
    ) -> None:
        listed = "; ".join(f"{code},{msg}" for code, msg in errors)
        after = f" after {commands[-1]!r}" if commands else ""
        super().__init__(instrument, f"instrument reported {listed}{after}")
        self.errors, self.commands = errors, commands


class MuxLinkError(InstrumentError):
    """The MCU link failed: no valid reply after all retries (NAK, timeout, corrupt reply)."""


class MuxCommandError(InstrumentError):
    """The MCU understood the frame and refused the command (``ERR <code> <text>``)."""

    def __init__(self, instrument: str, code: int, text: str, command: str) -> None:
        super().__init__(instrument, f"MCU refused {command!r}: ERR {code} {text}")
        self.code, self.text, self.command = code, text, command


class RouteError(InstrumentError):
    """A switch read-back that does not match the route, or a pulse asked for on a route that
    has not been verified. No pulse may fire after this until a route is set and verified again."""


class LoadError(InstrumentError):
    """The generator's output-load setting did not read back as high impedance: every level
    would reach a 1T1R cell doubled, so nothing is fired."""
