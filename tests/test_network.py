from __future__ import annotations

import numpy as np
import pytest

from hil.errors import HilError
from hil.network import (
    NetworkSpec,
    activation_levels,
    bit_planes,
    deltas,
    forward,
    pixel_levels,
    plane_weights,
)


def _loss(xs, ws, z):
    return 0.5 * ((z - forward(xs, ws)[-1]) ** 2).sum()


@pytest.mark.parametrize("sizes", [(3, 2), (4, 3, 2)])
def test_backprop_of_eqs_1_to_3_matches_finite_differences(sizes):
    rng = np.random.default_rng(0)
    xs = rng.random((1, sizes[0]))
    z = np.array([[1.0, -1.0]])
    ws = [rng.normal(0, 0.7, (a + 1, b)) for a, b in zip(sizes, sizes[1:], strict=False)]
    acts = forward(xs, ws)
    ds = deltas(acts, ws, z)
    for layer, w in enumerate(ws):
        update = np.outer(acts[layer][0], ds[layer][0])  # eqs. 2-3 with eta = 1
        numeric = np.zeros_like(w)
        for idx in np.ndindex(w.shape):
            w[idx] += 1e-6
            up = _loss(xs, ws, z)
            w[idx] -= 2e-6
            down = _loss(xs, ws, z)
            w[idx] += 1e-6
            numeric[idx] = -(up - down) / 2e-6
        assert np.allclose(update, numeric, atol=1e-7)


def test_levels_and_bit_planes_encode_pixels_and_signed_activations():
    px = np.array([[0, 1, 7, 15, 16] + [0] * 59])
    lv = pixel_levels(px)
    assert lv.shape == (1, 65) and lv[0, :5].tolist() == [0, 1, 7, 15, 15] and lv[0, 64] == 15
    planes = bit_planes(lv, signed=False)
    assert planes.shape == (1, 4, 65) and set(np.unique(planes)) <= {0.0, 1.0}
    assert np.allclose(plane_weights(False) @ planes[0], lv[0] / 15)
    h = np.array([[0.5, -0.25, 1.0, -1.0, 0.0]])
    q = activation_levels(h)
    assert q[0].tolist() == [8, -4, 15, -15, 0, 15]  # rint(7.5) = 8, bias last
    sp = bit_planes(q, signed=True)
    assert sp.shape == (1, 8, 6)
    assert np.allclose(plane_weights(True) @ sp[0], q[0] / 15)
    assert not (sp[0, :4] * sp[0, 4:]).any()  # a row is driven in one pass only


@pytest.mark.parametrize(("net", "hidden", "name", "shapes"), [
    ("single", None, "65-10", [(65, 20)]),
    ("two", None, "65-20-10", [(65, 40), (21, 20)]),
    ("two", 60, "65-60-10", [(65, 120), (61, 20)]),
    ("65-40-10", None, "65-40-10", [(65, 80), (41, 20)]),
])
def test_network_names_and_array_shapes(net, hidden, name, shapes):
    spec = NetworkSpec.parse(net, hidden)
    assert spec.name == name and spec.array_shapes == shapes


@pytest.mark.parametrize(("net", "hidden"), [("three", None), ("two", 3), ("two", 101),
                                             ("single", 20), ("65-20-10", 30)])
def test_bad_network_options_are_refused(net, hidden):
    with pytest.raises(HilError):
        NetworkSpec.parse(net, hidden)
