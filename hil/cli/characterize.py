"""``hil characterize`` and ``hil devices``: find failed devices, hand over a replacement list,
and keep every device's history in the registry."""

from __future__ import annotations

import argparse
import re
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from hil.backends.base import Backend
from hil.backends.factory import make_backend
from hil.bench import CELLS, COLS, ROWS, Bench, load_bench
from hil.characterization import plots
from hil.characterization.characterize import (
    Result,
    add_curves,
    characterize,
    combine,
    curve_ops,
    planned_ops,
)
from hil.characterization.classify import MODES, settings
from hil.characterization.registry import Registry, default_path
from hil.cli.console import console
from hil.cli.signals import terminate_as_interrupt
from hil.errors import HilError
from hil.faults import FailureRate, FaultMap, LineFault, load_fault_map
from hil.records import CONDUCTANCE_CDF, RESPONSE_CURVES, RunStore


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "characterize",
        help="characterise boards, flag failed devices, write a replacement list",
        description="Self-test the switching fabric, then read every cell, apply a short SET "
        "and RESET train with reads, classify each device (ok, stuck_on, stuck_off, open, short, "
        "unstable), measure response curves of typical devices, and write the run, a "
        "replacement list by board/chip/pad and the device registry.",
    )
    p.add_argument("--bench", metavar="FILE", help="bench file (default: the embedded bench)")
    p.add_argument("--boards", metavar="IDS",
                   help="board ids, e.g. 13-40 or 1,3,5-8 (default: every board of the bench)")
    p.add_argument("--cells", metavar="ROW:COL",
                   help="cells on each board, ranges allowed, e.g. 1-6:1-10,12:3 "
                   "(default: all 120)")
    p.add_argument("--replaced", action="store_true",
                   help="only the cells whose chip was replaced and not characterised since "
                   "(no response curves: spare the new devices the pulses)")
    p.add_argument("--form", action="store_true",
                   help="form the devices first (stepped SET ramp, [characterize] form_*)")
    faults = p.add_mutually_exclusive_group()
    faults.add_argument("--failures", metavar="RATE[:MIX]",
                        help="simulated bench: each device fails with this "
                        "probability, MIX of them stuck-on (drawn per board from --seed)")
    faults.add_argument("--fault-map", metavar="CSV",
                        help="simulated bench: faults from CSV board,row,col,mode")
    p.add_argument("--seed", type=int, help="simulated bench seed, >= 0 (default: [sim] seed)")
    p.add_argument("--registry", metavar="PATH",
                   help=f"device registry (default: $HIL_REGISTRY or {default_path()})")
    p.add_argument("--out", metavar="RUN", help="run directory to write (must not exist)")
    p.add_argument("--resume", metavar="RUN",
                   help="continue an interrupted characterisation with the boards not done yet")
    p.set_defaults(run=run_characterize)

    d = sub.add_parser("devices", help="device registry: census, history, chip swaps",
                       description="The device registry kept across runs.")
    dsub = d.add_subparsers(dest="devices_command", metavar="ACTION", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--bench", metavar="FILE", help="bench file (default: embedded bench)")
    common.add_argument("--registry", metavar="PATH", help="device registry file")
    r = dsub.add_parser("replace", parents=[common], help="record a chip swap (or a pad)")
    r.add_argument("--board", type=int, required=True, help="board id, as on the PCB")
    r.add_argument("--chip", type=int, required=True, help="chip 1-30 on that board")
    r.add_argument("--pad", type=int, help="only this pad of the chip (re-glued)")
    r.set_defaults(run=run_replace)
    ls = dsub.add_parser("list", parents=[common], help="census of known devices")
    ls.add_argument("--board", type=int, help="only this board (default: every board)")
    ls.add_argument("--mode", choices=[*MODES, "replaced"],
                    help="only devices last judged so (default: every mode)")
    ls.set_defaults(run=run_list)
    h = dsub.add_parser("history", parents=[common], help="events of a board's devices")
    h.add_argument("--board", type=int, required=True, help="board id, as on the PCB")
    h.add_argument("--chip", type=int, help="only this chip 1-30 (default: every chip)")
    h.set_defaults(run=run_history)


# ---- selection ------------------------------------------------------------------------------


def _ranges(text: str, lo: int, hi: int, what: str, flag: str) -> list[int]:
    out: list[int] = []
    for part in text.split(","):
        m = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", part)
        if not m:
            raise HilError(f"{flag} {text!r}: expected numbers and ranges like 3,5-8")
        a, b = int(m[1]), int(m[2] or m[1])
        if a > b or a < lo or b > hi:
            raise HilError(f"{flag} {text!r}: {what} {part.strip()} outside {lo}-{hi}")
        out.extend(range(a, b + 1))
    return out


def parse_boards(text: str | None, bench: Bench) -> list[int]:
    if text is None:
        return list(bench.board_ids)
    ids = _ranges(text, 1, 10**9, "board", "--boards")
    missing = sorted(set(ids) - set(bench.board_ids))
    if missing:
        raise HilError(f"--boards: board {missing[0]} is not on bench {bench.name}")
    return sorted(set(ids), key=bench.board_ids.index)


def parse_cells(text: str | None) -> np.ndarray:
    """Mask (12, 10) of the cells ``--cells`` names on each board."""
    mask = np.zeros((ROWS, COLS), dtype=bool)
    if text is None:
        mask[:] = True
        return mask
    for part in re.split(r",(?=[^,:]*:)", text):
        if part.count(":") != 1:
            raise HilError(f"--cells {text!r}: expected ROW:COL items, e.g. 1-6:1-10,12:3")
        rows, cols = part.split(":")
        r = np.array(_ranges(rows, 1, ROWS, "row", "--cells")) - 1
        c = np.array(_ranges(cols, 1, COLS, "column", "--cells")) - 1
        mask[np.ix_(r, c)] = True
    return mask


def replaced_cells(registry: str | None, bench: Bench, pending: bool) -> np.ndarray:
    """Cells of ``bench`` whose chip was swapped (``pending``: not characterised since); none
    while the registry does not exist (this characterisation will create it)."""
    if not Path(registry or default_path()).exists():
        return np.zeros(0, dtype=np.int64)
    with Registry(registry) as reg:
        return reg.replaced_devices(bench, pending)


def select_devices(args: argparse.Namespace, bench: Bench) -> np.ndarray:
    boards = parse_boards(args.boards, bench)
    cells = np.flatnonzero(parse_cells(args.cells).ravel())
    pos = np.array([bench.board_pos(b) for b in boards], dtype=np.int64)
    devices = (pos[:, None] * ROWS * COLS + cells[None, :]).ravel()
    if args.replaced:
        devices = np.intersect1d(devices, replaced_cells(args.registry, bench, pending=True))
        if devices.size == 0:
            where = args.registry or default_path()
            raise HilError(f"{where}: no replaced cells waiting for characterisation "
                           f"on bench {bench.identity} (record swaps with 'hil devices replace')")
    return devices


def _backend(args: argparse.Namespace, bench: Bench):
    if bench.backend != "sim":
        if args.failures or args.fault_map or args.seed is not None:
            raise HilError("--failures, --fault-map and --seed apply to the simulated bench only")
        return make_backend(bench)
    seed = bench.sim.seed if args.seed is None else args.seed
    faults = None
    if args.failures:
        faults = FaultMap(FailureRate.parse(args.failures).place(bench, seed))
    elif args.fault_map:
        faults = load_fault_map(args.fault_map, bench)
    # chips swapped on the registry are fresh devices on the simulated bench too
    modes = None if faults is None else faults.modes(
        bench, replaced_cells(args.registry, bench, pending=False))
    return make_backend(bench, seed=seed, modes=modes)


# ---- characterize -------------------------------------------------------------------------


class _LiveView:
    """What ``hil watch`` shows while a characterisation runs: progress about once a second,
    and the read map of the boards as it is measured (table ``live_reads``)."""

    def __init__(self, store: RunStore, bench: Bench, total: int, started: float) -> None:
        self.store, self.bench, self.total, self.started = store, bench, total, started
        self.done = 0
        self.last = 0.0

    def tick(self) -> None:
        self.done += 1
        now = time.perf_counter()
        if now - self.last >= 1.0:
            self.last = now
            self.store.put_progress("measuring", what="operation", done=self.done,
                                    total=self.total, wall_seconds=now - self.started)

    def read(self, devices: np.ndarray, sequence: str, step: int, g: np.ndarray) -> None:
        if sequence != "read_map" or step != 0:
            return
        lab = self.bench.labels(devices)
        self.store.write_table("live_reads", pd.DataFrame(
            {k: lab[k] for k in ("board", "row", "col", "chip", "pad")} | {"g_start_uS": g}),
            append=True)



def _duration(seconds: float) -> str:
    m, s = divmod(round(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}"


def write_run(store: RunStore, bench: Bench, result: Result, started: float,
              command: list[str]) -> dict:
    """Every output of a characterisation into its run directory, each file written whole or not
    at all; returns the summary, whose ``wall_seconds`` counts from ``started``
    (``time.perf_counter``) to the last plot."""
    reads = result.reads
    store.write_file("reads.csv", lambda p: reads.to_csv(p, index=False))
    store.write_file("reads.parquet", lambda p: reads.to_parquet(p, index=False))
    store.write_table("reads", reads.astype({"sequence": str}))
    table = result.table.drop(columns="device")
    store.write_file("devices.csv", lambda p: table.to_csv(p, index=False))
    store.write_table("devices", table)
    failed = result.failed
    store.write_file("replacements.csv", lambda p: failed.to_csv(p, index=False))
    store.write_table("replacements", failed)
    fabric = [{"board": f.board, "line": f.line, "index": f.index} for f in result.fabric]
    store.write_table("fabric_faults", pd.DataFrame(fabric, columns=["board", "line", "index"]))
    if result.curves is not None:
        store.write_file("curves.csv", result.curves.write)
        store.write_table("curves", result.curves.to_frame())
    counts = result.table["mode"].value_counts()
    summary = {
        "bench": bench.name,
        "boards": sorted({int(b) for b in result.table["board"]}, key=bench.board_ids.index),
        "devices": int(result.devices.size),
        "counts": {m: int(counts.get(m, 0)) for m in MODES},
        "failed": int(len(failed)),
        "fabric_faults": fabric,
        "curve_devices": 0 if result.curves is None else len(result.curves.ids),
        "operations": result.counts.as_dict(),
        "predicted_bench_seconds": round(result.bench_seconds, 3),
        "sequencing": result.sequencing,
    }
    store.put_progress("drawing plots", wall_seconds=time.perf_counter() - started)
    boards = result.table["board"].nunique()
    with console.bar(total=boards + 2, unit="plot", desc="plots", leave=False) as bar:
        plots.board_maps(bench, result, store.dir / "maps", tick=bar.update)
        store.write_file(CONDUCTANCE_CDF, lambda p: plots.conductance_cdf(result, p))
        bar.update()
        store.write_file(RESPONSE_CURVES, lambda p: plots.response_curves(result, p))
        bar.update()
    summary["wall_seconds"] = round(time.perf_counter() - started, 3)
    store.put_meta(command=command, bench_text=bench.text, bench_path=bench.path,
                   summary=summary)
    store.write_json("summary.json", summary)
    store.put_progress("done", wall_seconds=summary["wall_seconds"])
    return summary


# what a characterisation is started with: stored in the run, so --resume needs nothing else
OPTIONS = ("bench", "boards", "cells", "replaced", "form", "failures", "fault_map", "seed",
           "registry")


def _start(args: argparse.Namespace) -> tuple[RunStore, argparse.Namespace, np.ndarray, Bench,
                                              Backend]:
    """The run ``--resume`` names, or a new run directory (refused if anything is there, before
    anything is measured, and made only once every option is checked: a refused start leaves
    nothing); the options it was started with, the devices it covers, its bench and backend."""
    if args.resume:
        if args.out:
            raise HilError("--resume continues the run it names: drop --out")
        store = RunStore(args.resume)
        meta = store.meta()
        if "options" not in meta:
            store.close()
            raise HilError(f"{args.resume}: not a characterisation run")
        if store.state == "complete":
            store.close()
            raise HilError(f"{args.resume}: this characterisation is complete; nothing to resume")
        opts = argparse.Namespace(**meta["options"])
        bench = load_bench(opts.bench)
        return store, opts, np.array(meta["devices"]), bench, _backend(opts, bench)
    if not args.out:
        raise HilError("--out RUN is required (or --resume RUN)")
    if args.seed is not None and args.seed < 0:
        raise HilError(f"--seed {args.seed}: seeds are integers >= 0")
    for name in ("bench", "fault_map"):
        if getattr(args, name):
            setattr(args, name, str(Path(getattr(args, name)).resolve()))
    RunStore.check_new(args.out)
    if args.registry:
        args.registry = str(Path(args.registry).resolve())
    bench = load_bench(args.bench)
    devices = select_devices(args, bench)
    backend = _backend(args, bench)
    try:
        store = RunStore.create(args.out, command=sys.argv[1:], devices=devices.tolist(),
                                options={k: getattr(args, k) for k in OPTIONS})
    except HilError:
        backend.close()
        raise
    return store, args, devices, bench, backend


def run_characterize(args: argparse.Namespace) -> int:
    """Board by board, each board's result kept in the run as soon as it is measured: an
    interrupted run continues (``--resume``) with the boards not done yet, and ends with the
    replacement list an uninterrupted run gives."""
    t0 = time.perf_counter()
    store, opts, devices, bench, backend = _start(args)
    with store:
        console.attach(store.dir)
        s = settings(bench)
        if opts.replaced:
            s = replace(s, curve_devices=0)
        parts = store.parts()
        boards = [b for b in np.unique(devices // CELLS) if f"board {b}" not in parts]
        if len(parts):
            print(f"resuming {store.dir}: {len(parts)} board(s) done, {len(boards)} to go",
                  file=sys.stderr)
        total = (len(boards) * planned_ops(bench, devices[:1], s, opts.form, curves=False)
                 + curve_ops(s))
        store.put_meta(kind="characterize", bench_name=bench.name, board_map={
            "chip": bench.board_map.chip.tolist(), "pad": bench.board_map.pad.tolist()})
        live = _LiveView(store, bench, total, t0)
        with terminate_as_interrupt(), backend, store.running(), console.bar(
                total=total, unit="op", desc=f"characterize {devices.size} devices") as bar:
            def tick() -> None:
                bar.update()
                live.tick()

            for pos in boards:
                part = characterize(backend, devices[devices // CELLS == pos], s, form=opts.form,
                                    curves=False, tick=tick, on_read=live.read)
                store.save_part(f"board {pos}", part)
                parts[f"board {pos}"] = part
            result = add_curves(backend, combine(list(parts.values())), s, tick=tick)
            bar.total = bar.n  # forming may stop early; the plan is done
            summary = write_run(store, bench, result, t0, store.meta()["command"])
        registry = _record(bench, opts.registry, result, store.dir)
    _report(result, summary, store.dir, registry)
    return 0


def _record(bench: Bench, path: str | None, result: Result, run: Path) -> str:
    """The verdicts into the device registry -- the lab's own only for a real bench; a simulated
    or emulated one writes only into a ``--registry`` named for it. Returns what was done."""
    if not bench.real and path is None:
        return (f"not written (a {bench.identity.split('(')[-1].rstrip(')')} bench keeps no "
                "registry unless --registry names one)")
    with Registry(path, create=True) as registry:
        registry.record(bench, result.devices, result.table["mode"].to_numpy(),
                        result.table["pulses"].to_numpy(), run=str(run.resolve()))
    return f"{registry.path}" + (" (created)" if registry.created else "")


def _fabric_words(faults: list[LineFault]) -> list[str]:
    """One phrase per fault; a board none of whose lines conducts is one fault (not connected
    or not powered), not 22 open lines."""
    per_board: dict[int, list[LineFault]] = {}
    for f in faults:
        per_board.setdefault(f.board, []).append(f)
    words = []
    for board, lines in per_board.items():
        if len(lines) == ROWS + COLS:
            words.append(f"board {board}: no line conducts (is it connected and powered?)")
        else:
            words += [f"board {board} {f.line.upper()} {f.index} open" for f in lines]
    return words


def _report(result: Result, summary: dict, out: Path, registry: str) -> None:
    counts = ", ".join(f"{m} {n}" for m, n in summary["counts"].items() if n)
    console.result(
          f"characterised {summary['devices']} devices on {len(summary['boards'])} board(s) "
          f"in {summary['wall_seconds']:.1f} s; predicted bench time "
          f"{_duration(summary['predicted_bench_seconds'])} (h:mm:ss, {result.sequencing} "
          "sequencer)")
    console.result(f"modes: {counts}")
    if result.fabric:
        console.result("fabric faults (fix the board, not the devices): " + "; ".join(
            _fabric_words(result.fabric)))
    failed = result.failed
    if failed.empty:
        console.result("no devices to replace")
    else:
        console.result(f"replace {len(failed)} device(s) ({out / 'replacements.csv'}):")
        console.result(failed.to_string(index=False))
    if result.curves is not None:
        console.result(f"response curves of {len(result.curves.ids)} devices: {out / 'curves.csv'} "
              "(point a bench file's [sim] curves at it, or hil experiment --device-curves)")
    console.result(f"device registry: {registry}")


# ---- devices --------------------------------------------------------------------------------


def _show(df: pd.DataFrame, empty: str) -> None:
    console.result(empty if df.empty else
                   df.astype(object).where(df.notna(), "").to_string(index=False))


def run_replace(args: argparse.Namespace) -> int:
    bench = load_bench(args.bench)
    with Registry(args.registry) as registry:
        cells = registry.replace(bench, args.board, args.chip, args.pad)
    console.result(f"board {args.board} chip {args.chip}: {len(cells)} device(s) marked replaced; "
          "re-characterise with 'hil characterize --replaced'")
    _show(cells, "")
    return 0


def run_list(args: argparse.Namespace) -> int:
    bench = load_bench(args.bench)
    with Registry(args.registry) as registry:
        census = registry.census(bench, args.board, args.mode)
    _show(census, f"no devices known on bench {bench.identity}")
    if not census.empty:
        counts = census["mode"].value_counts()
        console.result(", ".join(f"{m} {n}" for m, n in counts.items()))
    return 0


def run_history(args: argparse.Namespace) -> int:
    bench = load_bench(args.bench)
    with Registry(args.registry) as registry:
        history = registry.history(bench, args.board, args.chip)
    _show(history, f"no history for board {args.board}")
    return 0

