"""Checks on an emulated bench's timeline (``hil bench serve --timeline``): the rules every
pulse and every SMU aperture must keep on a real bench (``docs/timing.md``).

Events are ``(t, source, event, target)`` in the order they happened (``t`` in seconds); a
timeline file has the same columns with ``t_us`` in microseconds.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from pathlib import Path

Event = tuple[float, str, str, str]


def read_timeline(path: Path) -> list[Event]:
    """The events of a timeline CSV (``t_us,source,event,target``), times in seconds."""
    with open(path, newline="") as f:
        return [(float(r["t_us"]) * 1e-6, r["source"], r["event"], r["target"])
                for r in csv.DictReader(f)]


def violations(events: Iterable[Event], settling: float) -> list[str]:
    """Every pulse or aperture a switch change overlaps, and every one that starts less than
    ``settling`` s after the last switch change; empty when the timing held."""
    bad: list[str] = []
    last_switch, running = -1.0, {}
    for t, _, event, _ in sorted(events, key=lambda e: e[0]):  # stable: same-time order causal
        kind = event.split("_")[0]
        if event == "switch":
            last_switch = t
            bad += [f"switch at {t * 1e6:.3f} us during a {k}" for k in running]
        elif event in ("pulse_start", "aperture_start"):
            if t - last_switch < settling - 1e-12:
                bad.append(f"{kind} at {t * 1e6:.3f} us only {(t - last_switch) * 1e6:.3f} us "
                           "after a switch change")
            running[kind] = t
        elif event in ("pulse_end", "aperture_end"):
            running.pop(kind, None)
    return bad


def pulsed_cells(events: Iterable[Event]) -> list[str]:
    """The ``target`` (cells hit, ``board:row:col;...``) of every pulse, in order."""
    return [target for _, _, event, target in events if event == "pulse_start"]
