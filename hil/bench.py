"""Bench file: which boards exist, how they tile the logical arrays, pulse settings and limits.

The bench file is the single description of a physical (or simulated) bench. It is validated
strictly, because a typo in a lab configuration should stop a run before any pulse is fired, not
silently fall back to a default. Every problem is a :class:`BenchFileError` naming file and key.

Internally every device has a flat index ``board_pos * 120 + row * 10 + col`` (all 0-based,
``board_pos`` is the position of the board in ``Bench.board_ids``); files and the CLI speak the
PCB's labels (board id, rows 1-12, columns 1-10).
"""

from __future__ import annotations

import csv
import json
import math
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from hil.errors import BenchFileError

ROWS, COLS = 12, 10
CELLS = ROWS * COLS
CHIPS, PADS = 30, 4

DEFAULT_BENCH = "bench-default.toml"


def data_file(name: str) -> Path:
    """Path of a file shipped in the package's ``data/`` folder."""
    return Path(str(resources.files("data").joinpath(name)))


# --------------------------------------------------------------------------------------------
# schema: section -> key -> (type(s), check, default); a check returns a problem or None


def _positive(v: float) -> str | None:
    return None if v > 0 else "must be > 0"


def _fraction(v: float) -> str | None:
    return None if 0 <= v < 1 else "must be in [0, 1)"


def _volts(limit: float) -> Callable[[float], str | None]:
    return lambda v: None if abs(v) <= limit else f"|{v}| V exceeds {limit} V"


def _one_of(*options: str) -> Callable[[str], str | None]:
    return lambda v: None if v in options else f"must be one of {', '.join(options)}"


_NUM = (int, float)
Schema = dict[str, tuple[Any, Callable[[Any], str | None] | None, Any]]

SCHEMA: dict[str, Schema] = {
    "bench": {
        "name": (str, None, "bench"),
        "backend": (str, _one_of("sim", "instruments"), "sim"),
        "emulated": (bool, None, False),  # instruments served by ``hil bench serve``
    },
    "boards": {
        "ids": (list, None, None),
        "count": (int, _positive, None),
        "map": (str, None, "board-map.csv"),
    },
    "pulses": {
        "set_voltage": (_NUM, _volts(10), 1.8),
        "reset_voltage": (_NUM, _volts(10), -1.8),
        "width": (_NUM, _positive, 1e-6),
        "read_voltage": (_NUM, _volts(10), 0.2),
    },
    "limits": {
        "max_pulse_voltage": (_NUM, _positive, 2.5),
        "max_read_voltage": (_NUM, _positive, 0.5),
        "min_pulse_width": (_NUM, _positive, 1e-8),
        "max_pulse_width": (_NUM, _positive, 1e-3),
        "current_compliance": (_NUM, _positive, 1e-3),
    },
    "networks": {},  # name -> list of array names, checked below
    "sim": {
        "curves": (str, None, "curves-default.csv"),
        "seed": (int, None, 0),
        "device_spread": (_NUM, _fraction, 0.30),
        "cycle_noise": (_NUM, _fraction, 0.30),
        "read_noise": (_NUM, _fraction, 0.015),
        "series_resistance": (_NUM, lambda v: None if v >= 0 else "must be >= 0", 300.0),
        "fresh_mean": (_NUM, _positive, 1.9),
        "fresh_max": (_NUM, _positive, 5.0),
        "stuck_off_range": (list, None, [0.5, 2.0]),
        "stuck_on_range": (list, None, [300.0, 400.0]),
        "amplitude_scale": (_NUM, _positive, 0.25),
        "width_exponent": (_NUM, _positive, 0.5),
        "switch_threshold": (_NUM, _positive, 0.9),
        "reference_voltage": (_NUM, _positive, 1.8),
        "reference_width": (_NUM, _positive, 1e-6),
        "grow_arrays": (bool, None, True),
    },
}
ARRAY_SCHEMA: Schema = {
    "shape": (list, None, None),
    "boards": (list, None, None),
}


