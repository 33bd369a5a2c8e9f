"""The paper's studies (Figs. 5-8) on the simulated bench, as independent seeded trials.

* ``curves``: test accuracy after every epoch, single and two layers, with no failed devices and
  with the paper's 6.15 % failed devices (half stuck-on) present during training (Figs. 5, 6a).
* ``faults``: train once per network and seed, then replace a fraction p of the network's devices
  by stuck-off or by stuck-on devices and measure again (Fig. 7). Beside them, the same fraction
  of its weights lost (both devices of a pair stuck off), and the same network trained in fp32
  with that fraction of its weights dropped: what losing weights costs the network itself, and
  what the devices add to it.
  With ``--repair-epochs N`` every stuck-off and stuck-on network is then repaired in place as
  ``hil repair`` does (re-check, write off, fine-tune N epochs) and measured again.
* ``hidden``: two layers with a range of hidden neurons, in-situ at device precision beside fp32
  backprop of the same network (Fig. 8).

Every trial is a pure function of its :class:`Trial` (the simulator, the data order and the fault
placement are all seeded from it, and BLAS runs single-threaded), so a study gives the same
``results.csv`` whichever executor runs the trials -- local processes or a Dask cluster -- and in
whatever order they finish.

``results.csv`` has one row per trial and epoch (fault studies: per injected fraction, at the last
epoch)::

    study,network,hidden,mode,p,seed,epoch,test_accuracy

``network`` is ``single`` or ``two``; ``hidden`` is 0 for the single layer; ``mode`` says what the
devices were: ``ok`` (none failed), ``mixed`` (failed devices present during training, half of them
stuck-on), ``stuck_off`` / ``stuck_on`` (a fraction of the trained network's devices replaced
afterwards), ``pair_off`` (a fraction of its weights lost: both devices of the pair stuck off),
``fp32`` (no devices: the float baseline) or ``fp32_dropped`` (the float baseline with a fraction
of its weights set to zero), ``stuck_off_repaired`` / ``stuck_on_repaired`` (those networks after
the repair: ``epoch`` counts the training's epochs plus the repair's); ``p`` is the fraction of
failed devices (or weights). What each repair found and the pulses it cost go to a second table
(:data:`REPAIR_COLUMNS`, ``repairs.csv``).
"""

from __future__ import annotations

import multiprocessing
import os
import signal
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits
from tqdm import tqdm

from hil.characterization.classify import settings
from hil.characterization.recheck import recheck
from hil.errors import HilError
from hil.faults import STUCK_OFF, STUCK_ON, FailureRate
from hil.network import NetworkSpec
from hil.training.baseline import fp32_accuracy, train_fp32
from hil.training.data import Digits, load_digits
from hil.training.setup import TrainParams, prepare
from hil.training.trainer import OnlineTrainer

STUDIES = ("curves", "faults", "hidden")
COLUMNS = ["study", "network", "hidden", "mode", "p", "seed", "epoch", "test_accuracy"]
REPAIR_COLUMNS = ["network", "mode", "p", "seed", "moved", "written_off", "epochs",
                  "test_pulses", "cancel_pulses", "tune_pulses", "training_pulses",
                  "accuracy_before", "accuracy_after"]
FAULT_FRACTIONS = (0.0, 0.02, 0.04, 0.06, 0.08, 0.10, 0.15, 0.20)
HIDDEN_SIZES = (5, 10, 20, 40, 60, 80, 100)
PAPER_FAILURES = "0.0615:0.5"  # 80 of 1300 devices failed on the paper's boards (Fig. 3f)
PAPER_HIDDEN = 20  # the two-layer network the paper built


@dataclass(frozen=True)
class Setup:
    """What every trial of a study shares. Paths are absolute so that any worker can open them
    (on a Dask cluster they must be on a shared file system)."""

    epochs: int = 20
    data: str | None = None  # optdigits directory; None: scikit-learn's copy
    bench: str | None = None  # bench file; None: the embedded default bench
    curves: str | None = None  # response-curve CSV replacing the bench's
    common_mode_uS: float | None = None  # the update rule's low common mode; None: its default
    fractions: tuple[float, ...] = FAULT_FRACTIONS
    repair_epochs: int = 0  # faults study: repair each network after its failures, N epochs


