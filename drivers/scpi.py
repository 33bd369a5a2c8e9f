"""SCPI instrument base over pyvisa, with settings declared as validated properties.

Why its own small code rather than PyMeasure: the bench needs three things PyMeasure does not do by
default and that are easy to get subtly wrong — every value checked against the *bench's* limits
before a byte is written, the error queue drained and *raised* after every configuration block,
and link failures (refused, timeout) raised as typed errors that name the instrument.

A driver is a subclass that declares its commands::

    class Gen(SCPIInstrument):
        MODEL_PATTERN = r"335\\d\\dB"
        width = Control("SOUR{ch}:FUNC:PULS:WIDT?", "SOUR{ch}:FUNC:PULS:WIDT {}", "Pulse width, s.",
                        validators=(in_range(16e-9, 1e6, "s"),))

``{ch}`` in a command is the instrument's channel; ``{}`` is the formatted value. A subclass
that talks to another model overrides the declaration by name and inherits all behaviour.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import numpy as np

from drivers.errors import (
    IdentityError,
    InstrumentConnectionError,
    InstrumentTimeoutError,
    LimitError,
    SCPIError,
    VisaLibraryError,
)

TERMINATION = "\n"
DEFAULT_VISA_LIBRARY = "@py"  # pyvisa-py: pure Python, installed with the suite

Validator = Callable[["SCPIInstrument", Any], Any]
"""``(instrument, value) -> value``; raises :class:`LimitError` naming the instrument."""


class Resource(Protocol):
    """The part of a pyvisa message-based resource the drivers use (tests inject fakes)."""

    read_termination: str
    write_termination: str
    timeout: float  # ms

    def write(self, message: str) -> Any: ...
    def read(self) -> str: ...
    def close(self) -> None: ...


def resource_manager(visa_library: str = DEFAULT_VISA_LIBRARY) -> Any:
    """pyvisa's resource manager on ``visa_library`` (``@py``, ``@ivi``, a wrapper ``@name`` or
    the path of a VISA shared library).

    A library that cannot be loaded is a :class:`VisaLibraryError` that names it and says what
    to install, instead of pyvisa's several exception types and multi-line messages."""
    import pyvisa

    try:
        return pyvisa.ResourceManager(visa_library)
    except (pyvisa.Error, OSError, ValueError) as exc:
        raise VisaLibraryError(visa_library, f"cannot be loaded ({_one_line(exc)}); "
                               f"{library_hint(visa_library)}") from exc


def library_hint(visa_library: str) -> str:
    """What to install (or set) so that ``visa_library`` loads."""
    if visa_library == "@py":
        return "install pyvisa-py (pip install pyvisa-py)"
    if visa_library.startswith("@") and visa_library != "@ivi":
        return f"install its wrapper (pip install pyvisa-{visa_library[1:]})"
    where = "" if visa_library == "@ivi" else ", or correct the library path"
    return ("install a VISA implementation (NI-VISA or Keysight IO Libraries Suite)"
            f"{where}, or set visa_library = \"@py\" (pyvisa-py, installed with the suite)")


_EXTRAS = {  # resource prefix: (what pyvisa-py's message names, what the suite's extra brings)
    "USB": ("PyUSB", "pyvisa-py needs PyUSB and libusb for USB-TMC: pip install "
            "'memristor-hil[usb]'"),
    "GPIB": ("gpib-ctypes", "pyvisa-py needs gpib-ctypes and a GPIB driver (linux-gpib, "
             "NI-488.2) for GPIB: pip install 'memristor-hil[gpib]'"),
}


def open_resource(rm: Any, resource_name: str, label: str, timeout: float) -> Resource:
    """``rm.open_resource`` with the suite's terminations and timeout; a failure is an
    :class:`InstrumentConnectionError` naming the resource, and, when pyvisa-py lacks the
    package a connection needs, the suite's extra that installs it."""
    import pyvisa

    try:
        return rm.open_resource(resource_name, read_termination=TERMINATION,
                                write_termination=TERMINATION, timeout=timeout * 1000.0)
    except (pyvisa.Error, OSError, ValueError) as exc:
        problem = _one_line(exc)
        for prefix, (needle, hint) in _EXTRAS.items():
            if resource_name.upper().startswith(prefix) and needle in problem:
                problem = hint
        raise InstrumentConnectionError(label, f"cannot open {resource_name}: {problem}") from exc


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def format_number(value: float | int) -> str:
    """SCPI numeric text: integers as such, floats with 12 significant digits (``1e-06``)."""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int | np.integer):
        return str(int(value))
    return f"{float(value):.12g}"


