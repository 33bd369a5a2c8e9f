"""``hil train``: on-line training on the bench the bench file names, with records and resume."""

from __future__ import annotations

import argparse
import contextlib
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np

from hil.backends.base import Backend
from hil.backends.factory import make_backend
from hil.bench import Bench
from hil.characterization.registry import Registry, default_path, flagged_devices, now
from hil.cli.console import console
from hil.cli.signals import terminate_as_interrupt
from hil.errors import HilError
from hil.faults import MODE_NAMES
from hil.network import NOTATION
from hil.pcb import layouts
from hil.records import ACCURACY, CONDUCTANCE_CDF, CONDUCTANCE_MAPS, RunStore
from hil.training import plots
from hil.training.journal import (
    JournaledBackend,
    identity_changes,
    instrument_identities,
    reconcile,
    reread,
)
from hil.training.setup import TrainParams, prepare
from hil.training.trainer import CHECKPOINT_FORMAT, OnlineTrainer, PRESET_uS


def flagged_cells(bench: Bench, params: TrainParams, say) -> np.ndarray | None:
    """Cells characterisation flagged and nobody has replaced: refuse to train on them, or
    (``--exclude-flagged``) never pulse them. Either way the operator is told which."""
    flagged = flagged_devices(bench, params.registry)
    if flagged.empty:
        return None
    cells = ", ".join(f"board {r.board} chip {r.chip} pad {r.pad} ({r.mode})"
                      for r in flagged.head(5).itertuples())
    more = f" and {len(flagged) - 5} more" if len(flagged) > 5 else ""
    if not params.exclude_flagged:
        raise HilError(f"{len(flagged)} cells of this network are flagged and not replaced: "
                       f"{cells}{more}; replace them (hil devices replace) or pass "
                       f"--exclude-flagged")
    say(f"excluding {len(flagged)} flagged cells from updates: {cells}{more}")
    return flagged["device"].to_numpy()


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train a network on-line inside the arrays",
        description="Train the single- or two-layer network on-line on the bench: forward by "
        "MAC reads, backprop on the host, updates as SET/RESET pulses. Records go to --out.",
    )
    p.add_argument("--bench", metavar="FILE", help="bench file (default: embedded sim bench)")
    p.add_argument("--network", default="two", help=NOTATION)
    p.add_argument("--hidden", type=int, metavar="N",
                   help="hidden neurons of a two-layer network (5-100; default: 20)")
    p.add_argument("--epochs", type=int, metavar="N",
                   help="passes over the training images (default: 20); with --resume, a larger "
                   "count takes the run on to it")
    p.add_argument("--seed", type=int, default=0, metavar="N",
                   help="seed of the image order, initial devices and simulated failures")
    p.add_argument("--data", metavar="DIR", help="UCI optdigits directory "
                   "(default: $HIL_OPTDIGITS_DIR, else scikit-learn's copy)")
    p.add_argument("--update", choices=["mixed", "paper"], default="mixed",
                   help="update rule: mixed-precision accumulator or the paper's rule")
    p.add_argument("--common-mode", type=float, metavar="µS",
                   help="mixed rule: a weight that must move RESETs its partner first while the "
                   "partner carries more than this, keeping one device of each pair near the "
                   "floor (default: 10; inf turns it off)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--failures", metavar="RATE[:MIX]",
                   help="simulated bench: each device fails with probability RATE, a fraction "
                        "MIX of them stuck-on, both fractions 0-1 (e.g. 0.0615:0.5; drawn per "
                        "board from --seed)")
    g.add_argument("--fault-map", metavar="CSV", help="failed devices: board,row,col,mode")
    p.add_argument("--registry", metavar="PATH", help="device registry to check for flagged "
                   "cells (default: $HIL_REGISTRY, else the user's data directory)")
    p.add_argument("--exclude-flagged", action="store_true",
                   help="train with flagged, unreplaced cells left alone instead of refusing")
    p.add_argument("--checkpoint-every", type=int, default=1000, metavar="N",
                   help="images between checkpoints, one more after every epoch")
    p.add_argument("--out", metavar="RUN", help="run directory (default: runs/train-<time>)")
    p.add_argument("--resume", metavar="RUN", help="continue a killed run where it stopped "
                   "(on instruments: after re-reading the arrays)")
    p.add_argument("--accept-bench", action="store_true",
                   help="with --resume on instruments: continue although the instruments or "
                   "chips differ from those the run started on")
    p.add_argument("--dry-run", action="store_true",
                   help="move nothing: rehearse on the simulated bench and print operation "
                   "counts and the predicted bench time")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    say = console.say
    if args.epochs is not None and args.epochs < 1:
        raise HilError("--epochs must be at least 1")
    if args.resume:
        store, params, state = _reopen(args, say)
        console.attach(store.dir)
    else:
        if args.seed < 0:
            raise HilError(f"--seed {args.seed}: seeds are integers >= 0")
        if args.checkpoint_every < 1:
            raise HilError("--checkpoint-every must be at least 1")
        if args.common_mode is not None and not args.common_mode > 0:
            raise HilError("--common-mode must be above 0 µS (inf turns it off)")
        params = TrainParams(
            bench=str(Path(args.bench).resolve()) if args.bench else None,
            network=args.network, hidden=args.hidden, epochs=args.epochs or 20, seed=args.seed,
            data=str(Path(args.data).resolve()) if args.data else None, update=args.update,
            failures=args.failures,
            fault_map=str(Path(args.fault_map).resolve()) if args.fault_map else None,
            checkpoint_every=args.checkpoint_every,
            registry=str(Path(args.registry).resolve()) if args.registry else None,
            exclude_flagged=args.exclude_flagged, common_mode_uS=args.common_mode,
        )
        if args.dry_run:
            from hil.backends.dryrun import dry_run

            return dry_run(params, prepare)
        out = RunStore.check_new(args.out or f"runs/train-{time.strftime('%Y%m%d-%H%M%S')}")
        state = None
    bench, backend, trainer = prepare(
        params, say=say, flagged=lambda bench: flagged_cells(bench, params, say))
    with contextlib.ExitStack() as guard:  # a refusal from here on leaves the bench safe
        guard.callback(backend.close)
        if not args.resume:
            # only once the run can start (a refused start leaves nothing), whole or not at all
            store = RunStore.create(
                out, params=asdict(params), network=trainer.spec.name, bench_name=bench.name,
                bench_file=bench.text, data=trainer.digits.identity(),
                config=asdict(trainer.cfg), kind="train", started=now(),
                layout={name: lay.to_json() for name, lay in layouts(bench).items()},
                instruments=instrument_identities(backend),
                failed_devices={MODE_NAMES[int(m)]: int(n) for m, n in
                                zip(*np.unique(getattr(backend, "mode", np.zeros(1)),
                                               return_counts=True), strict=True)},
            )
            console.attach(store.dir)
        elif state is not None:
            trainer.load_state_dict(state)
            if params.epochs > trainer.cfg.epochs:  # --resume --epochs N raised the count
                trainer.extend(params.epochs - trainer.epoch)
            say(f"resuming {store.dir} at epoch {trainer.epoch + 1}, image {trainer.position}")
        if bench.backend == "instruments":
            def recovered() -> None:
                total, differ = reread(trainer, bench.sim.read_noise)
                say(f"re-read {total} devices: {differ} differ beyond read noise (adopted)")

            trainer.backend = JournaledBackend(backend, store, reopen=lambda: make_backend(bench),
                                               recovered=recovered, say=say)
            if args.resume:  # pulses since the checkpoint (or the start) are in the journal
                _same_bench(store, bench, backend, params, args.accept_bench, say)
                found = reconcile(trainer, store, bench.sim.read_noise)
                say(found.words())
                store.save_checkpoint(trainer.epoch * len(trainer.order) + trainer.position,
                                      trainer.state_dict())
        guard.pop_all()
    try:
        with terminate_as_interrupt(), trainer.backend, store.running():
            if trainer.prepared is None:
                store.put_progress("preparing", epoch=0, epochs=params.epochs)
                say("preparing the arrays: pre-set, stuck-on check, cancelling stuck devices ...")
                done = trainer.prepare_arrays()
                say(_prepared_words(done))
                store.save_checkpoint(0, trainer.state_dict())  # preparation is never repeated
            _train(store, trainer, params)
            summary = _finish(store, trainer, bench)
        accuracy = 100 * summary["test_accuracy"]
        console.result(f"{summary['network']}: test accuracy {accuracy:.2f} % after "
                       f"{summary['epochs']} epochs, {summary['pulses']['set']} SET + "
                       f"{summary['pulses']['reset']} RESET pulses; records in {store.dir}")
        hint = short_run_hint(summary)
        if hint:
            console.result(hint)
    finally:
        store.close()  # a finished run leaves no -wal/-shm files
    return 0