@dataclass(frozen=True)
class Trial:
    """One seeded training (in-situ or fp32) and what is measured on it."""

    network: str  # single | two
    hidden: int  # 0 for the single layer
    mode: str  # ok | mixed (failed devices present during training) | fp32
    seed: int
    setup: Setup
    inject: bool = False  # also measure it with failed devices (dropped weights) injected

    @property
    def training(self) -> Trial:
        """What determines the training: trials of different studies that share it share the
        trained network (the faults study's networks are the curves study's, the hidden study's
        20 neurons are the curves study's two layers)."""
        return replace(self, inject=False)

    @property
    def cost(self) -> float:
        """Rough relative run time, so the longest trials start first."""
        spec = NetworkSpec.parse(self.network, self.hidden or None)
        weights = sum((a + 1) * b for a, b in zip(spec.sizes, spec.sizes[1:], strict=False))
        return (0.3 if self.mode == "fp32" else 1.0) * (500 + weights)


@dataclass(frozen=True)
class Outcome:
    """What a trial measured: test accuracy after every epoch and, if asked, after injecting
    failed devices into the trained network as (mode, fraction, accuracy)."""

    history: tuple[float, ...]
    faults: tuple[tuple[str, float, float], ...] = ()
    repairs: tuple[dict[str, Any], ...] = ()  # REPAIR_COLUMNS but network and seed


def study_trials(study: str, seeds: Sequence[int], setup: Setup,
                 hidden: Sequence[int] = HIDDEN_SIZES) -> list[Trial]:
    """The trials of one study, in the order their rows appear in ``results.csv``."""
    networks = (("single", 0), ("two", PAPER_HIDDEN))
    if study == "curves":
        return [Trial(net, h, mode, s, setup)
                for net, h in networks for mode in ("ok", "mixed") for s in seeds]
    if study == "faults":
        return [Trial(net, h, mode, s, setup, inject=True)
                for net, h in networks for mode in ("ok", "fp32") for s in seeds]
    if study == "hidden":
        return [Trial("two", h, mode, s, setup)
                for h in hidden for mode in ("ok", "fp32") for s in seeds]
    raise ValueError(f"unknown study {study!r}")


def study_rows(study: str, trial: Trial, outcome: Outcome) -> list[dict[str, Any]]:
    """Rows of ``results.csv`` that one trial gives a study."""

    def row(epoch: int, accuracy: float, mode: str, p: float) -> dict[str, Any]:
        return {"study": study, "network": trial.network, "hidden": trial.hidden, "mode": mode,
                "p": p, "seed": trial.seed, "epoch": epoch, "test_accuracy": accuracy}

    if study == "faults":
        end = len(outcome.history)
        return [row(end, a, mode, p) for mode, p, a in outcome.faults] + [
            row(end + r["epochs"], r["accuracy_after"], f"{r['mode']}_repaired", r["p"])
            for r in outcome.repairs]
    p = FailureRate.parse(PAPER_FAILURES).rate if trial.mode == "mixed" else 0.0
    return [row(e, a, trial.mode, p) for e, a in enumerate(outcome.history, start=1)]


# ---- one trial (runs in a worker) ----------------------------------------------------------


def run_trial(trial: Trial) -> Outcome:
    with threadpool_limits(1):  # same float summation order on every executor, no oversubscribing
        setup = trial.setup
        digits = _digits(setup.data)
        if trial.mode == "fp32":
            spec = NetworkSpec.parse(trial.network, trial.hidden or None)
            history, weights = train_fp32(digits, spec, setup.epochs, trial.seed)
            return Outcome(tuple(history), drop_weights(weights, digits, trial.seed,
                                                        setup.fractions) if trial.inject else ())
        params = TrainParams(
            bench=setup.bench, network=trial.network, hidden=trial.hidden or None,
            epochs=setup.epochs, seed=trial.seed, data=setup.data, curves=setup.curves,
            failures=PAPER_FAILURES if trial.mode == "mixed" else None,
            common_mode_uS=setup.common_mode_uS,
        )
        _, _, trainer = prepare(params, digits=digits, say=_quiet)
        history = tuple(h["test_accuracy"] for h in trainer.run())
        if not trial.inject:
            return Outcome(history)
        return Outcome(history, *inject_faults(trainer, trial.seed, setup.fractions,
                                               setup.repair_epochs))


