"""Characterise boards: self-test the fabric, judge every device, measure response curves.

The whole procedure is one sequence (:func:`plan`) of the building blocks in
:mod:`sequences.characterize`, so it runs on any :class:`~hil.backends.base.Backend`:

1. fabric self-test of every line of every board involved -- open lines are found before any
   device is judged, and their cells are left out of everything that follows;
2. optionally forming (stepped SET ramp) of fresh devices;
3. read map: ``reads`` reads of every cell at the read voltage;
4. pulse response: ``pulses`` SET pulses then ``pulses`` RESET pulses, a read after each;
5. classification (:mod:`hil.characterization.classify`);
6. full-range response curves of ``curve_devices`` typical ``ok`` devices -- those whose
   conductance after the SET train is nearest the median. Typical, because the simulator adds its
   own device-to-device spread on top of the curves; curves of extreme devices would count that
   spread twice. They are converted from cell to memristor conductance by removing the
   selector's series resistance (``[sim] series_resistance``, the same value the simulator adds
   back), so ``curves.csv`` is exactly what ``[sim] curves`` reads.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from hil.backends.base import Backend, OpCounts
from hil.backends.sequencer import Sequencer
from hil.bench import CELLS, Bench
from hil.characterization.classify import FAILED, Settings, classify, open_lines
from hil.curves import Curves, curves_from_frame
from hil.faults import LineFault
from sequences.basic import Mac, Op, Pulse, Read, Sequence, run
from sequences.characterize import (
    board_devices,
    fabric_selftest,
    forming,
    pulse_response,
    read_map,
    response_curves,
)

READ_COLUMNS = ["board", "row", "col", "sequence", "step", "conductance_uS"]


@dataclass
class Result:
    """What a characterisation measured and concluded."""

    devices: np.ndarray  # flat indices characterised
    table: pd.DataFrame  # one row per device: labels, mode, rule, evidence, pulses, curve
    fabric: list[LineFault]  # open lines found on the boards involved
    reads: pd.DataFrame  # every read, READ_COLUMNS
    response: tuple[np.ndarray, np.ndarray]  # SET and RESET traces (pulses, devices), NaN off-line
    curves: Curves | None  # measured response curves (memristor conductance)
    curve_traces: tuple[np.ndarray, np.ndarray] | None  # the same as cell conductance
    counts: OpCounts  # operations of this characterisation
    bench_seconds: float  # their duration on the bench, from the sequencer's bench clock
    sequencing: str  # how the sequencer batched them ("batched" or "naive")

    @property
    def failed(self) -> pd.DataFrame:
        """The replacement list: failed devices sorted board -> chip -> pad."""
        cols = ["board", "chip", "pad", "row", "col", "mode"]
        bad = self.table[self.table["mode"].isin(FAILED)]
        return bad[cols].sort_values(cols[:3], ignore_index=True)


def _boards_of(bench: Bench, devices: np.ndarray) -> list[int]:
    pos = np.unique(devices // CELLS)
    return [bench.board_ids[p] for p in pos]


def plan(bench: Bench, devices: np.ndarray, s: Settings, form: bool = False,
         curves: bool = True) -> Sequence:
    """The whole characterisation of ``devices`` as one sequence (see the module docstring);
    without ``curves`` it stops after the classification (step 5)."""
    boards = _boards_of(bench, devices)
    current = yield from fabric_selftest(bench, boards)
    bl, sl = open_lines(current, s.open_uS * bench.pulses.read_voltage)
    lines = [LineFault(b, kind, int(k) + 1)
             for i, b in enumerate(boards)
             for kind, found in (("bl", bl), ("sl", sl)) for k in np.flatnonzero(found[i])]
    dark = np.zeros(bench.n_devices, dtype=bool)
    for line in lines:
        dark[line.devices(bench)] = True
    on_line = dark[devices]
    live = devices[~on_line]

    if form:
        yield from forming(live, start=s.form_start, step=s.form_step, stop=s.form_stop,
                           threshold_uS=s.form_threshold_uS,
                           limit_uS=min(s.short_uS, 0.99 * s.compliance_uS))
    shape = (devices.size,)
    rm = _fill((s.reads, *shape), ~on_line, (yield from read_map(live, s.reads)))
    st, rt = yield from pulse_response(live, s.pulses)
    st = _fill((s.pulses, *shape), ~on_line, st)
    rt = _fill((s.pulses, *shape), ~on_line, rt)
    table = classify(s, rm, st, rt, on_line)

    out = {"table": table, "fabric": lines, "response": (st, rt), "curves": None,
           "curve_traces": None}
    if curves:
        out.update((yield from typical_curves(bench, devices, table, s)))
    else:
        table["curve"] = 0
    return out


def typical_curves(bench: Bench, devices: np.ndarray, table: pd.DataFrame, s: Settings
                   ) -> Sequence:
    """Full-range response curves of the ``curve_devices`` typical ``ok`` devices of ``table``
    (rows in the order of ``devices``); numbers them in its ``curve`` column."""
    curves = curve_traces = None
    picked = np.zeros(0, dtype=np.int64)
    ok = np.flatnonzero(table["mode"].to_numpy() == "ok")
    if s.curve_devices and ok.size:
        top = table["g_top_uS"].to_numpy()[ok]
        picked = np.sort(ok[np.argsort(np.abs(top - np.median(top)), kind="stable")
                            [: s.curve_devices]])
        curve_traces = yield from response_curves(devices[picked], s.curve_pulses)
        curves = measured_curves(bench, *curve_traces)
    curve = np.zeros(devices.size, dtype=np.int64)
    curve[picked] = np.arange(1, picked.size + 1)
    table["curve"] = curve
    return {"curves": curves, "curve_traces": curve_traces}


def _fill(shape: tuple[int, ...], where: np.ndarray, values: np.ndarray) -> np.ndarray:
    out = np.full(shape, np.nan)
    out[..., where] = values
    return out


def measured_curves(bench: Bench, set_g: np.ndarray, reset_g: np.ndarray) -> Curves:
    """Response curves (one per column of the traces) as memristor conductance: the cell
    conductance ``G`` seen through series resistance ``R`` is ``g / (1 + g R)``, so
    ``g = G / (1 - G R)``. Each branch is stored as a strictly monotone fit (:func:`_monotone`):
    :mod:`hil.curves` makes a loaded branch monotone by a running maximum (minimum), which on raw
    noisy reads would ride the read noise and leave flat stretches."""
    rs = bench.sim.series_resistance * 1e-6
    parts = []
    for polarity, trace in (("set", set_g), ("reset", reset_g)):
        g = trace / (1.0 - np.minimum(trace * rs, 0.99))
        g = np.column_stack([_monotone(col, increasing=polarity == "set") for col in g.T])
        n, k = g.shape
        parts.append(pd.DataFrame({
            "curve": np.tile(np.arange(1, k + 1), n),
            "polarity": polarity,
            "pulse": np.repeat(np.arange(n), k),
            "conductance_uS": g.ravel(),
        }))
    return curves_from_frame(pd.concat(parts, ignore_index=True), "measured curves")


def _monotone(y: np.ndarray, increasing: bool) -> np.ndarray:
    """Strictly monotone fit of a noisy branch: the isotonic (least-squares monotone) fit, with
    each of its flat blocks replaced by a straight line between block centres. Flat stretches
    would make the simulator's position lookup jump to their far end, speeding devices up."""
    from sklearn.isotonic import isotonic_regression  # 1.5 s to import; fitting curves only

    fit = isotonic_regression(y, increasing=increasing)
    starts = np.r_[0, np.flatnonzero(np.diff(fit)) + 1]
    ends = np.r_[starts[1:], fit.size]
    return np.interp(np.arange(fit.size), (starts + ends - 1) / 2, fit[starts])


