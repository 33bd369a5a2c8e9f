"""A study table shows only epochs that were run."""

from __future__ import annotations

import pandas as pd

from hil.studies.report import claims_table


def test_an_epoch_beyond_the_run_reads_not_run():
    rows = [{"network": n, "hidden": 0, "mode": m, "p": 0.0, "epoch": e, "mean": 60.0 + e,
             "sd": 0.0, "n": 1} for n in ("single", "two") for m in ("ok", "mixed")
            for e in (1, 2)]
    table = claims_table("curves", pd.DataFrame(rows))
    lines = {line.split("|")[1].strip(): line for line in table.splitlines()[2:]}
    assert "not run" in lines["single layer, 6.15 % failed, epoch 8"]
    assert "62.00" in lines["single layer, 6.15 % failed, final"]
    assert "62.00" in lines["two layers, epoch 2"] and "61.00" in lines["single layer, epoch 1"]
