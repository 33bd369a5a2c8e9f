"""The fault drill's short mode: one fault of each kind, nothing lost, no stray pulse."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_fault_drill_short_mode(capsys, monkeypatch):
    spec = importlib.util.spec_from_file_location("faults", ROOT / "benchmarks" / "faults.py")
    faults = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(faults)
    monkeypatch.setenv("HIL_REGISTRY", "unused")  # the drill sets its own
    assert faults.run(["--short"]) == 0
    out = capsys.readouterr().out
    assert "records lost 0, stray pulses 0" in out
    assert faults.ROWS and all(r["injected"] > 0 for r in faults.ROWS)
