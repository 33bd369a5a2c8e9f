"""The page's content for one look at a run: state, progress with ETAs, figures and tables, as
plain JSON the page renders. Figures are rebuilt only when the data they show has changed."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from hil.watch import figures
from hil.watch.source import RunData

_TITLES = {"train": "training", "characterize": "characterisation", "study": "study"}


def duration(seconds: float | None) -> str:
    if seconds is None or not np.isfinite(seconds):
        return "–"
    m, s = divmod(round(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}"


def figure_key(data: RunData) -> tuple:
    """Changes exactly when a figure would."""
    sizes = tuple((name, len(t)) for name, t in sorted(data.tables.items()))
    return data.kind, data.snapshot_epoch, sizes, data.summary is not None


def _progress(data: RunData) -> dict[str, Any]:
    p = data.progress
    if data.kind == "train":
        return _training_progress(data, p)
    done, total = p.get("done"), p.get("total")
    lines = []
    if done is not None and total:
        lines.append(f"{p.get('what', 'step')} {done} of {total} ({100 * done / total:.1f} %)")
    if p.get("wall_seconds") is not None:
        lines.append(f"elapsed {duration(p['wall_seconds'])} wall")
    fraction = 1.0 if data.state == "done" else (done / total if done is not None and total
                                                 else None)
    return {"fraction": fraction, "lines": lines}


def _training_progress(data: RunData, p: dict[str, Any]) -> dict[str, Any]:
    images, total = p.get("images"), p.get("total")
    lines = []
    if data.state == "done":
        lines = [f"{len(data.tables['epochs'])} epochs done"]
        if (data.summary or {}).get("bench_seconds") is not None:  # on instruments
            lines.append(f"bench time {duration(data.summary['bench_seconds'])}")
        return {"fraction": 1.0, "lines": lines}
    if images is None or not total:
        return {"fraction": None, "lines": ["preparing the arrays (pre-set, stuck-on check)"]
                if data.state == "preparing" else []}
    lines.append(f"epoch {p.get('epoch')} of {p.get('epochs')}: image {images} of {total} "
                 f"({100 * images / total:.1f} %)")
    if data.state == "testing" and p.get("test_images"):
        lines.append(f"test pass: {p.get('tested', 0)} of {p['test_images']} test images")
    wall = p.get("wall_seconds")
    moved = images - p.get("start_images", 0)
    if wall and moved > 0:
        eta = (total - images) * wall / moved
        lines.append(f"elapsed {duration(wall)} wall, ETA {duration(eta)} wall")
    bench = p.get("bench_seconds")
    if bench is not None and moved > 0:  # the rate of the images trained in this process
        eta = (total - images) * (bench - (p.get("start_bench_seconds") or 0.0)) / moved
        lines.append(f"bench time {duration(bench)}, ETA {duration(eta)} on the bench")
    return {"fraction": images / total, "lines": lines}


def _epoch_table(epochs: pd.DataFrame) -> dict[str, Any]:
    per = epochs.set_index("epoch")
    ops = per[["set_pulses", "reset_pulses", "device_reads", "mac_reads"]]
    ops = ops.diff().fillna(ops).astype("int64")
    rows = [[int(e), f"{100 * r.test_accuracy:.2f}", f"{100 * r.train_accuracy:.2f}",
             int(ops.loc[e, "set_pulses"]), int(ops.loc[e, "reset_pulses"]),
             int(ops.loc[e, "device_reads"]), int(ops.loc[e, "mac_reads"]),
             duration(r.wall_seconds)]
            for e, r in per.iterrows()]
    return {"id": "epochs", "title": "per epoch",
            "columns": ["epoch", "test accuracy (%)", "train accuracy (%)", "SET pulses",
                        "RESET pulses", "device reads", "MAC reads", "wall time"],
            "keys": ["epoch", "test", "train", "set", "reset", "device_reads", "mac_reads",
                     "wall"],
            "rows": rows}


def _training_figures(data: RunData) -> list[dict[str, Any]]:
    epochs = data.tables["epochs"]
    network = data.meta.get("network", "")
    total = (data.meta.get("params") or {}).get("epochs")
    out = [{"id": "accuracy", "figure": figures.as_json(figures.accuracy(epochs, network, total))}]
    if len(epochs):
        out.append({"id": "operations", "figure": figures.as_json(figures.operations(epochs))})
    when = f"after epoch {data.snapshot_epoch}" if data.snapshot_epoch else ""
    for name, g in data.arrays.items():
        layout = data.layouts.get(name)
        if layout is not None and layout.shape == g.shape:
            fig = figures.board_map(layout, g, f"conductance of array {name} {when}")
            out.append({"id": f"map-{name}", "figure": figures.as_json(fig)})
    if data.arrays:
        fig = figures.cdf(data.arrays, f"conductance CDF {when}")
        out.append({"id": "cdf", "figure": figures.as_json(fig)})
    return out


def _characterisation_figures(data: RunData) -> list[dict[str, Any]]:
    devices = data.tables.get("devices")
    board_map = data.meta.get("board_map")
    if devices is None or devices.empty or board_map is None:
        return []
    chip, pad = np.asarray(board_map["chip"]), np.asarray(board_map["pad"])
    judged = "replacements" in data.tables
    ok = devices[devices["mode"] == "ok"] if judged else devices
    what = f"{len(ok)} working devices" if judged else f"{len(ok)} devices read so far"
    return [
        {"id": "boards", "figure": figures.as_json(
            figures.characterisation_map(devices, chip, pad))},
        {"id": "cdf", "figure": figures.as_json(figures.cdf(
            {"working devices": ok["g_start_uS"].to_numpy()},
            f"read-map conductance CDF, {what}"))},
    ]


def _characterisation_tables(data: RunData) -> list[dict[str, Any]]:
    failed = data.tables.get("replacements")
    if failed is None:
        return []
    return [{"id": "replacements", "title": f"replacement list ({len(failed)} devices)",
             "columns": list(failed.columns), "keys": list(failed.columns),
             "rows": failed.astype(object).values.tolist()}]


def build_figures(data: RunData) -> list[dict[str, Any]]:
    if data.kind == "train":
        return _training_figures(data)
    if data.kind == "characterize":
        return _characterisation_figures(data)
    results = data.tables.get("results")
    if results is None or results.empty:
        return []
    study = data.meta.get("study", "curves")
    return [{"id": "study", "figure": figures.as_json(figures.study_curves(results, study))}]


def page(data: RunData, figs: list[dict[str, Any]]) -> dict[str, Any]:
    """Everything one refresh of the page shows."""
    tables = []
    if data.kind == "train" and len(data.tables["epochs"]):
        tables.append(_epoch_table(data.tables["epochs"]))
    elif data.kind == "characterize":
        tables += _characterisation_tables(data)
    name = data.meta.get("network") or data.meta.get("study") or ""
    return {
        "run": str(data.directory),
        "kind": data.kind,
        "title": f"{_TITLES[data.kind]} {name}".strip(),
        "state": data.state,
        "detail": data.detail,
        "progress": _progress(data),
        "summary": data.summary,
        "figures": figs,
        "tables": tables,
    }