class _Log:
    """Observer of a running plan: every read, the pulses each device endured, progress."""

    def __init__(self, bench: Bench, keep: np.ndarray, tick: Callable[[], Any] | None,
                 on_read: Callable[[np.ndarray, str, int, np.ndarray], Any] | None = None
                 ) -> None:
        self.bench = bench
        self.keep = keep  # boolean mask over all devices: boards involved
        self.tick = tick
        self.on_read = on_read
        self.pulses = np.zeros(bench.n_devices, dtype=np.int64)
        self.parts: list[tuple[np.ndarray, str, int, np.ndarray]] = []
        self._arrays = {name: bench.array_devices(name) for name in bench.arrays}

    def __call__(self, op: Op, answer: np.ndarray | None) -> None:
        if isinstance(op, Pulse):
            self.pulses[op.devices] += op.count
        elif isinstance(op, Read):
            self.parts.append((op.devices, op.sequence, op.step, np.asarray(answer)))
            if self.on_read is not None:
                self.on_read(op.devices, op.sequence, op.step, np.asarray(answer))
        elif isinstance(op, Mac) and (op.inputs.sum(axis=1) == 1).all():
            # one bit line driven per vector: every column current is one cell's current
            cells = self._arrays[op.array][np.argmax(op.inputs, axis=1)]
            mine = self.keep[cells]
            g = np.asarray(answer) / self.bench.pulses.read_voltage
            self.parts.append((cells[mine], op.sequence, 0, g[mine]))
        if self.tick is not None:
            self.tick()

    def frame(self) -> pd.DataFrame:
        if not self.parts:
            return pd.DataFrame(columns=READ_COLUMNS)
        devices = np.concatenate([p[0] for p in self.parts])
        lab = self.bench.labels(devices)
        sizes = [p[0].size for p in self.parts]
        return pd.DataFrame({
            "board": lab["board"], "row": lab["row"], "col": lab["col"],
            "sequence": pd.Categorical(np.repeat([p[1] for p in self.parts], sizes)),
            "step": np.repeat([p[2] for p in self.parts], sizes),
            "conductance_uS": np.concatenate([p[3] for p in self.parts]),
        })


