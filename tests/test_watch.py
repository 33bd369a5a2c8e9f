"""hil watch without a browser: what it reads from a run, the states it tells apart, the numbers
and PCB labels it serves, and that reading never holds up the run writing."""

from __future__ import annotations

import base64
import json
import socket
import sqlite3
import time

import numpy as np
import pandas as pd
import pytest

from hil.bench import load_bench
from hil.cli import main
from hil.pcb import layouts
from hil.records import RunStore
from hil.watch.app import create_app
from hil.watch.source import STALE_SECONDS, NotARun, read_run


def typed_array(value) -> np.ndarray:
    """An array as plotly's JSON carries it: a list, or base64 with dtype and shape."""
    if isinstance(value, dict):
        shape = [int(n) for n in str(value.get("shape", "-1")).split(",")]
        raw = base64.b64decode(value["bdata"])
        return np.frombuffer(raw, dtype=np.dtype(value["dtype"])).reshape(shape)
    return np.asarray(value, dtype=float)


@pytest.fixture(scope="module")
def finished(tmp_path_factory, small_data):
    out = tmp_path_factory.mktemp("watch") / "run"
    assert main(["train", "--network", "two", "--hidden", "10", "--epochs", "2", "--data",
                 str(small_data), "--out", str(out), "--quiet"]) == 0
    return out


def test_a_finished_run_is_done_and_its_numbers_are_the_summary(finished):
    client = create_app(finished).test_client()
    view = client.get("/view.json").get_json()
    summary = json.loads((finished / "summary.json").read_text())
    assert view["state"] == "done" and view["kind"] == "train"
    table = next(t for t in view["tables"] if t["id"] == "epochs")
    col = table["keys"].index("test")
    assert [float(r[col]) for r in table["rows"]] == pytest.approx(
        [100 * a for a in summary["test_accuracy_per_epoch"]], abs=0.006)
    ids = {f["id"] for f in view["figures"]}
    assert {"accuracy", "operations", "map-hidden", "map-output", "cdf"} <= ids
    # the second look with the same figures gets none sent again
    again = client.get("/view.json", query_string={"have": view["figure_key"]}).get_json()
    assert again["figures"] == [] and again["figure_key"] == view["figure_key"]


def test_map_hover_gives_the_pcb_labels_of_every_cell(finished):
    view = create_app(finished).test_client().get("/view.json").get_json()
    fig = next(f["figure"] for f in view["figures"] if f["id"] == "map-hidden")
    heat = fig["data"][0]
    custom = typed_array(heat["customdata"])  # board, chip, pad, row, col, µS
    bench = load_bench().for_network("two", [(65, 20), (11, 20)])
    lab = bench.labels(bench.array_devices("hidden"))
    for i, key in enumerate(("board", "chip", "pad", "row", "col")):
        assert np.array_equal(custom[..., i], lab[key]), key
    snap = RunStore(finished, create=False).snapshot(2, "hidden")
    assert np.allclose(custom[..., 5], snap)
    assert "µS" in heat["hovertemplate"]
    assert fig["layout"]["yaxis"]["ticktext"][:13] == [str(r) for r in range(1, 13)] + ["1"]
    boards = next(t for t in fig["data"] if t.get("name") == "boards")
    xs = typed_array(boards["x"])
    assert np.isnan(xs).sum() == 4 + 5 + 1  # the edge, 5 board rows inside 65, 1 column in 20
    chips = next(t for t in fig["data"] if t.get("name") == "chips")
    assert np.isnan(typed_array(chips["x"])).sum() > 100  # 30 chips a board, 12 boards


def test_a_run_being_written_is_training_then_interrupted_when_it_stops(tmp_path):
    store = RunStore.create(tmp_path / "run")
    store.put_meta(kind="train", network="65-10", params={"epochs": 3})
    store.put_progress("training", epoch=1, epochs=3, images=100, total=900, start_images=0,
                       wall_seconds=10.0, bench_seconds=60.0, start_bench_seconds=10.0)
    data = read_run(tmp_path / "run")
    assert data.state == "training"
    late = read_run(tmp_path / "run", now=time.time() + STALE_SECONDS + 5)
    assert late.state == "interrupted" and "--resume" in late.detail
    view = create_app(tmp_path / "run").test_client().get("/view.json").get_json()
    assert view["progress"]["fraction"] == pytest.approx(100 / 900)
    lines = view["progress"]["lines"]
    assert "epoch 1 of 3: image 100 of 900 (11.1 %)" in lines
    assert "elapsed 0:00:10 wall, ETA 0:01:20 wall" in lines
    # 50 s of bench time for 100 images: preparation's 10 s leave the rate
    assert "bench time 0:01:00, ETA 0:06:40 on the bench" in lines


