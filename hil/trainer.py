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
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from hil.backend import RESET, SET, Backend
from hil.data import Digits
from hil.network import (
    LEVELS,
    PLANE_WEIGHTS,
    SIGNED_WEIGHTS,
    NetworkSpec,
    decode_planes,
    deltas,
    level_planes,
    pixel_planes,
    targets,
)


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
    update_voltage: float = 1.6  # V, SET amplitude of update pulses: half the 1.8 V step
    g_high: float = 250.0  # uS: above this a device is not SET further (its partner is RESET)
    g_floor: float = 5.0  # uS: below this a device is not RESET further
    g_stuck_on: float = 290.0  # uS: a device read above this before training is stuck on
    paper_threshold: float = 0.002  # |eta dw| that triggers a pulse pair under ``paper``
    checkpoint_every: int = 1000  # images


@dataclass
class Layer:
    """One crossbar layer: its array, device indices and the host's measured conductances."""

    array: str
    devices: np.ndarray  # (n_in + 1, 2 n_out): G+ in even columns, G- in odd columns
    g: np.ndarray  # measured conductances, same shape
    acc: np.ndarray  # mixed-precision accumulator, (n_in + 1, n_out), weight units
    dead: np.ndarray  # devices seen not to respond (stuck): never pulsed or refreshed again

    def weights(self, g_unit: float) -> np.ndarray:
        return (self.g[:, 0::2] - self.g[:, 1::2]) / g_unit


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
            # devices are pre-set low, so one reading above the SET ceiling is stuck on
            dead = g > config.g_stuck_on
            if excluded is not None:
                dead |= np.isin(dev, excluded)
            self.layers.append(Layer(name, dev, g, np.zeros((dev.shape[0], dev.shape[1] // 2)),
                                     dead))
        self.epoch = 0
        self.position = 0  # images done in the current epoch
        self.order = self._order(0)
        self.correct = 0
        self.train_planes = pixel_planes(digits.x_train)
        self.test_planes = pixel_planes(digits.x_test)
        self.train_inputs = decode_planes(self.train_planes)
        self.test_inputs = decode_planes(self.test_planes)
        self._scale = 1.0 / (self.v_read * config.g_unit)
        self.z_train = targets(digits.y_train)
        self.history: list[dict[str, Any]] = []

    def _order(self, epoch: int) -> np.ndarray:
        return np.random.default_rng([self.cfg.seed, epoch]).permutation(len(self.digits.y_train))

    # ---- forward through the arrays -----------------------------------------------------

    def _layer_out(self, layer: Layer, planes: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """Pre-activations of a layer for (n, k, rows) planes, from measured MAC currents."""
        s = self.backend.mac_sum(layer.array, planes, weights)
        return (s[:, 0::2] - s[:, 1::2]) * self._scale

    def forward(self, planes: np.ndarray, inputs: np.ndarray) -> list[np.ndarray]:
        """Activations of every layer for (n, 4, 65) pixel planes and the (n, 65) inputs they
        encode; the hidden activations are the quantised values actually applied."""
        acts = [inputs]
        a = np.tanh(self._layer_out(self.layers[0], planes, PLANE_WEIGHTS))
        for layer in self.layers[1:]:
            q = np.rint(a * LEVELS).astype(np.int64)
            x = np.ones((a.shape[0], a.shape[1] + 1))
            np.divide(q, LEVELS, out=x[:, :-1])
            acts.append(x)
            a = np.tanh(self._layer_out(layer, level_planes(q), SIGNED_WEIGHTS))
        acts.append(a)
        return acts

    def evaluate(self, batch: int = 512) -> float:
        """Test accuracy measured through the backend (MAC reads), never host weights."""
        hits = 0
        for i in range(0, len(self.digits.y_test), batch):
            part = slice(i, i + batch)
            y = self.forward(self.test_planes[part], self.test_inputs[part])[-1]
            hits += int((y.argmax(1) == self.digits.y_test[i : i + batch]).sum())
        return hits / len(self.digits.y_test)

    # ---- one image ----------------------------------------------------------------------

    def step(self, index: int) -> bool:
        one = slice(index, index + 1)
        acts = self.forward(self.train_planes[one], self.train_inputs[one])
        y = acts[-1]
        ws = [np.empty(0)] + [layer.weights(self.cfg.g_unit) for layer in self.layers[1:]]
        ds = deltas(acts, ws, self.z_train[one])
        lr = self.cfg.lr / (1 + self.cfg.lr_decay * (self.epoch + self.position / len(self.order)))
        for layer, x, d in zip(self.layers, acts[:-1], ds, strict=True):
            dw = np.multiply.outer(x[0], lr * d[0])
            if self.cfg.update == "paper":
                self._paper_update(layer, dw)
            else:
                self._mixed_update(layer, dw)
        return int(y[0].argmax()) == int(self.digits.y_train[index])

    def _pulse_and_read(self, layer: Layer, rows, cols, polarity, count=1, **kw) -> np.ndarray:
        dev = layer.devices[rows, cols]
        self.backend.pulse(dev, polarity, count, **kw)
        g = self.backend.read(dev)
        old = layer.g[rows, cols]
        layer.g[rows, cols] = g
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
        if acc.max() < eps and acc.min() > -eps:
            return
        r, c = np.nonzero(np.abs(acc) >= eps)
        a = acc[r, c]
        # SET the device on the side the weight should move to (G+ to raise w, G- to lower
        # it) while it is alive and below g_high; else RESET its partner if that is alive and
        # above g_floor; else the weight is at the end of its range: drop the update.
        target = 2 * c + (a < 0)
        partner = target ^ 1
        use_set = ~layer.dead[r, target] & (layer.g[r, target] < cfg.g_high)
        use_reset = ~use_set & ~layer.dead[r, partner] & (layer.g[r, partner] > cfg.g_floor)
        lost = ~(use_set | use_reset)
        if lost.any():
            acc[r[lost], c[lost]] = 0.0
            keep = ~lost
            r, c, a, target, partner, use_set = (
                v[keep] for v in (r, c, a, target, partner, use_set))
            if r.size == 0:
                return
        cols = np.where(use_set, target, partner)
        polarity = np.where(use_set, SET, RESET)
        count = np.minimum(np.abs(a) // eps, cfg.max_burst).astype(np.int64)
        change = self._pulse_and_read(layer, r, cols, polarity, count,
                                      voltage=cfg.update_voltage)
        acc[r, c] -= np.where(cols & 1, -change, change) / cfg.g_unit
        # a low device that a SET burst did not move is stuck off
        layer.dead[r, cols] |= use_set & (change < 0.1) & (layer.g[r, cols] < 3.0)

    # ---- epochs ---------------------------------------------------------------------------

    def run(
        self,
        on_image: Callable[[OnlineTrainer], None] | None = None,
        on_epoch: Callable[[OnlineTrainer, dict[str, Any]], None] | None = None,
    ) -> list[dict[str, Any]]:
        while self.epoch < self.cfg.epochs:
            while self.position < len(self.order):
                self.correct += self.step(int(self.order[self.position]))
                self.position += 1
                if on_image:
                    on_image(self)
            record = {
                "epoch": self.epoch + 1,
                "train_accuracy": self.correct / len(self.order),
                "test_accuracy": self.evaluate(),
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
            "history": list(self.history),
            "layers": [(layer.g.copy(), layer.acc.copy(), layer.dead.copy())
                       for layer in self.layers],
            "backend": self.backend.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.epoch, self.position = state["epoch"], state["position"]
        self.correct = state["correct"]
        self.history = list(state["history"])
        for layer, (g, acc, dead) in zip(self.layers, state["layers"], strict=True):
            layer.g, layer.acc, layer.dead = g.copy(), acc.copy(), dead.copy()
        self.backend.load_state_dict(state["backend"])
        self.order = self._order(self.epoch)

