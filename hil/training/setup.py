"""What a training run is started with, and the bench, backend and trainer built from it: shared by
``hil train``, its dry run, the studies and the benchmarks, so all of them train the same way."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from hil.backends.base import Backend
from hil.backends.dryrun import clocked
from hil.backends.factory import make_backend
from hil.bench import Bench, load_bench
from hil.curves import load_curves
from hil.errors import HilError
from hil.faults import FailureRate, read_fault_map
from hil.network import NetworkSpec
from hil.training.data import Digits, load_digits
from hil.training.trainer import OnlineTrainer, TrainConfig


@dataclass(frozen=True)
class TrainParams:
    """Everything a run is started with; stored in the run so ``--resume`` needs nothing else."""

    bench: str | None = None
    network: str = "two"
    hidden: int | None = None
    epochs: int = 20
    seed: int = 0
    data: str | None = None
    update: str = "mixed"
    failures: str | None = None
    fault_map: str | None = None
    checkpoint_every: int = 1000
    registry: str | None = None
    exclude_flagged: bool = False
    curves: str | None = None  # response-curve CSV replacing the bench's (sim backend only)
    common_mode_uS: float | None = None  # low common mode threshold; None: the trainer's default


def prepare(params: TrainParams, digits: Digits | None = None, say=print,
            rehearse: bool = False, flagged: Callable[[Bench], np.ndarray | None] | None = None
            ) -> tuple[Bench, Backend, OnlineTrainer]:
    """Bench, backend (with any failed devices placed) and trainer for ``params``; with
    ``rehearse`` the simulated bench with this bench's physics stands in (``--dry-run``).
    ``flagged`` gives the cells never to pulse, for training on the operator's cells (``hil
    train`` consults the lab's registry); studies and benchmarks simulate their own devices."""
    spec = NetworkSpec.parse(params.network, params.hidden)
    bench = load_bench(params.bench).for_network(spec.bench_key, spec.array_shapes)
    if rehearse:
        bench = replace(bench, backend="sim")
    modes = None
    if params.failures is not None:
        modes = FailureRate.parse(params.failures).place(bench, params.seed)
    elif params.fault_map is not None:
        modes = read_fault_map(params.fault_map, bench)
    kwargs: dict[str, Any] = {}
    if bench.backend == "sim":
        kwargs = {"seed": params.seed, "modes": modes}
        if params.curves is not None:
            kwargs["curves"] = load_curves(params.curves)
    elif modes is not None:
        raise HilError("--failures/--fault-map simulate failed devices: sim backend only")
    elif params.curves is not None:
        raise HilError("device response curves drive the simulator: sim backend only")
    excluded = flagged(bench) if flagged is not None else None
    digits = digits if digits is not None else load_digits(params.data, say=say)
    backend = make_backend(bench, **kwargs)
    if rehearse:
        backend = clocked(backend)
    config = TrainConfig(network=spec.name, epochs=params.epochs, seed=params.seed,
                         update=params.update, checkpoint_every=params.checkpoint_every)
    if params.common_mode_uS is not None:
        config = replace(config, common_mode_uS=params.common_mode_uS)
    return bench, backend, OnlineTrainer(backend, digits, config, excluded=excluded)
