"""Handwritten digits: the UCI optdigits files, or scikit-learn's copy when they are absent.

UCI files (``optdigits.tra`` 3823 lines, ``optdigits.tes`` 1797 lines): each line holds 65
comma-separated integers, 64 pixels of an 8x8 image (0-16, row-major) and the label (0-9).

Fallback: scikit-learn ships the 1797 images of ``optdigits.tes`` only. Without the UCI files the
suite splits them in a fixed, documented way: a permutation with seed 0, the first 1200 images
for training and the other 597 for testing. Accuracy on that split is *not* comparable with the
paper's (different writers, smaller sets), which is why the run records name the data set.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hil.errors import DataError

ENV = "HIL_OPTDIGITS_DIR"
FALLBACK_TRAIN = 1200


@dataclass(frozen=True)
class Digits:
    name: str  # "uci-optdigits" or "sklearn-digits-fallback"
    x_train: np.ndarray  # (n, 64) int, 0-16
    y_train: np.ndarray  # (n,) int, 0-9
    x_test: np.ndarray
    y_test: np.ndarray
    sha256: str  # identity of the data actually used

    def identity(self) -> dict[str, object]:
        return {"name": self.name, "train": len(self.y_train), "test": len(self.y_test),
                "sha256": self.sha256}


def read_optdigits(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Parse one UCI file; a malformed line is an error naming file and line."""
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise DataError(f"{path}: cannot read: {exc.strerror}") from None
    rows = []
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        fields = line.split(",")
        if len(fields) != 65:
            raise DataError(f"{path}: line {n}: expected 65 fields, found {len(fields)}")
        try:
            values = [int(f) for f in fields]
        except ValueError:
            raise DataError(f"{path}: line {n}: fields must be integers") from None
        if not all(0 <= v <= 16 for v in values[:64]):
            raise DataError(f"{path}: line {n}: pixel values must be 0-16")
        if not 0 <= values[64] <= 9:
            raise DataError(f"{path}: line {n}: label must be 0-9")
        rows.append(values)
    if not rows:
        raise DataError(f"{path}: no data lines")
    a = np.array(rows, dtype=np.int64)
    return a[:, :64], a[:, 64]


def load_digits(directory: str | Path | None = None, say=print) -> Digits:
    """UCI optdigits from ``directory`` (or ``$HIL_OPTDIGITS_DIR``), else the sklearn fallback."""
    directory = directory or os.environ.get(ENV)
    if directory:
        d = Path(directory)
        tra, tes = d / "optdigits.tra", d / "optdigits.tes"
        for f in (tra, tes):
            if not f.is_file():
                raise DataError(f"{f}: not found (expected UCI optdigits.tra and optdigits.tes)")
        xtr, ytr = read_optdigits(tra)
        xte, yte = read_optdigits(tes)
        digest = hashlib.sha256(tra.read_bytes() + tes.read_bytes()).hexdigest()
        return Digits("uci-optdigits", xtr, ytr, xte, yte, digest)
    from sklearn.datasets import load_digits as sk_load

    say(
        f"note: no optdigits directory given (--data or {ENV}); using scikit-learn's 1797-image "
        f"copy split {FALLBACK_TRAIN}/{1797 - FALLBACK_TRAIN} (seed 0), not the paper's split"
    )
    ds = sk_load()
    x = ds.data.astype(np.int64)
    y = ds.target.astype(np.int64)
    order = np.random.default_rng(0).permutation(len(y))
    x, y = x[order], y[order]
    digest = hashlib.sha256(x.tobytes() + y.tobytes()).hexdigest()
    return Digits(
        "sklearn-digits-fallback",
        x[:FALLBACK_TRAIN], y[:FALLBACK_TRAIN], x[FALLBACK_TRAIN:], y[FALLBACK_TRAIN:], digest,
    )


def write_subset(directory: str | Path, n_train: int, n_test: int) -> Path:
    """A small data set in the UCI file format (the first ``n_train`` + ``n_test`` images of
    scikit-learn's copy), for rehearsals and fault drills that must train in seconds."""
    from sklearn.datasets import load_digits as sk_load

    ds = sk_load()
    rows = np.hstack([ds.data.astype(int), ds.target[:, None]])
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for name, part in (("optdigits.tra", rows[:n_train]),
                       ("optdigits.tes", rows[n_train:n_train + n_test])):
        (directory / name).write_text("\n".join(",".join(map(str, r)) for r in part) + "\n")
    return directory
