from __future__ import annotations

import pytest

from hil.errors import DataError
from hil.training.data import ENV, load_digits


def test_uci_files_are_read_with_their_identity(small_data):
    d = load_digits(small_data)
    assert d.name == "uci-optdigits" and d.x_train.shape == (300, 64) and len(d.y_test) == 200
    assert d.x_train.max() <= 16 and len(d.sha256) == 64


@pytest.mark.parametrize(("line", "problem"), [
    ("1,2,3", "expected 65 fields"),
    (",".join(["0"] * 64 + ["x"]), "fields must be integers"),
    (",".join(["17"] + ["0"] * 63 + ["1"]), "pixel values must be 0-16"),
    (",".join(["0"] * 64 + ["10"]), "label must be 0-9"),
])
def test_bad_line_is_an_error_naming_file_and_line(tmp_path, small_data, line, problem):
    good = (small_data / "optdigits.tra").read_text().splitlines()
    (tmp_path / "optdigits.tra").write_text("\n".join(good[:3] + [line]) + "\n")
    (tmp_path / "optdigits.tes").write_text((small_data / "optdigits.tes").read_text())
    with pytest.raises(DataError, match=rf"optdigits.tra: line 4: {problem}"):
        load_digits(tmp_path)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(DataError, match="optdigits.tra: not found"):
        load_digits(tmp_path)


def test_fallback_uses_sklearn_copy_and_says_so(monkeypatch):
    monkeypatch.delenv(ENV, raising=False)
    said = []
    d = load_digits(None, say=said.append)
    assert d.name == "sklearn-digits-fallback" and len(d.y_train) + len(d.y_test) == 1797
    assert said and "scikit-learn" in said[0]
    again = load_digits(None, say=lambda m: None)
    assert (again.y_test == d.y_test).all()  # the split is fixed
