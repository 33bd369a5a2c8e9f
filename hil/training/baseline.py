"""Plain numpy fp32 on-line SGD of the same network: the yardstick for accuracy and speed.

Same shapes, same tanh and targets, same per-image backprop (eqs. 1-3) and learning-rate
schedule as the in-situ trainer, with exact 32-bit weights instead of device pairs.
"""

from __future__ import annotations

import numpy as np

from hil.network import LEVELS, NetworkSpec, forward, pixel_levels, targets
from hil.training.data import Digits


def train_fp32(
    digits: Digits,
    spec: NetworkSpec,
    epochs: int,
    seed: int = 0,
    lr: float = 0.02,
    lr_decay: float = 0.25,
    init_scale: float = 0.1,
) -> tuple[list[float], list[np.ndarray]]:
    """Test accuracy after each epoch, and the trained weights (inputs + 1, outputs) per layer,
    bias row last."""
    rng = np.random.default_rng(seed)
    f32 = np.float32
    ws = [(init_scale * rng.standard_normal((n_in + 1, n_out))).astype(f32)
          for n_in, n_out in zip(spec.sizes, spec.sizes[1:], strict=False)]
    x_train = _inputs(digits.x_train)
    z = targets(digits.y_train).astype(f32)
    one = np.ones(1, dtype=f32)
    accuracy = []
    for epoch in range(epochs):
        order = np.random.default_rng([seed, epoch]).permutation(len(z))
        for i, idx in enumerate(order):
            eta = f32(lr / (1 + lr_decay * (epoch + i / len(order))))
            acts = [x_train[idx]]
            for w in ws[:-1]:
                acts.append(np.concatenate([np.tanh(acts[-1] @ w), one]))
            y = np.tanh(acts[-1] @ ws[-1])
            d = (z[idx] - y) * (1 - y * y)
            for layer in range(len(ws) - 1, -1, -1):
                grad = np.outer(acts[layer], d)
                if layer:
                    h = acts[layer][:-1]
                    d = (ws[layer][:-1] @ d) * (1 - h * h)
                ws[layer] += eta * grad
        accuracy.append(fp32_accuracy(digits, ws))
    return accuracy, ws


def fp32_accuracy(digits: Digits, weights: list[np.ndarray]) -> float:
    """Test accuracy of float weights on the inputs as the bench applies them."""
    y = forward(_inputs(digits.x_test)[:, :-1], weights)[-1]
    return float((y.argmax(1) == digits.y_test).mean())


def _inputs(pixels: np.ndarray) -> np.ndarray:
    """Pixels as the bench applies them (4-bit levels / 15), bias input last."""
    return (pixel_levels(pixels) / LEVELS).astype(np.float32)
