"""Response curves: how a device's conductance walks under repeated SET or RESET pulses.

The simulated backend, like the paper's own simulation, assigns each device one of a small set of
*measured* curves and moves the device along it: a device at conductance G sits at the pulse
position where its curve passes G, and a pulse advances it by (about) one position. State
dependence, soft bounds and saturation therefore come straight from the measurement.

File format (CSV, one row per point, header required)::

    curve,polarity,pulse,conductance_uS
    1,set,0,1.02
    1,set,1,8.31
    ...
    1,reset,0,349.7

``curve`` names the measured device (any integer), ``polarity`` is ``set`` or ``reset``,
``pulse`` counts pulses from 0 (contiguous), ``conductance_uS`` is the memristor's conductance
read at the read voltage after that many pulses (series resistance removed). Every curve needs
both polarities. Measured points are noisy; on loading each branch is made monotone (running
maximum for SET, running minimum for RESET) so that a position is well defined.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from hil.errors import DataError

COLUMNS = ["curve", "polarity", "pulse", "conductance_uS"]


@dataclass(frozen=True)
class Curves:
    """Monotone SET and RESET branches of each measured curve, as lists of numpy arrays."""

    ids: tuple[int, ...]
    set: tuple[np.ndarray, ...]  # increasing conductance vs pulse
    reset: tuple[np.ndarray, ...]  # decreasing conductance vs pulse

    def to_frame(self) -> pd.DataFrame:
        parts = []
        for cid, s, r in zip(self.ids, self.set, self.reset, strict=True):
            for pol, g in (("set", s), ("reset", r)):
                parts.append(pd.DataFrame(
                    {"curve": cid, "polarity": pol, "pulse": np.arange(len(g)),
                     "conductance_uS": np.round(g, 4)}
                ))
        return pd.concat(parts, ignore_index=True)[COLUMNS]

    def write(self, path: str | Path) -> None:
        self.to_frame().to_csv(path, index=False)


def load_curves(path: str | Path) -> Curves:
    try:
        df = pd.read_csv(path)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise DataError(f"{path}: cannot read response curves: {exc}") from None
    return curves_from_frame(df, str(path))


def curves_from_frame(df: pd.DataFrame, source: str) -> Curves:
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise DataError(f"{source}: response curves lack column(s) {', '.join(missing)}")
    bad = ~df["polarity"].isin(["set", "reset"])
    if bad.any():
        line = int(np.flatnonzero(bad.to_numpy())[0]) + 2
        raise DataError(f"{source}: line {line}: polarity must be 'set' or 'reset'")
    g = pd.to_numeric(df["conductance_uS"], errors="coerce")
    if g.isna().any() or (g <= 0).any():
        line = int(np.flatnonzero((g.isna() | (g <= 0)).to_numpy())[0]) + 2
        raise DataError(f"{source}: line {line}: conductance_uS must be a positive number")
    ids, sets, resets = [], [], []
    for cid, grp in df.assign(conductance_uS=g).groupby("curve", sort=True):
        branches = {}
        for pol in ("set", "reset"):
            b = grp[grp["polarity"] == pol].sort_values("pulse")
            if len(b) < 2 or not np.array_equal(b["pulse"].to_numpy(), np.arange(len(b))):
                raise DataError(
                    f"{source}: curve {cid} {pol}: need pulses 0..N (at least 2), contiguous"
                )
            branches[pol] = b["conductance_uS"].to_numpy(dtype=np.float64)
        ids.append(int(cid))
        sets.append(np.maximum.accumulate(branches["set"]))
        resets.append(np.minimum.accumulate(branches["reset"]))
    if not ids:
        raise DataError(f"{source}: no response curves")
    return Curves(tuple(ids), tuple(sets), tuple(resets))


def synthesize_default_curves(n_curves: int = 10, seed: int = 2022) -> Curves:
    """The shipped default curves (``data/curves-default.csv``).

    Ten devices shaped after the paper's Fig. 2c: an exponential approach to a
    soft ceiling, so a SET from ~1 uS needs about 100 pulses to pass 90 % of the 1-350 uS window,
    the SET step near 300 uS is under a third of the step near 10 uS, RESET mirrors it, and each
    point carries 1 % measurement noise. Regenerate with ``python -m hil.curves OUT.csv``.
    """
    rng = np.random.default_rng(seed)
    sets, resets = [], []
    for _ in range(n_curves):
        g_min = rng.uniform(0.9, 1.3)
        g_max = 350.0 * rng.uniform(0.95, 1.05)
        tau = 48.0 * rng.uniform(0.85, 1.15)
        ceiling, floor = g_max + 10.0, g_min - 10.0
        n = np.arange(0, 400)
        s = ceiling - (ceiling - g_min) * np.exp(-n / tau)
        s = s[: np.searchsorted(s, g_max) + 1].clip(max=g_max)
        r = floor + (g_max - floor) * np.exp(-n / tau)
        r = r[: len(r) - np.searchsorted(r[::-1], g_min) + 1].clip(min=g_min)
        sets.append(s * (1 + 0.01 * rng.standard_normal(len(s))))
        resets.append(r * (1 + 0.01 * rng.standard_normal(len(r))))
    return curves_from_frame(
        Curves(tuple(range(1, n_curves + 1)), tuple(sets), tuple(resets)).to_frame(), "synth"
    )


if __name__ == "__main__":
    import sys

    synthesize_default_curves().write(sys.argv[1])
