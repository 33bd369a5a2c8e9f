"""Fault drill: kill, starve and disturb runs on purpose; nothing may be lost, no pulse stray.

    python benchmarks/faults.py [--short] [--kills 20] [--seed 0]

On the simulated bench: training killed (SIGKILL) at random moments, preparation and
checkpoint writes included (a checkpoint every 25 images), then resumed; the database filled
up during a checkpoint and during the summary write (SQLite's "database or disk is full", the
error ENOSPC gives), then resumed; characterisation stopped by SIGINT and SIGTERM, then resumed.
On the emulated bench (drivers, sockets, emulated instruments): training killed at random
moments and resumed; the SMU and the MCU switched off and on mid-run, the generator stalled for
longer than the timeout, MCU frames dropped and corrupted -- the run pauses and continues.

Each row checks: the run ends with one line and a non-zero exit (a killed one cannot), the bench
ends safe, ``run.sqlite`` passes ``PRAGMA integrity_check``, ``--resume`` completes. Records
lost: a simulated run whose resumed result differs from the uninterrupted one, or pulses the
emulator delivered beyond those the record counts and the journal's in-flight batches. Stray
pulses: pulses the emulator delivered to a (device, polarity) beyond what the trainer's journal
planned for it. Both must be 0. Without ``--short``, the SMU switched off and on and the
generator stalled come a third into a one-epoch run on 900 training images, and its test
accuracy must land within the spread of the same run on the simulated bench over seeds 0-4.
``--short`` (a test runs it) does one of each kind on a dozen images.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np

from hil.bench import load_bench
from hil.cli import main
from hil.emulator import EmulatedBench
from hil.records import RunStore, StoreWriteError, disk_full_after
from hil.training.data import write_subset

ROWS: list[dict] = []


def _row(fault: str, **figures) -> None:
    ROWS.append({"fault": fault, "injected": 0, "resumed": 0, "lost": 0, "stray": 0,
                 "unsafe": 0, "corrupt": 0, "unclear": 0, "outside": 0, "accuracy": "-",
                 **figures})


def _hil(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "hil.cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1"},
                            # started in the background, SIGINT would be inherited ignored
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def _quiet(argv: list[str]) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        rc = main(argv)
    return rc, err.getvalue()


def _intact(run: Path) -> bool:
    db = sqlite3.connect(run / "run.sqlite")
    try:
        return db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    finally:
        db.close()


def _one_line(rc: int, err: str, code: int) -> bool:
    lines = err.strip().splitlines()
    return rc == code and bool(lines) and lines[-1].startswith("hil: ") and "Traceback" not in err


def _summary(run: Path) -> dict:
    return json.loads((run / "summary.json").read_text())


# ---- the simulated bench ----------------------------------------------------------------------


def sim_kills(tmp: Path, data: Path, kills: int, places: int, rng: np.random.Generator
              ) -> None:
    args = ["train", "--network", "single", "--epochs", "2", "--seed", "1", "--data", str(data),
            "--failures", "0.05:0.5", "--checkpoint-every", "25"]
    ref = tmp / "reference"
    proc = _hil(*args, "--out", str(ref))
    _wait(lambda: (ref / "run.sqlite").exists(), proc)
    t0 = time.monotonic()  # the run exists from here: preparation, training, checkpoints
    proc.communicate()
    assert proc.returncode == 0
    span, reference = time.monotonic() - t0, _summary(ref)
    stats = dict(injected=0, resumed=0, lost=0, corrupt=0)
    for i in range(3 * kills):  # a run that finishes before its moment is drawn again
        if stats["injected"] == kills:
            break
        out = tmp / f"kill{i}"
        proc = _hil(*args, "--out", str(out))
        _wait(lambda out=out: (out / "run.sqlite").exists(), proc)
        time.sleep(rng.uniform(0.0, 0.9) * span)
        if proc.poll() is not None:
            continue
        proc.kill()
        proc.wait()
        if RunStore(out).state == "complete":
            continue  # killed on its way out: nothing left to resume
        stats["injected"] += 1
        stats["corrupt"] += not _intact(out)
        rc, _ = _quiet(["train", "--resume", str(out)])
        stats["resumed"] += rc == 0
        stats["lost"] += rc != 0 or _summary(out) != reference
    _row("SIGKILL during training (sim)", **stats)

    stats = dict(injected=0, resumed=0, lost=0, corrupt=0, unclear=0)
    for name, saves in (("checkpoint", int(rng.integers(1, 20))), ("summary", None))[:places]:
        out = tmp / f"full-{name}"
        with _patched(RunStore, "save_checkpoint", disk_full_after(saves)) if saves else \
                _patched(RunStore, "write_json", _enospc):
            rc, err = _quiet([*args, "--out", str(out)])
        stats["injected"] += 1
        stats["unclear"] += not (_one_line(rc, err, 2) and "full" in err.lower()
                                 or "No space" in err)
        stats["corrupt"] += not _intact(out)
        rc, _ = _quiet(["train", "--resume", str(out)])
        stats["resumed"] += rc == 0
        stats["lost"] += rc != 0 or _summary(out) != reference
    _row("disk full: checkpoint, summary (sim)", **stats)


def _enospc(self, name, data):
    """``write_json`` on a full disk: what :func:`hil.records.write_atomic` makes of ENOSPC."""
    raise StoreWriteError(f"{self.dir / name}: cannot write: {os.strerror(28)}")


@contextlib.contextmanager
def _patched(owner, name: str, value):
    old = getattr(owner, name)
    setattr(owner, name, value)
    try:
        yield
    finally:
        setattr(owner, name, old)


def sim_characterize_signals(tmp: Path, signals: tuple[signal.Signals, ...]) -> None:
    args = ["characterize", "--boards", "1-2", "--failures", "0.05", "--seed", "3"]
    assert _quiet([*args, "--out", str(tmp / "char-reference")])[0] == 0
    reference = (tmp / "char-reference" / "replacements.csv").read_text()
    stats = dict(injected=0, resumed=0, lost=0, corrupt=0, unclear=0)
    for sig in signals:
        out = tmp / f"char-{sig.name}"
        proc = _hil(*args, "--out", str(out))
        _wait(lambda out=out: (out / "run.sqlite").exists() and _parts(out) >= 1, proc)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=120)
        stats["injected"] += 1
        stats["unclear"] += not _one_line(proc.returncode, err.decode(), 130)
        stats["corrupt"] += not _intact(out)
        rc, _ = _quiet(["characterize", "--resume", str(out)])
        stats["resumed"] += rc == 0
        stats["lost"] += rc != 0 or (out / "replacements.csv").read_text() != reference
    _row(f"{', '.join(s.name for s in signals)} during characterisation (sim)", **stats)


def _parts(run: Path) -> int:
    with contextlib.closing(sqlite3.connect(run / "run.sqlite")) as db:
        try:
            return db.execute("SELECT count(*) FROM parts").fetchone()[0]
        except sqlite3.OperationalError:
            return 0


def _wait(ready: Callable[[], bool], proc: subprocess.Popen | None = None,
          limit: float = 120.0) -> None:
    deadline = time.monotonic() + limit
    while not ready():
        if time.monotonic() > deadline or (proc is not None and proc.poll() is not None):
            raise RuntimeError("the fault drill waited in vain")
        time.sleep(0.02)


# ---- the emulated bench -----------------------------------------------------------------------


def _audit(emu: EmulatedBench, since: int, run: Path) -> tuple[int, int]:
    """Records lost and stray pulses of ``run`` against the emulator's pulse log."""
    store = RunStore(run)
    planned, flight = Counter(), 0
    for state, devices, polarity, count in store.journal(settled=True):
        pol = np.broadcast_to(polarity, devices.shape)
        n = np.broadcast_to(count, devices.shape)
        for d, p, k in zip(devices.tolist(), pol.tolist(), n.tolist(), strict=True):
            planned[(d, 1 if p > 0 else -1)] += k
        if state.endswith("planned"):
            flight += int(n.sum())
    delivered = Counter((d, p.polarity) for p in emu.pulses[since:] for d in p.devices)
    stray = sum(max(0, n - planned[key]) for key, n in delivered.items())
    pulses = _summary(run)["pulses"]
    lost = max(0, sum(delivered.values()) - pulses["set"] - pulses["reset"] - flight)
    store.close()
    return lost, stray


