"""hil watch in a real browser (headless Chromium): a run followed from before it exists until it
ends, the numbers on the page checked against summary.json; a non-run directory."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hil.cli import main
from hil.watch.app import serve
from hil.watch.browser import find_chromium, headless_chromium

pytestmark = pytest.mark.skipif(find_chromium() is None,
                                reason="needs chromium and chromium-driver (.ci/run installs them)")

RUNNING = {"preparing", "training", "testing"}
# long enough that epoch 1 shows while the run is still written, on an idle machine too
FOLLOWED_EPOCHS = 30


@pytest.fixture(scope="module")
def browser() -> Iterator:
    with headless_chromium(1200, 900) as driver:
        yield driver


def _page(run_dir: Path):
    server = serve(run_dir, 0, refresh_seconds=0.3)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server, f"http://127.0.0.1:{server.server_port}/"


def _wait(browser, condition, timeout: float, what: str):
    """Poll the page until ``condition(browser)`` is truthy; bounded in time."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = browser.execute_script(condition)
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"page never showed {what} within {timeout} s")


EPOCH_ROWS = """
const rows = document.querySelectorAll('#epochs tbody tr');
return Array.from(rows).map(r => ({
  epoch: Number(r.dataset.row),
  test: r.querySelector('[data-key=test]').textContent,
  train: r.querySelector('[data-key=train]').textContent,
  set: r.querySelector('[data-key=set]').textContent}));
"""


def test_a_run_followed_from_start_to_end(browser, tmp_path, small_data):
    run_dir = tmp_path / "run"
    server, url = _page(run_dir)
    try:
        browser.get(url)
        message = _wait(browser, "return document.getElementById('message').hidden ? null :"
                        " document.getElementById('message').textContent", 20, "a message")
        assert "is not a directory" in message  # nothing there yet
        proc = subprocess.Popen(
            [sys.executable, "-m", "hil.cli", "train", "--network", "single", "--epochs",
             str(FOLLOWED_EPOCHS),
             "--data", str(small_data), "--out", str(run_dir), "--quiet"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            first = _wait(browser, "const r = document.querySelector("
                          "'#epochs tr[data-row=\"1\"] [data-key=test]');"
                          "return r && [r.textContent, document.getElementById('state')"
                          ".textContent];", 90, "epoch 1's accuracy")
            assert first[1] in RUNNING  # epochs to go: the run is still being written
            proc.wait(timeout=120)
        finally:
            proc.kill()
        assert proc.returncode == 0, proc.stderr.read().decode()
        _wait(browser, "return document.getElementById('state').textContent === 'done' &&"
              f" document.querySelectorAll('#epochs tbody tr').length === {FOLLOWED_EPOCHS}", 20,
              "done")
        rows = browser.execute_script(EPOCH_ROWS)
        summary = json.loads((run_dir / "summary.json").read_text())
        assert first[0] == f"{100 * summary['test_accuracy_per_epoch'][0]:.2f}"
        assert [r["epoch"] for r in rows] == list(range(1, FOLLOWED_EPOCHS + 1))
        assert [r["test"] for r in rows] == [f"{100 * a:.2f}"
                                            for a in summary["test_accuracy_per_epoch"]]
        assert [r["train"] for r in rows] == [f"{100 * a:.2f}"
                                             for a in summary["train_accuracy_per_epoch"]]
        assert sum(int(r["set"]) for r in rows) == summary["pulses"]["set"]
        # the plots are drawn by plotly.js from the package: accuracy and the PCB map
        drawn = browser.execute_script(
            "return ['fig-accuracy', 'fig-map-single', 'fig-cdf'].map(id => "
            "document.querySelectorAll('#' + id + ' .main-svg').length > 0)")
        assert drawn == [True, True, True]
        ticks = browser.execute_script(
            "return Array.from(document.querySelectorAll('#fig-map-single .ytick text'))"
            ".map(t => t.textContent)")
        assert ticks[:13] == [str(r) for r in range(1, 13)] + ["1"]
        boards = browser.execute_script(
            "return Array.from(document.querySelectorAll('#fig-map-single .annotation-text'))"
            ".map(t => t.textContent)")
        assert boards == [f"board {b}" for b in range(1, 13)]
    finally:
        server.shutdown()
        server.server_close()


def test_a_directory_that_is_no_run(browser, tmp_path):
    (tmp_path / "notes.txt").write_text("not a run")
    server, url = _page(tmp_path)
    try:
        browser.get(url)
        text = _wait(browser, "return document.getElementById('message').hidden ? null :"
                     " document.getElementById('message').textContent", 20, "a message")
        assert "is not a run directory" in text and "notes.txt" in text
        assert browser.find_element("id", "state").text == "not a run"
    finally:
        server.shutdown()
        server.server_close()


def test_screenshot_of_a_finished_run(tmp_path, small_data):
    run_dir = tmp_path / "run"
    assert main(["train", "--network", "single", "--epochs", "1", "--data", str(small_data),
                 "--out", str(run_dir), "--quiet"]) == 0
    png = tmp_path / "page.png"
    assert main(["watch", str(run_dir), "--port", "0", "--screenshot", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 50_000
