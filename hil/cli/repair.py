"""``hil repair RUN``: find the devices of a trained network that failed since its training and
repair the network in place, on the run's own bench.

The re-check (:mod:`hil.characterization.recheck`) reads every device of the network and
pulse-tests only those whose reading moved; the trainer writes the failed ones off (stuck-on
devices cancelled by their partners, as before training) and fine-tunes around them
(:meth:`hil.training.trainer.OnlineTrainer.repair`). The run directory keeps the repair as its
own epochs after the training's, a row of its ``repairs`` table and the devices it found
(``repair_devices``), so accuracy vs epoch shows the failure and the recovery.
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np
import pandas as pd

from hil.characterization.classify import settings
from hil.characterization.recheck import Recheck, found_table, recheck
from hil.characterization.registry import Registry, now
from hil.cli.console import console
from hil.cli.signals import terminate_as_interrupt
from hil.cli.train import _finish, _train
from hil.errors import HilError
from hil.faults import OK, FailureRate
from hil.records import RunStore
from hil.training.setup import TrainParams, prepare

DEFAULT_EPOCHS = 2  # measured: the first two fine-tuning epochs recover nearly all there is


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "repair",
        help="find devices that failed after training and fine-tune the network around them",
        description="Re-read every device of a trained run's network on its bench, pulse-test "
        "those whose reading moved, classify them as characterisation does, cancel stuck-on "
        "devices with their partners and fine-tune with the failed devices never pulsed. The "
        "repair is added to the run as its own epochs.")
    p.add_argument("run_dir", metavar="RUN", help="run directory of a finished hil train")
    p.add_argument("--epochs", type=int, default=DEFAULT_EPOCHS,
                   help=f"fine-tuning epochs when devices failed (default: {DEFAULT_EPOCHS})")
    p.add_argument("--failures", metavar="RATE[:MIX]",
                   help="simulated bench only: first make each device fail with this "
                        "probability, MIX of them stuck-on, drawn per board from the run's seed "
                        "(the same draws each time: devices failed already stay failed, a "
                        "larger RATE adds to them)")
    p.add_argument("--registry", metavar="PATH", help="device registry to record the failed "
                   "devices in, real benches only (default: $HIL_REGISTRY, else the user's data "
                   "directory)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    say = console.say
    if args.epochs < 0:
        raise HilError("--epochs must be at least 0")
    failures = FailureRate.parse(args.failures) if args.failures else None
    store = RunStore(args.run_dir, create=False)
    console.attach(store.dir)
    try:
        return _repair(args, store, failures, say)
    finally:
        store.close()  # a finished repair leaves no -wal/-shm files


def _repair(args: argparse.Namespace, store: RunStore, failures: FailureRate | None,
            say) -> int:
    meta = store.meta()
    state = store.load_checkpoint()
    if "params" not in meta or state is None or state["position"] or (
            state["epoch"] < state["config"]["epochs"]):
        raise HilError(f"{args.run_dir}: the run has not finished training; finish it first "
                       f"(hil train --resume {args.run_dir})")
    params = TrainParams(**meta["params"])
    bench, backend, trainer = prepare(params, say=say)
    problem = None
    if trainer.digits.identity() != meta["data"]:
        problem = (f"{args.run_dir}: trained on {meta['data']['name']} "
                   f"({meta['data']['train']}/{meta['data']['test']} images), not on the data "
                   f"found now; point $HIL_OPTDIGITS_DIR at the files it was trained on")
    elif failures is not None and bench.backend != "sim":
        problem = "--failures simulates failed devices: sim backend only"
    if problem:
        backend.close()  # nothing has moved; the bench is left safe
        raise HilError(problem)
    s = settings(bench)
    trainer.load_state_dict(state)
    if failures is not None:
        modes = backend.mode.copy()
        modes[modes == OK] = failures.place(bench, params.seed)[modes == OK]
        backend.set_modes(modes)
    trained = trainer.epoch
    last = trainer.history[-1]
    training_pulses = last["set_pulses"] + last["reset_pulses"]
    with terminate_as_interrupt(), backend:
        say("measuring the network as found, then re-checking its devices ...")
        before = trainer.evaluate()
        found = recheck(backend, trainer.devices(), trainer.conductances(), s)
        table = found_table(bench, found)
        say(_found_words(found))
        # the lab's registry holds real benches only; a simulated or emulated one writes only
        # into a --registry named for it
        if (bench.real or args.registry is not None) and not table.empty:
            with Registry(args.registry, create=True) as reg:
                tested = np.where(table["mode"] == "fabric", 0, 2 * s.recheck_pulses)
                reg.record(bench, table["device"].to_numpy(), table["mode"].to_numpy(), tested,
                           str(store.dir))
        store.write_table("repair_devices", table.assign(after_epoch=trained), append=True)
        done = trainer.write_off(found.failed, found.g)
        # the host's copy now holds what the re-check read: the next repair compares with it
        store.save_checkpoint(trainer.epoch * len(trainer.order), trainer.state_dict())
        tuned = args.epochs if done["failed"] else 0
        pulses = backend.counts.pulses
        if tuned:
            say(f"fine-tuning {tuned} epochs with the {done['failed']} failed devices never "
                "pulsed ...")
            trainer.extend(tuned)
            _train(store, trainer, params, desc="repair", first=trained)
        after = trainer.history[-1]["test_accuracy"] if tuned else trainer.evaluate()
    record = {
        "time": now(), "after_epoch": trained, "epochs": tuned,
        "devices": int(found.devices.size), "moved": int(found.moved.sum()),
        **{f"found_{m}": int((table["mode"] == m).sum()) for m in FOUND},
        "written_off": done["failed"], "cancelled": done["cancelled"], "partly": done["partly"],
        "uncancelled": done["uncancelled"], "test_pulses": found.counts.pulses,
        "cancel_pulses": done["pulses"], "tune_pulses": backend.counts.pulses - pulses,
        "training_pulses": training_pulses, "accuracy_before": before, "accuracy_after": after,
    }
    store.write_table("repairs", pd.DataFrame([record]), append=True)
    _finish(store, trainer, bench)
    console.result(_result_words(record, store.dir))
    return 0


FOUND = ("stuck_on", "stuck_off", "open", "short", "fabric", "unstable")


def _found_words(found: Recheck) -> str:
    what = ", ".join(f"{n} {mode.replace('_', '-')}"
                     for mode, n in found.found().items()) or "nothing"
    return (f"re-checked {found.devices.size} devices in {found.bench_seconds:.1f} s of bench "
            f"time: {int(found.moved.sum())} read differently and were pulse-tested "
            f"({found.counts.pulses} pulses); found {what}")


def _result_words(r: dict[str, Any], where: object) -> str:
    cost = r["test_pulses"] + r["cancel_pulses"] + r["tune_pulses"]
    share = 100 * cost / max(r["training_pulses"], 1)
    head = (f"repair after epoch {r['after_epoch']}: {r['written_off']} devices written off "
            f"({r['cancelled']} stuck-on cancelled by their partners, {r['uncancelled']} not); "
            f"test accuracy {100 * r['accuracy_before']:.2f} % as found -> "
            f"{100 * r['accuracy_after']:.2f} %")
    tuned = f" after {r['epochs']} fine-tuning epochs" if r["epochs"] else " (no fine-tuning)"
    return (f"{head}{tuned}; {cost} pulses ({share:.1f} % of the training's "
            f"{r['training_pulses']}); records in {where}")
