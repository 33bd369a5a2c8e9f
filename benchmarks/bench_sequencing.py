"""Bench time per two-layer training image: naive vs batched sequencing vs the physical floor.

1. Bench clock. The same training images run on the simulated bench behind a chain of
   sequencers, each keeping its own bench clock: naive sequencing (one transaction per pulse and
   per reading) and batched sequencing (table mode, list sweeps) under the default clock, and
   batched under other MCU-link assumptions. Printed per training image beside the physical
   floor (apertures + settling + pulse widths alone); the issue's target is batched <= 1.5x floor.
2. Host wall time per training image through the full driver stack (drivers -> pyvisa-py /
   pyserial -> loopback TCP -> emulated bench), beside the simulated backend's.
3. With ``--epoch``: one whole two-layer epoch through the drivers on the emulated bench and on
   the simulated backend, same seed and physics; test accuracies side by side (target: within
   3 points).

    python benchmarks/bench_sequencing.py [--images 1000] [--driver-images 100] [--epoch]
                                          [--data DIR] [--seed 0]
    python benchmarks/bench_sequencing.py --short   # a few images: that it still runs
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

from hil.backends.factory import make_backend
from hil.backends.hardware import clock_settings, sequencer_settings
from hil.backends.sequencer import Sequencer
from hil.backends.sim import SimBackend
from hil.bench import load_bench
from hil.emulator import EmulatedBench
from hil.network import NetworkSpec
from hil.training.data import load_digits
from hil.training.setup import TrainParams, prepare
from hil.training.trainer import OnlineTrainer, TrainConfig

LINKS = {  # MCU link assumptions beside the default clock (USB CDC full speed)
    "USB-serial bridge, 921600 baud, 1 ms round trip": {"mcu_baud": 921600,
                                                         "mcu_round_trip": 1e-3},
    "USB CDC high speed, 0.15 ms round trip": {"mcu_baud": 100_000_000,
                                               "mcu_round_trip": 0.15e-3},
}


def train_images(trainer: OnlineTrainer, n: int) -> float:
    """Host seconds per image for the first ``n`` images of epoch 1, in the trainer's own blocks
    (as ``run`` takes them, without the test evaluation that ends an epoch)."""
    if trainer.prepared is None:
        trainer.prepare_arrays()
    t0 = time.perf_counter()
    done = 0
    while done < n:
        done += len(trainer._train_block(done, min(n, done + trainer._block)))
    return (time.perf_counter() - t0) / n


def bench_clock(digits, seed: int, images: int) -> None:
    spec = NetworkSpec.parse("two")
    bench = load_bench().for_network(spec.bench_key, spec.array_shapes)
    settings, clock = sequencer_settings(bench), clock_settings(bench)
    chain = {"naive": Sequencer(SimBackend(bench, seed=seed),
                                dataclasses.replace(settings, mode="naive"))}
    inner = chain["naive"]
    for label, change in LINKS.items():
        inner = chain[label] = Sequencer(inner, settings, dataclasses.replace(clock, **change))
    outer = chain["batched (default clock: USB CDC, 0.5 ms round trip)"] = Sequencer(inner)
    trainer = OnlineTrainer(outer, digits, TrainConfig(network=spec.name, seed=seed))
    before = {k: dataclasses.replace(s.clock.tally) for k, s in chain.items()}
    wall = train_images(trainer, images)
    floor = (outer.clock.tally.floor - before[next(iter(chain))].floor) / images
    print(f"bench clock, two-layer {spec.name}, {images} training images (forward MAC reads, "
          f"pulses and verify reads; no test evaluation):")
    print(f"  {'physical floor':<52} {floor * 1e3:8.1f} ms/image")
    for label in reversed(chain):
        t = chain[label].clock.tally
        b = before[label]
        per = (t.seconds - b.seconds) / images
        tx = (t.transactions - b.transactions) / images
        print(f"  {label:<52} {per * 1e3:8.1f} ms/image  {per / floor:5.2f}x floor  "
              f"{tx:6.1f} transactions/image  "
              f"{(t.mcu_frames - b.mcu_frames) / images:6.1f} MCU frames/image")
    print(f"  (host time of this clocked simulation: {wall * 1e3:.2f} ms/image)")


def wall_times(digits, seed: int, images: int) -> None:
    spec = NetworkSpec.parse("two")
    _, _, sim_trainer = prepare(TrainParams(network="two", seed=seed), digits=digits)
    sim = train_images(sim_trainer, images)
    with EmulatedBench(load_bench(), seed=seed) as emu, tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "emulated.toml"
        path.write_text(emu.bench_toml())
        bench = load_bench(path).for_network(spec.bench_key, spec.array_shapes)
        t0 = time.perf_counter()
        backend = make_backend(bench)
        trainer = OnlineTrainer(backend, digits, TrainConfig(network=spec.name, seed=seed))
        setup = time.perf_counter() - t0
        mux, tally = backend.inner.inst.mux.stats, backend.clock.tally
        scpi = lambda: len(emu.generator.log) + len(emu.smu.log)  # noqa: E731
        before = (mux.frames, mux.bytes_out + mux.bytes_in, scpi(),
                  tally.mcu_frames, tally.mcu_bytes, tally.scpi_queries + tally.scpi_writes)
        drivers = train_images(trainer, images)
        after = (mux.frames, mux.bytes_out + mux.bytes_in, scpi(),
                 tally.mcu_frames, tally.mcu_bytes, tally.scpi_queries + tally.scpi_writes)
        backend.close()
        safe = emu.is_safe()
    per = [(a - b) / images for a, b in zip(after, before, strict=True)]
    print(f"host wall time per training image, {images} images: drivers on loopback "
          f"{drivers * 1e3:.1f} ms, simulated backend {sim * 1e3:.2f} ms "
          f"({drivers / sim:.0f}x); opening + reading all {bench.n_devices} devices "
          f"{setup:.1f} s; safe state after close: {safe}")
    print(f"  link traffic per image, measured on the emulator vs modelled by the bench clock: "
          f"MCU frames {per[0]:.1f} vs {per[3]:.1f}, MCU bytes {per[1]:.0f} vs {per[4]:.0f}, "
          f"SCPI messages {per[2]:.1f} vs {per[5]:.1f}")


def epoch(digits, seed: int) -> None:
    params = TrainParams(network="two", epochs=1, seed=seed)
    _, _, sim_trainer = prepare(params, digits=digits)
    t0 = time.perf_counter()
    sim_acc = sim_trainer.run()[-1]["test_accuracy"]
    t_sim = time.perf_counter() - t0
    with EmulatedBench(load_bench(), seed=seed) as emu, tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "emulated.toml"
        path.write_text(emu.bench_toml())
        _, backend, trainer = prepare(dataclasses.replace(params, bench=str(path)),
                                      digits=digits)
        t0 = time.perf_counter()
        with backend:
            drv_acc = trainer.run()[-1]["test_accuracy"]
        t_drv = time.perf_counter() - t0
        clock = backend.clock.tally
    print(f"one epoch, two layers, seed {seed}: drivers on the emulated bench "
          f"{100 * drv_acc:.2f} % ({t_drv:.0f} s host, {clock.seconds / 60:.1f} bench-minutes "
          f"incl. test evaluation), simulated backend {100 * sim_acc:.2f} % ({t_sim:.0f} s); "
          f"difference {100 * abs(drv_acc - sim_acc):.2f} points")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=1000, help="images for the bench clock")
    ap.add_argument("--driver-images", type=int, default=100,
                    help="images through the drivers for the host wall time")
    ap.add_argument("--epoch", action="store_true", help="also compare one whole epoch")
    ap.add_argument("--data")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--short", action="store_true",
                    help="20 clocked images, 2 through the drivers: checks the benchmark runs")
    args = ap.parse_args()
    if args.short:
        args.images, args.driver_images, args.epoch = 20, 2, False
    digits = load_digits(args.data)
    bench_clock(digits, args.seed, args.images)
    wall_times(digits, args.seed, args.driver_images)
    if args.epoch:
        epoch(digits, args.seed)


if __name__ == "__main__":
    main()
