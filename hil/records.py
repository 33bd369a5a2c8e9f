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
checkpoint, never half of one. Result files are written to a temporary name and renamed into
place, so a reader sees a whole file or none. ``meta.state`` says how far the run got:
``running`` (or killed while running), ``interrupted`` (Ctrl-C, SIGTERM), ``failed`` (an error
ended it) or ``complete``; only a complete run's result files are its results.

A run directory is created whole or not at all (:meth:`RunStore.create`): schema and starting
metadata in one transaction, the directory removed again if that cannot be written (a full or
read-only disk), so there is never a run that can be neither resumed nor started again.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import pickle
import shutil
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hil.errors import HilError

CONDUCTANCE_MAPS = "conductance-maps.png"
CONDUCTANCE_CDF = "conductance-cdf.png"
ACCURACY = "accuracy.png"
RESPONSE_CURVES = "response-curves.png"
STATES = ("running", "interrupted", "failed", "complete")
STARTING = ".run-starting.sqlite"  # a run's database until its starting metadata is committed


class StoreWriteError(HilError):
    """The run's records could not be written (disk full, read-only, gone): what was saved
    before stays, the run can be resumed once there is room."""

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
CREATE TABLE IF NOT EXISTS parts (name TEXT PRIMARY KEY, value BLOB);
CREATE TABLE IF NOT EXISTS journal (id INTEGER PRIMARY KEY, state TEXT NOT NULL,
    devices BLOB, polarity BLOB, count BLOB);
