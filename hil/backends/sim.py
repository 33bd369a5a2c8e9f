"""Simulated 1T1R bench: numpy physics of every device at once.

Model (all vectorised over devices, parameters in the ``[sim]`` section of the bench file):

* each device is assigned one measured response curve (:mod:`hil.curves`) and a step scale drawn
  once (device-to-device spread); a pulse moves it along its SET or RESET branch by
  ``scale * drive * (1 + cycle_noise * xi)`` pulse positions, never backwards;
* ``drive`` depends on the pulse: zero below ``switch_threshold``, ``exp((|V| - V_ref) / a)``
  in amplitude and ``(width / w_ref) ** b`` in width, so amplitude and width tune the step;
* a read sees the memristor in series with the selector's resistance and carries relative
  Gaussian read noise; a MAC read sums the cell currents of a column (Kirchhoff), its noise
  being the sum of the independent cell noises;
* stuck devices keep their conductance whatever pulse they get; an ``open`` cell (or one on an
  open line) carries no current, a ``short`` one conducts like a 10 ohm path in series with the
  selector; neither responds to pulses;
* a single-cell read reports at most the SMU's current compliance (``[limits]``), as an SMU in
  compliance does.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from hil.backends.base import SET, Backend
from hil.bench import Bench
from hil.curves import Curves, load_curves
from hil.faults import OPEN, SHORT, STUCK_OFF, STUCK_ON
from hil.network import BITS, LEVEL_NOISE_WEIGHT, LEVELS

_G_OFFSET = 1000.0  # separates curves in the concatenated lookup tables (uS)
_N_OFFSET = 100000.0  # separates curves in pulse-position space
_SHORT_G = 1e5  # uS: a shorted memristor, 10 ohm


class _Branch:
    """All curves' SET (or RESET) branches as one monotone table, so that finding the
    position of thousands of devices on their own curves is two ``np.interp`` calls."""

    def __init__(self, branches: tuple[np.ndarray, ...], increasing: bool) -> None:
        sign = 1.0 if increasing else -1.0
        self.increasing = increasing
        self.g = np.concatenate([sign * b + k * _G_OFFSET for k, b in enumerate(branches)])
        self.n = np.concatenate(
            [np.arange(len(b)) + k * _N_OFFSET for k, b in enumerate(branches)]
        )
        # per curve: lowest and highest (signed) conductance, last position, both offsets
        self.table = np.array([
            (min(sign * b[0], sign * b[-1]), max(sign * b[0], sign * b[-1]), len(b) - 1,
             k * _G_OFFSET, k * _N_OFFSET) for k, b in enumerate(branches)
        ])

    def step(self, g: np.ndarray, curve: np.ndarray, dn: np.ndarray) -> np.ndarray:
        lo, hi, last, g_off, n_off = self.table[curve].T
        key = np.clip(g if self.increasing else -g, lo, hi)
        key += g_off
        pos = np.interp(key, self.g, self.n)
        pos += dn
        np.minimum(pos, last + n_off, out=pos)
        new = np.interp(pos, self.n, self.g)
        new -= g_off
        if self.increasing:
            np.maximum(g, new, out=new)
        else:
            np.minimum(g, -new, out=new)
        return np.where(dn > 0, new, g)  # no step: a device off its curve stays put


class SimBackend(Backend):
    free_reads = True

    def __init__(
        self,
        bench: Bench,
        seed: int | None = None,
        modes: np.ndarray | None = None,
        curves: Curves | None = None,
    ) -> None:
        super().__init__(bench)
        s = bench.sim
        self.seed = s.seed if seed is None else seed
        self.rng = np.random.default_rng(self.seed)
        self.curves = curves if curves is not None else load_curves(s.curves)
        n = bench.n_devices
        self._set = _Branch(self.curves.set, increasing=True)
        self._reset = _Branch(self.curves.reset, increasing=False)
        self.curve = self.rng.integers(0, len(self.curves.ids), size=n)
        self.scale = np.clip(1 + s.device_spread * self.rng.standard_normal(n), 0.2, None)
        sigma = 0.4
        mu = np.log(s.fresh_mean) - sigma**2 / 2
        self.g = np.clip(self.rng.lognormal(mu, sigma, n), 0.3, s.fresh_max * 0.999)
        self.mode = np.zeros(n, dtype=np.int8)
        self._rs = s.series_resistance * 1e-6  # ohm -> 1/uS
        self._index = {a: bench.array_devices(a) for a in bench.arrays}
        self._array_id = {a: i for i, a in enumerate(self._index)}
        self._owner = np.full(n, -1, dtype=np.int64)  # which array a device belongs to
        self._slot = np.zeros(n, dtype=np.int64)  # its flat position in its array
        for name, idx in self._index.items():
            self._owner[idx] = self._array_id[name]
            self._slot[idx] = np.arange(idx.size).reshape(idx.shape)
        self._cache: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._live_scale = self.scale.copy()  # step scale, zero for devices that ignore pulses
        if modes is not None:
            self.set_modes(modes)

    # ---- faults -------------------------------------------------------------------------

    def set_modes(self, modes: np.ndarray) -> None:
        """Make devices fail (or heal): stuck devices get a conductance in their band, open ones
        none, shorted ones a near-zero resistance."""
        modes = np.asarray(modes, dtype=np.int8)
        s = self.bench.sim
        for code, (lo, hi) in ((STUCK_OFF, s.stuck_off_range), (STUCK_ON, s.stuck_on_range)):
            new = (modes == code) & (self.mode != code)
            self.g[new] = self.rng.uniform(lo, hi, int(new.sum()))
        self.g[modes == OPEN] = 0.0
        self.g[modes == SHORT] = _SHORT_G
        self.mode = modes.copy()
        self._live_scale = np.where(self.mode == 0, self.scale, 0.0)
        self._cache.clear()

    # ---- physics --------------------------------------------------------------------------

    def drive(self, voltage: float, width: float) -> float:
        """Step multiplier of a pulse relative to the pulse the curves were measured with."""
        s = self.bench.sim
        if voltage < s.switch_threshold:
            return 0.0
        return math.exp((voltage - s.reference_voltage) / s.amplitude_scale) * (
            width / s.reference_width
        ) ** s.width_exponent

    def pulse(self, devices, polarity, count=1, *, voltage=None, width=None) -> None:
        devices = np.asarray(devices, dtype=np.int64)
        if devices.size == 0:
            return
        p = self.bench.pulses
        width = p.width if width is None else width
        count = np.asarray(count, dtype=np.float64)
        total = int(count.sum()) if count.ndim else int(count) * devices.size
        v_set = p.set_voltage if voltage is None else abs(voltage)
        v_reset = abs(p.reset_voltage) if voltage is None else abs(voltage)
        noise = self.rng.standard_normal(devices.size)
        noise *= np.sqrt(count) * self.bench.sim.cycle_noise
        noise += count
        np.maximum(noise, 0.0, out=noise)
        dn = noise * self._live_scale[devices]  # stuck devices: no step
        g = self.g[devices]
        curve = self.curve[devices]
        up = np.asarray(polarity) == SET
        if up.ndim == 0 or up.all() or not up.any():
            one = bool(up.all())
            n_set = total if one else 0
            branch = self._set if one else self._reset
            new = branch.step(g, curve, dn * self.drive(v_set if one else v_reset, width))
        else:
            up = np.broadcast_to(up, devices.shape)
            n_set = int(np.broadcast_to(count, devices.shape)[up].sum())
            new = np.empty_like(g)
            for mask, branch, v in ((up, self._set, v_set), (~up, self._reset, v_reset)):
                new[mask] = branch.step(g[mask], curve[mask], dn[mask] * self.drive(v, width))
        self.counts.set_pulses += n_set
        self.counts.reset_pulses += total - n_set
        self.g[devices] = new
        self._update_cache(devices, new)

    def apparent(self, g: np.ndarray) -> np.ndarray:
        """Conductance seen through the selector's series resistance."""
        return g / (1.0 + g * self._rs)

    def read(self, devices: np.ndarray) -> np.ndarray:
        devices = np.asarray(devices, dtype=np.int64)
        self.counts.device_reads += devices.size
        g = self.apparent(self.g[devices])
        g = g * (1.0 + self.bench.sim.read_noise * self.rng.standard_normal(g.shape))
        b = self.bench
        return np.minimum(g, b.limits.current_compliance / b.pulses.read_voltage * 1e6)

    def _array(self, array: str) -> tuple[np.ndarray, np.ndarray]:
        """G and G^2 of an array's apparent conductances, kept current across pulses so a MAC
        read is a matrix product."""
        hit = self._cache.get(array)
        if hit is None:
            g = self.apparent(self.g[self._index[array]])
            hit = self._cache[array] = (g, g * g)
        return hit

    def _update_cache(self, devices: np.ndarray, g: np.ndarray) -> None:
        owner = self._owner[devices]
        for name, (cached, squared) in self._cache.items():
            mine = owner == self._array_id[name]
            if mine.any():
                slot = self._slot[devices[mine]]
                ga = self.apparent(g[mine])
                cached.reshape(-1)[slot] = ga
                squared.reshape(-1)[slot] = ga * ga

    def _currents(self, g: np.ndarray, x: np.ndarray, var: np.ndarray) -> np.ndarray:
        """V * (x @ G) plus Gaussian noise of variance (read_noise V)^2 var: each cell's read
        noise is independent, so a column's noise variance is the sum of the cells'."""
        current = x @ g
        noise = self.rng.standard_normal(current.shape)
        noise *= np.sqrt(var)
        noise *= self.bench.sim.read_noise
        current += noise
        current *= self.bench.pulses.read_voltage
        return current

    def mac(self, array: str, inputs: np.ndarray) -> np.ndarray:
        g, g2 = self._array(array)
        x = np.asarray(inputs, dtype=np.float64)
        self.counts.mac_reads += x.shape[0] * g.shape[1]
        return self._currents(g, x, x @ g2)

    def mac_levels(self, array: str, levels: np.ndarray, signed: bool) -> np.ndarray:
        """Same statistics as reading every bit-plane (the weighted sum of independent Gaussian
        column reads is Gaussian with the weighted variances), computed as two products."""
        g, g2 = self._array(array)
        self.counts.mac_reads += levels.shape[0] * (2 * BITS if signed else BITS) * g.shape[1]
        var = LEVEL_NOISE_WEIGHT[np.abs(levels)] @ g2
        return self._currents(g, levels * (1.0 / LEVELS), var)

    # ---- checkpoints ------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        return {
            **super().state_dict(),
            "g": self.g.copy(),
            "mode": self.mode.copy(),
            "rng": self.rng.bit_generator.state,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.g = state["g"].copy()
        self.mode = state["mode"].copy()
        self.rng.bit_generator.state = state["rng"]
        self._live_scale = np.where(self.mode == 0, self.scale, 0.0)
        self._cache.clear()
