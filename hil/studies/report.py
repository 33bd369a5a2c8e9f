"""What a study's ``results.csv`` says, beside what the paper says: Markdown tables and plots in
the style of the paper's Figs. 5-8.

Each paper figure this suite reproduces is a :class:`Claim`: the paper's number (or bound), how to
read the same quantity from ``results.csv`` (mean over seeds), and the tolerance the issue set:
within 1.5 accuracy points.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

TOLERANCE = 1.5  # accuracy points
KEYS = ["network", "hidden", "mode", "p", "epoch"]
LABELS = {
    ("single", "ok"): "single layer",
    ("single", "mixed"): "single layer, 6.15 % failed devices",
    ("two", "ok"): "two layers",
    ("two", "mixed"): "two layers, 6.15 % failed devices",
    ("single", "stuck_off"): "single layer, stuck-off",
    ("single", "stuck_on"): "single layer, stuck-on",
    ("two", "stuck_off"): "two layers, stuck-off",
    ("two", "stuck_on"): "two layers, stuck-on",
    ("single", "pair_off"): "single layer, weights lost (pairs stuck-off)",
    ("two", "pair_off"): "two layers, weights lost (pairs stuck-off)",
    ("single", "fp32_dropped"): "single layer, fp32, weights dropped",
    ("two", "fp32_dropped"): "two layers, fp32, weights dropped",
}
FAULT_MODES = ("stuck_off", "stuck_on", "pair_off", "fp32_dropped")
FAULT_MARKERS = {"stuck_off": "o", "stuck_on": "^", "pair_off": "D", "fp32_dropped": "s"}


def summarise(df: pd.DataFrame) -> pd.DataFrame:
    """Mean and spread over seeds of every (network, hidden, mode, p, epoch), in %."""
    acc = df.assign(acc=100 * df["test_accuracy"])
    g = acc.groupby(KEYS, sort=True)["acc"]
    out = pd.DataFrame({"mean": g.mean(), "sd": g.std(ddof=1).fillna(0.0), "n": g.size()})
    return out.reset_index()


def _cell(mean: float, sd: float) -> str:
    return f"{mean:.2f} ± {sd:.2f}"


# ---- the paper's figures ---------------------------------------------------------------------


@dataclass(frozen=True)
class Claim:
    """A figure the paper states and how to measure it from a study's summary."""

    what: str
    paper: str  # as the paper states it
    measure: Callable[[pd.DataFrame], float | None]  # mean accuracy (%) or None if not run
    check: Callable[[float], bool]

    def row(self, s: pd.DataFrame) -> list[str]:
        value = self.measure(s)
        if value is None:
            return [self.what, self.paper, "not run", "–"]
        return [self.what, self.paper, f"{value:.2f}", "yes" if self.check(value) else "**no**"]


def _near(target: float) -> Callable[[float], bool]:
    return lambda v: abs(v - target) <= TOLERANCE


def _below(bound: float) -> Callable[[float], bool]:
    return lambda v: v < bound + TOLERANCE


def _above(bound: float) -> Callable[[float], bool]:
    return lambda v: v > bound - TOLERANCE


def _pick(s: pd.DataFrame, **where: object) -> pd.DataFrame:
    mask = np.ones(len(s), dtype=bool)
    for key, value in where.items():
        mask &= (s[key] == value).to_numpy()
    return s[mask]


def _at_epoch(network: str, mode: str, epoch: int | None) -> Callable[[pd.DataFrame], float | None]:
    """Mean accuracy at ``epoch`` (None: the last one run); an epoch that was not run is not
    run (never stood in for by an earlier one)."""

    def measure(s: pd.DataFrame) -> float | None:
        part = _pick(s, network=network, mode=mode)
        if part.empty:
            return None
        at = _pick(part, epoch=int(part["epoch"].max()) if epoch is None else epoch)
        return None if at.empty else float(at["mean"].iloc[0])

    return measure


