"""The paper's studies (Figs. 5-8) on the simulated bench, as independent seeded trials.

* ``curves``: test accuracy after every epoch, single and two layers, with no failed devices and
  with the paper's 6.15 % failed devices (half stuck-on) present during training (Figs. 5, 6a).
* ``faults``: train once per network and seed, then replace a fraction p of the network's devices
  by stuck-off or by stuck-on devices and measure again (Fig. 7).
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
afterwards) or ``fp32`` (no devices: the float baseline); ``p`` is the fraction of failed devices.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Iterator, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits
from tqdm import tqdm

from hil.baseline import train_fp32
from hil.cmd_train import TrainParams, prepare
from hil.data import Digits, load_digits
from hil.errors import HilError
from hil.faults import MODES, FailureRate
from hil.network import NetworkSpec
from hil.trainer import OnlineTrainer

STUDIES = ("curves", "faults", "hidden")
COLUMNS = ["study", "network", "hidden", "mode", "p", "seed", "epoch", "test_accuracy"]
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
    fractions: tuple[float, ...] = FAULT_FRACTIONS


@dataclass(frozen=True)
class Trial:
    """One seeded run: train a network (in-situ or fp32) and measure it."""

    study: str
    network: str  # single | two
    hidden: int  # 0 for the single layer
    mode: str  # ok | mixed (failed devices during training) | fp32
    seed: int
    setup: Setup

    @property
    def cost(self) -> float:
        """Rough relative run time, so the longest trials start first."""
        spec = NetworkSpec.parse(self.network, self.hidden or None)
        weights = sum((a + 1) * b for a, b in zip(spec.sizes, spec.sizes[1:], strict=False))
        return (0.3 if self.mode == "fp32" else 1.0) * (500 + weights)

    def row(self, epoch: int, accuracy: float, mode: str | None = None,
            p: float | None = None) -> dict[str, Any]:
        mode = self.mode if mode is None else mode
        if p is None:
            p = FailureRate.parse(PAPER_FAILURES).rate if mode == "mixed" else 0.0
        return {"study": self.study, "network": self.network, "hidden": self.hidden,
                "mode": mode, "p": p, "seed": self.seed, "epoch": epoch,
                "test_accuracy": accuracy}


def study_trials(study: str, seeds: Sequence[int], setup: Setup,
                 hidden: Sequence[int] = HIDDEN_SIZES) -> list[Trial]:
    """The trials of one study, in the order their rows appear in ``results.csv``."""
    networks = (("single", 0), ("two", PAPER_HIDDEN))
    if study == "curves":
        return [Trial(study, net, h, mode, s, setup)
                for net, h in networks for mode in ("ok", "mixed") for s in seeds]
    if study == "faults":
        return [Trial(study, net, h, "ok", s, setup) for net, h in networks for s in seeds]
    if study == "hidden":
        return [Trial(study, "two", h, mode, s, setup)
                for h in hidden for mode in ("ok", "fp32") for s in seeds]
    raise ValueError(f"unknown study {study!r}")


# ---- one trial (runs in a worker) ----------------------------------------------------------


def run_trial(trial: Trial) -> list[dict[str, Any]]:
    """Rows of ``results.csv`` for one trial."""
    with threadpool_limits(1):  # same float summation order on every executor, no oversubscribing
        setup = trial.setup
        digits = _digits(setup.data)
        if trial.mode == "fp32":
            spec = NetworkSpec.parse(trial.network, trial.hidden or None)
            acc = train_fp32(digits, spec, setup.epochs, trial.seed)
            return [trial.row(e, a) for e, a in enumerate(acc, start=1)]
        params = TrainParams(
            bench=setup.bench, network=trial.network, hidden=trial.hidden or None,
            epochs=setup.epochs, seed=trial.seed, data=setup.data, curves=setup.curves,
            failures=PAPER_FAILURES if trial.mode == "mixed" else None,
        )
        _, _, trainer = prepare(params, digits=digits, say=_quiet)
        history = trainer.run()
        if trial.study == "faults":
            return inject_faults(trial, trainer)
        return [trial.row(h["epoch"], h["test_accuracy"]) for h in history]


def inject_faults(trial: Trial, trainer: OnlineTrainer) -> list[dict[str, Any]]:
    """Accuracy of a trained network after replacing a fraction p of its devices by stuck-off
    or stuck-on ones.

    The failed devices of a larger fraction include those of a smaller one, and both modes hit
    the same devices, so the curves compare like with like; every measurement starts from the
    same copy of the trained backend state (including its noise generator).
    """
    backend = trainer.backend
    devices = np.concatenate([layer.devices.ravel() for layer in trainer.layers])
    order = np.random.default_rng([trial.seed, 5]).permutation(devices)
    trained = backend.state_dict()
    rows = []
    for mode in ("stuck_off", "stuck_on"):
        for p in trial.setup.fractions:
            modes = trained["mode"].copy()
            modes[order[: round(p * devices.size)]] = MODES[mode]
            backend.set_modes(modes)
            rows.append(trial.row(trial.setup.epochs, trainer.evaluate(), mode, p))
            backend.load_state_dict(trained)
    return rows


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
        pool = ProcessPoolExecutor(n, mp_context=multiprocessing.get_context("spawn"))
        try:
            yield pool
        except BaseException:
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


def run_trials(trials: Sequence[Trial], executor: Executor, desc: str = "trials",
               progress: bool = True) -> pd.DataFrame:
    """Run ``trials`` on ``executor`` with a progress bar; rows come back in trial order."""
    results: list[list[dict[str, Any]]] = [[] for _ in trials]
    longest_first = sorted(range(len(trials)), key=lambda i: -trials[i].cost)
    futures = {executor.submit(run_trial, trials[i]): i for i in longest_first}
    with tqdm(total=len(trials), desc=desc, unit="trial", dynamic_ncols=True,
              disable=not progress) as bar:
        for future in as_completed(futures):
            results[futures[future]] = future.result()
            bar.update()
    return pd.DataFrame([r for rows in results for r in rows], columns=COLUMNS)
