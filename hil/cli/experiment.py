"""``hil experiment curves|faults|hidden|report``: the paper's studies, in parallel, with plots and
tables beside the paper's numbers.
 Each study writes into ``--out``: ``results.csv`` (see :mod:`hil.studies.experiments`),
``<study>.png``, ``results.md`` (the paper's figures beside ours) and ``study.json`` (what was run,
and how long it took). ``report`` runs all three into ``OUT/<study>/`` and writes one Markdown file
with every
section: the README's results section is that file.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd

from hil import __version__
from hil.bench import load_bench
from hil.cli.console import console
from hil.curves import load_curves
from hil.errors import HilError
from hil.faults import fraction
from hil.network import NetworkSpec
from hil.records import RunStore, output_dir, write_atomic
from hil.studies.experiments import (
    FAULT_FRACTIONS,
    HIDDEN_SIZES,
    STUDIES,
    Setup,
    open_executor,
    run_studies,
    study_trials,
)
from hil.studies.report import claims_table, plot, study_markdown, summarise
from hil.training.data import ENV, load_digits

ABOUT = {
    "curves": "Test accuracy after every training epoch, trained in-situ with no failed devices "
    "and with failed devices during training (each device with probability 6.15 %, half of them "
    "stuck-on, half stuck-off).",
    "faults": "Networks trained without failed devices, then a random fraction of their devices "
    "replaced by stuck-off or by stuck-on devices before measuring the test accuracy. Beside "
    "them, for reference: the same fraction of whole weights lost (both devices of a pair stuck "
    "off), and the same network trained in fp32 with that fraction of its weights dropped. With "
    "--repair-epochs, each stuck-off and stuck-on network is then repaired in place as hil "
    "repair does (re-check every device, write the failed ones off, fine-tune) and measured "
    "again.",
    "hidden": "Two-layer networks trained in-situ at device precision, beside fp32 backprop of the "
    "same network (final epoch).",
}


def register(sub: argparse._SubParsersAction) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--seeds", default="3", metavar="N|LIST",
                        help="number of seeds (0..N-1) or a comma-separated list (default: 3)")
    common.add_argument("--epochs", type=int, default=20, help="training epochs (default: 20)")
    common.add_argument("--device-curves", metavar="CSV",
                        help="response curves for the simulated devices (default: the bench's)")
    common.add_argument("--bench", metavar="FILE", help="bench file (default: embedded sim bench)")
    common.add_argument("--common-mode", type=float, metavar="µS",
                        help="low common mode of the update rule, as hil train's (default: the "
                        "trainer's, 10; inf turns it off)")
    common.add_argument("--data", metavar="DIR", help="UCI optdigits directory "
                        f"(default: ${ENV}, else scikit-learn's copy)")
    common.add_argument("--workers", type=int, metavar="N",
                        help="local worker processes (default: one per CPU)")
    common.add_argument("--scheduler", metavar="ADDRESS",
                        help="run the trials on this Dask scheduler instead (e.g. "
                        "tcp://host:8786); workers need the suite installed and the data and "
                        "curves files at the same paths")
    fractions = argparse.ArgumentParser(add_help=False)
    fractions.add_argument("--fractions", default=_join(FAULT_FRACTIONS), metavar="LIST",
                           help="fractions 0-1 of failed devices for the faults study "
                           "(default: %(default)s)")
    fractions.add_argument("--repair-epochs", type=int, default=0, metavar="N",
                           help="faults study: also repair every stuck-off and stuck-on network "
                           "in place as hil repair does, fine-tuning N epochs (default: 0, no "
                           "repair)")
    hidden = argparse.ArgumentParser(add_help=False)
    hidden.add_argument("--hidden", default=_join(HIDDEN_SIZES), metavar="LIST",
                        help="hidden-neuron counts for the hidden study (default: %(default)s)")

    p = sub.add_parser("experiment", help="reproduce the paper's studies (Figs. 5-8)",
                       description="Run the paper's studies on the simulated bench as seeded "
                       "trials in parallel; each writes results.csv, a plot and a table beside "
                       "the paper's numbers.")
    studies = p.add_subparsers(dest="study", metavar="STUDY", required=True)
    helps = {"curves": "accuracy vs epoch, with and without failed devices (Figs. 5, 6a)",
             "faults": "accuracy vs stuck-off / stuck-on devices injected after training, "
                       "beside weights lost and fp32 weights dropped (Fig. 7)",
             "hidden": "accuracy vs hidden neurons, in-situ beside fp32 (Fig. 8)"}
    parents = {"curves": [common], "faults": [common, fractions], "hidden": [common, hidden]}
    for study in STUDIES:
        s = studies.add_parser(study, parents=parents[study], help=helps[study],
                               description=ABOUT[study])
        s.add_argument("--out", metavar="DIR", help="output directory "
                       f"(default: runs/experiment-{study}-<time>)")
        s.set_defaults(run=run)
    r = studies.add_parser("report", parents=[common, fractions, hidden],
                           help="run all three studies and write the results Markdown",
                           description="Run curves, faults and hidden into OUT/<study>/ and "
                           "write one Markdown file with every section (the README's results).")
    r.add_argument("--out", metavar="DIR", help="output directory (default: runs/report-<time>)")
    r.add_argument("--markdown", metavar="FILE", help="Markdown file (default: OUT/results.md)")
    r.add_argument("--reuse", action="store_true",
                   help="keep a study whose OUT/<study>/ was run with the same parameters")
    r.set_defaults(run=run)


def _join(values) -> str:
    return ",".join(f"{v:g}" for v in values)


def _list(text: str, option: str, kind: type) -> list:
    try:
        values = [kind(v) for v in text.split(",")]
    except ValueError:
        values = []
    if not values:
        raise HilError(f"{option} {text!r}: expected a comma-separated list of numbers")
    return values


def _seeds(text: str) -> list[int]:
    values = _list(text, "--seeds", int)
    if "," not in text:
        if values[0] < 1:
            raise HilError("--seeds must be at least 1")
        return list(range(values[0]))
    if len(set(values)) != len(values) or min(values) < 0:
        raise HilError(f"--seeds {text!r}: seeds must be distinct and >= 0")
    return values


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _prepare(args: argparse.Namespace) -> tuple[Setup, dict[str, Any]]:
    """Validate everything in this process (a worker's error would be far less readable) and
    describe the run without any path of this machine."""
    say = console.say
    if args.epochs < 1:
        raise HilError("--epochs must be at least 1")
    if args.workers is not None and args.workers < 1:
        raise HilError("--workers must be at least 1")
    seeds = _seeds(args.seeds)
    bench = load_bench(args.bench)
    if bench.backend != "sim":
        raise HilError(f"{bench.path}: the studies run on the simulated bench, this bench's "
                       f"backend is {bench.backend!r}")
    if args.common_mode is not None and not args.common_mode > 0:
        raise HilError("--common-mode must be above 0 µS (inf turns it off)")
    curves = Path(args.device_curves).resolve() if args.device_curves else None
    if curves is not None:
        load_curves(curves)
    data = args.data or os.environ.get(ENV)
    data = str(Path(data).resolve()) if data else None
    digits = load_digits(data, say=say)
    setup = Setup(epochs=args.epochs, data=data, curves=str(curves) if curves else None,
                  bench=str(Path(args.bench).resolve()) if args.bench else None)
    about: dict[str, Any] = {
        "seeds": seeds,
        "epochs": args.epochs,
        "data": digits.identity(),
        "bench": {"name": bench.name, "sha256": hashlib.sha256(bench.text.encode()).hexdigest()},
        "device_curves": {"file": curves.name, "sha256": _sha256(curves)} if curves else
        "bench default",
    }
    if args.common_mode is not None:
        setup = replace(setup, common_mode_uS=args.common_mode)
        about["common_mode_uS"] = str(args.common_mode)  # JSON has no inf
    if hasattr(args, "fractions"):
        fractions = [fraction(v, "--fractions", args.fractions)
                     for v in args.fractions.split(",")]
        setup = replace(setup, fractions=tuple(fractions))
        about["fractions"] = fractions
        if args.repair_epochs < 0:
            raise HilError("--repair-epochs must be at least 0")
        if args.repair_epochs:
            setup = replace(setup, repair_epochs=args.repair_epochs)
            about["repair_epochs"] = args.repair_epochs
    if hasattr(args, "hidden"):
        hidden = _list(args.hidden, "--hidden", int)
        for h in hidden:
            NetworkSpec.parse("two", h)
        about["hidden"] = hidden
    return setup, about


def _params(study: str, about: dict[str, Any]) -> dict[str, Any]:
    """The part of ``about`` that determines a study's results."""
    drop = {"curves": ("fractions", "hidden", "repair_epochs"), "faults": ("hidden",),
            "hidden": ("fractions", "repair_epochs")}
    return {k: v for k, v in about.items() if k not in drop[study]}


def _run(studies: list[str], setup: Setup, about: dict[str, Any], dirs: dict[str, Path],
         args: argparse.Namespace) -> dict[str, pd.DataFrame]:
    """Run ``studies`` together (sharing their common trainings) and write their outputs."""
    plan = {s: study_trials(s, about["seeds"], setup, about.get("hidden", HIDDEN_SIZES))
            for s in studies}
    trainings = len({t.training for trials in plan.values() for t in trials})
    t0 = time.monotonic()
    stores = {}
    for study in studies:  # hil watch follows each study as its trainings finish
        store = stores[study] = RunStore.create(dirs[study], reuse=True, kind="study",
                                                study=study, trials=len(plan[study]))
        store.put_progress("running", what="training", done=0,
                           total=len({t.training for t in plan[study]}), wall_seconds=0.0)
    finished = dict.fromkeys(studies, 0)
    per_study = {s: len({t.training for t in plan[s]}) for s in studies}

    def on_rows(study: str, rows: pd.DataFrame) -> None:
        stores[study].write_table("results", rows, append=True)
        finished[study] += 1
        stores[study].put_progress("running", what="training", done=finished[study],
                                   total=per_study[study], wall_seconds=time.monotonic() - t0)

    try:
        with open_executor(args.workers, args.scheduler) as executor:
            frames, repairs = run_studies(plan, executor, progress=not console.quiet,
                                          on_rows=on_rows)
    finally:
        for store in stores.values():
            store.close()
    elapsed = time.monotonic() - t0
    executor_name = ("dask" if args.scheduler else
                     f"{args.workers or os.cpu_count()} local processes")
    for study, df in frames.items():
        out = dirs[study]
        write_atomic(out / "results.csv", lambda p, df=df: df.to_csv(p, index=False))
        meta = {"study": study, "params": _params(study, about), "trials": len(plan[study]),
                "run_with": studies, "trainings": trainings, "executor": executor_name,
                "wall_seconds": round(elapsed, 1), "version": __version__}
        write_atomic(out / "study.json",
                     lambda p, meta=meta: p.write_text(json.dumps(meta, indent=2) + "\n"))
        if study == "faults" and setup.repair_epochs:
            write_atomic(out / REPAIRS, lambda p: repairs.to_csv(p, index=False))
        else:
            (out / REPAIRS).unlink(missing_ok=True)
        _render(study, df, out)
        store = RunStore(out)
        store.write_table("results", df)  # the final rows, in results.csv's order
        store.put_progress("done", what="training", done=finished[study],
                           total=per_study[study], wall_seconds=elapsed)
        store.close()
    return frames


REPAIRS = "repairs.csv"  # faults study: what each repair found and cost


def _repairs(out: Path) -> pd.DataFrame | None:
    """The faults study's repair costs, if it ran repairs."""
    return pd.read_csv(out / REPAIRS) if (out / REPAIRS).exists() else None


def _render(study: str, df: pd.DataFrame, out: Path) -> None:
    write_atomic(out / f"{study}.png", lambda p: plot(study, summarise(df), p))
    text = study_markdown(study, df, f"{study}.png", ABOUT[study], repairs=_repairs(out))
    write_atomic(out / "results.md", lambda p: p.write_text(text))


def _reusable(study: str, about: dict[str, Any], out: Path) -> pd.DataFrame | None:
    try:
        meta = json.loads((out / "study.json").read_text())
        df = pd.read_csv(out / "results.csv")
    except (OSError, ValueError):
        return None
    return df if meta.get("params") == json.loads(json.dumps(_params(study, about))) else None


def run(args: argparse.Namespace) -> int:
    setup, about = _prepare(args)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    if args.study != "report":
        out = output_dir(args.out or f"runs/experiment-{args.study}-{stamp}")
        console.attach(out)
        df = _run([args.study], setup, about, {args.study: out}, args)[args.study]
        console.result(claims_table(args.study, summarise(df)))
        console.result(f"{args.study}: {len(df)} rows in {out / 'results.csv'}")
        return 0
    out = Path(args.out or f"runs/report-{stamp}")
    markdown = Path(args.markdown) if args.markdown else out / "results.md"
    if not args.reuse:
        output_dir(out)
    console.attach(out)
    dirs = {study: output_dir(out / study, existing_ok=args.reuse) for study in STUDIES}
    output_dir(markdown.parent, existing_ok=True)
    frames = {}
    for study in STUDIES if args.reuse else ():
        df = _reusable(study, about, dirs[study])
        if df is not None:
            console.say(f"{study}: reusing {dirs[study] / 'results.csv'}")
            _render(study, df, dirs[study])
            frames[study] = df
    todo = [study for study in STUDIES if study not in frames]
    if todo:
        frames.update(_run(todo, setup, about, dirs, args))
    sections = [study_markdown(study, frames[study], Path(os.path.relpath(
        dirs[study] / f"{study}.png", markdown.parent)).as_posix(), ABOUT[study], 3,
        repairs=_repairs(dirs[study])) for study in STUDIES]
    markdown.parent.mkdir(parents=True, exist_ok=True)
    text = _report_header(about, _command(args, out, markdown)) + "\n" + "\n".join(sections)
    write_atomic(markdown, lambda p: p.write_text(text))
    console.result(f"report: {markdown}")
    return 0


def _command(args: argparse.Namespace, out: Path, markdown: Path) -> str:
    """The command that regenerates this report (file options by name only: no machine paths)."""
    parts = ["hil experiment report", f"--seeds {args.seeds}", f"--epochs {args.epochs}"]
    if args.fractions != _join(FAULT_FRACTIONS):
        parts.append(f"--fractions {args.fractions}")
    if args.hidden != _join(HIDDEN_SIZES):
        parts.append(f"--hidden {args.hidden}")
    if args.repair_epochs:
        parts.append(f"--repair-epochs {args.repair_epochs}")
    if args.common_mode is not None:
        parts.append(f"--common-mode {args.common_mode:g}")
    for option, value in (("--bench", args.bench), ("--device-curves", args.device_curves)):
        if value:
            parts.append(f"{option} {Path(value).name}")
    parts += [f"--out {out.as_posix()}", f"--markdown {markdown.as_posix()}"]
    return " ".join(parts)


def _report_header(about: dict[str, Any], command: str) -> str:
    data = about["data"]
    curves = about["device_curves"]
    curves = curves if isinstance(curves, str) else f"{curves['file']} ({curves['sha256'][:12]})"
    return "\n".join([
        "## Results: the paper's figures on the simulated bench",
        "",
        f"Generated by `hil experiment report` (memristor-hil {__version__}): "
        f"{len(about['seeds'])} seeds, {about['epochs']} epochs, data {data['name']} "
        f"({data['train']} train / {data['test']} test images), bench "
        f"{about['bench']['name']}, device curves: {curves}.",
        "Regenerate with (UCI optdigits in `$HIL_OPTDIGITS_DIR`):",
        "",
        "```",
        command,
        "```",
        "",
    ])
