"""A training run on instruments knows what it did to the arrays, even when it was killed.

The host's copy of the conductances is only as good as its last checkpoint: pulses fired after
it changed the devices, and a bench restarted or re-chipped in between holds other devices
altogether. So, on instruments:

* :class:`JournaledBackend` writes each pulse batch into the run's journal before it is sent
  (``planned``) and marks it ``applied`` once the backend returns; a checkpoint settles the
  entries in the same transaction (their pulses are in the checkpoint's counts; they stay, so
  the bench's pulse log can be audited against everything the trainer planned).
* :func:`reconcile`, on ``--resume``, counts the applied batches into the record, names the
  batches in flight at the stop (planned, not confirmed: they may or may not have fired),
  re-reads every device of the network (the same read map a run starts with), adopts the
  measured conductances and says how many differ from the checkpoint beyond read noise.

On the simulated bench the checkpoint holds the simulated devices themselves, so there is
nothing to reconcile and a resume stays bit-identical to an uninterrupted run.

An instrument that stops answering (stalled, switched off, restarted) pauses the run instead of
ending it: the first error is reported, the bench put safe as far as it can be, and the
instruments are opened again -- re-identified and configured as at the start -- until they
answer or ``[recovery] wait`` seconds have passed (then the run stops, resumable). A read or
MAC read (no side effect) is then asked again; a pulse batch never is, because it may have
fired: the trainer's read-back of the pulsed devices, and a re-read of every device of the
network, tell what it did.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from drivers.errors import InstrumentError
from hil.backends.base import SET, Backend, OpCounts
from hil.bench import EXTRA_SECTIONS, Bench, _check_section
from hil.errors import HilError
from hil.records import RunStore
from hil.training.trainer import OnlineTrainer

EXTRA_SECTIONS["recovery"] = {
    # seconds a run waits for instruments that stopped answering before it stops, resumable
    "wait": ((int, float), lambda v: None if v >= 0 else "must be >= 0", 600.0),
}


def recovery_wait(bench: Bench) -> float:
    return float(_check_section(bench.path, "recovery", bench.raw.get("recovery", {}),
                                EXTRA_SECTIONS["recovery"])["wait"])


class JournaledBackend(Backend):
    """``inner`` with every pulse batch journaled in ``store`` around it, and pausing through
    an instrument that stops answering (see the module docstring): ``reopen`` opens the
    instruments again, ``recovered`` is called once they answer (the trainer re-reads)."""

    def __init__(self, inner: Backend, store: RunStore, *,
                 reopen: Callable[[], Backend] | None = None,
                 recovered: Callable[[], None] | None = None,
                 say: Callable[[str], Any] = print, poll: float = 1.0) -> None:
        self.inner, self.store, self.bench = inner, store, inner.bench
        self.free_reads = inner.free_reads
        self.reopen, self.recovered, self.say, self.poll = reopen, recovered, say, poll
        self.pauses = 0
        # who answered when the run (or this resume) opened the bench: a pause must find them
        self.identities = instrument_identities(inner)

    @property
    def counts(self) -> OpCounts:  # type: ignore[override]
        return self.inner.counts

    @counts.setter
    def counts(self, value: OpCounts) -> None:
        self.inner.counts = value

    @property
    def bench_seconds(self) -> float:
        """The sequencer's bench clock (instruments are always sequenced), kept across pauses:
        the progress's bench-time ETA and the summary read it here."""
        return self.inner.bench_seconds

    def pulse(self, devices, polarity, count=1, *, voltage=None, width=None) -> None:
        entry = self.store.journal_planned(devices, polarity, count)
        try:
            self.inner.pulse(devices, polarity, count, voltage=voltage, width=width)
        except (InstrumentError, OSError) as exc:
            self._pause(exc)  # never fired again: it stays in flight; the read-back tells
            return
        self.store.journal_applied(entry)

    def _query(self, call: Callable[[], np.ndarray]) -> np.ndarray:
        """A read without side effects: asked again once the instruments answer again."""
        while True:
            try:
                return call()
            except (InstrumentError, OSError) as exc:
                self._pause(exc)

    def read(self, devices: np.ndarray) -> np.ndarray:
        return self._query(lambda: self.inner.read(devices))

    def mac(self, array: str, inputs: np.ndarray) -> np.ndarray:
        return self._query(lambda: self.inner.mac(array, inputs))

    def mac_levels(self, array: str, levels: np.ndarray, signed: bool) -> np.ndarray:
        return self._query(lambda: self.inner.mac_levels(array, levels, signed))

    def _pause(self, first: BaseException) -> None:
        """Report ``first``, put the bench safe, wait for the instruments (see the module
        docstring); raise past the limit."""
        if self.reopen is None:
            raise first
        wait = recovery_wait(self.bench)
        state = self.inner.state_dict()  # counts and bench clock: the reopened ones go on
        self.say(f"bench: {first}; pausing the run: bench put safe, waiting up to {wait:g} s "
                 "for the instruments to answer again")
        try:
            self.inner.close()
        except (InstrumentError, OSError) as exc:
            self.say(f"bench: after that error, {exc}")
        deadline = time.monotonic() + wait
        last: BaseException = first
        while True:
            try:
                self.inner = self.reopen()
                break
            except (InstrumentError, OSError) as exc:
                last = exc
            if time.monotonic() >= deadline:
                raise HilError(f"the instruments did not answer again within {wait:g} s "
                               f"({last}); the run stopped at its last checkpoint: resume it "
                               "with --resume once they answer") from None
            time.sleep(self.poll)
        changed = identity_changes(self.identities, instrument_identities(self.inner))
        if changed:  # swapped while the run waited: its picture of the arrays is not theirs
            self.inner.close()
            raise HilError(f"the instruments that answered again are not those the run was "
                           f"using ({'; '.join(changed)}); the run stopped at its last "
                           "checkpoint: --resume checks the bench (--accept-bench continues "
                           "on it)")
        self.inner.load_state_dict(state)
        self.pauses += 1
        self.say("bench: the instruments answer again (identified and configured as at the "
                 "start); re-reading the arrays and continuing")
        if self.recovered is not None:
            self.recovered()

    def close(self) -> None:
        self.inner.close()

    def state_dict(self) -> dict[str, Any]:
        return self.inner.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.inner.load_state_dict(state)


