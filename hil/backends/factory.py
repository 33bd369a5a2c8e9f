"""The backend a bench file names, built here so that the interface module imports none of its
implementations (and each implementation imports only the interface)."""

from __future__ import annotations

from typing import Any

from hil.backends.base import Backend
from hil.bench import Bench
from hil.errors import HilError


def make_backend(bench: Bench, **kwargs: Any) -> Backend:
    """The backend the bench file names; the instruments' drivers are imported only when used."""
    if bench.backend == "sim":
        from hil.backends.sim import SimBackend

        return SimBackend(bench, **kwargs)
    if bench.backend == "instruments":
        from hil.backends.instruments import InstrumentBackend
        from hil.backends.sequencer import Sequencer

        return Sequencer(InstrumentBackend(bench, **kwargs))
    raise HilError(f"{bench.path}: bench.backend: {bench.backend!r} is not available")
