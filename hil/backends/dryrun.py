"""``hil train --dry-run``: what a run will cost on the bench, before anything moves.

The run is rehearsed on the simulated bench with the bench file's physics, behind two
sequencers: the outer one batches as the bench file's ``[sequencer]`` says, the inner one
sequences naively (one transaction per pulse and per reading), so one rehearsal gives both
bench clocks, beside the physical floor (apertures, settling and pulse widths alone).
"""

from __future__ import annotations

import dataclasses
import sys
import time
from collections.abc import Callable

from tqdm import tqdm

from hil.backends.base import Backend
from hil.backends.hardware import sequencer_settings
from hil.backends.sequencer import Sequencer


def clocked(sim: Backend) -> Sequencer:
    """``sim`` behind a naive and then a configured (normally batched) sequencer."""
    settings = sequencer_settings(sim.bench)
    naive = Sequencer(sim, dataclasses.replace(settings, mode="naive"))
    return Sequencer(naive, settings)


def dry_run(params, prepare: Callable) -> int:
    say = lambda msg: print(msg, file=sys.stderr)  # noqa: E731
    bench, backend, trainer = prepare(params, say=say, rehearse=True)
    n = len(trainer.order)
    bar = tqdm(total=params.epochs * n, unit="img", desc="rehearsal", dynamic_ncols=True,
               mininterval=0.5, file=sys.stderr)
    t0 = time.monotonic()
    outer: Sequencer = backend  # type: ignore[assignment]
    inner: Sequencer = outer.inner  # type: ignore[assignment]
    before = outer.clock.tally.seconds  # the trainer's read map
    prepared = trainer.prepare_arrays()
    preparing = outer.clock.tally.seconds - before
    try:
        trainer.run(on_image=lambda tr: bar.update())
    finally:
        bar.close()
    c = backend.counts
    images = params.epochs * n
    print(f"dry run of {trainer.spec.name}, {params.epochs} epoch(s) x {n} images on bench "
          f"{bench.name} (rehearsed on the simulated bench in {time.monotonic() - t0:.0f} s; "
          f"nothing moved)")
    print(f"  operations: {c.set_pulses} SET + {c.reset_pulses} RESET pulses, "
          f"{c.device_reads} device reads, {c.mac_reads} MAC readings "
          f"(test evaluation every epoch included)")
    print(f"  preparing the arrays (included): {prepared['pulses']} pulses, "
          f"{prepared['stuck_on']} stuck-on devices found, {_duration(preparing)} on the bench "
          f"({outer.settings.mode}; rehearsed on fresh simulated devices: a used bench takes "
          "longer)")
    for label, seq in ((outer.settings.mode, outer), ("naive", inner)):
        t = seq.clock.tally
        print(f"  {label:>8}: {_duration(t.seconds)} on the bench "
              f"({t.seconds / images * 1e3:.1f} ms per training image, evaluation included), "
              f"{t.transactions} transactions, {t.mcu_frames} MCU frames, "
              f"{t.scpi_queries} SCPI queries")
    floor = outer.clock.tally.floor
    print(f"     floor: {_duration(floor)} (apertures + settling + pulse widths alone)")
    print(f"  final rehearsed test accuracy {100 * trainer.history[-1]['test_accuracy']:.2f} %")
    return 0


def _duration(seconds: float) -> str:
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{int(h)} h {int(m):02d} min {s:04.1f} s" if h else f"{int(m)} min {s:04.1f} s"