def inject_faults(trainer: OnlineTrainer, seed: int, fractions: Sequence[float],
                  repair_epochs: int = 0
                  ) -> tuple[tuple[tuple[str, float, float], ...], tuple[dict[str, Any], ...]]:
    """Accuracy of a trained network after replacing a fraction p of its devices by stuck-off
    or stuck-on ones, and after losing a fraction p of its weights (``pair_off``: both devices
    of the pair stuck off), which tells what the devices add to the loss of the weights. With
    ``repair_epochs``, each stuck-off and stuck-on network is then repaired (:func:`repair`).

    The failed devices of a larger fraction include those of a smaller one, and both device
    modes hit the same devices, so the curves compare like with like; every measurement starts
    from the same copy of the trained state (including the backend's noise generator).
    """
    devices = trainer.devices()
    pairs = devices.reshape(-1, 2)  # G+ and G- sit in adjacent columns
    order = np.random.default_rng([seed, 5]).permutation(devices)
    pair_order = pairs[np.random.default_rng([seed, 6]).permutation(len(pairs))]
    trained = trainer.state_dict()
    out, repairs = [], []
    # a fraction p of the units fails: devices, or pairs (a row of two device indices)
    for mode, code, units in (("stuck_off", STUCK_OFF, order), ("stuck_on", STUCK_ON, order),
                              ("pair_off", STUCK_OFF, pair_order)):
        for p in fractions:
            modes = trained["backend"]["mode"].copy()
            modes[units[: round(p * len(units))]] = code
            trainer.backend.set_modes(modes)
            out.append((mode, p, trainer.evaluate()))
            if repair_epochs and mode != "pair_off":
                repairs.append({"mode": mode, "p": p, "accuracy_before": out[-1][2],
                                **repair(trainer, repair_epochs)})
            trainer.load_state_dict(trained)
    return tuple(out), tuple(repairs)


def repair(trainer: OnlineTrainer, epochs: int) -> dict[str, Any]:
    """Repair a trained network whose devices failed, as ``hil repair`` does: re-check every
    device, write off the failed ones and fine-tune ``epochs`` epochs; what it found and cost."""
    last = trainer.history[-1]
    found = recheck(trainer.backend, trainer.devices(), trainer.conductances(),
                    settings(trainer.backend.bench))
    done = trainer.repair(found.failed, found.g, epochs)
    return {"moved": int(found.moved.sum()), "written_off": done["failed"],
            "epochs": done["epochs"], "test_pulses": found.counts.pulses,
            "cancel_pulses": done["pulses"], "tune_pulses": done["tune_pulses"],
            "training_pulses": last["set_pulses"] + last["reset_pulses"],
            "accuracy_after": done["accuracy"]}


def drop_weights(weights: list[np.ndarray], digits: Digits, seed: int,
                 fractions: Sequence[float]) -> tuple[tuple[str, float, float], ...]:
    """Accuracy of a float network after setting a fraction p of all its weights to zero (the
    weights of a larger fraction include those of a smaller one)."""
    sizes = [w.size for w in weights]
    order = np.random.default_rng([seed, 5]).permutation(sum(sizes))
    out = []
    for p in fractions:
        keep = np.ones(sum(sizes))
        keep[order[: round(p * keep.size)]] = 0.0
        parts = np.split(keep, np.cumsum(sizes)[:-1])
        dropped = [w * k.reshape(w.shape) for w, k in zip(weights, parts, strict=True)]
        out.append(("fp32_dropped", p, fp32_accuracy(digits, dropped)))
    return tuple(out)


