"""Host time per training image: in-situ training on the simulated bench vs plain fp32 SGD, and
``hil train`` with and without a ``hil watch`` page open on the run.

1. Both trainers train the same network with the same per-image backprop and learning-rate
   schedule, one after the other in this process, and the ratio of their per-image times is
   printed (target: at most 2.0 for the 20-epoch two-layer run).
2. ``hil train`` runs as the operator runs it (a subprocess writing run.sqlite), alternately
   alone and with a ``hil watch`` page open in headless Chromium that refreshes every
   ``--refresh`` seconds; the training time per image (from the run's own epoch records, so
   start-up and plots are left out) is printed side by side (target: under 5 % slower).

    python benchmarks/bench_training.py [--epochs 20] [--network two] [--data DIR]
                                        [--watch-epochs 5] [--repeats 3]
    python benchmarks/bench_training.py --short   # 1 epoch, 1 run each: that it still runs
"""

from __future__ import annotations

import argparse
import json
import resource
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

from hil.training.baseline import train_fp32
from hil.training.data import load_digits
from hil.training.setup import TrainParams, prepare


def insitu_vs_fp32(network: str, epochs: int, data: str | None) -> None:
    digits = load_digits(data, say=lambda msg: None)
    images = epochs * len(digits.y_train)
    _, backend, trainer = prepare(TrainParams(network=network, epochs=epochs), digits=digits,
                                  say=lambda msg: None)
    t0 = time.perf_counter()
    history = trainer.run()
    t_insitu = time.perf_counter() - t0

    t0 = time.perf_counter()
    fp32, _ = train_fp32(digits, trainer.spec, epochs, lr=trainer.cfg.lr,
                         lr_decay=trainer.cfg.lr_decay)
    t_fp32 = time.perf_counter() - t0

    print(f"network {trainer.spec.name}, {epochs} epochs, {images} training images "
          f"(each epoch also evaluates {len(digits.y_test)} test images)")
    print(f"in-situ (sim bench): {1e6 * t_insitu / images:8.1f} µs/image   "
          f"final test {100 * history[-1]['test_accuracy']:.2f} %, "
          f"{backend.counts.pulses} pulses")
    print(f"fp32 numpy SGD:      {1e6 * t_fp32 / images:8.1f} µs/image   "
          f"final test {100 * fp32[-1]:.2f} %")
    print(f"ratio in-situ / fp32: {t_insitu / t_fp32:.2f}  (target <= 2.0)")


def _train(out: Path, network: str, epochs: int, data: str | None) -> tuple[float, float]:
    """``hil train`` in a subprocess: wall and CPU seconds of training per image, from its own
    epoch records (start-up and plots left out) and its CPU time (all of it, start-up included:
    the same in both arms, so a difference is what the page's reads add)."""
    cmd = [sys.executable, "-m", "hil.cli", "train", "--network", network, "--epochs",
           str(epochs), "--out", str(out), "--quiet"] + (["--data", data] if data else [])
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, timeout=3600)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    with sqlite3.connect(out / "run.sqlite") as db:
        seconds = db.execute("SELECT MAX(wall_seconds) FROM epochs").fetchone()[0]
    images = _images(out, epochs)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return seconds / images, cpu / images


