"""Bench time and host time per two-layer training image on the MCU-paced hardware path.

1. Bench clock. The same training images run on the simulated bench behind a chain of
   sequencers, each keeping its own bench clock: naive sequencing (one one-entry table per
   pulse and per reading) and batched sequencing (route tables of many entries, list sweeps)
   under the default clock, and batched under other MCU-link assumptions. Printed per training
   image beside the physical floor (settling + pulse widths + apertures alone); target: batched
   within 1.5x the floor.
2. Host time per training image through the full driver stack (drivers -> pyvisa-py / pyserial
   -> loopback TCP -> emulated bench), beside the simulated backend's. With
   ``--compare-with CHECKOUT`` the same measurement also runs, in a subprocess and in this same
   run, on another checkout of the project (say the commit before this timing design, made with
   ``git worktree add``), and the ratio is printed; target: at most 1.25x.
3. With ``--epoch``: one whole two-layer epoch through the drivers on the emulated bench beside
   the simulated backend over seeds 0-2 (target: within their spread).

    python benchmarks/bench_sequencing.py [--images 300] [--driver-images 60] [--epoch]
                                          [--compare-with DIR] [--data DIR] [--seed 0] [--short]
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from hil.backends.factory import make_backend
from hil.bench import load_bench
from hil.emulator import EmulatedBench
from hil.network import NetworkSpec
from hil.training.data import load_digits
from hil.training.trainer import OnlineTrainer, TrainConfig

LINKS = {  # MCU link assumptions beside the default clock (USB CDC full speed)
    "USB-serial bridge, 921600 baud, 1 ms round trip": {"mcu_baud": 921600,
                                                         "mcu_round_trip": 1e-3},
    "USB CDC high speed, 0.15 ms round trip": {"mcu_baud": 100_000_000,
                                               "mcu_round_trip": 0.15e-3},
}


class _Enough(Exception):
    """Raised from the per-image callback once enough images were trained."""


def train_images(trainer: OnlineTrainer, n: int) -> float:
    """Host seconds per training image over ``n`` images (the arrays prepared first)."""
    if trainer.prepared is None:
        trainer.prepare_arrays()
    seen = [0]

    def on_image(_: OnlineTrainer) -> None:
        seen[0] += 1
        if seen[0] >= n:
            raise _Enough

    t0 = time.perf_counter()
    with contextlib.suppress(_Enough):
        trainer.run(on_image=on_image)
    return (time.perf_counter() - t0) / max(1, seen[0])


def bench_clock(digits, seed: int, images: int) -> float:
    """Print the bench clock per image; returns batched / floor."""
    from hil.backends.hardware import clock_settings, sequencer_settings
    from hil.backends.sequencer import Sequencer
    from hil.backends.sim import SimBackend

    spec = NetworkSpec.parse("two")
    bench = load_bench().for_network(spec.bench_key, spec.array_shapes)
    settings, clock = sequencer_settings(bench), clock_settings(bench)
    chain = {"naive": Sequencer(SimBackend(bench, seed=seed),
                                dataclasses.replace(settings, mode="naive"))}
    inner = chain["naive"]
    for label, change in LINKS.items():
        inner = chain[label] = Sequencer(inner, settings, dataclasses.replace(clock, **change))
    default = "batched (default clock: USB CDC, 0.5 ms round trip)"
    outer = chain[default] = Sequencer(inner)
    trainer = OnlineTrainer(outer, digits, TrainConfig(network=spec.name, seed=seed))
    trainer.prepare_arrays()
    before = {k: dataclasses.replace(s.clock.tally) for k, s in chain.items()}
    wall = train_images(trainer, images)
    floor = (outer.clock.tally.floor - before[default].floor) / images
    print(f"bench clock, two-layer {spec.name}, {images} training images (forward MAC reads, "
          f"pulses and verify reads; no test evaluation):")
    print(f"  {'physical floor (settling + pulse widths + apertures)':<52} "
          f"{floor * 1e3:8.2f} ms/image")
    ratio = 0.0
    for label in reversed(chain):
        t, b = chain[label].clock.tally, before[label]
        per = (t.seconds - b.seconds) / images
        ratio = per / floor if label == default else ratio
        print(f"  {label:<52} {per * 1e3:8.2f} ms/image  {per / floor:5.2f}x floor  "
              f"{(t.transactions - b.transactions) / images:6.1f} tables/image  "
              f"{(t.mcu_frames - b.mcu_frames) / images:6.1f} MCU frames/image")
    print(f"  (host time of this clocked simulation: {wall * 1e3:.2f} ms/image)")
    return ratio


def host_time(digits, seed: int, images: int) -> dict[str, float]:
    """Host ms per image through the drivers on the emulated bench, and on the simulated
    backend; uses only what every recent checkout of the project has."""
    spec = NetworkSpec.parse("two")
    sim_bench = load_bench().for_network(spec.bench_key, spec.array_shapes)
    sim = train_images(OnlineTrainer(make_backend(sim_bench, seed=seed), digits,
                                     TrainConfig(network=spec.name, seed=seed)), images)
    with EmulatedBench(load_bench(), seed=seed) as emu, tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "emulated.toml"
        path.write_text(emu.bench_toml())
        bench = load_bench(path).for_network(spec.bench_key, spec.array_shapes)
        backend = make_backend(bench)
        try:
            trainer = OnlineTrainer(backend, digits, TrainConfig(network=spec.name, seed=seed))
            trainer.prepare_arrays()
            drivers = train_images(trainer, images)
        finally:
            backend.close()
        safe = emu.is_safe()
    return {"drivers_ms": drivers * 1e3, "sim_ms": sim * 1e3, "safe": safe}


def host_times(digits, args) -> float | None:
    """Print host time per image here (and on ``--compare-with``); returns the ratio."""
    here = host_time(digits, args.seed, args.driver_images)
    print(f"host time per training image, {args.driver_images} images: drivers on loopback "
          f"{here['drivers_ms']:.1f} ms, simulated backend {here['sim_ms']:.2f} ms; safe state "
          f"after close: {here['safe']}")
    if not args.compare_with:
        return None
    cmd = [sys.executable, __file__, "--host-only", "--driver-images", str(args.driver_images),
           "--seed", str(args.seed)] + (["--data", args.data] if args.data else [])
    env = {**os.environ, "PYTHONPATH": str(Path(args.compare_with).resolve())}
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True,
                         cwd=args.compare_with, timeout=3600).stdout
    there = json.loads(out.strip().splitlines()[-1])
    ratio = here["drivers_ms"] / there["drivers_ms"]
    print(f"  the same on {args.compare_with}: drivers {there['drivers_ms']:.1f} ms, simulated "
          f"{there['sim_ms']:.2f} ms; this checkout / that one: {ratio:.2f}x")
    return ratio


def epoch(digits, seed: int) -> None:
    from hil.training.setup import TrainParams, prepare

    sims = []
    for s in (0, 1, 2):
        _, _, trainer = prepare(TrainParams(network="two", epochs=1, seed=s), digits=digits)
        sims.append(trainer.run()[-1]["test_accuracy"])
    with EmulatedBench(load_bench(), seed=seed) as emu, tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "emulated.toml"
        path.write_text(emu.bench_toml())
        _, backend, trainer = prepare(TrainParams(network="two", epochs=1, seed=seed,
                                                  bench=str(path)), digits=digits)
        t0 = time.perf_counter()
        with backend:
            acc = trainer.run()[-1]["test_accuracy"]
        host = time.perf_counter() - t0
        bench_min = backend.clock.tally.seconds / 60
    inside = min(sims) <= acc <= max(sims)
    print(f"one epoch, two layers: drivers on the emulated bench (seed {seed}) "
          f"{100 * acc:.2f} % ({host:.0f} s host, {bench_min:.1f} bench-minutes incl. test "
          f"evaluation); simulated backend seeds 0-2: "
          f"{', '.join(f'{100 * a:.2f}' for a in sims)} %; within their spread: {inside}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=300, help="images for the bench clock")
    ap.add_argument("--driver-images", type=int, default=60,
                    help="images through the drivers for the host time")
    ap.add_argument("--epoch", action="store_true", help="also compare one whole epoch")
    ap.add_argument("--compare-with", metavar="CHECKOUT",
                    help="also measure the host time on this checkout of the project")
    ap.add_argument("--host-only", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--short", action="store_true", help="a few images only (for tests)")
    ap.add_argument("--data")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if args.short:
        args.images, args.driver_images = 6, 3
    digits = load_digits(args.data)
    if args.host_only:
        print(json.dumps(host_time(digits, args.seed, args.driver_images)))
        return
    bench_clock(digits, args.seed, args.images)
    host_times(digits, args)
    if args.epoch:
        epoch(digits, args.seed)


if __name__ == "__main__":
    main()
