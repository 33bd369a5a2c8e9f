"""Shared fixtures: small optdigits-format files so training tests run in seconds."""

from __future__ import annotations

import os
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


@pytest.fixture(scope="session")
def firmware_host() -> Path:
    """The MCU firmware's host build (``make -C firmware host``), built once per session."""
    import shutil
    import subprocess

    cc = os.environ.get("CC", "cc")
    if shutil.which(cc) is None or shutil.which("make") is None:
        pytest.skip(f"no C compiler ({cc}) or make on this machine: the firmware's host build "
                    "cannot be built")
    root = Path(__file__).resolve().parents[1] / "firmware"
    done = subprocess.run(["make", "-s", "-C", str(root), "host"], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return root / "build" / "hil-mux-host"
