"""On-line training inside the arrays: forward by MAC reads, backprop on the host, updates as
SET/RESET pulses.

Each weight is a pair of devices, w = (G+ - G-) / G_unit. The trainer never sees a conductance
except through the backend: the forward pass uses measured column currents, and the host keeps a
*measured* copy of the conductances (one read map at the start, then a read of every device it
has just pulsed), which the backprop of eq. 3 needs for the second layer's weights.

Update rules:

* ``paper``: exactly the paper's rule: when |dw| exceeds a threshold, dw > 0 gives SET on G+ and
  RESET on G-, dw < 0 the opposite; one pulse each.
* ``mixed`` (default): mixed-precision training. A host accumulator collects eta * dw; when it
  exceeds a device step, SET pulses go to *one* device of the pair (G+ to raise w, G- to lower
  it), the pulsed device is read back and the accumulator is reduced by the change actually
  achieved, so cycle noise does not pile up. A device that has reached ``g_high`` is not SET
  further: its partner is RESET instead, so both devices stay in range without the pulse cost of
  clearing and re-programming pairs; a weight whose devices can move neither way keeps its value.
  Devices seen stuck (or flagged by characterisation) are never pulsed; their partner moves the
  weight. The learning rate decays per epoch.

  With ``common_mode_uS`` (10 uS; ``hil train --common-mode``) a weight that must move RESETs its
  partner first while the partner carries more than that: one device of each pair then stays near
  the floor (a low common mode), so a device that fails later leaves a small wrong weight rather
  than a large one.

Before the first image the arrays are prepared (:meth:`OnlineTrainer.prepare_arrays`): every
device is pre-set low, as in the paper; a high device that RESET pulses do not move is stuck on,
and the partner of every stuck device is programmed up to its conductance so the pair starts near
w = 0. Left to backprop, a stuck-on device (3-4 weight units) saturates its output's tanh, and
the (1 - y^2) factor of eq. 2 then starves the very update that would SET the partner: one such
column can make the network answer one class.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from hil.backends.base import RESET, SET, Backend
from hil.errors import HilError
from hil.network import (
    LEVELS,
    NetworkSpec,
    activation_levels,
    deltas,
    pixel_levels,
    targets,
)
from hil.training.data import Digits
from sequences.basic import program_verify, run

PRESET_uS = 5.0  # the paper pre-sets every device below this before training
CHECKPOINT_FORMAT = 2  # bump when the trainer's state changes shape


@dataclass(frozen=True)
class TrainConfig:
    network: str = "65-20-10"
    epochs: int = 20
    seed: int = 0
    update: str = "mixed"
    g_unit: float = 100.0  # uS per unit weight
    lr: float = 0.02  # eta at epoch 0
    lr_decay: float = 0.25  # eta_e = lr / (1 + lr_decay * e)
    step_uS: float = 3.0  # device step of an update pulse: the accumulator fires past this
    max_burst: int = 4  # most pulses one weight gets per image
    fire_at: float = 3.0  # the accumulator fires at this many device steps (bursts of >= that)
    update_voltage: float = 1.6  # V, SET amplitude of update pulses: half the 1.8 V step
    g_high: float = 250.0  # uS: above this a device is not SET further (its partner is RESET)
    g_floor: float = 5.0  # uS: below this a device is not RESET further
    g_preset: float = 10.0  # uS: a device read above this is pre-set to 0-5 uS (fresh: < 5)
    cancel_tolerance: float = 10.0  # uS: how near a stuck device's partner is programmed to it
    prepare_rounds: int = 60  # most program-verify rounds of the preparation
    prepare_burst: int = 16  # pulses per round while a device is far from its target
    stall_fraction: float = 0.04  # a device coming nearer its target by less than this part
    stall_rounds: int = 3  # of its reading over three bursts is given up (stuck, or at its end)
    stuck_fraction: float = 0.1  # given up having moved less than this part of it: stuck
    common_mode_uS: float = 10.0  # a moving weight RESETs a partner above this first (inf: off)
    paper_threshold: float = 0.002  # |eta dw| that triggers a pulse pair under ``paper``
    checkpoint_every: int = 1000  # images


@dataclass
class Layer:
    """One crossbar layer: its array, device indices and the host's measured conductances."""

    array: str
    devices: np.ndarray  # (n_in + 1, 2 n_out): G+ in even columns, G- in odd columns
    g: np.ndarray  # measured conductances, same shape
    acc: np.ndarray  # mixed-precision accumulator, (n_in + 1, n_out), weight units
    dead: np.ndarray  # devices seen not to respond (stuck): never pulsed again
    ceiling: np.ndarray  # no SET at or above this (g_high; higher for a stuck device's partner)
    can_set: np.ndarray = field(init=False)
    can_reset: np.ndarray = field(init=False)

    def refresh_masks(self, cfg: TrainConfig) -> None:
        """Which devices may take a SET or a RESET, kept with the conductances so the update
        path only looks them up."""
        self.can_set, self.can_reset = _masks(cfg, self.g, self.dead, self.ceiling)

    def refresh_devices(self, cfg: TrainConfig, rows: np.ndarray, cols: np.ndarray) -> None:
        """:meth:`refresh_masks` for the given devices only (after a pulse)."""
        self.can_set[rows, cols], self.can_reset[rows, cols] = _masks(
            cfg, self.g[rows, cols], self.dead[rows, cols], self.ceiling[rows, cols])

    def weights(self, g_unit: float) -> np.ndarray:
        return (self.g[:, 0::2] - self.g[:, 1::2]) / g_unit