def _reopen(args: argparse.Namespace, say) -> tuple[RunStore, TrainParams, dict | None]:
    """The run ``--resume`` names, its parameters (``--epochs`` raised if asked) and its last
    checkpoint; refuses in one line what cannot be continued exactly."""
    store = RunStore(args.resume)
    meta = store.meta()
    if "params" not in meta:
        raise HilError(f"{args.resume}: the run stopped before it started; start a new one")
    params = TrainParams(**meta["params"])
    state = store.load_checkpoint()
    if state is not None and state.get("format") != CHECKPOINT_FORMAT:
        raise HilError(f"{args.resume}: the checkpoint was written by another version of "
                       "memristor-hil and cannot be resumed; start a new run")
    done = len(state["history"]) if state is not None else 0
    if args.epochs is not None and args.epochs != params.epochs:
        if args.epochs < done:
            raise HilError(f"{args.resume}: {done} epochs are already trained; --epochs "
                           f"{args.epochs} cannot undo them (start a new run)")
        # the schedule (order, learning rate) depends on the epoch only, never on the count:
        # training to N then on to M is exactly training to M
        say(f"{args.resume}: epochs {params.epochs} -> {args.epochs}")
        params = replace(params, epochs=args.epochs)
        store.put_meta(params=asdict(params))
    elif store.state == "complete":
        raise HilError(f"{args.resume}: the run is complete ({done} epochs); pass --epochs N "
                       f"with N > {done} to train it further")
    if state is None:
        say(f"{args.resume}: stopped before its first checkpoint; starting it again")
    return store, params, state