def _check_section(path: object, name: str, table: Any, schema: Schema) -> dict[str, Any]:
    if not isinstance(table, dict):
        raise BenchFileError(path, name, "must be a table")
    out: dict[str, Any] = {}
    for key, value in table.items():
        if key not in schema:
            raise BenchFileError(path, f"{name}.{key}", f"unknown key (known: {', '.join(schema)})")
        kind, check, _ = schema[key]
        ok = isinstance(value, kind) and not (isinstance(value, bool) and kind is not bool)
        if not ok:
            want = "number" if kind == _NUM else getattr(kind, "__name__", str(kind))
            raise BenchFileError(path, f"{name}.{key}", f"expected {want}, got {value!r}")
        if check and (problem := check(value)):
            raise BenchFileError(path, f"{name}.{key}", problem)
        out[key] = value
    for key, (_, _, default) in schema.items():
        out.setdefault(key, default)
    return out


# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PulseSettings:
    set_voltage: float
    reset_voltage: float
    width: float
    read_voltage: float


@dataclass(frozen=True)
class Limits:
    max_pulse_voltage: float
    max_read_voltage: float
    min_pulse_width: float
    max_pulse_width: float
    current_compliance: float


@dataclass(frozen=True)
class SimSettings:
    curves: Path
    seed: int
    device_spread: float
    cycle_noise: float
    read_noise: float
    series_resistance: float
    fresh_mean: float
    fresh_max: float
    stuck_off_range: tuple[float, float]
    stuck_on_range: tuple[float, float]
    amplitude_scale: float
    width_exponent: float
    switch_threshold: float
    reference_voltage: float
    reference_width: float
    grow_arrays: bool


@dataclass(frozen=True)
class ArraySpec:
    """A logical array of ``shape`` tiled by a grid of boards (``grid[i][j]`` covers rows
    ``12 i ..`` and columns ``10 j ..``)."""

    name: str
    shape: tuple[int, int]
    grid: tuple[tuple[int, ...], ...]


@dataclass(frozen=True)
class BoardMap:
    """Chip (1-30) and pad (1-4) of every (row, col) cell on a board, 0-based numpy lookup."""

    chip: np.ndarray
    pad: np.ndarray


