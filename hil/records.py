"""Run store: one directory per run, an SQLite database inside, nothing a long run made is lost.

Layout of ``RUN/``::

    run.sqlite      meta (key -> JSON), epochs, snapshots (conductance per epoch, .npy blobs),
                    checkpoint (the latest resumable state), and any tables a command adds
    summary.json    the figures a person or a script looks at first
    log.txt         what the terminal showed
    *.png           plots, named in lowercase words joined by hyphens (``conductance-cdf.png``)

The database is in WAL mode, so ``hil watch`` can read it while the run writes, without either
waiting for the other. ``meta.progress`` says what the run is doing now (phase, images done, wall
and bench seconds), refreshed about once a second.

Writes are transactions, so a run killed at any point leaves either the previous or the new
checkpoint, never half of one.
"""

from __future__ import annotations

import io
import json
import pickle
import sqlite3
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hil.errors import HilError

CONDUCTANCE_MAPS = "conductance-maps.png"
CONDUCTANCE_CDF = "conductance-cdf.png"
ACCURACY = "accuracy.png"
RESPONSE_CURVES = "response-curves.png"

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS epochs (
    epoch INTEGER PRIMARY KEY, train_accuracy REAL, test_accuracy REAL,
    set_pulses INTEGER, reset_pulses INTEGER, device_reads INTEGER, mac_reads INTEGER,
    wall_seconds REAL);
CREATE TABLE IF NOT EXISTS snapshots (
    epoch INTEGER, array TEXT, conductance_uS BLOB, PRIMARY KEY (epoch, array));
CREATE TABLE IF NOT EXISTS checkpoint (id INTEGER PRIMARY KEY CHECK (id = 1), images INTEGER,
    state BLOB);
"""


def _npy(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.asarray(a), allow_pickle=False)
    return buf.getvalue()


class RunStore:
    """A run directory and its database."""

    def __init__(self, directory: str | Path, *, create: bool = True) -> None:
        self.dir = Path(directory)
        db = self.dir / "run.sqlite"
        if not create and not db.exists():
            raise HilError(f"{self.dir}: not a run directory (no run.sqlite)")
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(db)
        except (OSError, sqlite3.Error) as exc:
            raise HilError(f"{self.dir}: cannot open run store: {exc}") from None
        if create:
            self.db.execute("PRAGMA journal_mode=WAL")  # readers never block the writer
        self.db.executescript(SCHEMA)

    def close(self) -> None:
        self.db.close()

    # ---- metadata ----------------------------------------------------------------------

    def put_meta(self, **items: Any) -> None:
        with self.db:
            self.db.executemany(
                "INSERT OR REPLACE INTO meta VALUES (?, ?)",
                [(k, json.dumps(v)) for k, v in items.items()],
            )

    def put_progress(self, phase: str, **figures: Any) -> None:
        """What the run is doing now, for a viewer: ``phase`` and figures such as images done."""
        self.put_meta(progress={"phase": phase, "updated": time.time(), **figures})

    def meta(self) -> dict[str, Any]:
        return {k: json.loads(v) for k, v in self.db.execute("SELECT key, value FROM meta")}

    # ---- per-epoch figures and conductance snapshots ---------------------------------------

    def add_epoch(self, epoch: int, snapshots: dict[str, np.ndarray], **figures: Any) -> None:
        cols = ["epoch", *figures]
        with self.db:
            self.db.execute(
                f"INSERT OR REPLACE INTO epochs ({', '.join(cols)}) "
                f"VALUES ({', '.join('?' * len(cols))})",
                [epoch, *figures.values()],
            )
            self.db.executemany(
                "INSERT OR REPLACE INTO snapshots VALUES (?, ?, ?)",
                [(epoch, name, _npy(g)) for name, g in snapshots.items()],
            )

    def epochs(self) -> pd.DataFrame:
        return pd.read_sql_query("SELECT * FROM epochs ORDER BY epoch", self.db)

    def snapshot(self, epoch: int, array: str) -> np.ndarray:
        row = self.db.execute(
            "SELECT conductance_uS FROM snapshots WHERE epoch = ? AND array = ?", (epoch, array)
        ).fetchone()
        if row is None:
            raise KeyError((epoch, array))
        return np.load(io.BytesIO(row[0]), allow_pickle=False)

    # ---- checkpoints --------------------------------------------------------------------

    def save_checkpoint(self, images: int, state: dict[str, Any]) -> None:
        with self.db:
            self.db.execute(
                "INSERT OR REPLACE INTO checkpoint VALUES (1, ?, ?)",
                (images, pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)),
            )

    def load_checkpoint(self) -> dict[str, Any] | None:
        row = self.db.execute("SELECT state FROM checkpoint WHERE id = 1").fetchone()
        return None if row is None else pickle.loads(row[0])

    # ---- generic tables and files -------------------------------------------------------

    def write_table(self, name: str, df: pd.DataFrame, *, append: bool = False) -> None:
        """Store a DataFrame as a table of the run database (reads, classifications, ...)."""
        df.to_sql(name, self.db, if_exists="append" if append else "replace", index=False)

    def write_json(self, name: str, data: dict[str, Any]) -> Path:
        path = self.dir / name
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2) + "\n")
        tmp.replace(path)
        return path