"""


def _npy(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.asarray(a), allow_pickle=False)
    return buf.getvalue()


class RunStore:
    """A run directory and its database."""

    def __init__(self, directory: str | Path, *, create: bool = False) -> None:
        """Open an existing run (``--resume``, reading): refuses a directory without one. A new
        run is made by :meth:`create` only (``create`` is accepted and must be False)."""
        assert not create, "RunStore.create makes a new run"
        self.dir = Path(directory)
        db = self.dir / "run.sqlite"
        if not db.is_file():
            raise HilError(f"{self.dir}: not a run directory (no run.sqlite)")
        try:
            self.db = sqlite3.connect(db)
            self.db.executescript(SCHEMA)
        except sqlite3.Error as exc:
            raise HilError(f"{self.dir}: cannot open run store: {exc}") from None

    @staticmethod
    def check_new(directory: str | Path) -> Path:
        """Refuse, before anything is measured, a ``directory`` that holds anything (a run is
        never overwritten) or that cannot be written; touches nothing."""
        path = Path(directory)
        with contextlib.suppress(OSError):  # a start killed before its first commit
            (path / STARTING).unlink()
        if path.exists() and (not path.is_dir() or any(path.iterdir())):
            if (path / "run.sqlite").exists():
                raise HilError(f"{path}: a run is already there and is never overwritten "
                               f"(--resume {path} continues it; or choose another --out)")
            raise HilError(f"{path}: exists and is not empty; a run is never written over "
                           "other files (choose another --out)")
        parent = next(p for p in (path, *path.parents) if p.exists())
        if not parent.is_dir():
            raise HilError(f"{path}: cannot write a run there ({parent} is not a directory)")
        if not os.access(parent, os.W_OK | os.X_OK):
            raise HilError(f"{path}: cannot write a run there ({parent} is not writable)")
        return path

    @classmethod
    def create(cls, directory: str | Path, *, reuse: bool = False, **meta: Any) -> RunStore:
        """A new run in ``directory``, which must not exist or be empty (a run is never
        overwritten), with ``meta`` and ``state = running`` written in the same transaction.
        Anything this created is removed again if the store cannot be written, so a refused
        start leaves nothing behind. ``reuse``: the run already there is opened instead (a
        study re-run into its report directory with ``--reuse``)."""
        if reuse and (Path(directory) / "run.sqlite").is_file():
            store = cls(directory)
            store.put_meta(**meta, state="running")
            return store
        path = Path(directory) if reuse else cls.check_new(directory)
        made = [p for p in (path, *path.parents) if not p.exists()]
        try:
            path.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(path / STARTING)
            try:
                db.execute("PRAGMA journal_mode=WAL")  # hil watch reads while the run writes
                with db:
                    db.executescript(SCHEMA)
                    db.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)",
                                   [(k, json.dumps(v)) for k, v in
                                    {**meta, "state": "running"}.items()])
            finally:
                db.close()
            os.replace(path / STARTING, path / "run.sqlite")  # a run.sqlite is a started run
        except (OSError, sqlite3.Error) as exc:
            if made:
                shutil.rmtree(made[-1], ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    (path / STARTING).unlink()
            raise HilError(f"{path}: cannot write a run there: {_reason(exc)}") from None
        return cls(path)

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> RunStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- metadata ----------------------------------------------------------------------

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        """One transaction; a failed write (disk full, read-only) becomes one line."""
        try:
            with self.db:
                yield
        except (OSError, sqlite3.Error) as exc:
            raise StoreWriteError(f"{self.dir}: cannot write the run's records: {_reason(exc)}; "
                                  "what was saved before is intact") from None

    @property
    def state(self) -> str:
        """``running``, ``interrupted``, ``failed`` or ``complete`` (see the module docstring)."""
        row = self.db.execute("SELECT value FROM meta WHERE key = 'state'").fetchone()
        return "running" if row is None else json.loads(row[0])

    def mark(self, state: str) -> None:
        """Record how the run stands; after a failed write this is best effort."""
        assert state in STATES, state
        self.put_meta(state=state)

    @contextlib.contextmanager
    def running(self) -> Iterator[None]:
        """The run's state while the block runs: ``running``, then ``complete``, or
        ``interrupted`` (Ctrl-C, SIGTERM) or ``failed`` (best effort: the error that stopped the
        run is the one reported, not a second one from recording it)."""
        self.mark("running")
        try:
            yield
        except KeyboardInterrupt:
            self._mark_quietly("interrupted")
            raise
        except BaseException:
            self._mark_quietly("failed")
            raise
        self.mark("complete")

    def _mark_quietly(self, state: str) -> None:
        with contextlib.suppress(StoreWriteError, sqlite3.Error):
            self.mark(state)

    def put_meta(self, **items: Any) -> None:
        with self._writing():
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
        with self._writing():
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
        """The latest resumable state; the pulse journal's entries are settled in the same
        transaction (the checkpoint's counts hold their pulses; they stay for audits)."""
        with self._writing():
            self.db.execute(
                "INSERT OR REPLACE INTO checkpoint VALUES (1, ?, ?)",
                (images, pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)),
            )
            self.db.execute("UPDATE journal SET state = 'settled' || state "
                            "WHERE state NOT LIKE 'settled%'")

    # ---- the pulse journal (instruments: what was sent since the checkpoint) --------------

    def journal_planned(self, devices: Any, polarity: Any, count: Any) -> int:
        """A pulse batch about to be sent; returns its entry."""
        with self._writing():
            cur = self.db.execute(
                "INSERT INTO journal (state, devices, polarity, count) VALUES ('planned', ?, ?, ?)",
                (_npy(devices), _npy(polarity), _npy(count)))
        return int(cur.lastrowid or 0)

    def journal_applied(self, entry: int) -> None:
        with self._writing():
            self.db.execute("UPDATE journal SET state = 'applied' WHERE id = ?", (entry,))

    def journal(self, settled: bool = False) -> list[tuple[str, np.ndarray, np.ndarray,
                                                               np.ndarray]]:
        """Entries since the last checkpoint (``settled``: every entry of the run, for an
        audit against what the bench received): state, devices, polarity, count."""
        where = "" if settled else "WHERE state NOT LIKE 'settled%'"
        return [(state, *(np.load(io.BytesIO(b), allow_pickle=False) for b in blobs))
                for state, *blobs in self.db.execute(
                    f"SELECT state, devices, polarity, count FROM journal {where} ORDER BY id")]

    def load_checkpoint(self) -> dict[str, Any] | None:
        row = self.db.execute("SELECT state FROM checkpoint WHERE id = 1").fetchone()
        return None if row is None else pickle.loads(row[0])

    # ---- parts of a measurement done one piece at a time (a board, say) -------------------

    def save_part(self, name: str, value: Any) -> None:
        """Keep one finished piece of the run, so a resumed run does not measure it again."""
        with self._writing():
            self.db.execute("INSERT OR REPLACE INTO parts VALUES (?, ?)",
                            (name, pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)))

    def parts(self) -> dict[str, Any]:
        return {name: pickle.loads(blob)
                for name, blob in self.db.execute("SELECT name, value FROM parts ORDER BY rowid")}

    # ---- generic tables and files -------------------------------------------------------

    def write_table(self, name: str, df: pd.DataFrame, *, append: bool = False) -> None:
        """Store a DataFrame as a table of the run database (reads, classifications, ...)."""
        with self._writing():
            df.to_sql(name, self.db, if_exists="append" if append else "replace", index=False)

    def has_table(self, name: str) -> bool:
        return self.db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                               (name,)).fetchone() is not None

    def write_file(self, name: str, write: Callable[[Path], Any]) -> Path:
        """``write(tmp_path)`` then rename into ``name``: a reader sees the whole file or none."""
        return write_atomic(self.dir / name, write)

    def read_table(self, name: str) -> pd.DataFrame:
        """A table :meth:`write_table` stored (empty if there is none)."""
        try:
            return pd.read_sql_query(f'SELECT * FROM "{name}"', self.db)
        except (sqlite3.Error, pd.errors.DatabaseError):
            return pd.DataFrame()

    def write_json(self, name: str, data: dict[str, Any]) -> Path:
        return self.write_file(name, lambda p: p.write_text(json.dumps(data, indent=2) + "\n"))


