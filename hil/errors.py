"""Errors the CLI turns into one readable line and a non-zero exit code."""


class HilError(Exception):
    """A problem the operator can fix (bad input, missing file, refused setting)."""

    exit_code = 2


class BenchFileError(HilError):
    """A bench file that cannot be used; the message names file, key and problem."""

    def __init__(self, path: object, key: str, problem: str) -> None:
        super().__init__(f"{path}: {key}: {problem}")
        self.path, self.key, self.problem = path, key, problem


class DataError(HilError):
    """An input data file that is malformed; the message names file and line."""