@dataclass(frozen=True)
class Bench:
    path: str
    name: str
    backend: str
    board_ids: tuple[int, ...]
    board_map: BoardMap
    pulses: PulseSettings
    limits: Limits
    arrays: dict[str, ArraySpec]
    networks: dict[str, tuple[str, ...]]
    sim: SimSettings
    raw: dict[str, Any] = field(repr=False, default_factory=dict)
    text: str = field(repr=False, default="")
    # a bench made ``for_network``: every board of the bench it was made from, so a board
    # outside the network can be told apart from one the bench does not have
    whole_board_ids: tuple[int, ...] = ()
    emulated: bool = False

    @property
    def real(self) -> bool:
        """Real instruments: the only bench whose devices the lab's registry is about."""
        return self.backend == "instruments" and not self.emulated

    @property
    def identity(self) -> str:
        """The bench as the device registry keys it: its name, and for a bench that is not
        real the kind of bench, so simulated or emulated devices never stand for real ones."""
        if self.real:
            return self.name
        return f"{self.name} ({'emulated' if self.backend == 'instruments' else 'simulated'})"

    @property
    def n_devices(self) -> int:
        return len(self.board_ids) * CELLS

    def board_pos(self, board_id: int) -> int:
        try:
            return self.board_ids.index(board_id)
        except ValueError:
            raise KeyError(f"board {board_id} is not on bench {self.name}") from None

    def devices(self, board_ids: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """Flat device indices of cells given as PCB labels (board id, row 1-12, col 1-10)."""
        lookup = {b: i for i, b in enumerate(self.board_ids)}
        pos = np.array([lookup[int(b)] for b in np.atleast_1d(board_ids)], dtype=np.int64)
        return pos * CELLS + (np.asarray(rows) - 1) * COLS + (np.asarray(cols) - 1)

    def labels(self, devices: np.ndarray) -> dict[str, np.ndarray]:
        """PCB labels (board id, row, col, chip, pad) of flat device indices."""
        devices = np.asarray(devices, dtype=np.int64)
        pos, cell = np.divmod(devices, CELLS)
        r, c = np.divmod(cell, COLS)
        return {
            "board": np.asarray(self.board_ids, dtype=np.int64)[pos],
            "row": r + 1,
            "col": c + 1,
            "chip": self.board_map.chip[r, c],
            "pad": self.board_map.pad[r, c],
        }

    def array_devices(self, name: str) -> np.ndarray:
        """(rows, cols) matrix of flat device indices of a logical array."""
        spec = self.arrays[name]
        r = np.arange(spec.shape[0])
        c = np.arange(spec.shape[1])
        grid = np.array([[self.board_pos(b) for b in row] for row in spec.grid], dtype=np.int64)
        pos = grid[r[:, None] // ROWS, c[None, :] // COLS]
        return pos * CELLS + (r[:, None] % ROWS) * COLS + (c[None, :] % COLS)

    def for_network(self, name: str, shapes: list[tuple[int, int]]) -> Bench:
        """A bench whose arrays are exactly the ``shapes`` a network needs.

        The network's arrays keep their first rows and columns; on a simulated bench with
        ``grow_arrays`` an array that is too small is extended with new virtual boards, so a
        hidden-neuron sweep can run on the default bench. On real hardware that is an error.
        """
        if name not in self.networks:
            raise BenchFileError(self.path, "networks", f"no network named {name!r}")
        names = self.networks[name]
        if len(names) != len(shapes):
            raise BenchFileError(
                self.path, f"networks.{name}", f"lists {len(names)} arrays, need {len(shapes)}"
            )
        arrays = dict(self.arrays)
        ids = list(self.board_ids)
        for array_name, shape in zip(names, shapes, strict=True):
            spec = arrays[array_name]
            need_r, need_c = math.ceil(shape[0] / ROWS), math.ceil(shape[1] / COLS)
            grid = [list(row) for row in spec.grid]
            if need_r > len(grid) or need_c > len(grid[0]):
                if not (self.backend == "sim" and self.sim.grow_arrays):
                    raise BenchFileError(
                        self.path,
                        f"arrays.{array_name}",
                        f"is {spec.shape[0]}x{spec.shape[1]} but network {name} needs "
                        f"{shape[0]}x{shape[1]}",
                    )
                for row in grid:
                    while len(row) < need_c:
                        row.append(_new_id(ids))
                while len(grid) < need_r:
                    grid.append([_new_id(ids) for _ in range(need_c)])
            grid = [row[:need_c] for row in grid[:need_r]]
            arrays[array_name] = ArraySpec(array_name, shape, tuple(tuple(r) for r in grid))
        used = {b for n in names for row in arrays[n].grid for b in row}
        kept = {n: a for n, a in arrays.items() if n in names}
        return replace(
            self,
            board_ids=tuple(b for b in ids if b in used),
            whole_board_ids=self.whole_board_ids or self.board_ids,
            arrays=kept,
            networks={name: names},
        )


def _new_id(ids: list[int]) -> int:
    ids.append(max(ids) + 1)
    return ids[-1]


# --------------------------------------------------------------------------------------------


def load_board_map(path: Path) -> BoardMap:
    """Read a board map CSV ``row,col,chip,pad`` (1-based, every cell exactly once)."""
    chip = np.zeros((ROWS, COLS), dtype=np.int64)
    pad = np.zeros((ROWS, COLS), dtype=np.int64)
    try:
        with open(path, newline="") as fh:
            rows = list(csv.DictReader(fh))
    except OSError as exc:
        raise BenchFileError(path, "boards.map", f"cannot read: {exc.strerror}") from None
    for n, rec in enumerate(rows, start=2):
        try:
            r, c, ch, pd = (int(rec[k]) for k in ("row", "col", "chip", "pad"))
        except (KeyError, TypeError, ValueError):
            raise BenchFileError(path, f"line {n}", "need integer row,col,chip,pad") from None
        if not (1 <= r <= ROWS and 1 <= c <= COLS and 1 <= ch <= CHIPS and 1 <= pd <= PADS):
            raise BenchFileError(path, f"line {n}", "row/col/chip/pad out of range")
        if chip[r - 1, c - 1]:
            raise BenchFileError(path, f"line {n}", f"cell ({r},{c}) listed twice")
        chip[r - 1, c - 1], pad[r - 1, c - 1] = ch, pd
    if (chip == 0).any():
        raise BenchFileError(path, "boards.map", "does not list every one of the 120 cells")
    if len({(a, b) for a, b in zip(chip.ravel(), pad.ravel(), strict=True)}) != CELLS:
        raise BenchFileError(path, "boards.map", "a chip/pad pair is used twice")
    return BoardMap(chip, pad)


def _resolve(base: Path | None, name: str) -> Path:
    p = Path(name)
    if p.is_absolute():
        return p
    if base is not None and (base / p).exists():
        return base / p
    return data_file(name)


def load_bench(path: str | Path | None = None) -> Bench:
    """Load and validate a bench file; ``None`` loads the embedded default bench."""
    file = Path(path) if path is not None else data_file(DEFAULT_BENCH)
    shown = str(path) if path is not None else f"<embedded {DEFAULT_BENCH}>"
    try:
        text = file.read_text()
    except OSError as exc:
        raise BenchFileError(shown, "file", f"cannot read: {exc.strerror}") from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise BenchFileError(shown, "syntax", str(exc)) from None
    return parse_bench(raw, shown, base=file.parent, text=text)


def parse_bench(
    raw: dict[str, Any], path: str, base: Path | None = None, text: str = ""
) -> Bench:
    known = set(SCHEMA) | {"arrays"} | set(EXTRA_SECTIONS)
    for key in raw:
        if key not in known:
            raise BenchFileError(path, key, f"unknown section (known: {', '.join(sorted(known))})")
    sec = {name: _check_section(path, name, raw.get(name, {}), s) for name, s in SCHEMA.items()
           if name != "networks"}
    for name, schema in EXTRA_SECTIONS.items():  # owned by other layers, checked just as strictly
        _check_section(path, name, raw.get(name, {}), schema)

    boards = sec["boards"]
    if boards["ids"] is not None and boards["count"] is not None:
        raise BenchFileError(path, "boards", "give either ids or count, not both")
    if boards["ids"] is not None:
        ids = boards["ids"]
        if not ids or not all(isinstance(i, int) and not isinstance(i, bool) and i > 0
                              for i in ids):
            raise BenchFileError(path, "boards.ids", "must be a list of positive integers")
        if len(set(ids)) != len(ids):
            raise BenchFileError(path, "boards.ids", "a board id is listed twice")
    elif boards["count"] is not None:
        ids = list(range(1, boards["count"] + 1))
    else:
        raise BenchFileError(path, "boards", "missing ids or count")
    board_map = load_board_map(_resolve(base, boards["map"]))

    pulses = PulseSettings(**{k: float(v) for k, v in sec["pulses"].items()})
    limits = Limits(**{k: float(v) for k, v in sec["limits"].items()})
    for key in ("set_voltage", "reset_voltage"):
        if abs(getattr(pulses, key)) > limits.max_pulse_voltage:
            raise BenchFileError(path, f"pulses.{key}", "exceeds limits.max_pulse_voltage")
    if pulses.set_voltage <= 0 or pulses.reset_voltage >= 0:
        raise BenchFileError(path, "pulses", "set_voltage must be > 0 and reset_voltage < 0")
    if abs(pulses.read_voltage) > limits.max_read_voltage:
        raise BenchFileError(path, "pulses.read_voltage", "exceeds limits.max_read_voltage")
    if not limits.min_pulse_width <= pulses.width <= limits.max_pulse_width:
        raise BenchFileError(path, "pulses.width", "outside limits.min/max_pulse_width")

    arrays = _parse_arrays(raw.get("arrays", {}), path, set(ids))
    networks = _parse_networks(raw.get("networks", {}), path, arrays)

    s = sec["sim"]
    for key in ("stuck_off_range", "stuck_on_range"):
        rng = s[key]
        if len(rng) != 2 or not all(isinstance(v, _NUM) for v in rng) or not 0 < rng[0] < rng[1]:
            raise BenchFileError(path, f"sim.{key}", "must be [low, high] with 0 < low < high")
    sim = SimSettings(
        **{**s, "curves": _resolve(base, s["curves"]),
           "stuck_off_range": tuple(s["stuck_off_range"]),
           "stuck_on_range": tuple(s["stuck_on_range"])}
    )
    if not sim.curves.exists():
        raise BenchFileError(path, "sim.curves", f"no such file {s['curves']}")
    return Bench(
        path=path,
        name=sec["bench"]["name"],
        backend=sec["bench"]["backend"],
        board_ids=tuple(ids),
        board_map=board_map,
        pulses=pulses,
        limits=limits,
        arrays=arrays,
        networks=networks,
        sim=sim,
        raw=raw,
        text=text,
        emulated=sec["bench"]["emulated"],
    )


# Sections other layers own (instrument addresses, bench clock): validated by those layers.
EXTRA_SECTIONS: dict[str, Schema] = {}


def _parse_arrays(table: Any, path: str, ids: set[int]) -> dict[str, ArraySpec]:
    if not isinstance(table, dict) or not table:
        raise BenchFileError(path, "arrays", "must define at least one array table")
    arrays: dict[str, ArraySpec] = {}
    seen: dict[int, str] = {}
    for name, spec in table.items():
        key = f"arrays.{name}"
        spec = _check_section(path, key, spec, ARRAY_SCHEMA)
        shape = spec["shape"]
        if (shape is None or len(shape) != 2
                or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0
                           for v in shape)):
            raise BenchFileError(path, f"{key}.shape", "must be [rows, cols], positive integers")
        grid = spec["boards"]
        if (not grid or not all(isinstance(r, list) and r for r in grid)
                or len({len(r) for r in grid}) != 1):
            raise BenchFileError(path, f"{key}.boards", "must be a rectangular list of lists")
        for row in grid:
            for b in row:
                if b not in ids:
                    raise BenchFileError(path, f"{key}.boards", f"board {b} is not in [boards]")
                if b in seen:
                    raise BenchFileError(
                        path, f"{key}.boards", f"board {b} is used twice (also in {seen[b]})"
                    )
                seen[b] = key
        rows, cols = len(grid) * ROWS, len(grid[0]) * COLS
        if shape[0] > rows or shape[1] > cols:
            raise BenchFileError(
                path, f"{key}.shape",
                f"{shape[0]}x{shape[1]} does not fit on {len(grid)}x{len(grid[0])} boards "
                f"({rows}x{cols} cells)",
            )
        arrays[name] = ArraySpec(name, (shape[0], shape[1]), tuple(tuple(r) for r in grid))
    return arrays


def _parse_networks(table: Any, path: str, arrays: dict[str, ArraySpec]) -> dict[str, tuple]:
    if not isinstance(table, dict):
        raise BenchFileError(path, "networks", "must be a table")
    out: dict[str, tuple[str, ...]] = {}
    for name, names in table.items():
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise BenchFileError(path, f"networks.{name}", "must be a list of array names")
        for n in names:
            if n not in arrays:
                raise BenchFileError(path, f"networks.{name}", f"unknown array {n!r}")
        out[name] = tuple(names)
    return out


# --------------------------------------------------------------------------------------------
# writing bench files


def standalone_tables(bench: Bench, base: Path | None = None) -> dict[str, Any]:
    """The bench file's tables (copied), with the board map and response curves made absolute
    paths, so a file derived from it works from any directory. ``base`` is the directory the
    bench file was read from (``None``: the shipped data)."""
    raw = {k: (dict(v) if isinstance(v, dict) else v) for k, v in bench.raw.items()}
    boards = raw.get("boards", {})
    raw["boards"] = {**boards, "map": str(_resolve(base, boards.get("map", "board-map.csv")))}
    raw["sim"] = {**raw.get("sim", {}), "curves": str(bench.sim.curves)}
    return raw


def dump_toml(data: dict[str, Any]) -> str:
    """TOML text of a bench dictionary (tables of scalars and lists, one nesting level for
    ``[arrays.NAME]``)."""
    lines: list[str] = []

    def table(name: str, body: dict[str, Any]) -> None:
        lines.append(f"[{name}]")
        subtables = {}
        for key, value in body.items():
            if isinstance(value, dict):
                subtables[key] = value
            else:
                lines.append(f"{key} = {toml_value(value)}")
        lines.append("")
        for key, value in subtables.items():
            table(f"{name}.{key}", value)

    for name, body in data.items():
        table(name, body)
    return "\n".join(lines)


def toml_value(v: Any) -> str:
    """One value as TOML text."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return repr(v) if math.isfinite(v) else ("inf" if v > 0 else "-inf")
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list | tuple):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {v!r} to TOML")
