"""Network shapes, input encoding on bit lines, and the backprop of the paper's eqs. 1-3.

Inputs reach the arrays as *binary* bit-line patterns: a 4-bit pixel (0-16 clipped to 15) is
applied as four bit-planes whose column currents the host weights by 1, 2, 4, 8 and sums; a
signed hidden activation is quantised to 4 bits and applied in two passes (positive part,
negative part). A bias row is driven in every plane of the positive pass, so it acts as input 1.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from hil.errors import HilError

BITS = 4
LEVELS = 2**BITS - 1  # 15
PLANE_WEIGHTS = 2.0 ** np.arange(BITS) / LEVELS  # plane b carries weight 2^b / 15
SIGNED_WEIGHTS = np.concatenate([PLANE_WEIGHTS, -PLANE_WEIGHTS])
N_PIXELS, N_CLASSES = 64, 10


NOTATION = ("single (= 65-10), two (= 65-20-10), or layer sizes with the bias row, 65-H-10 for H "
            "hidden neurons (5-100)")
"""The one way networks are named in help, errors and records: layer sizes, bias included."""


@dataclass(frozen=True)
class NetworkSpec:
    """Layer sizes without bias: (64, 10) single layer, (64, H, 10) two layers."""

    sizes: tuple[int, ...]

    @classmethod
    def parse(cls, network: str, hidden: int | None = None) -> NetworkSpec:
        if network == "single":
            spec = cls((N_PIXELS, N_CLASSES))
        elif network == "two":
            spec = cls((N_PIXELS, 20 if hidden is None else hidden, N_CLASSES))
        elif m := re.fullmatch(r"65-(?:(\d+)-)?10", network):
            spec = cls((N_PIXELS, int(m[1]), N_CLASSES) if m[1] else (N_PIXELS, N_CLASSES))
            if hidden is not None and m[1] and hidden != int(m[1]):
                raise HilError(f"--network {network} and --hidden {hidden} disagree")
            if hidden is not None and not m[1]:
                raise HilError("--hidden needs a two-layer network")
        else:
            raise HilError(f"--network {network!r}: expected {NOTATION}")
        if hidden is not None and network == "single":
            raise HilError("--hidden needs a two-layer network")
        if len(spec.sizes) == 3 and not 5 <= spec.sizes[1] <= 100:
            raise HilError(f"hidden neurons must be 5-100, got {spec.sizes[1]}")
        return spec

    @property
    def name(self) -> str:
        return "-".join(str(s) for s in (self.sizes[0] + 1, *self.sizes[1:]))

    @property
    def bench_key(self) -> str:
        return "single" if len(self.sizes) == 2 else "two"

    @property
    def array_shapes(self) -> list[tuple[int, int]]:
        """Each layer is an array of (inputs + bias) rows and a G+/G- column pair per output."""
        return [(n_in + 1, 2 * n_out) for n_in, n_out in zip(self.sizes, self.sizes[1:],
                                                            strict=False)]


def pixel_levels(pixels: np.ndarray) -> np.ndarray:
    """(n, 64) pixels 0-16 -> (n, 65) levels 0-15 with the bias row (level 15) last."""
    q = np.minimum(np.asarray(pixels, dtype=np.int64), LEVELS)
    return np.hstack([q, np.full((q.shape[0], 1), LEVELS, dtype=np.int64)])


def activation_levels(h: np.ndarray) -> np.ndarray:
    """(n, H) activations in [-1, 1] -> (n, H + 1) signed levels -15..15, bias row last."""
    q = np.empty((h.shape[0], h.shape[1] + 1), dtype=np.int64)
    np.rint(h * LEVELS, out=q[:, :-1], casting="unsafe")
    q[:, -1] = LEVELS
    return q


def plane_weights(signed: bool) -> np.ndarray:
    """Weight of each bit-plane's column currents: 2^b / 15, negative for the negative pass."""
    return SIGNED_WEIGHTS if signed else PLANE_WEIGHTS


def bit_planes(levels: np.ndarray, signed: bool) -> np.ndarray:
    """Binary bit-line patterns of (n, rows) levels: (n, 4, rows) for levels 0-15, or
    (n, 8, rows) for signed levels (the positive part's 4 planes, then the negative part's)."""
    levels = np.asarray(levels, dtype=np.int64)
    shifts = np.arange(BITS)[None, :, None]
    if not signed:
        return ((levels[:, None, :] >> shifts) & 1).astype(np.float64)
    pos = (np.maximum(levels, 0)[:, None, :] >> shifts) & 1
    neg = (np.maximum(-levels, 0)[:, None, :] >> shifts) & 1
    return np.concatenate([pos, neg], axis=1).astype(np.float64)


# Sum over planes of (plane weight)^2 for the bits of a level: how the read noise of the planes
# a row takes part in adds up (a signed row is driven in one pass only).
LEVEL_NOISE_WEIGHT = np.array(
    [sum(PLANE_WEIGHTS[b] ** 2 for b in range(BITS) if (v >> b) & 1) for v in range(LEVELS + 1)]
)


def forward(xs: np.ndarray, weights: list[np.ndarray]) -> list[np.ndarray]:
    """Host forward pass; ``xs`` (n, inputs), weights (inputs + 1, outputs) with bias last.
    Returns the activations of every layer, input (with bias) first."""
    acts = [np.hstack([xs, np.ones((xs.shape[0], 1))])]
    for i, w in enumerate(weights):
        y = np.tanh(acts[-1] @ w)
        acts.append(np.hstack([y, np.ones((y.shape[0], 1))]) if i < len(weights) - 1 else y)
    return acts


def deltas(acts: list[np.ndarray], weights: list[np.ndarray], target: np.ndarray) -> list:
    """Error terms of eqs. 2-3 for every layer, output layer last (``weights[0]`` is not used:
    only the weights above a layer enter its error term).

    Output: delta_k = (z_k - y_k)(1 - y_k^2). Hidden: delta_j = sum_k delta_k w_jk (1 - y_j^2).
    The weight update of eqs. 2-3 is then eta * outer(y_i, delta_j) = -eta dE/dw.
    """
    y = acts[-1]
    d = [(target - y) * (1 - y * y)]
    for layer in range(len(weights) - 1, 0, -1):
        h = acts[layer][:, :-1]
        d.insert(0, (d[0] @ weights[layer][:-1].T) * (1 - h * h))
    return d


def targets(labels: np.ndarray) -> np.ndarray:
    """Targets +1 for the true class and -1 for the others."""
    z = -np.ones((len(labels), N_CLASSES))
    z[np.arange(len(labels)), labels] = 1.0
    return z