def _masks(cfg: TrainConfig, g: np.ndarray, dead: np.ndarray, ceiling: np.ndarray
           ) -> tuple[np.ndarray, np.ndarray]:
    """A device may be SET while alive and below its ceiling, RESET while alive and above
    g_floor."""
    return ~dead & (g < ceiling), ~dead & (g > cfg.g_floor)


class OnlineTrainer:
    def __init__(self, backend: Backend, digits: Digits, config: TrainConfig,
                 excluded: np.ndarray | None = None) -> None:
        """``excluded``: flat indices of devices never to pulse (flagged by characterisation);
        they still carry current, the other device of their pair compensates."""
        self.backend = backend
        self.digits = digits
        self.cfg = config
        self.spec = NetworkSpec.parse(config.network)
        bench = backend.bench
        self.v_read = bench.pulses.read_voltage
        names = bench.networks[self.spec.bench_key]
        self.layers = []
        for name in names:
            dev = bench.array_devices(name)
            g = backend.read(dev.ravel()).reshape(dev.shape)
            dead = np.zeros(dev.shape, dtype=bool)
            if excluded is not None:
                dead |= np.isin(dev, excluded)
            layer = Layer(name, dev, g, np.zeros((dev.shape[0], dev.shape[1] // 2)), dead,
                          np.full(dev.shape, config.g_high))
            layer.refresh_masks(config)
            self.layers.append(layer)
        self.prepared: dict[str, int] | None = None  # what prepare_arrays did, once it has
        self.epoch = 0
        self.position = 0  # images done in the current epoch
        self.order = self._order(0)
        self.correct = 0
        # speculative blocks only where reads are free; the paper rule pulses nearly every image
        self._speculate = backend.free_reads and config.update == "mixed"
        self._block = 1
        self.train_levels = pixel_levels(digits.x_train)
        self.test_levels = pixel_levels(digits.x_test)
        self.train_inputs = self.train_levels / LEVELS
        self.test_inputs = self.test_levels / LEVELS
        self._scale = 1.0 / (self.v_read * config.g_unit)
        self.z_train = targets(digits.y_train)
        self.history: list[dict[str, Any]] = []

    def _order(self, epoch: int) -> np.ndarray:
        return np.random.default_rng([self.cfg.seed, epoch]).permutation(len(self.digits.y_train))

    def prepare_arrays(self) -> dict[str, int]:
        """Bring the arrays to the paper's starting state before the first image: pre-set every
        working device above ``g_preset`` low by RESET program-verify; one that RESET bursts do
        not move at all is stuck (on: it reads high). Then program the live partner of every
        stuck device (found here, or flagged by characterisation) up to its conductance, so the
        pair starts near w = 0, and let training SET that partner back up to the level it
        reached. A partner that cannot get that high ends at its ceiling, which still takes most
        of the stuck weight away. Returns what it found and did, also kept in ``prepared``."""
        cfg = self.cfg
        pulses = self.backend.counts.pulses
        # a device sitting high to cancel a stuck partner stays there
        high = [np.nonzero(~layer.dead & (layer.g > cfg.g_preset)
                           & ~_partner(layer.dead & (layer.g > cfg.g_preset)))
                for layer in self.layers]
        start = [layer.g[r, c] for layer, (r, c) in zip(self.layers, high, strict=True)]
        done = self._program(high, [np.full(r.size, PRESET_uS / 2) for r, _ in high],
                             PRESET_uS / 2)
        stuck_on = 0
        for layer, (r, c), g0, (_, gave_up) in zip(self.layers, high, start, done, strict=True):
            # given up without having moved at all: stuck (a slow device moved, then stalled)
            stuck = gave_up & (g0 - layer.g[r, c] < cfg.stuck_fraction * g0)
            layer.dead[r[stuck], c[stuck]] = True
            stuck_on += int(stuck.sum())
        self.prepared = {
            "preset": sum(r.size for r, _ in high),
            "stuck_on": stuck_on,
            **self._cancel_stuck([layer.dead for layer in self.layers]),
            "pulses": 0,
        }
        self.prepared["pulses"] = self.backend.counts.pulses - pulses
        return self.prepared

    def _cancel_stuck(self, which: list[np.ndarray]) -> dict[str, int]:
        """Program the live partner of every stuck device in ``which`` (a mask per layer) that
        reads high up to its conductance, so the pair sits near w = 0, and let training SET
        that partner back up to the level it reached; a partner that SET bursts cannot lift
        off the floor is stuck (off) itself. Returns how many were cancelled, how many only
        partly (the partner short of ``cancel_tolerance``) and how many not at all."""
        cfg = self.cfg
        partners, stuck_high = [], 0
        for layer, mask in zip(self.layers, which, strict=True):
            r, c = np.nonzero(mask & layer.dead & (layer.g > cfg.g_preset))
            stuck_high += r.size
            alive = ~layer.dead[r, c ^ 1]
            partners.append((r[alive], c[alive] ^ 1))
        done = self._program(partners, [layer.g[r, c ^ 1] for layer, (r, c) in
                                        zip(self.layers, partners, strict=True)],
                             cfg.cancel_tolerance)
        short = cancelled = 0
        for layer, (r, c), (converged, gave_up) in zip(self.layers, partners, done, strict=True):
            stuck = gave_up & (layer.g[r, c] < cfg.g_preset)
            layer.dead[r[stuck], c[stuck]] = True
            layer.ceiling[r, c] = np.maximum(cfg.g_high, layer.g[r, c] - cfg.cancel_tolerance)
            cancelled += int((~stuck).sum())
            short += int((~converged & ~stuck).sum())
            layer.refresh_masks(cfg)
        return {"cancelled": cancelled, "partly": short, "uncancelled": stuck_high - cancelled}

    # ---- repair after failures ----------------------------------------------------------

    def devices(self) -> np.ndarray:
        """Flat indices of every device of the network, layer by layer, row-major."""
        return np.concatenate([layer.devices.ravel() for layer in self.layers])

    def conductances(self) -> np.ndarray:
        """The host's measured conductances, in the order of :meth:`devices`."""
        return np.concatenate([layer.g.ravel() for layer in self.layers])

    def write_off(self, failed: np.ndarray, g: np.ndarray) -> dict[str, int]:
        """Take devices that failed after training out of the network: ``g`` is a fresh reading
        of every device (order of :meth:`devices`) and replaces the host's copy; the ``failed``
        ones (flat indices) are never pulsed again, and those that read high are cancelled by
        their partners as the preparation cancels stuck-on devices. Returns what it did."""
        pulses = self.backend.counts.pulses
        new = []
        start = 0
        for layer in self.layers:
            n = layer.devices.size
            layer.g = g[start : start + n].reshape(layer.devices.shape).copy()
            start += n
            mask = np.isin(layer.devices, failed) & ~layer.dead
            layer.dead |= mask
            layer.refresh_masks(self.cfg)
            new.append(mask)
        done = {"failed": int(sum(m.sum() for m in new)), **self._cancel_stuck(new)}
        done["pulses"] = self.backend.counts.pulses - pulses
        return done

    def extend(self, epochs: int) -> None:
        """Let the next :meth:`run` train ``epochs`` more epochs (a repair's fine-tuning)."""
        self.cfg = replace(self.cfg, epochs=self.epoch + epochs)

    def repair(self, failed: np.ndarray, g: np.ndarray, epochs: int) -> dict[str, Any]:
        """Repair the trained network in place around devices found failed since training:
        :meth:`write_off` them, then fine-tune ``epochs`` more epochs with them never pulsed
        (only if a device was written off: a healthy network is left as it is). Returns what
        :meth:`write_off` did, the fine-tuning's epochs and pulses and the test accuracy
        after."""
        done = self.write_off(failed, g)
        pulses = self.backend.counts.pulses
        epochs = epochs if done["failed"] else 0
        self.extend(epochs)
        self.run()
        return {**done, "epochs": epochs, "tune_pulses": self.backend.counts.pulses - pulses,
                "accuracy": self.history[-1]["test_accuracy"] if epochs else self.evaluate()}

    def _program(self, where: list[tuple[np.ndarray, np.ndarray]], targets: list[np.ndarray],
                 tolerance: float) -> list[tuple[np.ndarray, np.ndarray]]:
        """One program-verify over the given (rows, cols) of every layer at once; updates the
        host's conductances and returns, per layer, which devices converged and which stalled."""
        sizes = [r.size for r, _ in where]
        if not sum(sizes):
            return [(np.zeros(0, dtype=bool), np.zeros(0, dtype=bool)) for _ in where]
        cfg = self.cfg
        devices = np.concatenate([layer.devices[r, c]
                                  for layer, (r, c) in zip(self.layers, where, strict=True)])
        result = run(program_verify(devices, np.concatenate(targets), tolerance_uS=tolerance,
                                    max_rounds=cfg.prepare_rounds, max_burst=cfg.prepare_burst,
                                    stall_rounds=cfg.stall_rounds,
                                    stall_fraction=cfg.stall_fraction), self.backend)
        bounds = np.cumsum([0, *sizes])
        for layer, (r, c), a, b in zip(self.layers, where, bounds, bounds[1:], strict=False):
            layer.g[r, c] = result.conductance[a:b]
        return [(result.converged[a:b], result.stalled[a:b])
                for a, b in zip(bounds, bounds[1:], strict=False)]

    # ---- forward through the arrays -----------------------------------------------------

    def _layer_out(self, layer: Layer, levels: np.ndarray, signed: bool) -> np.ndarray:
        """Pre-activations of a layer from the measured MAC currents of its bit-planes."""
        s = self.backend.mac_levels(layer.array, levels, signed)
        return (s[:, 0::2] - s[:, 1::2]) * self._scale

    def forward(self, levels: np.ndarray, inputs: np.ndarray) -> list[np.ndarray]:
        """Activations of every layer for (n, 65) pixel levels and the inputs they stand for;
        the hidden activations are the quantised values actually applied."""
        acts = [inputs]
        a = np.tanh(self._layer_out(self.layers[0], levels, signed=False))
        for layer in self.layers[1:]:
            q = activation_levels(a)
            acts.append(q / LEVELS)
            a = np.tanh(self._layer_out(layer, q, signed=True))
        acts.append(a)
        return acts

    def evaluate(self, batch: int = 512,
                 on_test: Callable[[int, int], None] | None = None) -> float:
        """Test accuracy measured through the backend (MAC reads), never host weights;
        ``on_test(done, total)`` after each batch of test images (the pass is long on a bench)."""
        hits = 0
        total = len(self.digits.y_test)
        if on_test:
            on_test(0, total)
        for i in range(0, total, batch):
            part = slice(i, i + batch)
            y = self.forward(self.test_levels[part], self.test_inputs[part])[-1]
            hits += int((y.argmax(1) == self.digits.y_test[i : i + batch]).sum())
            if on_test:
                on_test(min(i + batch, total), total)
        return hits / total

    # ---- one image ----------------------------------------------------------------------

    def _train_block(self, start: int, stop: int) -> np.ndarray:
        """Train on images ``order[start:stop]`` up to and including the first one whose update
        fires pulses; returns whether each image it trained on was classified right.

        Until a pulse fires nothing on the bench changes, so the forward reads of those images
        can be taken together; the accumulators are summed image by image to find where the
        first pulse fires, and the reads of the images after it are discarded (they never
        happened: the next block reads them again with the updated devices). Backends whose
        reads cost bench time get blocks of one image, which is plain on-line training.
        """
        cfg = self.cfg
        idx = self.order[start:stop]
        before = self.backend.counts.mac_reads
        acts = self.forward(self.train_levels[idx], self.train_inputs[idx])
        ws = [np.empty(0)] + [layer.weights(cfg.g_unit) for layer in self.layers[1:]]
        ds = deltas(acts, ws, self.z_train[idx])
        n = len(self.order)
        lrs = cfg.lr / (1 + cfg.lr_decay * (self.epoch + np.arange(start, stop) / n))
        xls = [x * lrs[:, None] for x in acts[:-1]]  # eta_i * inputs of each layer
        last = len(idx) - 1
        if cfg.update == "mixed" and last > 0:
            fire = cfg.step_uS / cfg.g_unit * cfg.fire_at
            for layer, xl, d in zip(self.layers, xls, ds, strict=True):
                last = min(last, _first_crossing(layer.acc, xl[:last], d[:last], fire))
            if last:
                for layer, xl, d in zip(self.layers, xls, ds, strict=True):
                    layer.acc += xl[:last].T @ d[:last]
        for layer, xl, d in zip(self.layers, xls, ds, strict=True):
            dw = np.multiply.outer(xl[last], d[last])
            if cfg.update == "paper":
                self._paper_update(layer, dw)
            else:
                self._mixed_update(layer, dw)
        unused = len(idx) - 1 - last
        if unused:
            self.backend.counts.mac_reads -= unused * (self.backend.counts.mac_reads - before
                                                       ) // len(idx)
        self._block = min(128, max(4, 2 * (last + 1))) if self._speculate else 1
        labels = self.digits.y_train[idx[: last + 1]]
        return acts[-1][: last + 1].argmax(1) == labels

    def _pulse_and_read(self, layer: Layer, rows, cols, polarity, count=1, **kw) -> np.ndarray:
        dev = layer.devices[rows, cols]
        self.backend.pulse(dev, polarity, count, **kw)
        g = self.backend.read(dev)
        old = layer.g[rows, cols]
        layer.g[rows, cols] = g
        layer.refresh_devices(self.cfg, rows, cols)
        return g - old

    def _paper_update(self, layer: Layer, dw: np.ndarray) -> None:
        r, c = np.nonzero(np.abs(dw) > self.cfg.paper_threshold)
        if r.size == 0:
            return
        up = dw[r, c] > 0
        rows = np.concatenate([r, r])
        cols = np.concatenate([2 * c, 2 * c + 1])
        polarity = np.concatenate([np.where(up, SET, RESET), np.where(up, RESET, SET)])
        self._pulse_and_read(layer, rows, cols, polarity)

    def _mixed_update(self, layer: Layer, dw: np.ndarray) -> None:
        cfg = self.cfg
        acc = layer.acc
        acc += dw
        eps = cfg.step_uS / cfg.g_unit
        fire = eps * cfg.fire_at
        if acc.max() < fire and acc.min() > -fire:
            return
        r, c = np.nonzero(np.abs(acc) >= fire)
        a = acc[r, c]
        # SET the device on the side the weight should move to (G+ to raise w, G- to lower
        # it) while it can take a SET; else RESET its partner if that can take a RESET; else
        # the weight is at the end of its range: drop the update.
        cols = 2 * c + (a < 0)
        partner = cols ^ 1
        use_set = layer.can_set[r, cols]
        if cfg.common_mode_uS < math.inf:
            # low common mode: RESET a high partner first if it can take a RESET (one written
            # off cannot: the device itself is SET then, as without the low common mode)
            use_set &= ~(layer.can_reset[r, partner]
                         & (layer.g[r, partner] > cfg.common_mode_uS))
        polarity: int | np.ndarray = SET
        if not use_set.all():
            keep = use_set | layer.can_reset[r, partner]
            acc[r[~keep], c[~keep]] = 0.0
            r, c, a, use_set = r[keep], c[keep], a[keep], use_set[keep]
            cols = np.where(use_set, cols[keep], partner[keep])
            polarity = np.where(use_set, SET, RESET)
            if r.size == 0:
                return
        count = np.minimum(np.abs(a) // eps, cfg.max_burst)
        change = self._pulse_and_read(layer, r, cols, polarity, count,
                                      voltage=cfg.update_voltage)
        acc[r, c] -= np.where(cols & 1, -change, change) / cfg.g_unit
        # a low device that a SET burst did not move is stuck off
        dead = use_set & (change < 0.1) & (layer.g[r, cols] < 3.0)
        if dead.any():
            layer.dead[r[dead], cols[dead]] = True
            layer.refresh_devices(self.cfg, r[dead], cols[dead])

    # ---- epochs ---------------------------------------------------------------------------

    def run(
        self,
        on_image: Callable[[OnlineTrainer], None] | None = None,
        on_epoch: Callable[[OnlineTrainer, dict[str, Any]], None] | None = None,
        on_test: Callable[[int, int], None] | None = None,
    ) -> list[dict[str, Any]]:
        if self.prepared is None:
            self.prepare_arrays()
        while self.epoch < self.cfg.epochs:
            n = len(self.order)
            every = self.cfg.checkpoint_every
            while self.position < n:
                # blocks end on checkpoints, so a resumed run takes the same blocks
                stop = min(n, (self.position // every + 1) * every, self.position + self._block)
                for hit in self._train_block(self.position, stop):
                    self.correct += int(hit)
                    self.position += 1
                    if on_image:
                        on_image(self)
            record = {
                "epoch": self.epoch + 1,
                "train_accuracy": self.correct / len(self.order),
                "test_accuracy": self.evaluate(on_test=on_test),
                **self.backend.counts.as_dict(),
            }
            self.history.append(record)
            self.epoch += 1
            self.position = 0
            self.correct = 0
            self.order = self._order(self.epoch)
            if on_epoch:
                on_epoch(self, record)
        return self.history

    def snapshots(self) -> dict[str, np.ndarray]:
        return {layer.array: layer.g.copy() for layer in self.layers}

    # ---- checkpoints --------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        return {
            "config": asdict(self.cfg),
            "epoch": self.epoch,
            "position": self.position,
            "correct": self.correct,
            "block": self._block,
            "prepared": self.prepared,
            "history": list(self.history),
            "layers": [(layer.g.copy(), layer.acc.copy(), layer.dead.copy(),
                        layer.ceiling.copy()) for layer in self.layers],
            "format": CHECKPOINT_FORMAT,
            "backend": self.backend.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("format") != CHECKPOINT_FORMAT:
            raise HilError("the checkpoint was written by another version of memristor-hil and "
                           "cannot be resumed; start a new run")
        # a repair extends a finished run by its own epochs: the checkpoint knows how many
        self.cfg = replace(self.cfg, epochs=state["config"]["epochs"])
        self.epoch, self.position = state["epoch"], state["position"]
        self.correct = state["correct"]
        self._block = state["block"]
        self.prepared = state["prepared"]
        self.history = list(state["history"])
        for layer, (g, acc, dead, ceiling) in zip(self.layers, state["layers"], strict=True):
            layer.g, layer.acc, layer.dead = g.copy(), acc.copy(), dead.copy()
            layer.ceiling = ceiling.copy()
            layer.refresh_masks(self.cfg)
        self.backend.load_state_dict(state["backend"])
        self.order = self._order(self.epoch)


def _partner(a: np.ndarray) -> np.ndarray:
    """The value of each device's pair partner (G+ <-> G-, adjacent columns)."""
    return a.reshape(len(a), -1, 2)[:, :, ::-1].reshape(a.shape)


def _first_crossing(acc: np.ndarray, xl: np.ndarray, d: np.ndarray, fire: float) -> int:
    """First image i at which ``acc + sum_{j<=i} outer(xl_j, d_j)`` reaches +-``fire`` in any
    weight, or ``len(xl)`` if none does.

    Only weights that could get there at all (|acc| plus the summed magnitudes of their updates,
    one small matrix product) have their running sums followed image by image.
    """
    reach = np.abs(xl).T @ np.abs(d)
    reach += np.abs(acc)
    r, c = np.nonzero(reach >= fire)
    if r.size == 0:
        return len(xl)
    path = np.cumsum(xl[:, r] * d[:, c], axis=0)
    path += acc[r, c]
    crossed = (np.abs(path) >= fire).any(axis=1)
    return int(crossed.argmax()) if crossed.any() else len(xl)
