"""One set of conventions across the hil command: defaults in every help, fractions everywhere,
one network notation, --quiet and log.txt, progress for long phases, plots traceable to the PCB,
one file-name convention, and a short run that says why it is short."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytest

from hil.bench import load_bench
from hil.cli import main
from hil.cli.main import build_parser
from hil.cli.train import ENOUGH_IMAGES, short_run_hint
from hil.errors import HilError
from hil.faults import FailureRate, read_fault_map
from hil.network import NOTATION, NetworkSpec
from hil.pcb import layouts
from hil.training import plots

ROOT = Path(__file__).resolve().parents[1]


def _commands(parser: argparse.ArgumentParser, path=()):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _commands(sub, (*path, name))
    if path:
        yield path, parser


def test_every_option_of_every_command_shows_its_default():
    missing = [f"hil {' '.join(path)} {a.option_strings[0]}"
               for path, parser in _commands(build_parser()) for a in parser._actions
               if a.option_strings and not isinstance(a, argparse._HelpAction)
               and "default:" not in (a.help or "") and "(required)" not in (a.help or "")]
    assert missing == []


def test_every_command_takes_quiet():
    for path, parser in _commands(build_parser()):
        if not any(isinstance(a, argparse._SubParsersAction) for a in parser._actions):
            assert "--quiet" in parser._option_string_actions, path


@pytest.mark.parametrize("argv, expected", [
    (["--failures", "6.15%"], "expected fractions 0-1, not percentages (6.15 % is 0.0615)"),
    (["--failures", "6.15:0.5"], "not percentages (6.15 % is 0.0615)"),
    (["--failures", "0.06:50"], "not percentages (50 % is 0.5)"),
])
def test_percentages_are_refused_in_one_line_naming_the_fraction(argv, expected, capsys):
    assert main(["train", *argv, "--dry-run"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].endswith(expected) and err[-1].startswith("hil: error: --failures")


def test_fractions_parse_as_fractions():
    assert FailureRate.parse("0.0615:0.5") == FailureRate(0.0615, 0.5)


def test_one_network_notation_in_help_errors_and_records():
    help_text = build_parser()._subparsers._group_actions[0].choices["train"].format_help()
    assert "65-10" in re.sub(r"\s+", " ", help_text) and "65-H-10" in help_text
    with pytest.raises(HilError) as err:
        NetworkSpec.parse("65-xx")
    assert NOTATION in str(err.value)
    for name, hidden, record in (("single", None, "65-10"), ("two", None, "65-20-10"),
                                 ("two", 40, "65-40-10")):
        spec = NetworkSpec.parse(name, hidden)
        assert spec.name == record and NetworkSpec.parse(record) == spec
        assert record in NOTATION or re.fullmatch(r"65-\d+-10", record)


def test_a_fault_map_board_outside_the_network_says_so(tmp_path):
    bench = load_bench().for_network("single", [(65, 20)])
    path = tmp_path / "faults.csv"
    path.write_text("board,row,col,mode\n13,1,1,stuck_on\n")
    with pytest.raises(HilError, match=r"board 13 is on bench \S+ but not in network single "
                                       r"\(its boards: 1, 2,"):
        read_fault_map(path, bench)
    path.write_text("board,row,col,mode\n999,1,1,stuck_on\n")
    with pytest.raises(HilError, match="board 999 is not on bench"):
        read_fault_map(path, bench)


def test_a_short_run_says_why_it_is_short():
    short = {"epochs": 1, "data": {"train": 1200}, "test_accuracy": 0.19, "update": "mixed"}
    hint = short_run_hint(short)
    assert "1200 training images" in hint and "--epochs 3" in hint
    assert short_run_hint({**short, "test_accuracy": 0.9}) is None
    assert short_run_hint({**short, "epochs": 3}) is None  # long enough: the cause is elsewhere
    assert ENOUGH_IMAGES <= 3823  # one epoch of the UCI split is enough


def test_train_writes_log_and_quiet_keeps_the_terminal_to_results(tmp_path, small_data, capsys):
    out = tmp_path / "run"
    assert main(["train", "--network", "single", "--epochs", "2", "--data", str(small_data),
                 "--out", str(out), "--quiet"]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    assert captured.out.startswith("65-10: test accuracy")
    log = (out / "log.txt").read_text()
    assert captured.out.strip() in log
    # progress was kept for every phase longer than a second: training, the test pass, plots
    assert "preparing the arrays" in log and "epoch   2: test" in log
    names = sorted(p.name for p in out.iterdir())
    assert names == ["accuracy.png", "conductance-cdf.png", "conductance-maps.png", "log.txt",
                     "run.sqlite", "summary.json"]


@pytest.fixture(scope="module")
def loud_run(tmp_path_factory, small_data) -> Path:
    """A short two-layer run with its progress shown (and so logged)."""
    out = tmp_path_factory.mktemp("loud") / "run"
    assert main(["train", "--network", "two", "--hidden", "5", "--epochs", "1", "--data",
                 str(small_data), "--out", str(out)]) == 0
    return out


def test_progress_bars_cover_the_test_pass_and_the_plots(loud_run):
    log = (loud_run / "log.txt").read_text()
    assert "test pass, epoch 1: 100%" in log and "plots: 100%" in log and "train: 100%" in log


FILE_NAME = re.compile(r"[a-z0-9]+(-[a-z0-9]+)*\.(png|csv|json|sqlite|txt|parquet|md)")


def test_one_file_name_convention_across_commands(tmp_path, loud_run):
    char = tmp_path / "char"
    assert main(["characterize", "--boards", "1", "--out", str(char)]) == 0
    assert "plots: 100%" in (char / "log.txt").read_text()  # no silent map drawing
    names = [p.name for d in (loud_run, char) for p in d.rglob("*") if p.is_file()]
    assert "conductance-cdf.png" in names and "log.txt" in names
    assert [n for n in names if not FILE_NAME.fullmatch(n)] == []


def test_summary_network_is_the_notation_the_cli_takes(loud_run):
    network = json.loads((loud_run / "summary.json").read_text())["network"]
    assert network == "65-5-10" and NetworkSpec.parse(network).sizes == (64, 5, 10)


def _drawn(monkeypatch) -> list:
    figs: list = []
    monkeypatch.setattr(plt, "close", lambda fig=None: figs.append(fig))
    return figs


def test_static_accuracy_plot_has_whole_epoch_ticks(tmp_path, monkeypatch):
    figs = _drawn(monkeypatch)
    plots.accuracy_plot(tmp_path / "a.png", [1, 2, 3, 4, 5], [0.5] * 5, [0.4] * 5, "t")
    ticks = [t for t in figs[0].axes[0].get_xticks() if 1 <= t <= 5]
    assert ticks and all(float(t).is_integer() for t in ticks)


def test_static_conductance_maps_are_numbered_as_on_the_pcb(tmp_path, monkeypatch):
    bench = load_bench().for_network("two", [(65, 40), (21, 20)])
    lays = layouts(bench)
    figs = _drawn(monkeypatch)
    arrays = {name: np.ones(lay.shape) for name, lay in lays.items()}
    plots.conductance_maps(tmp_path / "m.png", arrays, lays, "t")
    ax = figs[0].axes[0]
    rows = [t.get_text() for t in ax.get_yticklabels()]
    cols = [t.get_text() for t in ax.get_xticklabels()]
    assert rows[:13] == [str(r) for r in range(1, 13)] + ["1"]
    assert cols[:11] == [str(c) for c in range(1, 11)] + ["1"]
    boards = {t.get_text() for t in ax.texts}
    assert boards == {f"board {b}" for row in lays["hidden"].grid for b in row}
    assert len(ax.collections) >= 2  # chip outlines and the board grid over the image
    labels = [a.get_ylabel() for a in figs[0].axes]
    assert "conductance (µS)" in labels


def test_no_plot_or_message_says_uS():
    """µS everywhere a person reads it (code names like g_uS are fine)."""
    offenders = []
    for path in (ROOT / "hil").rglob("*.py"):
        for n, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#")[0]
            if code.strip().startswith('"""'):  # docstrings speak to programmers
                continue
            for literal in re.findall(r'"[^"]*"', code):
                if re.search(r"(?<![_A-Za-z])uS\b", literal):
                    offenders.append(f"{path.relative_to(ROOT)}:{n}: {literal}")
    assert offenders == []
