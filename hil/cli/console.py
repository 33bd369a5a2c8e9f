"""What a command shows the operator, and the same lines in the run directory's ``log.txt``.

Every command speaks through one :class:`Console`: ``say`` for what is going on (stderr, silenced
by ``--quiet``), ``result`` for the figures a command exists to give (stdout, always shown),
``bar`` for progress on anything longer than a second. Lines said before the run directory exists
are kept and written to ``log.txt`` as soon as the command names it, so the log holds what the
terminal showed from the first line (progress bars as their final state, not every redraw).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import IO, Any

from tqdm import tqdm

LOG_NAME = "log.txt"


class _Bar(tqdm):
    """A tqdm bar whose final state goes to the console's log when it closes."""

    def __init__(self, *args: Any, console: Console, **kwargs: Any) -> None:
        self._console = console
        super().__init__(*args, **kwargs)

    def close(self) -> None:
        if not self.disable and not getattr(self, "_logged", False):
            self._logged = True  # tqdm may close twice (explicitly, then on deletion)
            self._console.log_line(self.format_meter(**self.format_dict))
        super().close()

    def write_line(self, msg: str) -> None:
        """A line above the bar, kept in the log too."""
        self._console.log_line(msg)
        if not self._console.quiet:
            self.write(msg, file=sys.stderr)


class Console:
    """The operator's terminal for one command, and its copy in ``log.txt``."""

    def __init__(self, quiet: bool = False) -> None:
        self.quiet = quiet
        self._log: IO[str] | None = None
        self._pending: list[str] = []

    def attach(self, run_dir: Path) -> None:
        """Start ``run_dir/log.txt`` (appended to: a resumed run keeps its first part)."""
        if self._log is not None:
            return
        run_dir.mkdir(parents=True, exist_ok=True)
        self._log = open(run_dir / LOG_NAME, "a", encoding="utf-8")  # noqa: SIM115
        self._log.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} hil "
                        f"{' '.join(sys.argv[1:])}\n")
        for line in self._pending:
            self._log.write(line + "\n")
        self._pending.clear()
        self._log.flush()

    def close(self) -> None:
        """End of the command: the log is closed and lines no run took are dropped."""
        if self._log is not None:
            self._log.close()
            self._log = None
        self._pending.clear()

    def log_line(self, msg: str) -> None:
        if self._log is None:
            self._pending.append(msg)
        else:
            self._log.write(msg + "\n")
            self._log.flush()

    def say(self, msg: str) -> None:
        """What is going on: stderr unless ``--quiet``, and the log."""
        self.log_line(msg)
        if not self.quiet:
            print(msg, file=sys.stderr, flush=True)

    def result(self, msg: str) -> None:
        """What the command exists to tell: stdout even with ``--quiet``, and the log."""
        self.log_line(msg)
        print(msg, flush=True)

    def error(self, msg: str) -> None:
        self.log_line(msg)
        print(msg, file=sys.stderr, flush=True)

    def bar(self, **kwargs: Any) -> _Bar:
        """A progress bar on stderr (none with ``--quiet``); its last state goes to the log."""
        kwargs.setdefault("file", sys.stderr)
        kwargs.setdefault("dynamic_ncols", True)
        kwargs.setdefault("mininterval", 0.5)
        return _Bar(console=self, disable=self.quiet, **kwargs)


console = Console()
"""The console of the running command (``hil.cli.main`` sets ``--quiet`` on it)."""
