"""Device registry: every device's life across runs, in one SQLite file.

Where it lives: ``--registry PATH`` if given, else ``$HIL_REGISTRY``, else ``devices.sqlite`` in
the user's data directory -- ``$XDG_DATA_HOME/memristor-hil`` (``~/.local/share/memristor-hil``)
on Linux, ``~/Library/Application Support/memristor-hil`` on macOS,
``%LOCALAPPDATA%\\memristor-hil`` on Windows. One registry can hold several benches; a device is
the position (bench identity, board id, row, col) and whatever chip currently sits there. The
bench identity is its name for real instruments, and the name with ``(simulated)`` or
``(emulated)`` otherwise (:attr:`hil.bench.Bench.identity`): a simulated bench's verdicts never
block training on a real one. The registry is created only by the first ``hil characterize``;
every other use of a registry file that does not exist is refused, so a misspelt path is never
taken for an empty registry.

Tables:

* ``devices``: one row per position -- chip, pad, ``first_seen`` (first characterisation),
  ``installed`` (last chip swap, empty for the original chip), ``mode`` (latest classification,
  or ``replaced`` from a swap until the new device is characterised), ``checked`` (time of that
  classification) and ``pulses`` endured by the device now installed;
* ``events``: the history -- ``classified`` (with mode and the pulses of that run) and
  ``replaced`` events, each with time and run directory.

Times are UTC, ISO 8601.
"""

from __future__ import annotations

import os
import sqlite3
import sys
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from hil.bench import Bench
from hil.characterization.classify import FAILED
from hil.errors import HilError

REPLACED = "replaced"

SCHEMA = """
CREATE TABLE IF NOT EXISTS devices (
    bench TEXT NOT NULL, board INTEGER NOT NULL, row INTEGER NOT NULL, col INTEGER NOT NULL,
    chip INTEGER NOT NULL, pad INTEGER NOT NULL, first_seen TEXT, installed TEXT,
    mode TEXT, checked TEXT, pulses INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (bench, board, row, col));
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY, bench TEXT NOT NULL, board INTEGER NOT NULL, row INTEGER NOT NULL,
    col INTEGER NOT NULL, time TEXT NOT NULL, event TEXT NOT NULL, mode TEXT,
    pulses INTEGER, run TEXT);
CREATE INDEX IF NOT EXISTS events_cell ON events (bench, board, row, col);
"""


def default_path() -> Path:
    """The registry file used when no ``--registry`` is given (see the module docstring)."""
    if env := os.environ.get("HIL_REGISTRY"):
        return Path(env)
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local"))
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    else:
        base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / "memristor-hil" / "devices.sqlite"


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _labels(bench: Bench, devices: np.ndarray) -> pd.DataFrame:
    lab = bench.labels(devices)
    return pd.DataFrame({"bench": bench.identity, **{k: lab[k] for k in ("board", "row", "col",
                                                                    "chip", "pad")}})