def _faults(network: str, mode: str, above: float, exact: bool = False
            ) -> Callable[[pd.DataFrame], float | None]:
    """Mean accuracy at fraction ``above`` (exact) or the worst case over fractions beyond it."""

    def measure(s: pd.DataFrame) -> float | None:
        part = _pick(s, network=network, mode=mode)
        part = part[np.isclose(part["p"], above)] if exact else part[part["p"] > above + 1e-9]
        return None if part.empty else float(part["mean"].max())

    return measure


def _hidden(mode: str, hidden: int | None) -> Callable[[pd.DataFrame], float | None]:
    """Final-epoch mean accuracy at ``hidden`` neurons (None: the largest network run)."""

    def measure(s: pd.DataFrame) -> float | None:
        part = _pick(s, mode=mode)
        if part.empty:
            return None
        h = int(part["hidden"].max()) if hidden is None else hidden
        part = _pick(part, hidden=h)
        if part.empty:
            return None
        return float(_pick(part, epoch=int(part["epoch"].max()))["mean"].iloc[0])

    return measure


def _fp32_gap(s: pd.DataFrame) -> float | None:
    dev, fp = _hidden("ok", None)(s), _hidden("fp32", None)(s)
    return None if dev is None or fp is None else fp - dev


CLAIMS: dict[str, list[Claim]] = {
    "curves": [
        Claim("single layer, epoch 1", "63.88", _at_epoch("single", "ok", 1), _near(63.88)),
        Claim("single layer, final", "92.35 (stable after 5)", _at_epoch("single", "ok", None),
              _near(92.35)),
        Claim("single layer, 6.15 % failed, epoch 8", "> 80", _at_epoch("single", "mixed", 8),
              _above(80)),
        Claim("single layer, 6.15 % failed, final", "87.5 (stable after 12)",
              _at_epoch("single", "mixed", None), _near(87.5)),
        Claim("two layers, epoch 2", "> 90", _at_epoch("two", "ok", 2), _above(90)),
        Claim("two layers, final", "95.19", _at_epoch("two", "ok", None), _near(95.19)),
    ],
    "faults": [
        Claim("single layer, 20 % stuck-off", "64.7", _faults("single", "stuck_off", 0.2, True),
              _near(64.7)),
        Claim("two layers, 20 % stuck-off", "88.06", _faults("two", "stuck_off", 0.2, True),
              _near(88.06)),
        Claim("single layer, stuck-on beyond 4 % (worst case)", "< 20",
              _faults("single", "stuck_on", 0.04), _below(20)),
        Claim("two layers, stuck-on beyond 10 % (worst case)", "≈ 20",
              _faults("two", "stuck_on", 0.10), _near(20)),
    ],
    "hidden": [
        Claim("device precision, 20 hidden", "95.46", _hidden("ok", 20), _near(95.46)),
        Claim("device precision, largest hidden", "96.57", _hidden("ok", None), _near(96.57)),
        Claim("fp32, largest hidden", "97.33", _hidden("fp32", None), _near(97.33)),
        Claim("fp32 minus device precision, largest hidden", "< 1", _fp32_gap,
              lambda v: v < 1.0),
    ],
}


# ---- tables --------------------------------------------------------------------------------


