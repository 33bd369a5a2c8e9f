"""What a run directory holds right now, read without disturbing the command writing it.

The database is opened read-only (``mode=ro``) for each look and closed straight after: in WAL
mode a reader sees the last committed transaction and never blocks the writer, and a finished run
reads the same way. Nothing here writes to the run directory.
"""

from __future__ import annotations

import io
import json
import sqlite3
import time
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hil.pcb import ArrayLayout

STALE_SECONDS = 30.0  # no progress for this long while training or testing: the writer stopped
DONE_STATES = {"done", "complete", "completed"}


class NotARun(Exception):
    """The directory holds no run this viewer knows; the message says what it does hold."""


@dataclass
class RunData:
    """Everything the page shows, as read at one moment."""

    kind: str  # train, characterize or study
    directory: Path
    meta: dict[str, Any]
    summary: dict[str, Any] | None
    state: str  # preparing, training, testing, done, interrupted, failed, measuring, running
    detail: str  # one line beside the state
    progress: dict[str, Any]
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)  # latest conductances (µS)
    layouts: dict[str, ArrayLayout] = field(default_factory=dict)
    snapshot_epoch: int | None = None


def _connect(db: Path) -> sqlite3.Connection:
    """Read-only. While a writer has the database open its ``-wal`` file exists and the reader
    shares its WAL index; without one no writer is there, and the file is read as immutable, so
    the reader creates no ``-wal``/``-shm`` files in a finished run's directory."""
    idle = not db.with_name(db.name + "-wal").exists()
    uri = f"{db.resolve().as_uri()}?mode=ro" + ("&immutable=1" if idle else "")
    return sqlite3.connect(uri, uri=True, timeout=5.0)


def _tables(con: sqlite3.Connection) -> set[str]:
    return {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def _meta(con: sqlite3.Connection) -> dict[str, Any]:
    out = {}
    for key, value in con.execute("SELECT key, value FROM meta"):
        try:
            out[key] = json.loads(value)
        except ValueError:
            out[key] = value
    return out


def _summary(directory: Path) -> dict[str, Any] | None:
    try:
        return json.loads((directory / "summary.json").read_text())
    except (OSError, ValueError):  # absent, or being replaced this instant
        return None


def read_run(directory: Path, now: float | None = None) -> RunData:
    """Read ``directory`` as it is now; :class:`NotARun` if it is no run."""
    directory = Path(directory)
    if not directory.is_dir():
        raise NotARun(f"{directory} is not a directory")
    db = directory / "run.sqlite"
    if not db.exists():
        found = sorted(p.name for p in directory.iterdir())[:8]
        raise NotARun(f"{directory} is not a run directory: it has no run.sqlite (a run of hil "
                      "train, hil characterize or hil experiment has one)"
                      + (f"; it holds {', '.join(found)}" if found else "; it is empty"))
    try:
        with closing(_connect(db)) as con:
            tables = _tables(con)
            if "meta" not in tables:
                raise NotARun(f"{db} is no run database (no meta table)")
            meta = _meta(con)
            kind = meta.get("kind") or ("characterize" if "devices" in tables or
                                        "command" in meta else "train")
            data = RunData(kind, directory, meta, _summary(directory), "", "",
                           meta.get("progress") or {})
            if kind == "train":
                _read_training(con, tables, data)
            elif kind == "characterize":
                _read_characterisation(con, tables, data)
            elif kind == "study":
                if "results" in tables:
                    data.tables["results"] = pd.read_sql_query("SELECT * FROM results", con)
            else:
                raise NotARun(f"{directory}: a run of an unknown kind {kind!r}")
    except sqlite3.DatabaseError as exc:
        raise NotARun(f"{db}: cannot read it as a run database ({exc})") from None
    data.state, data.detail = run_state(data, time.time() if now is None else now)
    return data


def _read_training(con: sqlite3.Connection, tables: set[str], data: RunData) -> None:
    data.tables["epochs"] = pd.read_sql_query("SELECT * FROM epochs ORDER BY epoch", con)
    data.layouts = {name: ArrayLayout.from_json(name, d)
                    for name, d in data.meta.get("layout", {}).items()}
    row = con.execute("SELECT MAX(epoch) FROM snapshots").fetchone()
    if row and row[0] is not None:
        data.snapshot_epoch = int(row[0])
        for name, blob in con.execute(
                "SELECT array, conductance_uS FROM snapshots WHERE epoch = ?", (row[0],)):
            data.arrays[name] = np.load(io.BytesIO(blob), allow_pickle=False)


def _read_characterisation(con: sqlite3.Connection, tables: set[str], data: RunData) -> None:
    for name in ("devices", "replacements", "fabric_faults"):
        if name in tables:
            data.tables[name] = pd.read_sql_query(f"SELECT * FROM {name}", con)
    if "devices" not in data.tables and "live_reads" in tables:  # measured, not yet judged
        live = pd.read_sql_query("SELECT * FROM live_reads", con)
        data.tables["devices"] = live.assign(mode="not judged yet")
    data.layouts = {name: ArrayLayout.from_json(name, d)
                    for name, d in data.meta.get("layout", {}).items()}


def run_state(data: RunData, now: float) -> tuple[str, str]:
    """The run's state and a line of detail.

    A state the writing command recorded (``meta.state``) wins; otherwise it is read from what
    is there: a summary means done, else the last progress record's phase, and a run whose
    progress stopped moving while training is taken as interrupted.
    """
    recorded = data.meta.get("state")
    if isinstance(recorded, dict):
        recorded = recorded.get("state")
    # "running" is also what a killed run leaves: then progress (and its age) tells
    if isinstance(recorded, str) and recorded and recorded != "running":
        return ("done" if recorded in DONE_STATES else recorded), ""
    if data.summary is not None or data.progress.get("phase") == "done":
        return "done", ""
    phase = data.progress.get("phase")
    if phase is None:
        return ("running" if data.kind == "study" else "preparing"), "no progress recorded yet"
    age = now - float(data.progress.get("updated", now))
    if phase in ("training", "testing", "measuring", "running") and age > STALE_SECONDS:
        return "interrupted", (f"no progress for {age:.0f} s (stopped? hil train --resume "
                               f"{data.directory} continues it)" if data.kind == "train" else
                               f"no progress for {age:.0f} s")
    return phase, ""