def _trained(run: Path) -> int:
    """Training images done, as the run's progress record says (0 before training)."""
    if not (run / "run.sqlite").exists():
        return 0
    with contextlib.closing(sqlite3.connect(f"file:{run / 'run.sqlite'}?mode=ro", uri=True)) as db:
        try:
            row = db.execute("SELECT value FROM meta WHERE key = 'progress'").fetchone()
        except sqlite3.OperationalError:
            return 0
    progress = json.loads(row[0]) if row else {}
    return progress.get("images", 0) if progress.get("phase") == "training" else 0


def sim_spread(tmp: Path, args: list[str], seeds: range) -> list[float]:
    """Test accuracies of ``args`` on the simulated bench over ``seeds``: the spread a run on
    the emulated bench, paused or not, should land in."""
    accuracies = []
    for seed in seeds:
        out = tmp / f"spread-{seed}"
        rc, err = _quiet([*args, "--seed", str(seed), "--out", str(out)])
        if rc != 0:
            raise RuntimeError(f"the simulated reference run failed: {err.strip()[-300:]}")
        accuracies.append(_summary(out)["test_accuracy"])
    return accuracies


def emulated(tmp: Path, data: Path, kills: int, stall: float, short: bool,
             rng: np.random.Generator, accuracy_data: Path | None) -> None:
    bench = load_bench()
    with EmulatedBench(bench, seed=4) as emu:
        path = tmp / "emu.toml"
        # a 2 s timeout: shorter ones can expire by themselves on a loaded machine (the emulator
        # shares this process), outside any pause, and end a run by design
        path.write_text(emu.bench_toml(settings={"instruments": {"timeout": 2.0},
                                                 "recovery": {"wait": 60}}))
        args = ["train", "--bench", str(path), "--data", str(data), "--network", "single",
                "--epochs", "3", "--checkpoint-every", "4"]
        stats = dict(injected=0, resumed=0, lost=0, stray=0, unsafe=0, corrupt=0)
        for i in range(kills):
            out, since = tmp / f"emu-kill{i}", len(emu.pulses)
            proc = _hil(*args, "--out", str(out))
            _wait(lambda since=since: len(emu.pulses) > since + 20, proc)
            time.sleep(rng.uniform(0.0, 3.0))
            proc.kill()
            proc.wait()
            stats["injected"] += 1
            stats["corrupt"] += not _intact(out)
            rc, _ = _quiet(["train", "--resume", str(out)])
            stats["resumed"] += rc == 0
            stats["unsafe"] += not emu.is_safe()
            lost, stray = _audit(emu, since, out)
            stats["lost"] += lost + (rc != 0)
            stats["stray"] += stray
        _row("SIGKILL during training (emulated)", **stats)

        def frames() -> None:
            for kind in ("drop_request", "corrupt_request", "drop_reply", "corrupt_reply"):
                emu.mcu.inject(kind)
                time.sleep(0.3)

        faults = {"SMU switched off and on (emulated)":
                  (lambda: emu.power_cycle("smu", 1.0), 1, True),
                  "MCU switched off and on (emulated)":
                  (lambda: emu.power_cycle("mcu", 1.0), 1, False),
                  f"generator stalled {stall:g} s (emulated)":
                  (lambda: emu.stall_for("generator", stall), 1, True),
                  "MCU frames dropped and corrupted (emulated)": (frames, 4, False)}
        if short:
            del faults["MCU switched off and on (emulated)"]
        # the yardstick for a paused run: its accuracy within the simulated seed spread
        scored = ["train", "--data", str(accuracy_data), "--network", "single", "--epochs", "1",
                  "--checkpoint-every", "100"] if accuracy_data else None
        spread = sim_spread(tmp, scored, range(5)) if scored else None
        for label, (act, count, measured) in faults.items():
            out, since = tmp / f"emu-{len(ROWS)}", len(emu.pulses)
            score = measured and spread is not None
            run_args = [*scored, "--bench", str(path)] if score else args

            def mid_run(act=act, since=since, score=score, out=out) -> None:
                if score:  # a third into the epoch: preparation long done
                    _wait(lambda: _trained(out) >= 300, limit=600)
                else:
                    _wait(lambda: len(emu.pulses) > since + 30)
                act()

            thread = threading.Thread(target=mid_run, daemon=True)
            thread.start()
            rc, err = _quiet([*run_args, "--out", str(out)])
            thread.join(120)
            lost, stray = _audit(emu, since, out) if rc == 0 else (1, 0)
            figures = {}
            if score and rc == 0:
                acc, low, high = _summary(out)["test_accuracy"], min(spread), max(spread)
                figures = {"accuracy": f"{100 * acc:.2f} ({100 * low:.2f}-{100 * high:.2f})",
                           "outside": int(not low <= acc <= high)}
            _row(label, injected=count, resumed=int(rc == 0 and "pausing" in err),
                 lost=lost, stray=stray, unsafe=int(not emu.is_safe()),
                 corrupt=int(not _intact(out)), **figures)