class Registry:
    """The device registry file; created only if ``create`` (the first characterisation)."""

    def __init__(self, path: str | Path | None = None, *, create: bool = False) -> None:
        self.path = Path(path) if path is not None else default_path()
        self.created = not self.path.exists()
        if self.created and not create:
            raise HilError(f"{self.path}: no device registry there (the first hil characterize "
                           "creates it; check the path)")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(self.path)
            self.db.executescript(SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise HilError(f"{self.path}: cannot open device registry: {exc}") from None

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- writing ----------------------------------------------------------------------

    def record(
        self,
        bench: Bench,
        devices: np.ndarray,
        modes: np.ndarray,
        pulses: np.ndarray,
        run: str,
        time: str | None = None,
    ) -> None:
        """A characterisation's verdicts: ``modes`` and ``pulses`` it cost, per device."""
        time = time or now()
        df = _labels(bench, devices).assign(mode=np.asarray(modes, dtype=str),
                                            pulses=np.asarray(pulses, dtype=np.int64))
        rows = list(df.itertuples(index=False, name=None))
        with self.db:
            self.db.executemany(
                "INSERT INTO devices (bench, board, row, col, chip, pad, first_seen, mode, "
                "checked, pulses) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT DO UPDATE SET chip = excluded.chip, pad = excluded.pad, "
                "first_seen = coalesce(devices.first_seen, excluded.first_seen), "
                "mode = excluded.mode, checked = excluded.checked, "
                "pulses = devices.pulses + excluded.pulses",
                [(*r[:6], time, r[6], time, r[7]) for r in rows],
            )
            self.db.executemany(
                "INSERT INTO events (bench, board, row, col, time, event, mode, pulses, run) "
                "VALUES (?, ?, ?, ?, ?, 'classified', ?, ?, ?)",
                [(*r[:4], time, r[6], r[7], run) for r in rows],
            )

    def add_pulses(self, bench: Bench, devices: np.ndarray, pulses: np.ndarray) -> None:
        """Pulses a run (training, say) put on devices, added to what they have endured."""
        df = _labels(bench, devices).assign(pulses=np.asarray(pulses, dtype=np.int64))
        df = df[df["pulses"] > 0]
        with self.db:
            self.db.executemany(
                "INSERT INTO devices (bench, board, row, col, chip, pad, pulses) "
                "VALUES (?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT DO UPDATE SET pulses = devices.pulses + excluded.pulses",
                list(df.itertuples(index=False, name=None)),
            )

    def replace(
        self, bench: Bench, board: int, chip: int, pad: int | None = None,
        time: str | None = None,
    ) -> pd.DataFrame:
        """Record a chip swap (or one pad re-glued): its cells hold new devices, not yet
        characterised. Returns the cells affected."""
        if board not in bench.board_ids:
            raise HilError(f"board {board} is not on bench {bench.name}")
        bm = bench.board_map
        hit = (bm.chip == chip) & ((bm.pad == pad) if pad is not None else True)
        if not hit.any():
            what = f"chip {chip}" + (f" pad {pad}" if pad is not None else "")
            raise HilError(f"board {board} has no {what} (chips 1-30, pads 1-4)")
        r, c = np.nonzero(hit)
        devices = bench.devices(np.full(r.size, board), r + 1, c + 1)
        df = _labels(bench, devices)
        time = time or now()
        with self.db:
            self.db.executemany(
                "INSERT INTO devices (bench, board, row, col, chip, pad, installed, mode, pulses) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0) "
                "ON CONFLICT DO UPDATE SET installed = excluded.installed, mode = excluded.mode, "
                "pulses = 0",
                [(*rec, time, REPLACED) for rec in df.itertuples(index=False, name=None)],
            )
            self.db.executemany(
                "INSERT INTO events (bench, board, row, col, time, event, mode) "
                "VALUES (?, ?, ?, ?, ?, 'replaced', ?)",
                [(*rec[:4], time, REPLACED) for rec in df.itertuples(index=False, name=None)],
            )
        return df.drop(columns="bench").sort_values(["chip", "pad"], ignore_index=True)

    # ---- reading ----------------------------------------------------------------------

    def census(self, bench: Bench, board: int | None = None,
               mode: str | None = None) -> pd.DataFrame:
        """Every known device of ``bench`` (optionally of one board / in one mode), sorted
        board -> chip -> pad."""
        sql = ("SELECT board, chip, pad, row, col, mode, first_seen, installed, checked, pulses "
               "FROM devices WHERE bench = ?")
        args: list[object] = [bench.identity]
        if board is not None:
            sql += " AND board = ?"
            args.append(board)
        if mode is not None:
            sql += " AND mode = ?"
            args.append(mode)
        return pd.read_sql_query(sql + " ORDER BY board, chip, pad", self.db, params=args)

    def history(self, bench: Bench, board: int, chip: int | None = None) -> pd.DataFrame:
        """Events of one board's devices (optionally one chip), oldest first."""
        df = pd.read_sql_query(
            "SELECT board, row, col, time, event, mode, pulses, run FROM events "
            "WHERE bench = ? AND board = ? ORDER BY id", self.db, params=[bench.identity, board])
        df["pulses"] = df["pulses"].astype("Int64")
        lab = bench.board_map
        df.insert(1, "chip", lab.chip[df["row"] - 1, df["col"] - 1])
        df.insert(2, "pad", lab.pad[df["row"] - 1, df["col"] - 1])
        if chip is not None:
            df = df[df["chip"] == chip]
        return df.sort_values(["chip", "pad"], kind="stable", ignore_index=True)

    def replaced_devices(self, bench: Bench, pending: bool = False) -> np.ndarray:
        """Flat indices of the cells whose chip was ever swapped (``pending``: only those not
        characterised since), on the boards of ``bench``."""
        sql = "SELECT board, row, col FROM devices WHERE bench = ? AND installed IS NOT NULL"
        if pending:
            sql += " AND mode = 'replaced'"
        return self._devices(bench, pd.read_sql_query(sql, self.db, params=[bench.identity]))

    def replaced_since(self, bench: Bench, time: str) -> np.ndarray:
        """Flat indices of the cells of ``bench`` whose chip was swapped after ``time``."""
        return self._devices(bench, pd.read_sql_query(
            "SELECT DISTINCT board, row, col FROM events WHERE bench = ? AND event = 'replaced' "
            "AND time > ?", self.db, params=[bench.identity, time]))

    def flagged(self, bench: Bench) -> pd.DataFrame:
        """Cells of ``bench`` whose latest classification is a failure (or that sit on an open
        line) and that have not been replaced since: training must not rely on them."""
        marks = ", ".join("?" * (len(FAILED) + 1))
        df = pd.read_sql_query(
            "SELECT board, chip, pad, row, col, mode FROM devices "
            f"WHERE bench = ? AND mode IN ({marks}) ORDER BY board, chip, pad",
            self.db, params=[bench.identity, *FAILED, "fabric"])
        df = df[df["board"].isin(bench.board_ids)].reset_index(drop=True)
        df.insert(0, "device", self._devices(bench, df))
        return df

    @staticmethod
    def _devices(bench: Bench, df: pd.DataFrame) -> np.ndarray:
        df = df[df["board"].isin(bench.board_ids)]
        if df.empty:
            return np.zeros(0, dtype=np.int64)
        return bench.devices(df["board"].to_numpy(), df["row"].to_numpy(), df["col"].to_numpy())


def flagged_devices(bench: Bench, registry: str | Path | None = None) -> pd.DataFrame:
    """For the trainer: cells of ``bench`` flagged and not replaced, with their flat ``device``
    index, PCB labels and mode. Empty when the default registry does not exist yet (nothing has
    been characterised, so nothing is known to be broken); a ``registry`` named explicitly must
    exist."""
    path = Path(registry) if registry is not None else default_path()
    if registry is None and not path.exists():
        return pd.DataFrame(columns=["device", "board", "chip", "pad", "row", "col", "mode"])
    with Registry(path) as reg:
        return reg.flagged(bench)
