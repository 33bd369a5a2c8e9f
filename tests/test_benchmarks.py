"""Every benchmark runs in its short mode, so none rots unseen (they measure nothing here)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# script -> whether it trains on optdigits (then the test's small copy is passed with --data)
BENCHMARKS = {
    "bench_sequencing.py": True,
    "bench_studies.py": True,
    "bench_training.py": True,
    "characterize_two_layer.py": False,
    "faults.py": False,  # writes its own small data sets; exits 1 on a lost record or stray pulse
}


def test_every_benchmark_is_run_here():
    assert set(BENCHMARKS) == {p.name for p in (ROOT / "benchmarks").glob("*.py")}


@pytest.mark.parametrize("script", sorted(BENCHMARKS))
def test_benchmark_short_mode_runs(script, small_data, tmp_path):
    data = ["--data", str(small_data)] if BENCHMARKS[script] else []
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), "--short", *data],
        cwd=tmp_path, capture_output=True, text=True, timeout=600,
        env={**os.environ, "HIL_REGISTRY": str(tmp_path / "registry.sqlite")})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip(), "a benchmark prints what it measured"
    for line in SIDE_BY_SIDE.get(script, ()):
        assert line in proc.stdout, line


# rows a benchmark prints side by side, checked here too
SIDE_BY_SIDE = {
    "bench_training.py": ("ratio in-situ / fp32:", "alone   page open", "training wall µs/image",
                          "of a core"),
}