@lru_cache(maxsize=2)
def _digits(data: str | None) -> Digits:
    """Each worker parses the data set once, not once per trial."""
    return load_digits(data, say=_quiet)


def _quiet(msg: str) -> None:
    return None


# ---- running many trials -------------------------------------------------------------------


@contextmanager
def open_executor(workers: int | None = None, scheduler: str | None = None) -> Iterator[Executor]:
    """Local worker processes, or a Dask cluster's executor when ``scheduler`` is given."""
    if scheduler is None:
        n = workers or os.cpu_count() or 1
        # spawn: workers start clean whatever threads the parent runs (tqdm, a Dask client)
        pool = ProcessPoolExecutor(n, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_leave_interrupts_to_parent)
        try:
            yield pool
        except BaseException:
            # Ctrl-C or a failed trial: the running trials are of no use, do not wait for them
            # (no public way to stop a pool's workers before Python 3.14)
            for worker in list((pool._processes or {}).values()):
                worker.terminate()
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown()
        return
    try:
        from distributed import Client
    except ImportError:
        raise HilError("--scheduler needs Dask: pip install 'dask[distributed]'") from None
    try:
        client = Client(scheduler, timeout=10)
    except (OSError, TimeoutError, ValueError) as exc:
        raise HilError(f"--scheduler {scheduler}: cannot reach the Dask scheduler: {exc}") from None
    with client:
        yield client.get_executor()


def run_studies(plan: Mapping[str, Sequence[Trial]], executor: Executor,
                progress: bool = True,
                on_rows: Callable[[str, pd.DataFrame], None] | None = None
                ) -> tuple[dict[str, pd.DataFrame], pd.DataFrame]:
    """``results.csv`` of every study in ``plan`` (a training several studies share runs once)
    and what each repair found and cost (``repairs.csv``, REPAIR_COLUMNS). ``on_rows(study,
    rows)`` gets each study's rows of a training as soon as it finishes."""
    trainings: dict[Trial, Trial] = {}
    for trials in plan.values():
        for t in trials:
            known = trainings.get(t.training, t)
            trainings[t.training] = replace(known, inject=known.inject or t.inject)
    unique = list(trainings.values())

    def finished(index: int, outcome: Outcome) -> None:
        training = unique[index].training
        for study, trials in plan.items():
            rows = [r for t in trials if t.training == training
                    for r in study_rows(study, t, outcome)]
            if rows:
                on_rows(study, pd.DataFrame(rows, columns=COLUMNS))

    outcomes = dict(zip(trainings, run_trials(unique, executor, progress,
                                              finished if on_rows else None), strict=True))
    frames = {study: pd.DataFrame([r for t in trials
                                   for r in study_rows(study, t, outcomes[t.training])],
                                  columns=COLUMNS)
              for study, trials in plan.items()}
    repairs = pd.DataFrame([{"network": t.network, "seed": t.seed, **r}
                            for t, outcome in outcomes.items() for r in outcome.repairs],
                           columns=REPAIR_COLUMNS)
    return frames, repairs


def _leave_interrupts_to_parent() -> None:
    """A worker ignores Ctrl-C: the parent stops the pool, without a traceback per worker."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def run_trials(trials: Sequence[Trial], executor: Executor, progress: bool = True,
               on_done: Callable[[int, Outcome], None] | None = None) -> list[Outcome]:
    """Run ``trials`` on ``executor`` with a progress bar; outcomes come back in trial order,
    and each to ``on_done(index, outcome)`` as it finishes."""
    outcomes: list[Outcome | None] = [None] * len(trials)
    longest_first = sorted(range(len(trials)), key=lambda i: -trials[i].cost)
    futures = {executor.submit(run_trial, trials[i]): i for i in longest_first}
    with tqdm(total=len(trials), desc="trainings", unit="run", dynamic_ncols=True,
              disable=not progress) as bar:
        for future in as_completed(futures):
            outcomes[futures[future]] = future.result()
            if on_done is not None:
                on_done(futures[future], outcomes[futures[future]])
            bar.update()
    return outcomes
