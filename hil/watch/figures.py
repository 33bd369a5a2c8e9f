"""Plotly figures of a run: accuracy beside the paper's points, pulses and reads per epoch,
conductance maps drawn as the PCB boards, the conductance CDF, characterisation board maps and
study curves. Each is returned as plotly's own JSON, which the page hands to plotly.js."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio
from plotly.subplots import make_subplots

from hil.bench import COLS, ROWS
from hil.pcb import ArrayLayout
from hil.watch.paper import stated_accuracy

UNIT = "µS"
_MARGIN = {"l": 60, "r": 20, "t": 40, "b": 50}
BOARDS_PER_ROW = 8  # characterisation: boards tiled 8 to a row


def epoch_ticks(last: int) -> dict[str, Any]:
    """Whole epochs only, at most about 15 ticks."""
    return {"tick0": 1, "dtick": max(1, math.ceil(last / 15))}


def as_json(fig: go.Figure) -> dict[str, Any]:
    return json.loads(pio.to_json(fig, validate=False))


def accuracy(epochs: pd.DataFrame, network: str, total_epochs: int | None) -> go.Figure:
    """Test (through the arrays) and running train accuracy per epoch, the paper's points."""
    fig = go.Figure()
    fig.add_scatter(x=epochs["epoch"], y=100 * epochs["test_accuracy"], mode="lines+markers",
                    name="test (through the arrays)")
    fig.add_scatter(x=epochs["epoch"], y=100 * epochs["train_accuracy"], mode="lines+markers",
                    name="train (running)", line={"dash": "dash"})
    paper = stated_accuracy(network)
    if paper:
        fig.add_scatter(x=[p[0] for p in paper], y=[p[1] for p in paper], mode="markers",
                        name="paper (stated points)", text=[p[2] for p in paper],
                        marker={"symbol": "diamond-open", "size": 11, "color": "black"},
                        hovertemplate="%{text}<extra>paper</extra>")
    last = max(int(epochs["epoch"].max()) if len(epochs) else 1, total_epochs or 1)
    fig.update_layout(title=f"accuracy per epoch, network {network}", margin=_MARGIN,
                      xaxis={"title": "epoch", "range": [0.5, last + 0.5], **epoch_ticks(last)},
                      yaxis={"title": "accuracy (%)", "range": [0, 100]},
                      legend={"orientation": "h", "y": -0.25})
    return fig


def operations(epochs: pd.DataFrame) -> go.Figure:
    """SET and RESET pulses and device and MAC reads of each epoch (the records are running
    totals, so each epoch's figure is a difference)."""
    per = epochs.set_index("epoch")[["set_pulses", "reset_pulses", "device_reads", "mac_reads"]]
    per = per.diff().fillna(per)
    fig = make_subplots(rows=1, cols=2, subplot_titles=("pulses per epoch", "reads per epoch"))
    for col, name, c in (("set_pulses", "SET", 1), ("reset_pulses", "RESET", 1),
                         ("device_reads", "device reads", 2), ("mac_reads", "MAC reads", 2)):
        fig.add_bar(x=per.index, y=per[col], name=name, row=1, col=c)
    fig.update_xaxes(title="epoch", **epoch_ticks(int(per.index.max())))
    fig.update_layout(barmode="stack", margin=_MARGIN, legend={"orientation": "h", "y": -0.3})
    return fig


def _segments(segs: list[tuple[float, float, float, float]], name: str, color: str,
              width: float) -> go.Scatter:
    """Line segments as one trace (breaks between them): a thousand chip edges draw as fast
    as one line, where a shape each would not."""
    xs = np.array([[x0, x1, np.nan] for x0, _, x1, _ in segs]).ravel()
    ys = np.array([[y0, y1, np.nan] for _, y0, _, y1 in segs]).ravel()
    return go.Scatter(x=xs, y=ys, mode="lines", name=name, hoverinfo="skip", showlegend=False,
                      line={"color": color, "width": width}, connectgaps=False)


def board_map(layout: ArrayLayout, g: np.ndarray, title: str, *, log: bool = False,
              marks: pd.DataFrame | None = None) -> go.Figure:
    """An array drawn as its boards: board grid, chip outlines, rows and columns numbered as on
    the PCB; hovering a cell gives board, chip, pad, row, column and µS. ``log`` colours by
    log10 (characterisation spans 0.1-1000 µS); ``marks`` (x, y, text) labels failed cells."""
    lab = layout.labels()
    custom = np.stack([lab[k] for k in ("board", "chip", "pad", "row", "col")], axis=-1)
    z = np.log10(np.clip(g, 0.1, None)) if log else g
    colorbar: dict[str, Any] = {"title": {"text": UNIT}}
    if log:
        colorbar.update(tickvals=[-1, 0, 1, 2, 3], ticktext=["0.1", "1", "10", "100", "1000"])
    fig = go.Figure(go.Heatmap(
        z=z, customdata=np.dstack([custom, g[..., None]]), colorscale="Viridis",
        colorbar=colorbar, zmin=-1 if log else None, zmax=3 if log else None,
        hovertemplate="board %{customdata[0]}, chip %{customdata[1]}, pad %{customdata[2]}"
                      "<br>row %{customdata[3]}, col %{customdata[4]}"
                      "<br>%{customdata[5]:.2f} " + UNIT + "<extra></extra>"))
    fig.add_trace(_segments(layout.chip_edges(), "chips", "rgba(255,255,255,0.6)", 1))
    fig.add_trace(_segments(layout.board_edges(), "boards", "black", 3))
    if marks is not None and len(marks):
        fig.add_scatter(x=marks["x"], y=marks["y"], mode="text", text=marks["text"],
                        textfont={"color": "red", "size": 10}, hoverinfo="skip",
                        showlegend=False)
    ry, ly = layout.ticks(0)
    rx, lx = layout.ticks(1)
    annotations = [{"x": x, "y": y, "text": f"board {b}", "showarrow": False,
                    "font": {"color": "white", "size": 11}, "opacity": 0.75}
                   for b, x, y in layout.board_centres() if b > 0]
    rows, cols = layout.shape
    fig.update_layout(
        title=title, margin=_MARGIN, annotations=annotations,
        xaxis={"title": "column on the board", "tickvals": rx, "ticktext": lx,
               "tickfont": {"size": 8}, "range": [-0.5, cols - 0.5], "showgrid": False,
               "constrain": "domain"},
        yaxis={"title": "row on the board", "tickvals": ry, "ticktext": ly,
               "tickfont": {"size": 8}, "range": [rows - 0.5, -0.5], "showgrid": False,
               "scaleanchor": "x", "scaleratio": 1, "constrain": "domain"},
        height=max(320, min(900, 60 + 13 * rows)),
    )
    return fig


