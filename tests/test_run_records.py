"""Runs are never overwritten, say how far they got, survive a full disk and continue exactly."""

from __future__ import annotations

import json
import sqlite3

import pytest

from hil.cli import main
from hil.records import RunStore, disk_full_after


def _one_line_error(capsys, after_progress: bool = False) -> str:
    """The one error line (after the progress output of a run that had started)."""
    err = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in err if line.startswith("hil: error:")]
    assert len(errors) == 1 and err[-1] == errors[0] and "Traceback" not in "".join(err), err
    assert after_progress or len(err) == 1, err
    return errors[0]


def _summary(run) -> dict:
    return json.loads((run / "summary.json").read_text())


def test_a_run_says_it_is_complete_and_is_not_resumed_again(tmp_path, small_data, capsys):
    run = tmp_path / "r"
    common = ["--network", "single", "--data", str(small_data)]
    assert main(["train", *common, "--epochs", "1", "--out", str(run)]) == 0
    assert RunStore(run).state == "complete"
    capsys.readouterr()
    assert main(["train", "--resume", str(run)]) == 2
    assert "complete (1 epochs)" in _one_line_error(capsys)
    assert main(["train", "--resume", str(run), "--epochs", "1"]) == 2  # nothing to add either
    _one_line_error(capsys)


def test_a_finished_run_continues_exactly_to_more_epochs(tmp_path, small_data, capsys):
    common = ["--network", "single", "--data", str(small_data), "--seed", "4",
              "--failures", "0.05:0.5"]
    assert main(["train", *common, "--epochs", "3", "--out", str(tmp_path / "three")]) == 0
    assert main(["train", *common, "--epochs", "2", "--out", str(tmp_path / "two")]) == 0
    assert main(["train", "--resume", str(tmp_path / "two"), "--epochs", "3"]) == 0
    assert _summary(tmp_path / "two") == _summary(tmp_path / "three")
    assert RunStore(tmp_path / "two").meta()["params"]["epochs"] == 3
    capsys.readouterr()
    assert main(["train", "--resume", str(tmp_path / "two"), "--epochs", "2"]) == 2
    assert "3 epochs are already trained" in _one_line_error(capsys)


@pytest.mark.parametrize("args", [["--seed", "-1"], ["--epochs", "-3"]])
def test_negative_seed_or_epochs_is_one_line(tmp_path, small_data, capsys, args):
    rc = main(["train", "--network", "single", "--data", str(small_data),
               "--out", str(tmp_path / "r"), *args])
    assert rc == 2 and not (tmp_path / "r").exists()
    _one_line_error(capsys)


def test_an_existing_directory_or_an_unwritable_out_is_refused_before_anything(
        tmp_path, small_data, capsys):
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    (tmp_path / "file").write_text("x")
    capsys.readouterr()
    for out, words in ((tmp_path / "busy", "not empty"), (tmp_path / "file" / "r", "not a dir")):
        assert main(["train", "--network", "single", "--data", str(small_data),
                     "--out", str(out)]) == 2
        assert words in _one_line_error(capsys)
    assert [p.name for p in (tmp_path / "busy").iterdir()] == ["notes.txt"]


def test_a_full_disk_is_one_line_and_the_run_resumes_exactly(tmp_path, small_data, capsys,
                                                               monkeypatch):
    common = ["--network", "single", "--data", str(small_data), "--epochs", "2",
              "--checkpoint-every", "100"]
    assert main(["train", *common, "--out", str(tmp_path / "whole")]) == 0
    with monkeypatch.context() as m:
        m.setattr(RunStore, "save_checkpoint", disk_full_after(2))
        capsys.readouterr()
        assert main(["train", *common, "--out", str(tmp_path / "full")]) == 2
    err = _one_line_error(capsys, after_progress=True)
    assert "full" in err and "intact" in err
    db = sqlite3.connect(tmp_path / "full" / "run.sqlite")
    assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    db.close()
    assert RunStore(tmp_path / "full").state in ("failed", "running")
    assert main(["train", "--resume", str(tmp_path / "full")]) == 0
    assert _summary(tmp_path / "full") == _summary(tmp_path / "whole")


def test_a_disk_full_at_the_start_leaves_no_half_created_run(tmp_path, small_data, capsys,
                                                             monkeypatch):
    real = sqlite3.connect

    def tiny(path, *a, **k):
        db = real(path, *a, **k)
        db.execute("PRAGMA max_page_count = 2")
        return db

    monkeypatch.setattr("hil.records.sqlite3.connect", tiny)
    capsys.readouterr()
    out = tmp_path / "runs" / "r"
    assert main(["train", "--network", "single", "--data", str(small_data),
                 "--out", str(out)]) == 2
    assert "cannot write a run there" in _one_line_error(capsys)
    assert not (tmp_path / "runs").exists()


def test_a_start_killed_before_its_first_commit_leaves_no_run_to_trip_over(tmp_path,
                                                                           small_data, capsys):
    from hil.records import STARTING

    out = tmp_path / "r"
    out.mkdir()
    (out / STARTING).write_bytes(b"")  # what a kill between connect and commit leaves
    assert main(["train", "--resume", str(out)]) == 2  # not a run: nothing to resume
    assert "not a run directory" in _one_line_error(capsys)
    assert main(["train", "--network", "single", "--epochs", "1", "--data", str(small_data),
                 "--out", str(out)]) == 0
    assert RunStore(out).state == "complete" and not (out / STARTING).exists()
