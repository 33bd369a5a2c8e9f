"""Shared fixtures: small optdigits-format files so training tests run in seconds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_digits as sk_load


def write_optdigits(directory: Path, n_train: int, n_test: int) -> Path:
    ds = sk_load()
    rows = np.hstack([ds.data.astype(int), ds.target[:, None]])
    directory.mkdir(parents=True, exist_ok=True)
    for name, part in (("optdigits.tra", rows[:n_train]),
                       ("optdigits.tes", rows[n_train:n_train + n_test])):
        (directory / name).write_text("\n".join(",".join(map(str, r)) for r in part) + "\n")
    return directory


@pytest.fixture(autouse=True)
def private_registry(tmp_path_factory, monkeypatch):
    """No test reads or writes the device registry of the machine it runs on."""
    monkeypatch.setenv("HIL_REGISTRY", str(tmp_path_factory.mktemp("registry") / "devices.sqlite"))


@pytest.fixture(scope="session")
def small_data(tmp_path_factory) -> Path:
    """A 300/200 image optdigits directory in the UCI format."""
    return write_optdigits(tmp_path_factory.mktemp("digits"), 300, 200)
