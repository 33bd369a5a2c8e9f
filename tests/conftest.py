"""Shared fixtures: small optdigits-format files so training tests run in seconds."""

from __future__ import annotations

from pathlib import Path

import pytest

from hil.training.data import write_subset as write_optdigits  # noqa: F401 (tests import it)


@pytest.fixture(autouse=True)
def private_registry(tmp_path_factory, monkeypatch):
    """No test reads or writes the device registry of the machine it runs on."""
    monkeypatch.setenv("HIL_REGISTRY", str(tmp_path_factory.mktemp("registry") / "devices.sqlite"))


@pytest.fixture(scope="session")
def small_data(tmp_path_factory) -> Path:
    """A 300/200 image optdigits directory in the UCI format."""
    return write_optdigits(tmp_path_factory.mktemp("digits"), 300, 200)
