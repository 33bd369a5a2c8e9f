from __future__ import annotations

import numpy as np
import pytest

from hil.bench import DEFAULT_BENCH, data_file, load_bench
from hil.cli import main
from hil.errors import BenchFileError

DEFAULT_TEXT = data_file(DEFAULT_BENCH).read_text()


def test_default_bench_maps_labels_both_ways():
    bench = load_bench()
    assert bench.backend == "sim" and len(bench.board_ids) == 40
    dev = bench.devices(np.array([13, 40]), np.array([1, 12]), np.array([1, 10]))
    lab = bench.labels(dev)
    assert lab["board"].tolist() == [13, 40]
    assert lab["row"].tolist() == [1, 12] and lab["col"].tolist() == [1, 10]
    # every (chip, pad) of a board is one distinct cell
    chips = set(zip(bench.board_map.chip.ravel(), bench.board_map.pad.ravel(), strict=True))
    assert len(chips) == 120


def test_array_tiling_places_rows_and_columns_on_the_right_boards():
    bench = load_bench()
    idx = bench.array_devices("hidden")
    assert idx.shape == (65, 40) and len(np.unique(idx)) == idx.size
    lab = bench.labels(idx[[0, 12, 64], :][:, [0, 10, 39]])
    assert lab["board"].tolist() == [[13, 14, 16], [17, 18, 20], [33, 34, 36]]
    assert lab["row"][2].tolist() == [5, 5, 5]  # row 64 is row 5 of the sixth board row


def test_for_network_grows_sim_arrays_with_new_boards():
    bench = load_bench().for_network("two", [(65, 120), (61, 20)])
    assert bench.arrays["hidden"].shape == (65, 120)
    assert len(np.unique(bench.array_devices("hidden"))) == 65 * 120
    assert set(bench.networks) == {"two"}


def _write(tmp_path, text):
    p = tmp_path / "bench.toml"
    p.write_text(text)
    (tmp_path / "board-map.csv").write_text(data_file("board-map.csv").read_text())
    return p


BAD = [
    ("[bench]\nname = 'x'\ncolour = 'red'\n", "bench.colour", "unknown key"),
    ("[bench]\nbackend = 3\n", "bench.backend", "expected str"),
    ("[bench]\nbackend = 'quantum'\n", "bench.backend", "must be one of"),
    ("[pulses]\nset_voltage = 9.0\n", "pulses.set_voltage", "exceeds"),
    ("[pulses]\nwidth = -1e-6\n", "pulses.width", "must be > 0"),
    ("[sim]\nread_noise = 1.5\n", "sim.read_noise", "must be in [0, 1)"),
    ("[arrays.hidden]\nshape = [65, 40]\nboards = [[13, 14, 15, 16], [17, 18, 19, 20]]\n",
     "arrays.hidden.shape", "does not fit"),
    ("[arrays.output]\nshape = [21, 20]\nboards = [[13, 38], [39, 40]]\n",
     "arrays.output.boards", "used twice"),
    ("[arrays.output]\nshape = [21, 20]\nboards = [[37, 99], [39, 40]]\n",
     "arrays.output.boards", "not in [boards]"),
    ("[networks]\nthree = ['nope']\n", "networks.three", "unknown array"),
    ("[mystery]\nx = 1\n", "mystery", "unknown section"),
    ("[bench\n", "syntax", ""),
]


def _patched(snippet: str) -> str:
    """The default bench with one table replaced (or added) by ``snippet``."""
    head = snippet.split("\n", 1)[0]
    text = DEFAULT_TEXT
    if head in text:
        start = text.index(head)
        end = text.find("\n[", start + 1)
        text = text[:start] + text[end + 1:] if end > 0 else text[:start]
    return text + "\n" + snippet


@pytest.mark.parametrize(("snippet", "key", "problem"), BAD)
def test_malformed_bench_names_file_key_and_problem(tmp_path, snippet, key, problem):
    path = _write(tmp_path, _patched(snippet) if snippet != "[bench\n" else snippet)
    with pytest.raises(BenchFileError) as err:
        load_bench(path)
    assert str(path) in str(err.value) and key in str(err.value) and problem in str(err.value)


def test_cli_reports_bad_bench_in_one_line_exit_2(tmp_path, capsys):
    path = _write(tmp_path, _patched("[pulses]\nset_voltage = 9.0\n"))
    assert main(["train", "--bench", str(path), "--epochs", "1", "--out",
                 str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("hil: error:") and "set_voltage" in err[0]
    assert "Traceback" not in capsys.readouterr().err
