"""Host time per training image: in-situ training on the simulated bench vs plain fp32 SGD.

Both train the same network with the same per-image backprop and learning-rate schedule, one
after the other in this process, and the ratio of their per-image times is printed. The issue's
target is a ratio of at most 2.0 for the 20-epoch two-layer run.

    python benchmarks/bench_training.py [--epochs 20] [--network two] [--data DIR]
    python benchmarks/bench_training.py --short   # 1 epoch: that it still runs
"""

from __future__ import annotations

import argparse
import time

from hil.training.baseline import train_fp32
from hil.training.data import load_digits
from hil.training.setup import TrainParams, prepare


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--network", default="two")
    ap.add_argument("--data")
    ap.add_argument("--short", action="store_true",
                    help="1 epoch: checks the benchmark runs, measures nothing")
    args = ap.parse_args()
    if args.short:
        args.epochs = 1
    digits = load_digits(args.data)
    images = args.epochs * len(digits.y_train)

    _, backend, trainer = prepare(TrainParams(network=args.network, epochs=args.epochs),
                                  digits=digits)
    t0 = time.perf_counter()
    history = trainer.run()
    t_insitu = time.perf_counter() - t0

    t0 = time.perf_counter()
    fp32, _ = train_fp32(digits, trainer.spec, args.epochs, lr=trainer.cfg.lr,
                      lr_decay=trainer.cfg.lr_decay)
    t_fp32 = time.perf_counter() - t0

    print(f"network {trainer.spec.name}, {args.epochs} epochs, {images} training images "
          f"(each epoch also evaluates {len(digits.y_test)} test images)")
    print(f"in-situ (sim bench): {1e6 * t_insitu / images:8.1f} us/image   "
          f"final test {100 * history[-1]['test_accuracy']:.2f} %, "
          f"{backend.counts.pulses} pulses")
    print(f"fp32 numpy SGD:      {1e6 * t_fp32 / images:8.1f} us/image   "
          f"final test {100 * fp32[-1]:.2f} %")
    print(f"ratio in-situ / fp32: {t_insitu / t_fp32:.2f}  (target <= 2.0)")


if __name__ == "__main__":
    main()