# ---- report -----------------------------------------------------------------------------------


def table() -> str:
    head = ["fault", "injected", "runs resumed", "records lost", "stray pulses", "bench unsafe",
            "run.sqlite damaged", "unclear exit", "test accuracy % (simulated seeds 0-4)"]
    keys = ["fault", "injected", "resumed", "lost", "stray", "unsafe", "corrupt", "unclear",
            "accuracy"]
    total = {k: sum(r[k] for r in ROWS) for k in keys[1:-1]}
    outside = sum(r["outside"] for r in ROWS)
    scored = sum(r["accuracy"] != "-" for r in ROWS)
    total["accuracy"] = f"{scored - outside} of {scored} within" if scored else "-"
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in [*ROWS, {"fault": "**total**", **total}]:
        lines.append("| " + " | ".join(str(r[k]) for k in keys) + " |")
    return "\n".join(lines)


def run(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--short", action="store_true", help="one fault of each kind (for a test)")
    p.add_argument("--kills", type=int, default=20, help="SIGKILLs of the simulated training")
    p.add_argument("--seed", type=int, default=0, help="moments of the kills")
    args = p.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    sim_kills_n, emu_kills, stall = (1, 1, 4.0) if args.short else (args.kills, 3, 30.0)
    signals = (signal.SIGTERM,) if args.short else (signal.SIGINT, signal.SIGTERM)
    ROWS.clear()
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        os.environ["HIL_REGISTRY"] = str(tmp / "no-registry" / "devices.sqlite")
        sim_data = write_subset(tmp / "digits", 300, 200)
        emu_data = write_subset(tmp / "tiny", 12, 10)
        accuracy_data = None if args.short else write_subset(tmp / "scored", 900, 300)
        sim_kills(tmp, sim_data, sim_kills_n, 1 if args.short else 2, rng)
        sim_characterize_signals(tmp, signals)
        emulated(tmp, emu_data, emu_kills, stall, args.short, rng, accuracy_data)
    print(table())
    wall = time.monotonic() - t0
    totals = {k: sum(r[k] for r in ROWS) for k in ("injected", "resumed", "lost", "stray")}
    print(f"\nfaults injected {totals['injected']}, runs resumed {totals['resumed']}, records "
          f"lost {totals['lost']}, stray pulses {totals['stray']}; {wall:.0f} s "
          f"(target 600 s: {wall / 600:.2f})")
    bad = sum(r[k] for r in ROWS
              for k in ("lost", "stray", "unsafe", "corrupt", "unclear", "outside"))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(run())