def _same_bench(store: RunStore, bench: Bench, backend: Backend, params: TrainParams,
                accept: bool, say) -> None:
    """Refuse to resume on instruments other than the run's, or on chips swapped since it
    started, unless ``accept`` (then say so)."""
    meta = store.meta()
    problems = []
    problems += identity_changes(meta.get("instruments"), instrument_identities(backend))
    registry = Path(params.registry) if params.registry else default_path()
    if registry.exists() and "started" in meta:
        with Registry(registry) as reg:
            swapped = np.intersect1d(reg.replaced_since(bench, meta["started"]),
                                     np.concatenate([bench.array_devices(a).ravel()
                                                     for a in bench.arrays]))
        if swapped.size:
            problems.append(f"{swapped.size} cells of this network were replaced since the run "
                            "started")
    if not problems:
        return
    if not accept:
        raise HilError(f"{store.dir}: not the bench this run started on: {'; '.join(problems)} "
                       "(--accept-bench continues on it anyway)")
    say(f"continuing on another bench (--accept-bench): {'; '.join(problems)}")


# Images (epochs x training images) after which the default rule has reached 90 % in every
# recorded run (README, "Results on the simulated bench": epoch 1 of 3823 images gives 92-93 %).
ENOUGH_IMAGES = 3000


def short_run_hint(summary: dict[str, Any]) -> str | None:
    """Why a run ended far below what its network reaches, when the cause is its length: the
    mixed rule's accumulator fires a pulse only once about three device steps of updates have
    collected, so a short run leaves most devices where preparation put them."""
    seen = summary["epochs"] * summary["data"]["train"]
    if summary["test_accuracy"] >= 0.8 or seen >= ENOUGH_IMAGES:
        return None
    return (f"note: {100 * summary['test_accuracy']:.0f} % is what {seen} training images give, "
            f"not a broken bench: the {summary['update']} rule moves a device only after about "
            f"three conductance steps of updates have collected, and runs reach 90 % only after "
            f"about {ENOUGH_IMAGES} images (train longer: --epochs "
            f"{-(-ENOUGH_IMAGES // summary['data']['train'])} or more, or use the UCI split "
            "with --data)")


def _prepared_words(done: dict[str, int]) -> str:
    if not (done["preset"] or done["cancelled"] or done["uncancelled"]):
        return "arrays prepared: every device already low, none stuck"
    return (f"arrays prepared with {done['pulses']} pulses: {done['preset']} devices read high, "
            f"{done['stuck_on']} of them stuck on; {done['cancelled']} stuck devices cancelled by "
            f"their partners ({done['partly']} only partly, the partner short of it), "
            f"{done['uncancelled']} not (partner stuck too: replace those first)")


PROGRESS_EVERY = 1.0  # seconds between progress records for hil watch


