"""The training benchmark's short mode runs end to end: both comparisons printed side by side."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from hil.watch.browser import find_chromium

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(find_chromium() is None,
                    reason="needs chromium and chromium-driver (.ci/run installs them)")
def test_short_mode_prints_both_comparisons(small_data):
    out = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_training.py"), "--short", "--data",
         str(small_data)], capture_output=True, text=True, timeout=300, check=True).stdout
    assert re.search(r"ratio in-situ / fp32: \d+\.\d\d", out)
    row = re.search(r"training wall µs/image\s+([\d.]+)\s+([\d.]+)\s+([+-][\d.]+) %", out)
    assert row and float(row[1]) > 0 and float(row[2]) > 0
    assert "alone" in out and "page open" in out and "of a core" in out