def _page_cpu(driver) -> float:
    """CPU seconds used so far by this process (the page's server) and the browser's."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    total = own.ru_utime + own.ru_stime
    root = psutil.Process(driver.service.process.pid)
    for proc in [root, *root.children(recursive=True)]:
        try:
            t = proc.cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


def _watched(out: Path, network: str, epochs: int, data: str | None, refresh: float,
             driver) -> tuple[float, float, float, int]:
    """The same run with a page on it: wall and CPU seconds per image, the cores the page
    (server and browser) kept busy meanwhile, and the epochs the page showed at the end."""
    from hil.watch.app import serve

    server = serve(out, 0, refresh)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        driver.get(f"http://127.0.0.1:{server.server_port}/")
        cpu0, t0 = _page_cpu(driver), time.perf_counter()
        wall, cpu = _train(out, network, epochs, data)
        page = (_page_cpu(driver) - cpu0) / (time.perf_counter() - t0)
        time.sleep(2 * refresh)  # the page catches up with the end of the run
        rows = driver.execute_script("return document.querySelectorAll('#epochs tbody tr')"
                                     ".length")
    finally:
        server.shutdown()
        server.server_close()
    return wall, cpu, page, int(rows)


def with_and_without_watch(network: str, epochs: int, data: str | None, repeats: int,
                           refresh: float) -> None:
    from hil.watch.browser import headless_chromium

    alone, watched, page_cores = [], [], []
    with tempfile.TemporaryDirectory(prefix="bench-watch-") as tmp, \
            headless_chromium(1200, 900) as driver:
        for i in range(repeats):  # alternated, so drifting load hits both alike
            alone.append(_train(Path(tmp) / f"alone-{i}", network, epochs, data))
            wall, cpu, page, rows = _watched(Path(tmp) / f"watched-{i}", network, epochs, data,
                                             refresh, driver)
            if rows != epochs:
                raise SystemExit(f"the page showed {rows} of {epochs} epochs: not following")
            watched.append((wall, cpu))
            page_cores.append(page)
    a_wall, a_cpu = (statistics.median(x[k] for x in alone) for k in (0, 1))
    w_wall, w_cpu = (statistics.median(x[k] for x in watched) for k in (0, 1))
    print(f"hil train {network}, {epochs} epochs, median of {repeats} alternated runs "
          f"(page refresh every {refresh:g} s, headless Chromium)")
    print(f"{'':26}{'alone':>10}{'page open':>12}{'cost':>10}")
    print(f"{'training wall µs/image':26}{1e6 * a_wall:10.1f}{1e6 * w_wall:12.1f}"
          f"{100 * (w_wall / a_wall - 1):+9.1f} %  (target < 5 %)")
    print(f"{'training CPU µs/image':26}{1e6 * a_cpu:10.1f}{1e6 * w_cpu:12.1f}"
          f"{100 * (w_cpu / a_cpu - 1):+9.1f} %")
    pairs = ", ".join(f"{1e6 * a[0]:.0f}/{1e6 * w[0]:.0f}" for a, w in
                      zip(alone, watched, strict=True))
    print(f"wall µs/image of each pair (alone/page open): {pairs}")
    print(f"the page's own CPU (server and browser) while training: "
          f"{statistics.median(page_cores):.3f} of a core")


def _images(run: Path, epochs: int) -> int:
    with sqlite3.connect(run / "run.sqlite") as db:
        data = db.execute("SELECT value FROM meta WHERE key = 'data'").fetchone()[0]
    return epochs * json.loads(data)["train"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=20, help="epochs of part 1 (default: 20)")
    ap.add_argument("--network", default="two", help="network (default: two)")
    ap.add_argument("--data", help="UCI optdigits directory (default: scikit-learn's copy)")
    ap.add_argument("--watch-epochs", type=int, default=5,
                    help="epochs of each hil train run of part 2 (default: 5)")
    ap.add_argument("--repeats", type=int, default=3,
                    help="alternated runs alone and watched (default: 3)")
    ap.add_argument("--refresh", type=float, default=2.0,
                    help="page refresh in seconds (default: 2, as hil watch)")
    ap.add_argument("--short", action="store_true",
                    help="1 epoch, single layer, one run each: checks the benchmark runs, "
                    "measures nothing (default: off)")
    args = ap.parse_args()
    if args.short:
        args.epochs, args.network, args.watch_epochs, args.repeats = 1, "single", 1, 1
        args.refresh = 0.5
    insitu_vs_fp32(args.network, args.epochs, args.data)
    print()
    with_and_without_watch(args.network, args.watch_epochs, args.data, args.repeats,
                           args.refresh)


if __name__ == "__main__":
    main()