def _train(store: RunStore, trainer: OnlineTrainer, params: TrainParams, desc: str = "train",
           first: int = 0) -> None:
    """Train to the trainer's last epoch with a progress bar, checkpoints, progress records and
    a row per epoch (``first``: the epoch the bar starts from, a repair's first)."""
    n = len(trainer.order)
    epochs = trainer.cfg.epochs
    total = (epochs - first) * n
    start = (trainer.epoch - first) * n + trainer.position  # a resumed run counts from here
    bar = console.bar(total=total, initial=start, unit="img", desc=desc)
    every = params.checkpoint_every
    t0 = time.monotonic()
    bench0 = getattr(trainer.backend, "bench_seconds", None)  # preparation, time before a resume
    last = [0.0]
    test_bar: list[Any] = []

    def progress(phase: str, **extra: Any) -> None:
        bench_s = getattr(trainer.backend, "bench_seconds", None)
        store.put_progress(phase, epoch=trainer.epoch + 1, epochs=epochs,
                           images=(trainer.epoch - first) * n + trainer.position, total=total,
                           start_images=start,
                           wall_seconds=time.monotonic() - t0,
                           bench_seconds=None if bench_s is None else float(bench_s),
                           start_bench_seconds=None if bench0 is None else float(bench0),
                           **extra)
        last[0] = time.monotonic()

    def on_image(tr: OnlineTrainer) -> None:
        bar.update()
        if tr.position % 200 == 0:
            bar.set_postfix_str(f"epoch {tr.epoch + 1}/{epochs} "
                                f"train acc {tr.correct / tr.position:.3f}", refresh=False)
        if tr.position % every == 0:
            store.save_checkpoint(tr.epoch * n + tr.position, tr.state_dict())
        if time.monotonic() - last[0] >= PROGRESS_EVERY:
            progress("training", train_accuracy=tr.correct / tr.position)

    def on_test(done: int, of: int) -> None:
        if not test_bar:
            progress("testing", tested=0, test_images=of)
            test_bar.append(console.bar(total=of, unit="img", leave=False,
                                        desc=f"test pass, epoch {trainer.epoch + 1}"))
        test_bar[0].update(done - test_bar[0].n)
        if time.monotonic() - last[0] >= PROGRESS_EVERY:
            progress("testing", tested=done, test_images=of)

    def on_epoch(tr: OnlineTrainer, rec: dict[str, Any]) -> None:
        if test_bar:
            test_bar.pop().close()
        store.add_epoch(rec["epoch"], tr.snapshots(),
                        train_accuracy=rec["train_accuracy"], test_accuracy=rec["test_accuracy"],
                        set_pulses=rec["set_pulses"], reset_pulses=rec["reset_pulses"],
                        device_reads=rec["device_reads"], mac_reads=rec["mac_reads"],
                        wall_seconds=time.monotonic() - t0)
        store.save_checkpoint(tr.epoch * n, tr.state_dict())
        progress("training")
        bar.write_line(f"epoch {rec['epoch']:>3}: test {100 * rec['test_accuracy']:.2f} %  "
                       f"train {100 * rec['train_accuracy']:.2f} %  pulses "
                       f"{rec['set_pulses'] + rec['reset_pulses']}")

    try:
        progress("training")
        trainer.run(on_image=on_image, on_epoch=on_epoch, on_test=on_test)
    finally:
        for b in test_bar:
            b.close()
        bar.close()


def _finish(store: RunStore, trainer: OnlineTrainer, bench: Bench) -> dict[str, Any]:
    meta = store.meta()
    hist = trainer.history
    counts = trainer.backend.counts
    summary = {
        "network": trainer.spec.name,
        "epochs": len(hist),
        "seed": trainer.cfg.seed,
        "update": trainer.cfg.update,
        "bench": meta["bench_name"],
        "test_accuracy": hist[-1]["test_accuracy"],
        "test_accuracy_per_epoch": [h["test_accuracy"] for h in hist],
        "train_accuracy_per_epoch": [h["train_accuracy"] for h in hist],
        "pulses": {"set": counts.set_pulses, "reset": counts.reset_pulses},
        "reads": counts.reads,
        "reads_detail": {"device": counts.device_reads, "mac": counts.mac_reads},
        "data": {k: meta["data"][k] for k in ("name", "train", "test")},
        "failed_devices": meta["failed_devices"],
        "prepared": trainer.prepared,
        # the paper's Fig. 4b: 54.08 % of the devices below 5 uS after training
        "below_5_uS": float((trainer.conductances() < PRESET_uS).mean()),
    }
    bench_seconds = getattr(trainer.backend, "bench_seconds", None)
    if bench_seconds is not None:  # on instruments: the bench clock's time for the whole run
        summary["bench_seconds"] = round(float(bench_seconds), 3)
    repairs = store.read_table("repairs")  # hil repair: the accuracy its failures left
    if not repairs.empty:
        summary["repairs"] = repairs.to_dict("records")
    store.write_json("summary.json", summary)
    title = f"{summary['network']} ({summary['update']} rule, seed {summary['seed']})"
    epochs = [h["epoch"] for h in hist]
    found = [(r.after_epoch + 0.5, r.accuracy_before) for r in repairs.itertuples()]
    snaps = trainer.snapshots()
    lays = layouts(bench)
    when = f"after {len(hist)} epochs"
    with console.bar(total=3, unit="plot", desc="plots", leave=False) as bar:
        plots.accuracy_plot(store.dir / ACCURACY, epochs, summary["test_accuracy_per_epoch"],
                            summary["train_accuracy_per_epoch"], title, found)
        bar.update()
        plots.conductance_maps(store.dir / CONDUCTANCE_MAPS, snaps, lays, when)
        bar.update()
        plots.conductance_cdf(store.dir / CONDUCTANCE_CDF, snaps, when)
        bar.update()
    store.put_progress("done", epoch=len(hist), epochs=len(hist))
    return summary