def _md(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def claims_table(study: str, s: pd.DataFrame) -> str:
    rows = [c.row(s) for c in CLAIMS[study]]
    return _md(["figure", "paper (%)", "this suite (%)", f"within {TOLERANCE} points"], rows)


def data_table(study: str, s: pd.DataFrame) -> str:
    """The full curve(s) of the study, mean ± sd over seeds."""
    if study == "curves":
        series = [(k, _pick(s, network=k[0], mode=k[1])) for k in LABELS if k[1] in ("ok", "mixed")]
        index, fmt = "epoch", "{}"
    elif study == "faults":
        series = [(k, _pick(s, network=k[0], mode=k[1])) for k in LABELS if k[1] in FAULT_MODES]
        index, fmt = "p", "{:g} %"
    else:
        last = s[s["epoch"] == s["epoch"].max()]
        series = [(("two", m), _pick(last, mode=m)) for m in ("ok", "fp32")]
        index, fmt = "hidden", "{}"
    series = [(k, part) for k, part in series if not part.empty]
    keys = sorted({v for _, part in series for v in part[index]})
    header = {"epoch": "epoch", "p": "failed devices", "hidden": "hidden neurons"}[index]
    names = [_hidden_label(k[1]) if study == "hidden" else LABELS[k] for k, _ in series]
    rows = []
    for key in keys:
        cells = [fmt.format(round(100 * key, 4) if index == "p" else key)]
        for _, part in series:
            hit = part[np.isclose(part[index], key)]
            cells.append(_cell(hit["mean"].iloc[0], hit["sd"].iloc[0]) if len(hit) else "")
        rows.append(cells)
    return _md([header, *names], rows)


def _hidden_label(mode: str) -> str:
    return "fp32 backprop" if mode == "fp32" else "device precision (in-situ)"


# ---- plots ---------------------------------------------------------------------------------


def plot(study: str, s: pd.DataFrame, path: Path) -> None:
    """Accuracy (%) with the seeds' standard deviation as error bars, as in the paper's figures."""
    if study == "curves":
        fig, axes = plt.subplots(1, 2, figsize=(9, 3.6), sharey=True)
        for ax, net, fig_no in zip(axes, ("single", "two"), ("Fig. 5", "Fig. 6a"), strict=True):
            for mode, marker in (("ok", "o"), ("mixed", "s")):
                part = _pick(s, network=net, mode=mode)
                if not part.empty:
                    ax.errorbar(part["epoch"], part["mean"], part["sd"], marker=marker,
                                capsize=2, ms=4, label=LABELS[(net, mode)])
            ax.set_title(f"{'single layer' if net == 'single' else 'two layers'} (cf. {fig_no})")
            ax.set_xlabel("training epochs")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.legend(loc="lower right", fontsize=8)
        axes[0].set_ylabel("test accuracy (%)")
    elif study == "faults":
        fig, ax = plt.subplots(figsize=(6, 5))
        for (net, mode), label in LABELS.items():
            part = _pick(s, network=net, mode=mode)
            if mode in FAULT_MODES and not part.empty:
                ax.errorbar(100 * part["p"], part["mean"], part["sd"], capsize=2, ms=4,
                            marker=FAULT_MARKERS[mode], ls="-" if net == "two" else "--",
                            alpha=1.0 if mode.startswith("stuck") else 0.55, label=label)
        ax.set_xticks(100 * np.unique(s["p"]))
        ax.set_xlabel("failed devices (%)")
        ax.set_ylabel("test accuracy (%)")
        ax.set_title("failed devices after training (cf. Fig. 7)")
        ax.legend(fontsize=8, ncol=2, loc="upper center", bbox_to_anchor=(0.5, -0.15))
    else:
        fig, ax = plt.subplots(figsize=(5, 3.8))
        last = s[s["epoch"] == s["epoch"].max()]
        for mode, marker in (("ok", "o"), ("fp32", "s")):
            part = _pick(last, mode=mode)
            if not part.empty:
                ax.errorbar(part["hidden"], part["mean"], part["sd"], marker=marker, capsize=2,
                            ms=4, label=_hidden_label(mode))
        ax.set_xlabel("hidden neurons")
        ax.set_ylabel("test accuracy (%)")
        ax.set_title("two layers vs hidden neurons (cf. Fig. 8)")
        ax.legend(loc="lower right", fontsize=8)
    for ax in fig.axes:
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# ---- one study's Markdown ---------------------------------------------------------------------

TITLES = {
    "curves": "Learning curves (Figs. 5, 6a)",
    "faults": "Failed devices after training (Fig. 7)",
    "hidden": "Hidden neurons (Fig. 8)",
}


def study_markdown(study: str, df: pd.DataFrame, image: str, about: str, level: int = 2) -> str:
    """Section for one study: plot, the paper's figures beside ours, the full data."""
    s = summarise(df)
    seeds = df["seed"].nunique()
    return "\n\n".join([
        f"{'#' * level} {TITLES[study]}",
        about,
        f"![{study}]({image})",
        f"Paper vs this suite: mean over {seeds} seed(s); \"within\" allows {TOLERANCE} points "
        "around the paper's number (or beyond its bound).",
        claims_table(study, s),
        "Test accuracy (%), mean ± standard deviation over seeds:",
        data_table(study, s),
    ]) + "\n"