def cdf(arrays: dict[str, np.ndarray], title: str) -> go.Figure:
    fig = go.Figure()
    for name, g in arrays.items():
        v = np.sort(np.asarray(g, dtype=float).ravel())
        v = v[np.isfinite(v)]
        fig.add_scatter(x=v, y=100 * np.arange(1, v.size + 1) / max(v.size, 1), name=name,
                        mode="lines", line={"shape": "hv"})
    fig.update_layout(title=title, margin=_MARGIN, xaxis={"title": f"conductance ({UNIT})"},
                      yaxis={"title": "cumulative devices (%)", "range": [0, 100]},
                      legend={"orientation": "h", "y": -0.25})
    return fig


def boards_layout(boards: list[int], chip: np.ndarray, pad: np.ndarray) -> ArrayLayout:
    """Characterised boards tiled ``BOARDS_PER_ROW`` to a row as one array (gaps: board 0)."""
    per = min(BOARDS_PER_ROW, max(len(boards), 1))
    n_rows = math.ceil(len(boards) / per) if boards else 1
    ids = list(boards) + [0] * (n_rows * per - len(boards))
    grid = tuple(tuple(ids[i * per:(i + 1) * per]) for i in range(n_rows))
    return ArrayLayout("boards", (n_rows * ROWS, per * COLS), grid, chip, pad)


_MARK = {"stuck_on": "ON", "stuck_off": "OFF", "open": "OPN", "short": "SHT", "unstable": "UNS"}


def characterisation_map(devices: pd.DataFrame, chip: np.ndarray, pad: np.ndarray
                         ) -> go.Figure:
    """Read-map conductance of every characterised board, failed devices labelled by mode."""
    boards = list(dict.fromkeys(int(b) for b in devices["board"]))
    layout = boards_layout(boards, chip, pad)
    where = {b: divmod(i, layout.shape[1] // COLS) for i, b in enumerate(boards)}
    bi = np.array([where[int(b)][0] for b in devices["board"]], dtype=np.int64)
    bj = np.array([where[int(b)][1] for b in devices["board"]], dtype=np.int64)
    y = bi * ROWS + devices["row"].to_numpy() - 1
    x = bj * COLS + devices["col"].to_numpy() - 1
    g = np.full(layout.shape, np.nan)
    g[y, x] = devices["g_start_uS"].to_numpy()
    bad = devices["mode"].isin(list(_MARK)).to_numpy()
    marks = pd.DataFrame({"x": x[bad], "y": y[bad],
                          "text": [_MARK[m] for m in devices["mode"][bad]]})
    return board_map(layout, g, f"read map of {len(boards)} board(s), failed devices marked",
                     log=True, marks=marks)


def study_curves(results: pd.DataFrame, study: str) -> go.Figure:
    """Mean test accuracy over the seeds finished so far, per network and mode."""
    x = {"faults": "p", "hidden": "hidden"}.get(study, "epoch")
    df = results.assign(acc=100 * results["test_accuracy"])
    keys = [k for k in ("network", "mode", "hidden") if k != x]
    fig = go.Figure()
    for key, part in df.groupby(keys, sort=True, dropna=False):
        g = part.groupby(x)["acc"].agg(["mean", "std", "size"]).reset_index()
        label = ", ".join(str(k) for k in key if not (isinstance(k, float) and np.isnan(k)))
        fig.add_scatter(x=g[x], y=g["mean"], error_y={"array": g["std"].fillna(0)},
                        mode="lines+markers", name=f"{label} ({int(g['size'].max())} seeds)")
    fig.update_layout(title=f"study {study}: mean over the trials finished", margin=_MARGIN,
                      xaxis={"title": {"p": "fraction of failed devices",
                                       "hidden": "hidden neurons"}.get(x, "epoch"),
                             **(epoch_ticks(int(df[x].max())) if x == "epoch" else {})},
                      yaxis={"title": "test accuracy (%)", "range": [0, 100]},
                      legend={"orientation": "h", "y": -0.3})
    return fig