def planned_ops(bench: Bench, devices: np.ndarray, s: Settings, form: bool,
                curves: bool = True) -> int:
    """Upper bound of the operations :func:`plan` yields (for a progress bar)."""
    steps = int(np.floor((s.form_stop - s.form_start) / s.form_step + 0.5)) + 1
    return (len(bench.arrays) + 1 + (2 * steps + 1 if form else 0) + s.reads + 4 * s.pulses
            + (curve_ops(s) if curves else 0))


def curve_ops(s: Settings) -> int:
    """Operations of :func:`typical_curves` (for a progress bar)."""
    return 2 + 4 * s.curve_pulses if s.curve_devices else 0


def characterize(
    backend: Backend,
    devices: np.ndarray,
    s: Settings,
    *,
    form: bool = False,
    curves: bool = True,
    tick: Callable[[], Any] | None = None,
    on_read: Callable[[np.ndarray, str, int, np.ndarray], Any] | None = None,
) -> Result:
    """Run :func:`plan` on ``backend`` for ``devices`` and gather everything it measured
    (without ``curves``: no response curves, see :func:`add_curves`).

    ``tick()`` follows every operation and ``on_read(devices, sequence, step, µS)`` every read,
    for progress and for a live view while the plan runs.

    Every operation goes through a :class:`~hil.backends.sequencer.Sequencer` (limits checked,
    batched, timed on the bench clock): ``backend`` itself if it is one (the instrument backend),
    else one wrapped around it, so a run on the simulated bench predicts the time on the real one.
    """
    bench = backend.bench
    devices = np.unique(np.asarray(devices, dtype=np.int64))
    keep = np.zeros(bench.n_devices, dtype=bool)
    keep[board_devices(bench, _boards_of(bench, devices))] = True
    log = _Log(bench, keep, tick, on_read)
    out, counts, seconds, mode = _clocked_run(backend, plan(bench, devices, s, form, curves),
                                              log)
    lab = bench.labels(devices)
    table = pd.concat([
        pd.DataFrame({"device": devices, **{k: lab[k] for k in ("board", "row", "col",
                                                                  "chip", "pad")}}),
        out["table"],
    ], axis=1)
    table["pulses"] = log.pulses[devices]
    return Result(
        devices=devices, table=table, fabric=out["fabric"], reads=log.frame(),
        response=out["response"], curves=out["curves"], curve_traces=out["curve_traces"],
        counts=counts, bench_seconds=seconds, sequencing=mode,
    )


def _clocked_run(backend: Backend, sequence: Sequence, log: _Log
                 ) -> tuple[Any, OpCounts, float, str]:
    """Run ``sequence`` through a :class:`~hil.backends.sequencer.Sequencer` (limits checked,
    batched, timed on the bench clock): ``backend`` itself if it is one (the instrument backend),
    else one wrapped around it, so a run on the simulated bench predicts the time on the real
    one. Returns its result, the operations it took, their bench time and the batching mode."""
    clocked = backend if isinstance(backend, Sequencer) else Sequencer(backend)
    before = OpCounts(**backend.counts.as_dict())
    started = clocked.bench_seconds
    out = run(sequence, clocked, log)
    counts = OpCounts(**{k: v - getattr(before, k) for k, v in backend.counts.as_dict().items()})
    return out, counts, clocked.bench_seconds - started, clocked.settings.mode


def combine(parts: list[Result]) -> Result:
    """One result of characterisations of disjoint device sets (boards measured one by one),
    as if measured together: devices in order, traces side by side, operations and bench time
    summed."""
    order = np.argsort(np.concatenate([p.devices for p in parts]), kind="stable")
    table = pd.concat([p.table for p in parts], ignore_index=True).iloc[order]
    counts = OpCounts(**{k: sum(getattr(p.counts, k) for p in parts)
                         for k in parts[0].counts.as_dict()})
    return Result(
        devices=table["device"].to_numpy(), table=table.reset_index(drop=True),
        fabric=[f for p in parts for f in p.fabric],
        reads=pd.concat([p.reads for p in parts], ignore_index=True),
        response=tuple(np.concatenate([p.response[i] for p in parts], axis=1)[:, order]
                       for i in (0, 1)),
        curves=None, curve_traces=None, counts=counts,
        bench_seconds=sum(p.bench_seconds for p in parts), sequencing=parts[0].sequencing)


def add_curves(backend: Backend, result: Result, s: Settings,
               tick: Callable[[], Any] | None = None) -> Result:
    """``result`` with the response curves of its typical devices measured on ``backend`` (the
    last step of :func:`plan`, for a characterisation measured board by board)."""
    bench = backend.bench
    log = _Log(bench, np.zeros(bench.n_devices, dtype=bool), tick)
    table = result.table.copy()
    out, counts, seconds, _ = _clocked_run(
        backend, typical_curves(bench, result.devices, table, s), log)
    table["pulses"] = table["pulses"].to_numpy() + log.pulses[result.devices]
    reads = pd.concat([result.reads, log.frame()], ignore_index=True)
    return replace(result, table=table, reads=reads, curves=out["curves"],
                   curve_traces=out["curve_traces"],
                   counts=OpCounts(**{k: v + getattr(counts, k)
                                      for k, v in result.counts.as_dict().items()}),
                   bench_seconds=result.bench_seconds + seconds)