def disk_full_after(saves: int) -> Callable[[RunStore, int, dict[str, Any]], None]:
    """A ``RunStore.save_checkpoint`` for fault drills and tests: after ``saves`` checkpoints
    the database may not grow any more, so the next write that needs a page fails with SQLite's
    own "database or disk is full" (SQLITE_FULL), the error a full disk gives."""
    calls = {"n": 0}
    original = RunStore.save_checkpoint

    def save(self: RunStore, images: int, state: dict[str, Any]) -> None:
        calls["n"] += 1
        if calls["n"] == saves + 1:
            pages = self.db.execute("PRAGMA page_count").fetchone()[0]
            self.db.execute(f"PRAGMA max_page_count = {pages}")
        return original(self, images, state)

    return save


def output_dir(directory: str | Path, *, existing_ok: bool = False) -> Path:
    """A directory a command writes results into, made (and proved writable with a probe file)
    before any work starts: an existing non-empty one is refused unless ``existing_ok`` (a report
    that reuses its studies), so earlier results are never overwritten, and a read-only or full
    disk is one line now instead of a traceback after hours of work."""
    path = Path(directory)
    if not existing_ok:
        RunStore.check_new(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".write-probe"
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as exc:
        raise HilError(f"{path}: cannot write results there: {_reason(exc)}") from None
    return path


def write_atomic(path: str | Path, write: Callable[[Path], Any]) -> Path:
    """``write(tmp_path)`` then rename into ``path``: a reader sees the whole file or none; a
    failure (disk full, read-only) is one line and leaves no temporary file behind."""
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.partial{path.suffix}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write(tmp)
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise StoreWriteError(f"{path}: cannot write: {_reason(exc)}") from None
    return path


def _reason(exc: BaseException) -> str:
    return exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
