"""Characterise the 28 boards of the two-layer network (boards 13-40) on the simulated bench.

Prints, side by side, the host wall time of the measurement alone, of the whole command (records
and plots included) and the bench time the same operations are predicted to take on a real
bench, with their ratio. Run from the repository root::

    python benchmarks/characterize_two_layer.py [--failures 0.0615:0.5]
    python benchmarks/characterize_two_layer.py --short   # boards 13-14: that it still runs
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from hil.backends.sim import SimBackend
from hil.bench import load_bench
from hil.characterization.characterize import characterize
from hil.characterization.classify import settings
from hil.cli import main
from hil.faults import FailureRate


def run() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--failures", default="0.0615:0.5")
    parser.add_argument("--short", action="store_true",
                        help="boards 13-14 only: checks the benchmark runs, measures nothing")
    args = parser.parse_args()
    first, last = 13, 14 if args.short else 40
    bench = load_bench()
    devices = np.arange(bench.board_pos(first) * 120, (bench.board_pos(last) + 1) * 120)
    modes = FailureRate.parse(args.failures).place(bench, 0)
    t0 = time.perf_counter()
    result = characterize(SimBackend(bench, seed=0, modes=modes), devices, settings(bench))
    measure = time.perf_counter() - t0

    with tempfile.TemporaryDirectory() as tmp:
        os.environ["HIL_REGISTRY"] = str(Path(tmp) / "registry.sqlite")
        t0 = time.perf_counter()
        main(["characterize", "--boards", f"{first}-{last}", "--failures", args.failures,
              "--out", str(Path(tmp) / "run")])
        command = time.perf_counter() - t0

    bench_s = result.bench_seconds
    print(f"\n{result.devices.size} devices, {result.counts.pulses} pulses, "
          f"{result.counts.reads} reads")
    print(f"{'measurement wall (s)':>28} {'whole command wall (s)':>24} "
          f"{'predicted bench (s)':>20} {'bench / command':>16}")
    print(f"{measure:28.2f} {command:24.2f} {bench_s:20.1f} {bench_s / command:16.1f}")


if __name__ == "__main__":
    run()
