"""Time the three studies as the README's results are made (target: under 10 minutes on 2 cores).

    python benchmarks/bench_studies.py [--seeds 3] [--epochs 20] [--repair-epochs 2]
                                       [--workers 2] [--out DIR]
    python benchmarks/bench_studies.py --short   # 1 seed, 1 epoch, 1 worker: that it runs

Runs ``hil experiment report`` (curves, faults, hidden: their trainings run together, shared where
the studies overlap) with local worker processes and prints the wall time and the CPU time its
workers used. On a shared machine the wall time
overstates the cost; CPU seconds / workers is what the same run takes on that many idle cores.
The data set is ``--data`` or ``$HIL_OPTDIGITS_DIR`` (scikit-learn's smaller copy otherwise).
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

from hil.cli import main

TARGET_S = 600.0


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", default="3")
    p.add_argument("--epochs", default="20")
    p.add_argument("--repair-epochs", default="2", help="faults study repairs (as the README's)")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--data", help="UCI optdigits directory (default: $HIL_OPTDIGITS_DIR)")
    p.add_argument("--out", help="keep the results here (default: a temporary directory)")
    p.add_argument("--short", action="store_true",
                   help="1 seed, 1 epoch, 1 worker, 1 repair epoch: checks the benchmark runs, "
                   "measures nothing")
    args = p.parse_args(argv)
    if args.short:
        args.seeds, args.epochs, args.workers, args.repair_epochs = "1", "1", 1, "1"
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.out or tmp)
        cmd = ["experiment", "report", "--seeds", args.seeds, "--epochs", args.epochs,
               "--repair-epochs", args.repair_epochs, "--workers", str(args.workers),
               "--out", str(out)]
        if args.data:
            cmd += ["--data", args.data]
        cpu0, t0 = _children_cpu(), time.monotonic()
        if main(cmd) != 0:
            return 1
        wall, cpu = time.monotonic() - t0, _children_cpu() - cpu0
        rows = [(s, json.loads((out / s / "study.json").read_text())) for s in
                ("curves", "faults", "hidden")]
    trials = {study: meta["trials"] for study, meta in rows}
    trainings = rows[0][1]["trainings"]
    ideal = cpu / args.workers
    print(f"\nstudies with {args.seeds} seeds, {args.epochs} epochs, {args.workers} workers: "
          f"{trials} trials, {trainings} distinct trainings")
    print(f"wall {wall:.1f} s; worker CPU {cpu:.1f} s -> {ideal:.1f} s on {args.workers} idle "
          f"cores; target {TARGET_S:.0f} s: wall/target {wall / TARGET_S:.2f}, "
          f"idle-cores/target {ideal / TARGET_S:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(run())