def in_range(low: float, high: float, unit: str = "") -> Validator:
    """Fixed limits (the instrument model's range)."""

    def check(inst: SCPIInstrument, value: Any) -> Any:
        if not low <= value <= high:
            raise LimitError(inst.name, f"{value:g} {unit} outside the model's range "
                             f"[{low:g}, {high:g}] {unit}".replace("  ", " "))
        return value

    return check


def within_limit(attr: str, what: str, unit: str = "", *, magnitude: bool = True) -> Validator:
    """Limit given to the driver at run time (the bench's), read from ``inst.limits.<attr>``.

    With ``magnitude`` the bound applies to ``abs(value)``; otherwise it is an upper bound."""

    def check(inst: SCPIInstrument, value: Any) -> Any:
        bound = getattr(inst.limits, attr)
        probe = abs(value) if magnitude else value
        if probe > bound:
            raise LimitError(inst.name, f"{what} {value:g} {unit} exceeds the bench limit "
                             f"{bound:g} {unit}".replace("  ", " "))
        return value

    return check


def at_least_limit(attr: str, what: str, unit: str = "") -> Validator:
    """Lower bound read from ``inst.limits.<attr>`` (e.g. the bench's minimum pulse width)."""

    def check(inst: SCPIInstrument, value: Any) -> Any:
        bound = getattr(inst.limits, attr)
        if value < bound:
            raise LimitError(inst.name, f"{what} {value:g} {unit} below the bench limit "
                             f"{bound:g} {unit}".replace("  ", " "))
        return value

    return check


def one_of(*choices: str) -> Validator:
    def check(inst: SCPIInstrument, value: Any) -> Any:
        if value not in choices:
            raise LimitError(inst.name, f"{value!r} is not one of {', '.join(choices)}")
        return value

    return check


def parse_bool(text: str) -> bool:
    return text.strip().upper() in ("1", "ON")


def format_bool(value: bool) -> str:
    return "ON" if value else "OFF"


class Control:
    """One SCPI setting as a property: assigning validates, formats and writes; reading queries
    and parses. Either command may be ``None`` (write-only or read-only)."""

    def __init__(
        self,
        get_command: str | None,
        set_command: str | None,
        doc: str,
        *,
        validators: Sequence[Validator] = (),
        fmt: Callable[[Any], str] = format_number,
        parse: Callable[[str], Any] = float,
    ) -> None:
        self.get_command, self.set_command = get_command, set_command
        self.validators, self.fmt, self.parse = tuple(validators), fmt, parse
        self.__doc__ = doc
        self.name = "?"

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def command(self, inst: SCPIInstrument, value: Any) -> str:
        """Validate ``value`` and return the command that would set it; writes nothing."""
        if self.set_command is None:
            raise AttributeError(f"{self.name} is read-only")
        for check in self.validators:
            value = check(inst, value)
        return inst.expand(self.set_command).format(self.fmt(value))

    def __get__(self, inst: SCPIInstrument | None, owner: type) -> Any:
        if inst is None:
            return self
        if self.get_command is None:
            raise AttributeError(f"{self.name} is write-only")
        return self.parse(inst.query(inst.expand(self.get_command)))

    def __set__(self, inst: SCPIInstrument, value: Any) -> None:
        inst.write(self.command(inst, value))


@dataclass(frozen=True)
class Identity:
    """The four fields of ``*IDN?``."""

    maker: str
    model: str
    serial: str
    firmware: str

    @classmethod
    def parse(cls, text: str) -> Identity:
        parts = [p.strip() for p in text.strip().split(",")]
        parts += [""] * (4 - len(parts))
        return cls(*parts[:4])