def instrument_identities(backend: Backend) -> dict[str, str] | None:
    """Who the instruments said they were (``*IDN?``, the MCU's firmware and boards); None on a
    backend without instruments."""
    inst = getattr(backend, "inst", None)
    if inst is None:
        return None
    out = {name: " ".join((i.maker, i.model, i.serial)) for name, i in
           (("generator", inst.generator.identity), ("smu", inst.smu.identity))}
    mcu = inst.mux.identity
    out["mcu"] = f"{mcu.firmware} boards {','.join(map(str, mcu.boards))}"
    return out


def identity_changes(then: dict[str, str] | None, now: dict[str, str] | None) -> list[str]:
    """What differs between two :func:`instrument_identities`, one phrase per instrument."""
    then, now = then or {}, now or {}
    return [f"{k} was {then[k]!r}, now {now.get(k)!r}" for k in then if then[k] != now.get(k)]


def pulse_totals(devices: np.ndarray, polarity: Any, count: Any) -> tuple[int, int]:
    """SET and RESET pulses of one batch, counted per device as the backends count them."""
    n = np.broadcast_to(np.asarray(count, dtype=np.int64), np.shape(devices))
    pol = np.broadcast_to(np.asarray(polarity), np.shape(devices))
    return int(n[pol == SET].sum()), int(n[pol != SET].sum())


@dataclass
class Reconciled:
    """What a resume on instruments found."""

    devices: int  # devices re-read
    differ: int  # of which beyond read noise from the checkpoint
    applied: tuple[int, int]  # SET, RESET pulses fired after the checkpoint, now counted
    batches: int  # batches fired after the checkpoint
    in_flight: tuple[int, int]  # SET, RESET pulses of batches planned but not confirmed
    flight_batches: int

    def words(self) -> str:
        text = (f"re-read {self.devices} devices: {self.differ} differ from the checkpoint "
                "beyond read noise (measured values adopted)")
        if self.batches:
            text += (f"; {self.batches} pulse batches ({sum(self.applied)} pulses) fired after "
                     "the checkpoint, now counted")
        if self.flight_batches:
            text += (f"; {self.flight_batches} batch in flight at the stop "
                     f"({sum(self.in_flight)} pulses, may or may not have fired)")
        return text


def reconcile(trainer: OnlineTrainer, store: RunStore, noise: float) -> Reconciled:
    """Bring a trainer restored from a checkpoint in line with the bench (module docstring).
    ``noise``: the bench's relative read noise; a device differs when it reads more than five
    of it (plus 0.5 uS) away from its checkpointed value."""
    journal = store.journal()
    applied = [pulse_totals(*e[1:]) for e in journal if e[0] == "applied"]
    flight = [pulse_totals(*e[1:]) for e in journal if e[0] == "planned"]
    counts = trainer.backend.counts
    counts.set_pulses += sum(s for s, _ in applied)
    counts.reset_pulses += sum(r for _, r in applied)
    total, differ = reread(trainer, noise)
    return Reconciled(total, differ, (sum(s for s, _ in applied), sum(r for _, r in applied)),
                      len(applied), (sum(s for s, _ in flight), sum(r for _, r in flight)),
                      len(flight))


def reread(trainer: OnlineTrainer, noise: float) -> tuple[int, int]:
    """Re-read every device of the network, adopt the measured conductances; returns how many
    devices were read and how many differ from the host's copy beyond read noise (more than
    five times the relative ``noise`` plus 0.5 uS)."""
    differ = total = 0
    for layer in trainer.layers:
        g = trainer.backend.read(layer.devices.ravel()).reshape(layer.devices.shape)
        differ += int((np.abs(g - layer.g) > 5 * noise * np.abs(layer.g) + 0.5).sum())
        total += g.size
        layer.g = g
        layer.refresh_masks(trainer.cfg)
    return total, differ
