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
    ("single", "stuck_off_repaired"): "single layer, stuck-off, repaired",
    ("single", "stuck_on_repaired"): "single layer, stuck-on, repaired",
    ("two", "stuck_off_repaired"): "two layers, stuck-off, repaired",
    ("two", "stuck_on_repaired"): "two layers, stuck-on, repaired",
}
FAULT_MODES = ("stuck_off", "stuck_on", "pair_off", "fp32_dropped", "stuck_off_repaired",
               "stuck_on_repaired")
FAULT_MARKERS = {"stuck_off": "o", "stuck_on": "^", "pair_off": "D", "fp32_dropped": "s",
                 "stuck_off_repaired": "P", "stuck_on_repaired": "v"}
# the repaired curves in colours of their own (the default cycle has ten, the plot twelve curves)
REPAIRED_COLOURS = {("single", "stuck_off_repaired"): "tab:olive",
                    ("single", "stuck_on_repaired"): "tab:cyan",
                    ("two", "stuck_off_repaired"): "black",
                    ("two", "stuck_on_repaired"): "darkmagenta"}
# what a repair must reach (mean over seeds), beside what the paper measured without one
REPAIR_TARGETS = [("single", "stuck_off", 0.20, 90.0, "64.7"),
                  ("two", "stuck_off", 0.20, 93.0, "88.06"),
                  ("single", "stuck_on", 0.10, 88.0, "< 20"),
                  ("two", "stuck_on", 0.10, 90.0, "≈ 20")]


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


def repair_tables(s: pd.DataFrame, repairs: pd.DataFrame) -> str:
    """The repairs beside the paper's figures without one, and what each repair cost."""
    rows = []
    for net, mode, p, target, paper in REPAIR_TARGETS:
        before = _faults(net, mode, p, True)(s)
        after = _faults(net, f"{mode}_repaired", p, True)(s)
        if after is None:
            continue
        what = f"{LABELS[(net, mode)]}, {100 * p:g} %"
        rows.append([what, paper, f"{before:.2f}", f"{after:.2f}", f"≥ {target:g}",
                     "yes" if after >= target else "**no**"])
    targets = _md(["failed after training", "paper, no repair (%)", "this suite, no repair (%)",
                   "repaired (%)", "target (%)", "met"], rows)
    spent = repairs[["test_pulses", "cancel_pulses", "tune_pulses"]].sum(axis=1)
    r = repairs.assign(pulses=spent)
    r["share"] = 100 * r["pulses"] / r["training_pulses"]
    g = r.groupby(["network", "mode", "p"], sort=True)
    cost = g[["moved", "written_off", "epochs", "test_pulses", "cancel_pulses", "tune_pulses",
              "pulses", "share"]].mean().reset_index()
    acc = g[["accuracy_before", "accuracy_after"]].mean().reset_index()
    body = [[f"{'single layer' if c.network == 'single' else 'two layers'}, "
             f"{c.mode.replace('_', '-')}", f"{100 * c.p:g} %", f"{c.moved:.0f}",
             f"{c.written_off:.0f}", f"{c.epochs:g}",
             f"{c.test_pulses:.0f} + {c.cancel_pulses:.0f} + {c.tune_pulses:.0f}",
             f"{c.share:.2f} %", f"{100 * a.accuracy_before:.2f} → {100 * a.accuracy_after:.2f}"]
            for c, a in zip(cost.itertuples(), acc.itertuples(), strict=True)]
    costs = _md(["network, failure", "failed devices", "read differently", "written off",
                 "repair epochs", "pulses: test + cancel + fine-tune", "of the training's",
                 "accuracy (%)"], body)
    return "\n\n".join([targets, "What each repair found and cost (mean over seeds; pulses "
                         "as a share of the training run's, preparation included):", costs])


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
                            alpha=1.0 if mode.startswith("stuck") else 0.55, label=label,
                            color=REPAIRED_COLOURS.get((net, mode)))
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


def study_markdown(study: str, df: pd.DataFrame, image: str, about: str, level: int = 2,
                   repairs: pd.DataFrame | None = None) -> str:
    """Section for one study: plot, the paper's figures beside ours, the full data (and for
    the faults study, the repairs if it ran them)."""
    s = summarise(df)
    seeds = df["seed"].nunique()
    repaired = [] if repairs is None or repairs.empty else [
        "Repaired in place after the failures (`--repair-epochs`), as `hil repair` does:",
        repair_tables(s, repairs)]
    return "\n\n".join([
        f"{'#' * level} {TITLES[study]}",
        about,
        f"![{study}]({image})",
        f"Paper vs this suite: mean over {seeds} seed(s); \"within\" allows {TOLERANCE} points "
        "around the paper's number (or beyond its bound).",
        claims_table(study, s),
        *repaired,
        "Test accuracy (%), mean ± standard deviation over seeds:",
        data_table(study, s),
    ]) + "\n"
