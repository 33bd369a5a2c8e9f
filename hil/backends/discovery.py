"""Find the instruments of a new bench and write its bench file (``hil bench discover``).

What is asked, and why only that: every candidate is *queried*, never configured — ``*IDN?``
(and, for a model whose driver checks more, that driver's own identity queries such as the
2450's ``*LANG?``) on a SCPI resource, the MCU's ``IDN?`` frame on a serial port. Discovery runs
on a bench nobody has checked yet, where a stray ``*RST`` or ``OPEN`` would change what the
operator is looking at; the MCU driver's ``close()`` (which opens every switch) is therefore
not used here, only its port is closed.

Where candidates come from: ``list_resources()`` of the chosen VISA library (VXI-11 and, with
zeroconf, HiSLIP on the LAN; USB-TMC with pyusb; GPIB with a GPIB library; serial ports), the
serial ports pyserial sees, and any resource or pyserial URL the operator names. A LAN socket
(``TCPIP::host::5025::SOCKET``) cannot be listed by any VISA library: it must be named.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from drivers import driver_for
from drivers.errors import InstrumentError, MuxCommandError, MuxLinkError
from drivers.mcu import DEFAULT_BAUD, FrameError, MuxController, decode_frame
from drivers.scpi import TERMINATION, Identity, open_resource, resource_manager
from hil.backends.hardware import INSTRUMENTS_SCHEMA, SMU_LINES, WIRING_SCHEMA
from hil.bench import Bench, dump_toml, standalone_tables, toml_value

KINDS = ("generator", "smu", "mcu")
KIND_NAMES = {"generator": "pulse generator", "smu": "source meter", "mcu": "MCU"}
RESOURCE_KEYS = {"generator": "generator_resource", "smu": "smu_resource", "mcu": "mcu_port"}
_SOCKET = re.compile(r"^TCPIP\d*::([^:]+)::(\d+)::SOCKET$", re.IGNORECASE)


@dataclass(frozen=True)
class Finding:
    """What one resource turned out to be. ``kind`` is set when a driver fits; ``problem`` when
    it fits but cannot be used as it is (say a 2450 in another command language)."""

    resource: str
    answer: str  # what answered, "-" when nothing did
    verdict: str  # the driver that fits, or why none does
    kind: str | None = None
    family: str = ""  # driver family (``33500B``) for a generator or SMU
    problem: str = ""
    boards: tuple[int, ...] = ()  # the boards an MCU reports


# ---- candidates -------------------------------------------------------------------------------


def is_serial(resource: str) -> bool:
    """A pyserial port or URL (``/dev/ttyACM0``, ``COM3``, ``socket://``, ``ASRL...``) rather
    than a VISA resource that speaks SCPI."""
    upper = resource.upper()
    return upper.startswith("ASRL") or "://" in resource or not re.match(
        r"^(TCPIP|USB|GPIB|VXI|PXI|VICP|PRLGX)", upper)


def serial_port(resource: str) -> str:
    """The pyserial port of a serial resource: ``ASRL/dev/ttyS0::INSTR`` -> ``/dev/ttyS0``,
    ``ASRL3::INSTR`` -> ``COM3``, ``ASRLsocket://h:p::INSTR`` -> ``socket://h:p``."""
    if not resource.upper().startswith("ASRL"):
        return resource
    board = resource[4:].removesuffix("::INSTR").removesuffix("::instr")
    return f"COM{board}" if board.isdigit() else board


def listed_resources(visa_library: str) -> tuple[list[str], list[str]]:
    """Candidates the VISA library and pyserial list, serial ports by their pyserial name,
    and notes (one line each) on what the library could not search."""
    from serial.tools import list_ports

    notes: list[str] = []
    visa: list[str] = []
    rm = resource_manager(visa_library)
    with warnings.catch_warnings(record=True) as caught:  # "install zeroconf to list HiSLIP"
        warnings.simplefilter("always")
        try:
            visa = list(rm.list_resources("?*"))
        except Exception as exc:  # a library's own search failing is a note, not the end
            notes.append(f"{visa_library} could not list resources: {exc}")
    notes += [" ".join(str(w.message).split()) for w in caught]
    ports = [p.device for p in list_ports.comports()]
    seen: dict[str, None] = {}
    for resource in [*visa, *ports]:
        seen.setdefault(serial_port(resource) if is_serial(resource) else resource)
    return list(seen), notes


# ---- probes -----------------------------------------------------------------------------------


def probe_scpi(rm: Any, resource: str, timeout: float) -> Finding:
    """``*IDN?`` on a VISA resource, then the identity checks of the driver it names."""
    try:
        link = open_resource(rm, resource, resource, timeout)
    except InstrumentError as exc:
        return Finding(resource, "-", f"cannot open: {exc.problem.partition(': ')[2]}")
    try:
        try:
            link.write("*IDN?")
            text = link.read().strip()
        except Exception as exc:  # refused, reset or silent: each is one line
            return Finding(resource, "-", _silence(exc, timeout))
        return _identify_scpi(link, resource, text, timeout)
    finally:
        link.close()


def _identify_scpi(link: Any, resource: str, text: str, timeout: float) -> Finding:
    try:
        decode_frame(text.encode("ascii", "replace"))
    except FrameError:
        pass
    else:
        socket = _SOCKET.match(resource)
        url = f"socket://{socket[1]}:{socket[2]}" if socket else "a serial port"
        return Finding(resource, _quote(text), f"none: the MCU's framing, probe it as {url}")
    identity = Identity.parse(text)
    answer = f"{identity.maker} {identity.model} (serial {identity.serial})"
    fit = driver_for(identity.model)
    if fit is None:
        return Finding(resource, answer, "none: no driver for this model (drivers: "
                       f"{', '.join(_families())})")
    kind, cls = fit
    verdict = f"{KIND_NAMES[kind]} {cls.FAMILY}"
    try:  # the driver's own identity queries (the 2450's *LANG?, for one); nothing is set,
        # so no limit is consulted
        cls(link, name=f"{cls.MODEL} at {resource}", timeout=timeout, limits=None)
    except InstrumentError as exc:
        return Finding(resource, answer, f"{verdict}, but {exc.problem}", kind, cls.FAMILY,
                       exc.problem)
    return Finding(resource, answer, verdict, kind, cls.FAMILY)


def probe_serial(port: str, baudrate: int, timeout: float, boot_wait: float = 0.0) -> Finding:
    """The MCU's ``IDN?`` frame on a serial port; the port is closed without a command.

    ``boot_wait`` is waited on a physical port only: opening one resets boards that reset on
    DTR, while a pyserial URL (``socket://``) reaches a running MCU."""
    try:
        mux = MuxController(port, name=f"port {port}", baudrate=baudrate, timeout=timeout,
                            retries=1, identify=False,
                            boot_wait=0.0 if "://" in port else boot_wait)
    except InstrumentError as exc:
        hint = " (on Linux: add the user to the dialout group)" if "ermission" in str(exc) else ""
        return Finding(port, "-", f"cannot open: {exc.problem.partition(': ')[2]}{hint}")
    try:
        ident = mux.identify()
    except MuxLinkError:
        if mux.last_line:
            return Finding(port, _quote(mux.last_line.decode("ascii", "replace")),
                           "none: not the MCU's framing; something else is on this port")
        return Finding(port, "-", f"none: no reply to the MCU's IDN? frame (two tries of "
                       f"{timeout:g} s): nothing, or not the MCU, is on this port")
    except MuxCommandError as exc:
        return Finding(port, _quote(f"ERR {exc.code} {exc.text}"),
                       "none: speaks the MCU's framing but refuses IDN? (other firmware?)")
    except InstrumentError as exc:
        return Finding(port, "-", f"none: {exc.problem}")
    finally:
        mux.port.close()
    boards = _ranges(ident.boards)
    return Finding(port, f"{ident.firmware}/{ident.version}, boards {boards}, table "
                   f"{ident.table_size}", "MCU", "mcu", boards=ident.boards)


def discover(
    probes: Iterable[str],
    *,
    visa_library: str,
    scan: bool = True,
    timeout: float = 1.0,
    baudrate: int = DEFAULT_BAUD,
    boot_wait: float = 0.0,
    notes: list[str] | None = None,
) -> Iterator[Finding]:
    """Each candidate's finding in turn (so a table can print as it goes): the ``probes``
    first, in the order given, then what the library and pyserial list (``scan``). The library
    is loaded at once, so a library that cannot load is reported before anything else."""
    rm = resource_manager(visa_library)
    candidates = {serial_port(p) if is_serial(p) else p: None for p in probes}
    if scan:
        listed, found_notes = listed_resources(visa_library)
        candidates.update(dict.fromkeys(listed))
        if notes is not None:
            notes += found_notes
    return (probe_serial(r, baudrate, timeout, boot_wait) if is_serial(r)
            else probe_scpi(rm, r, timeout) for r in candidates)


# ---- the bench file ---------------------------------------------------------------------------


def resolution(findings: list[Finding]) -> dict[str, list[Finding]]:
    """Candidates per kind, in the order found."""
    return {kind: [f for f in findings if f.kind == kind] for kind in KINDS}


def summary(findings: list[Finding]) -> list[str]:
    """One line per kind: found, several (unresolved), or none."""
    lines = []
    for kind, found in resolution(findings).items():
        name, key = KIND_NAMES[kind], RESOURCE_KEYS[kind]
        if len(found) == 1:
            fix = f" ({found[0].problem})" if found[0].problem else ""
            lines.append(f"{name}: {found[0].resource}{fix}")
        elif found:
            listed = ", ".join(f"{f.resource} ({f.answer})" for f in found)
            lines.append(f"{name}: {len(found)} answered, {listed}: {key} left empty; keep the "
                         "one wired to the boards")
        else:
            lines.append(f"{name}: none answered: {key} left empty; give its address")
    return lines


def bench_text(base: Bench, base_dir: Path | None, findings: list[Finding],
               visa_library: str) -> str:
    """The bench file for what was found: ``base`` (its boards, arrays, limits) on the
    instruments backend, ``[instruments]`` naming each instrument found exactly once and leaving
    the address empty, with the candidates as comments, where none or several were; then the
    ``[wiring]`` template."""
    raw = standalone_tables(base, base_dir)
    raw["bench"] = {**raw.get("bench", {}), "backend": "instruments"}
    instruments = dict(raw.pop("instruments", {}))
    raw.pop("wiring", None)  # cables are this bench's: traced anew, never inherited
    lines = ["[instruments]",
             "# written by hil bench discover; an empty address stops every run until filled"]
    for kind, found in resolution(findings).items():
        key = RESOURCE_KEYS[kind]
        instruments.pop(key, None)
        if kind != "mcu" and len(found) == 1:
            instruments[f"{kind}_model"] = found[0].family
        if len(found) == 1:
            lines.append(f"{key} = {toml_value(found[0].resource)}  # {found[0].answer}")
            if found[0].problem:
                lines.append(f"# fix before use: {found[0].problem}")
            continue
        lines.append(f"# {len(found) or 'no'} {KIND_NAMES[kind]}s answered"
                     + (": keep the one wired to the boards" if found else ": give its address"))
        lines += [f"# {key} = {toml_value(f.resource)}  # {f.answer}" for f in found]
        lines.append(f'{key} = ""')
    instruments["visa_library"] = visa_library
    lines += [f"{key} = {toml_value(value)}" for key, value in instruments.items()]
    smu_model = instruments.get("smu_model", INSTRUMENTS_SCHEMA["smu_model"][2])
    return "\n".join([dump_toml(raw), *lines, "", wiring_template(smu_model)])


# What each [wiring] key means to the person tracing the cables; a wire's line is a placeholder
# that is not TOML, so a line uncommented without looking at the cable stops the file loading.
_WIRES = {
    "generator_trigger": ("<1 or 2>", "MCU TRIG OUT line -> generator trigger input (pulses)"),
    "smu_trigger": ("<1 or 2>", "MCU TRIG OUT line -> SMU trigger input (reads)"),
    "smu_trigger_line": ("<{lines}>", "the SMU line that cable arrives on"),
    "smu_complete": ("<1 or 2>", "MCU TRIG IN line <- SMU trigger output (optional)"),
    "smu_complete_line": ("<{lines}>", "the SMU line driving it"),
    "generator_sync": ("<1 or 2>", "MCU TRIG IN line <- 33500B Sync output (optional)"),
    "trigger_width": (None, "s, TRIG OUT pulse width"),
    "generator_latency": (None, "s, longest trigger-to-pulse delay of the generator"),
    "smu_latency": (None, "s, longest trigger-to-aperture delay of the SMU"),
}


def wiring_template(smu_model: str) -> str:
    """``[wiring]`` as comments to fill from the actual cables: every key of the section,
    wires as placeholders, durations at their defaults (docs/timing.md)."""
    lines = SMU_LINES.get(smu_model)
    span = f"{lines.start}-{lines.stop - 1}" if lines else "line"
    out = ["# [wiring]: which trigger line is cabled to which input (docs/timing.md). Every run on",
           "# the instruments refuses this file until the wires are declared: trace each cable,",
           "# then uncomment [wiring] and the lines of the wires that exist, with their numbers.",
           "# [wiring]"]
    for key, (_, _, default) in WIRING_SCHEMA.items():
        placeholder, note = _WIRES.get(key, (None, ""))
        value = placeholder.format(lines=span) if placeholder else toml_value(default)
        out.append(f"# {f'{key} = {value}':<30}" + (f"  # {note}" if note else ""))
    return "\n".join(out) + "\n"


# ---- small helpers ----------------------------------------------------------------------------


def _silence(exc: BaseException, timeout: float) -> str:
    import pyvisa

    if isinstance(exc, ConnectionRefusedError):
        return "none: nothing listens there (connection refused)"
    if isinstance(exc, pyvisa.errors.VisaIOError) and \
            exc.error_code == pyvisa.constants.StatusCode.error_timeout:
        return (f"none: no reply to *IDN? within {timeout:g} s (not a SCPI instrument, or "
                f"another line ending than {TERMINATION!r})")
    return "none: " + (" ".join(str(exc).split()) or type(exc).__name__)


def _quote(text: str, limit: int = 40) -> str:
    text = text.strip()
    return repr(text if len(text) <= limit else text[:limit] + "...")


def _ranges(ids: Iterable[int]) -> str:
    """``1,2,3,5`` -> ``1-3,5``."""
    out: list[str] = []
    for i in sorted(ids):
        if out and out[-1].split("-")[-1] == str(i - 1):
            out[-1] = f"{out[-1].split('-')[0]}-{i}"
        else:
            out.append(str(i))
    return ",".join(out) or "none"


def _families() -> list[str]:
    from drivers import PULSE_GENERATORS, SOURCE_METERS

    return [*PULSE_GENERATORS, *SOURCE_METERS]