def test_a_state_the_run_recorded_wins_over_the_inferred_one(tmp_path):
    store = RunStore.create(tmp_path / "run")
    store.put_meta(kind="train", state="failed")
    store.put_progress("training", images=1, total=2)
    assert read_run(tmp_path / "run").state == "failed"


def test_a_directory_that_is_no_run_says_so(tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(NotARun, match="not a run directory: it has no run.sqlite.*notes.txt"):
        read_run(tmp_path)
    view = create_app(tmp_path / "missing").test_client().get("/view.json").get_json()
    assert "is not a directory" in view["error"]


def test_the_page_loads_nothing_from_the_internet(tmp_path):
    client = create_app(tmp_path).test_client()
    html = client.get("/").get_data(as_text=True)
    assert "http://" not in html and "https://" not in html and "//cdn" not in html
    for src in ("plotly.min.js", "static/page.js", "static/page.css"):
        assert src in html
        assert client.get("/" + src).status_code == 200
    js = client.get("/static/page.js").get_data(as_text=True)
    assert "http" not in js


def test_reading_never_blocks_the_writer(tmp_path):
    """A reader in the middle of a read transaction does not stop the run committing."""
    store = RunStore.create(tmp_path / "run")
    store.put_meta(kind="train")
    assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    reader = sqlite3.connect(f"{(tmp_path / 'run' / 'run.sqlite').as_uri()}?mode=ro", uri=True)
    reader.execute("BEGIN")
    reader.execute("SELECT * FROM meta").fetchall()  # holds a read snapshot open
    store.db.execute("PRAGMA busy_timeout = 0")  # a blocked writer would fail at once
    for e in range(20):  # in rollback-journal mode the first commit fails: database is locked
        store.add_epoch(e, {"a": np.zeros((2, 2))}, test_accuracy=0.5)
    reader.close()
    assert len(store.epochs()) == 20


def test_a_finished_run_is_read_without_leaving_files(finished):
    before = sorted(p.name for p in finished.iterdir())
    read_run(finished)
    assert sorted(p.name for p in finished.iterdir()) == before


def test_layouts_of_the_default_two_layer_network():
    bench = load_bench().for_network("two", [(65, 40), (21, 20)])
    lay = layouts(bench)["hidden"]
    lab = lay.labels()
    assert lab["row"].min() == 1 and lab["row"].max() == 12
    assert lab["col"].min() == 1 and lab["col"].max() == 10
    assert set(np.unique(lab["board"])) == {b for row in lay.grid for b in row}


def test_a_characterisation_shows_its_board_maps_and_replacement_list(tmp_path):
    faults = tmp_path / "faults.csv"
    faults.write_text("board,row,col,mode\n35,1,1,stuck_on\n36,8,4,stuck_off\n")
    out = tmp_path / "char"
    assert main(["characterize", "--boards", "35-36", "--fault-map", str(faults), "--out",
                 str(out), "--quiet"]) == 0
    view = create_app(out).test_client().get("/view.json").get_json()
    assert view["kind"] == "characterize" and view["state"] == "done"
    table = next(t for t in view["tables"] if t["id"] == "replacements")
    assert table["rows"] == [[35, 1, 1, 1, 1, "stuck_on"], [36, 17, 3, 8, 4, "stuck_off"]]
    fig = next(f["figure"] for f in view["figures"] if f["id"] == "boards")
    heat, marks = fig["data"][0], fig["data"][-1]
    custom = typed_array(heat["customdata"])
    assert custom.shape == (12, 20, 6)  # two boards side by side
    assert list(custom[0, 0, :5]) == [35, 1, 1, 1, 1]  # board, chip, pad, row, col
    assert list(custom[7, 13, :5]) == [36, 17, 3, 8, 4]
    assert list(marks["text"]) == ["ON", "OFF"]
    assert [a["text"] for a in fig["layout"]["annotations"]] == ["board 35", "board 36"]
    # the read map was there for the page before the devices were judged
    with sqlite3.connect(out / "run.sqlite") as db:
        live = pd.read_sql_query("SELECT * FROM live_reads", db)
        first = pd.read_sql_query("SELECT * FROM reads WHERE sequence = 'read_map' AND step = 0",
                                  db)
    assert len(live) == 240
    assert np.allclose(live["g_start_uS"], first["conductance_uS"])


def test_hil_watch_refuses_a_bad_port_in_one_line(tmp_path, capsys):
    assert main(["watch", str(tmp_path), "--port", "70000"]) == 2
    assert capsys.readouterr().err.strip() == "hil: error: --port 70000: expected 0-65535"
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["watch", str(tmp_path), "--port", str(port)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"hil: error: --port {port}: cannot listen on 127.0.0.1:{port}")
