"""Judging devices and lines from what characterisation measured, with thresholds from the bench.

The ``[characterize]`` section of the bench file (every key optional)::

    [characterize]
    pulses = 20              # SET pulses, then as many RESET pulses, a read after each
    reads = 3                # repeated reads of the read map (level and read noise)
    open_uS = 0.1            # a cell reading below this carries no current
    short_uS = 1000.0        # above this a cell conducts more than any memristor state: short
    stuck_on_uS = 50.0       # a device that does not respond is stuck-on at or above this level
    min_change = 0.05        # a response must change the conductance by this log-ratio (~5 %) ...
    min_change_uS = 0.5      # ... and by at least this much
    max_backstep = 0.15      # a step against the pulse larger than this fraction: non-monotone
    max_read_noise = 0.08    # relative spread of repeated reads above this: noisy
    curve_devices = 10       # devices whose full response curves are measured (paper: 10)
    curve_pulses = 200       # SET (and RESET) pulses of a full response curve
    form_start = 1.0         # V, forming ramp (hil characterize --form)
    form_step = 0.1          # V
    form_stop = 2.4          # V, never above [limits] max_pulse_voltage
    form_threshold_uS = 10.0 # a device reading this much is formed
    recheck_pulses = 10      # SET (then RESET) pulses of hil repair's test of a moved device

Rules, applied in this order, so that every device gets exactly one mode:

1. ``fabric``: the cell sits on an open bit or source line; it is not judged at all (its device
   may be fine; the line is reported once as a fabric fault).
2. ``short``: some read reached ``short_uS`` or the SMU's current compliance.
3. ``open``: no read ever reached ``open_uS``.
4. ``stuck_on`` / ``stuck_off``: neither the SET train raised the conductance (mean of its last
   five reads against the read map) nor the RESET train lowered it (mean of its last five reads
   against the SET train's) by ``min_change`` (log-ratio) and ``min_change_uS``; its level
   decides which. 5 % is about 4.5 read-noise sigmas of those means at 1.5 % read noise, yet
   less than what 20 RESET pulses do to the slowest working device sitting at its ceiling.
5. ``unstable``: it responds, but a step went against the pulse by more than ``max_backstep``
   (non-monotone) or repeated reads spread more than ``max_read_noise`` (noisy).
6. ``ok``.

A line is open when every one of its cells carries less than ``open_uS`` at the read voltage in the
fabric self-test. No device failure produces that for a whole line except all of its ten (or
twelve) devices being open at once, which at the paper's failure rate is a ~1e-20 event; an
open line therefore counts as one fabric fault, never as ten dead devices. (A board whose every
line is dark is not connected at all: each of its lines is then reported.) An open word line
(it gates a column) looks exactly like an open source line and is reported as one.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import pandas as pd

from hil.bench import EXTRA_SECTIONS, Bench, Schema, _check_section
from hil.errors import BenchFileError

_NUM = (int, float)
_TAIL = 5  # reads averaged at the end of a train


def _pos(v: float) -> str | None:
    return None if v > 0 else "must be > 0"


def _fraction(v: float) -> str | None:
    return None if 0 < v < 1 else "must be in (0, 1)"


SCHEMA: Schema = {
    "pulses": (int, _pos, 20),
    "reads": (int, lambda v: None if v >= 2 else "must be >= 2 (noise needs two reads)", 3),
    "open_uS": (_NUM, _pos, 0.1),
    "short_uS": (_NUM, _pos, 1000.0),
    "stuck_on_uS": (_NUM, _pos, 50.0),
    "min_change": (_NUM, _pos, 0.05),
    "min_change_uS": (_NUM, _pos, 0.5),
    "max_backstep": (_NUM, _fraction, 0.15),
    "max_read_noise": (_NUM, _pos, 0.08),
    "curve_devices": (int, lambda v: None if v >= 0 else "must be >= 0", 10),
    "curve_pulses": (int, lambda v: None if v >= 2 else "must be >= 2", 200),
    "form_start": (_NUM, _pos, 1.0),
    "form_step": (_NUM, _pos, 0.1),
    "form_stop": (_NUM, _pos, 2.4),
    "form_threshold_uS": (_NUM, _pos, 10.0),
    "recheck_pulses": (int, _pos, 10),
}
EXTRA_SECTIONS["characterize"] = SCHEMA

MODES = ("ok", "stuck_on", "stuck_off", "open", "short", "unstable", "fabric")
FAILED = tuple(m for m in MODES if m not in ("ok", "fabric"))


@dataclass(frozen=True)
class Settings:
    pulses: int
    reads: int
    open_uS: float
    short_uS: float
    stuck_on_uS: float
    min_change: float
    min_change_uS: float
    max_backstep: float
    max_read_noise: float
    curve_devices: int
    curve_pulses: int
    form_start: float
    form_step: float
    form_stop: float
    form_threshold_uS: float
    recheck_pulses: int
    compliance_uS: float  # the SMU's current compliance seen as a conductance at the read voltage


def settings(bench: Bench) -> Settings:
    """The ``[characterize]`` section of a bench, validated like the rest of the file."""
    values = _check_section(bench.path, "characterize", bench.raw.get("characterize", {}), SCHEMA)
    if values["form_stop"] > bench.limits.max_pulse_voltage:
        raise BenchFileError(bench.path, "characterize.form_stop",
                             "exceeds limits.max_pulse_voltage")
    if values["form_start"] > values["form_stop"]:
        raise BenchFileError(bench.path, "characterize.form_start", "is above form_stop")
    kinds = {f.name: f.type for f in fields(Settings)}
    compliance = bench.limits.current_compliance / bench.pulses.read_voltage * 1e6
    return Settings(**{k: float(v) if kinds[k] == "float" else v for k, v in values.items()},
                    compliance_uS=compliance)


def open_lines(current_uA: np.ndarray, dark_uA: float) -> tuple[np.ndarray, np.ndarray]:
    """Open bit lines (boards, 12) and source lines (boards, 10) from the cell currents
    (boards, 12, 10) of the fabric self-test: a line is open when none of its cells carries
    ``dark_uA``."""
    dark = current_uA < dark_uA
    return dark.all(axis=2), dark.all(axis=1)


def classify(
    s: Settings,
    read_map: np.ndarray,
    set_trace: np.ndarray,
    reset_trace: np.ndarray,
    on_open_line: np.ndarray,
) -> pd.DataFrame:
    """Mode of every device and the evidence behind it, one row per device.

    ``read_map`` is (reads, devices), the traces (pulses, devices) as
    :func:`sequences.characterize.pulse_response` returns them; devices ``on_open_line`` were not
    pulsed and their columns may hold anything.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        start = read_map.mean(axis=0)
        noise = read_map.std(axis=0, ddof=1) / start
        top = set_trace[-_TAIL:].mean(axis=0)
        bottom = reset_trace[-_TAIL:].mean(axis=0)
        set_change = np.log(top / start)
        reset_change = np.log(top / bottom)
        every = np.vstack([read_map, set_trace, reset_trace])
        g_max, g_min = every.max(axis=0), every.min(axis=0)
        up = np.vstack([start, set_trace])
        down = np.vstack([set_trace[-1], reset_trace])
        backstep = np.maximum(
            (1 - up[1:] / up[:-1]).max(axis=0), (down[1:] / down[:-1] - 1).max(axis=0)
        )
    responds = ((set_change >= s.min_change) & (top - start >= s.min_change_uS)) | (
        (reset_change >= s.min_change) & (top - bottom >= s.min_change_uS)
    )
    level = every.mean(axis=0)
    rules = [
        (on_open_line, "fabric", "open line"),
        (g_max >= min(s.short_uS, 0.99 * s.compliance_uS), "short", "compliance / short"),
        (g_max < s.open_uS, "open", "no current"),
        (~responds & (level >= s.stuck_on_uS), "stuck_on", "no response, high"),
        (~responds, "stuck_off", "no response, low"),
        (backstep > s.max_backstep, "unstable", "non-monotone"),
        (noise > s.max_read_noise, "unstable", "noisy reads"),
    ]
    conds = [c for c, _, _ in rules]
    frame = pd.DataFrame({
        "mode": np.select(conds, [m for _, m, _ in rules], "ok"),
        "rule": np.select(conds, [r for _, _, r in rules], ""),
        "g_start_uS": start,
        "g_top_uS": top,
        "g_bottom_uS": bottom,
        "g_min_uS": g_min,
        "g_max_uS": g_max,
        "set_change": set_change,
        "reset_change": reset_change,
        "backstep": backstep,
        "read_noise": noise,
    })
    evidence = frame.columns[2:]
    frame.loc[on_open_line, evidence] = np.nan
    return frame