class SCPIInstrument:
    """A SCPI instrument on a pyvisa resource.

    Opening checks ``*IDN?`` at once (pyvisa-py "opens" a TCP socket nobody listens on; the first
    exchange is what proves the instrument is there) against ``MODEL_PATTERN`` and, when given,
    the model the bench file names: the family (``FAMILY``, e.g. ``33500B``) accepts any model of
    the family, an exact model (``33522B``) only that one.
    """

    MODEL: ClassVar[str] = "SCPI instrument"  # maker and family, for messages
    FAMILY: ClassVar[str] = ""  # the family name a bench file may give instead of a model
    MODEL_PATTERN: ClassVar[str] = r".*"  # regex the *IDN? model field must match (fullmatch)

    def __init__(
        self,
        resource: Resource,
        *,
        name: str | None = None,
        model: str | None = None,
        timeout: float = 2.0,
        channel: int = 1,
        limits: Any = None,
    ) -> None:
        self.resource = resource
        self.name = name or self.MODEL
        self.channel = channel
        self.limits = limits
        self.timeout = timeout
        resource.read_termination = TERMINATION
        resource.write_termination = TERMINATION
        resource.timeout = timeout * 1000.0
        self.identity = self._identify(model)

    @classmethod
    def open(
        cls,
        resource_name: str,
        *,
        name: str | None = None,
        visa_library: str = DEFAULT_VISA_LIBRARY,
        timeout: float = 2.0,
        **kwargs: Any,
    ) -> SCPIInstrument:
        """Open ``resource_name`` (e.g. ``TCPIP::127.0.0.1::5025::SOCKET``) through pyvisa on
        ``visa_library``."""
        label = name or f"{cls.MODEL} at {resource_name}"
        resource = open_resource(resource_manager(visa_library), resource_name, label, timeout)
        try:
            return cls(resource, name=label, timeout=timeout, **kwargs)
        except BaseException:
            resource.close()
            raise

    # -- raw exchange --------------------------------------------------------------------------

    def expand(self, command: str) -> str:
        """Fill the channel into a declared command template (``{ch}``), leaving ``{}``."""
        return command.replace("{ch}", str(self.channel))

    def command_for(self, setting: str, value: Any) -> str:
        """The validated command that would set declared ``setting`` to ``value``; writes
        nothing, so a method can check a whole block before its first byte goes out."""
        control = getattr(type(self), setting)
        return control.command(self, value)

    def write(self, command: str) -> None:
        self._guard(command, lambda: self.resource.write(command))
        self._block.append(command)

    def query(self, command: str) -> str:
        self.write(command)
        return self._guard(command, self.resource.read).strip()

    def query_floats(self, command: str) -> np.ndarray:
        """A comma-separated ASCII reply as a float array (one transaction for many values)."""
        text = self.query(command)
        return np.array([float(x) for x in text.split(",") if x.strip()], dtype=float)

    def _guard(self, command: str, action: Callable[[], Any]) -> Any:
        import pyvisa

        try:
            return action()
        except pyvisa.errors.VisaIOError as exc:
            if exc.error_code == pyvisa.constants.StatusCode.error_timeout:
                raise InstrumentTimeoutError(
                    self.name, f"no reply to {command!r} within {self.timeout:g} s") from exc
            raise InstrumentConnectionError(self.name, f"{command!r}: {exc}") from exc
        except (ConnectionError, OSError) as exc:
            raise InstrumentConnectionError(self.name, f"{command!r}: {exc}") from exc

    # -- identity and errors -------------------------------------------------------------------

    _block: list[str]

    def _identify(self, model: str | None) -> Identity:
        self._block = []
        identity = Identity.parse(self.query("*IDN?"))
        found = normalise_model(identity.model)
        if not re.fullmatch(self.MODEL_PATTERN, found, flags=re.IGNORECASE):
            raise IdentityError(self.name, f"*IDN? names {identity.maker} {identity.model}, "
                                f"not a {self.MODEL}")
        wanted = None if model is None else normalise_model(model).upper()
        if wanted not in (None, self.FAMILY.upper(), found.upper()):
            raise IdentityError(self.name, f"*IDN? names {identity.model}, the bench file "
                                f"expects {model}")
        return identity

    def next_error(self) -> tuple[int, str]:
        """One entry of the error queue: ``(code, message)``; code 0 means empty."""
        text = self.query("SYST:ERR?")
        code, _, message = text.partition(",")
        return int(float(code)), message.strip().strip('"')

    def check_errors(self) -> None:
        """Drain the error queue; raise :class:`SCPIError` with every entry if any."""
        commands, errors = list(self._block), []
        for _ in range(64):  # instruments queue at most 20-30; a bound against a stuck reply
            code, message = self.next_error()
            if code == 0:
                break
            errors.append((code, message))
        self._block = []
        if errors:
            raise SCPIError(self.name, errors, commands)

    @contextmanager
    def configuring(self) -> Iterator[None]:
        """A configuration block: the error queue is drained (and raised) when it ends."""
        self._block = []
        yield
        self.check_errors()

    # -- common commands -----------------------------------------------------------------------

    def reset(self) -> None:
        """``*RST`` then ``*CLS``: defaults, outputs off, error queue empty."""
        with self.configuring():
            self.write("*RST")
            self.write("*CLS")

    def wait(self) -> None:
        """Block until pending operations are done (``*OPC?``)."""
        self.query("*OPC?")

    def close(self) -> None:
        self.resource.close()

    def __enter__(self) -> SCPIInstrument:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def normalise_model(text: str) -> str:
    """``MODEL 2450`` (Keithley's *IDN?) -> ``2450``; other models unchanged."""
    return re.sub(r"^MODEL\s+", "", text.strip(), flags=re.IGNORECASE)
